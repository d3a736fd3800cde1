package partsync_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	gosync "sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/cloud/ingest"
	"github.com/outpost-robotics/outpost/cloud/partsync"
)

// notingBackend is the test fleet that also re-issues documents when a
// part's peer-visible status changes, recording each note and whether its
// context was still live.
type notingBackend struct {
	*backend
	mu    gosync.Mutex
	notes []error
}

func (b *notingBackend) PeerChanged(ctx context.Context, _ partsync.Part) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.notes = append(b.notes, ctx.Err())
	return ctx.Err()
}

// cancelOnPutStatus cancels the request as soon as the status is stored,
// as a part that stops (or a link that drops) right then would.
type cancelOnPutStatus struct {
	ingest.Store
	cancel context.CancelFunc
}

func (c cancelOnPutStatus) PutStatus(ctx context.Context, partID string, st *syncv1.PartStatus, at time.Time) error {
	err := c.Store.PutStatus(ctx, partID, st, at)
	c.cancel()
	return err
}

// TestStatusChangesReissueDocuments: a report that changes what the part's
// documents are built from (addresses, certificate, platform) is noted to
// the backend, once per change, and the note is made even when the part
// stops waiting right after its status is stored: otherwise its next
// report would find nothing changed and the documents, which choose its
// packages' builds by platform, would never be re-issued.
func TestStatusChangesReissueDocuments(t *testing.T) {
	e := newEnv(t, partsync.Options{})
	secret := e.backend.provision("part-a")
	b := &notingBackend{backend: e.backend}
	report := func(st *syncv1.PartStatus) {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		_, h := partsync.NewHandler(b, cancelOnPutStatus{Store: e.store, cancel: cancel}, partsync.Options{Clock: e.clock})
		body, err := proto.Marshal(&syncv1.ReportStatusRequest{Status: st})
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/outpost.sync.v1.SyncService/ReportStatus", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/proto")
		req.Header.Set("Authorization", "Part part-a:"+secret)
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	for _, tc := range []struct {
		name   string
		status *syncv1.PartStatus
		noted  bool
	}{
		{"the first report", &syncv1.PartStatus{Platform: "linux/amd64", ControlAddresses: []string{"10.0.0.2:4242"}}, true},
		{"the same again", &syncv1.PartStatus{Platform: "linux/amd64", ControlAddresses: []string{"10.0.0.2:4242"}, Version: "1.2.3"}, false},
		{"a new platform", &syncv1.PartStatus{Platform: "linux/arm64", ControlAddresses: []string{"10.0.0.2:4242"}}, true},
		{"a new address", &syncv1.PartStatus{Platform: "linux/arm64", ControlAddresses: []string{"10.0.0.3:4242"}}, true},
		{"a new certificate", &syncv1.PartStatus{Platform: "linux/arm64", ControlAddresses: []string{"10.0.0.3:4242"}, ControlCertSha256: bytes.Repeat([]byte{1}, 32)}, true},
	} {
		b.mu.Lock()
		before := len(b.notes)
		b.mu.Unlock()
		report(tc.status)
		b.mu.Lock()
		notes := b.notes[before:]
		b.mu.Unlock()
		switch {
		case tc.noted && (len(notes) != 1 || notes[0] != nil):
			t.Errorf("%s: notes %v, want one made with a live context", tc.name, notes)
		case !tc.noted && len(notes) != 0:
			t.Errorf("%s: noted %d times, want none", tc.name, len(notes))
		}
	}
}
