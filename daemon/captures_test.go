package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/control/v1/controlv1connect"
	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	"github.com/outpost-robotics/outpost/cache"
	"github.com/outpost-robotics/outpost/capture"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/cloud/cloudtest"
	"github.com/outpost-robotics/outpost/cloud/ingest"
	"github.com/outpost-robotics/outpost/controlclient"
)

// controlClient is a field tech's client of a part's control plane over
// TLS (the certificate pinned on first use) with an API key.
func controlClient(t *testing.T, addr, apiKey string) controlv1connect.ControlServiceClient {
	t.Helper()
	fp, err := controlclient.ProbeFingerprint(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	conf, err := controlclient.PinnedTLSConfig(fp)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: conf, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	hc, base := &http.Client{Transport: tr}, "https://"+addr
	return controlv1connect.NewControlServiceClient(hc, base, connect.WithGRPC(), connect.WithInterceptors(cloudtest.PartAuth(apiKey, fp, hc, base, time.Now)))
}

// waitForGrants waits until the part at socket holds a grant bundle.
func waitForGrants(t *testing.T, socket string) {
	t.Helper()
	local := controlv1connect.NewControlServiceClient(socketClient(socket), "http://socket")
	cloudtest.Eventually(t, "the part holds grants", func() error {
		st, err := local.Status(context.Background(), connect.NewRequest(&controlv1.StatusRequest{}))
		if err == nil && st.Msg.GetGrantsVersion() == 0 {
			err = errors.New("no grants yet")
		}
		return err
	})
}

// TestCaptureEditsReachTheCloud is data.edit on the part end to end: a
// part holding captures (its uploads held back on the wire) is reached over
// gRPC with API keys the cloud made. An operator may not tag or delete (the
// seed's reason), an owner may; list and export show the tags and skip what
// was deleted. Then the uploads go through: the cloud holds the tagged
// captures with their tags, never the deleted ones nor their blob, and
// holds the deletion as a declared loss naming the owner's key.
func TestCaptureEditsReachTheCloud(t *testing.T) {
	ctx := context.Background()
	cl := cloudtest.New(t, cloudtest.Options{})
	proxyURL, release := cl.HoldUploads(t)
	cp := cl.Provision(t, cloudtest.PartOptions{CloudURL: proxyURL, Config: &configv1.RobotConfig{LogLevel: "info"}})
	owner := cl.CreateAPIKey(t, "owner", "machine/"+cp.MachineID)
	operator := cl.CreateAPIKey(t, "operator", "machine/"+cp.MachineID)

	p := &part{Dir: t.TempDir()}
	p.DataDir, p.RunDir = filepath.Join(p.Dir, "data"), filepath.Join(p.Dir, "run")
	p.BootPath = cp.WriteBootstrap(t, p.Dir)
	// Captures the part holds: 1-5 readings, 3 an image in a blob.
	st, err := cache.Open(ctx, filepath.Join(p.DataDir, "store"), cache.Options{Clock: clock.NewReal(), GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	sink := CaptureSink{st}
	const blobID = "image/cam/1"
	if err := sink.PutBlobChunk(ctx, blobID, 0, []byte("jpeg")); err != nil {
		t.Fatal(err)
	}
	if err := sink.SealBlob(ctx, blobID); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 5; i++ {
		c := capture.Capture{Kind: "method", Component: "imu", Method: "readings", Tick: uint64(i), Tags: []string{"field"}, Data: map[string]any{"x": i}}
		if i == 3 {
			c = capture.Capture{Kind: "method", Component: "cam", Method: "image", Tick: 3, BlobID: blobID, MimeType: "image/jpeg"}
		}
		b, _ := json.Marshal(c)
		if _, err := sink.Append(ctx, capture.StreamCaptures, capture.Record{Payload: b}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	r := run(t, p, clock.NewReal(), func(o *Options) { o.SyncInterval = time.Hour })
	ep := <-r.ready
	own, op := controlClient(t, ep.Control, owner.Token), controlClient(t, ep.Control, operator.Token)
	// The part knows the keys once its first sync brought the grants; the
	// break-glass socket tells (asking with the key before would count as
	// failed authentications, which are throttled).
	waitForGrants(t, ep.Socket)

	_, err = op.TagCaptures(ctx, connect.NewRequest(&controlv1.TagCapturesRequest{Ids: []uint64{1}, Add: []string{"reviewed"}}))
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != connect.CodePermissionDenied || !strings.Contains(ce.Message(), "may not data.edit") {
		t.Fatalf("operator tags: %v", err)
	}
	if _, err := op.DeleteCaptures(ctx, connect.NewRequest(&controlv1.DeleteCapturesRequest{Ids: []uint64{1}})); connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Fatalf("operator deletes: %v", err)
	}
	tag, err := own.TagCaptures(ctx, connect.NewRequest(&controlv1.TagCapturesRequest{Ids: []uint64{1, 2}, Add: []string{"reviewed"}, Remove: []string{"field"}}))
	if err != nil || tag.Msg.GetChanged() != 2 {
		t.Fatalf("owner tags: %v, %v", tag, err)
	}
	del, err := own.DeleteCaptures(ctx, connect.NewRequest(&controlv1.DeleteCapturesRequest{Ids: []uint64{3, 4}}))
	if err != nil || del.Msg.GetDeleted() != 2 {
		t.Fatalf("owner deletes: %v, %v", del, err)
	}
	list, err := own.ListCaptures(ctx, connect.NewRequest(&controlv1.ListCapturesRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range list.Msg.GetCaptures() {
		got = append(got, c.GetComponent()+strings.Join(c.GetTags(), "+"))
	}
	if want := []string{"imufield", "imureviewed", "imureviewed"}; !slices.Equal(got, want) {
		t.Fatalf("list after the edits: %q, want %q (5, 2, 1)", got, want)
	}
	exp, err := own.ExportCaptures(ctx, connect.NewRequest(&controlv1.ExportCapturesRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	var exported []uint64
	for exp.Receive() {
		if id := exp.Msg().GetInfo().GetId(); id <= 2 && !slices.Equal(exp.Msg().GetInfo().GetTags(), []string{"reviewed"}) {
			t.Errorf("export of capture %d shows tags %q", id, exp.Msg().GetInfo().GetTags())
		}
		exported = append(exported, exp.Msg().GetInfo().GetId())
	}
	if err := exp.Err(); err != nil || !slices.Equal(exported, []uint64{5, 2, 1}) {
		t.Fatalf("export: %v, %v", exported, err)
	}

	// The network heals; the final sync at shutdown uploads everything.
	release()
	r.sig <- syscall.SIGTERM
	if err := <-r.errc; err != nil {
		t.Fatalf("Run: %v", err)
	}
	r.errc <- nil
	if !strings.Contains(r.stderr.String(), `"msg":"final sync done"`) {
		t.Fatalf("the final sync did not complete:\n%s", tail(r.stderr.String()))
	}
	caps, err := cl.Admin(t).Data.ListCaptures(ctx, connect.NewRequest(&fleetv1.ListCapturesRequest{MachineId: cp.MachineID}))
	if err != nil {
		t.Fatal(err)
	}
	held := map[uint64][]string{}
	storeID := ""
	for _, c := range caps.Msg.GetCaptures() {
		held[c.GetSeq()] = c.GetCapture().GetTags()
		storeID = c.GetStoreId()
	}
	if len(held) != 3 || !slices.Equal(held[1], []string{"reviewed"}) || !slices.Equal(held[2], []string{"reviewed"}) || !slices.Equal(held[5], []string{"field"}) {
		t.Fatalf("the cloud holds captures %v; want 1 and 2 tagged reviewed, 5 as captured, 3 and 4 never", held)
	}
	key := ingest.StreamKey{PartID: cp.ID, StoreID: storeID, Stream: "captures"}
	lost, err := cl.Ingest().Lost(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if len(lost) != 1 || lost[0].First != 3 || lost[0].Last != 4 || lost[0].Reason != "deleted on the part by apikey/"+owner.ID {
		t.Fatalf("the cloud's declared losses: %+v", lost)
	}
	if w, err := cl.Ingest().AckedThrough(ctx, key); err != nil || w != 5 {
		t.Fatalf("the cloud's watermark of the captures: %d, %v; want 5 (the deletion counted)", w, err)
	}
	if _, err := cl.Ingest().Blob(ctx, cp.ID, blobID); !errors.Is(err, ingest.ErrNotFound) {
		t.Fatalf("the blob of the deleted image reached the cloud: %v", err)
	}
}
