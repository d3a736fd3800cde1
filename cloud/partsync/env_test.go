package partsync_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	gosync "sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1/syncv1connect"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/cloud/ingest"
	"github.com/outpost-robotics/outpost/cloud/ingest/badgeringest"
	"github.com/outpost-robotics/outpost/cloud/partsync"
	"github.com/outpost-robotics/outpost/cloudsync"
	"github.com/outpost-robotics/outpost/signed"
)

var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

// backend is a small fleet: parts with hashed secrets, each with a signed
// config and grant bundle the test can replace.
type backend struct {
	signer signed.Signer

	mu        gosync.Mutex
	parts     map[string]*bpart
	proposals map[string]*syncv1.ConfigProposal // "part/store/seq" -> proposal
	handled   int                               // HandleProposal calls
	outcomes  map[string][]*syncv1.ProposalOutcome
	restarts  map[string]*syncv1.SignedDocument // part -> pending restart order
	reports   map[string][]*syncv1.RestartReport
}

type bpart struct {
	part          partsync.Part
	secretSHA     [32]byte
	config        *syncv1.SignedDocument
	configVersion uint64
	grants        *syncv1.SignedDocument
	grantsVersion uint64
}

func newBackend(t testing.TB) *backend {
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &backend{
		signer:    signed.Signer{KeyID: "cloud-1", Key: key},
		parts:     map[string]*bpart{},
		proposals: map[string]*syncv1.ConfigProposal{},
		outcomes:  map[string][]*syncv1.ProposalOutcome{},
		restarts:  map[string]*syncv1.SignedDocument{},
		reports:   map[string][]*syncv1.RestartReport{},
	}
}

// provision adds a part and returns its secret.
func (b *backend) provision(id string) string {
	secret := "secret-of-" + id + "-Zq8xLw3"
	b.mu.Lock()
	defer b.mu.Unlock()
	b.parts[id] = &bpart{part: partsync.Part{ID: id, MachineID: "machine-" + id, OrgID: "org-1"}, secretSHA: sha256.Sum256([]byte(secret))}
	return secret
}

// publish signs and sets a part's config and grants at the given versions
// (0 leaves one as it is).
func (b *backend) publish(t testing.TB, id string, configVersion, grantsVersion uint64) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.parts[id]
	if configVersion > 0 {
		doc, err := b.signer.Sign(&syncv1.ConfigDocument{PartId: id, MachineId: p.part.MachineID, Version: configVersion, IssuedAt: timestamppb.New(t0), ExpiresAt: timestamppb.New(t0.Add(60 * 24 * time.Hour))})
		if err != nil {
			t.Fatal(err)
		}
		p.config, p.configVersion = doc, configVersion
	}
	if grantsVersion > 0 {
		doc, err := b.signer.Sign(&syncv1.GrantBundle{PartId: id, MachineId: p.part.MachineID, Version: grantsVersion, IssuedAt: timestamppb.New(t0), ExpiresAt: timestamppb.New(t0.Add(60 * 24 * time.Hour))})
		if err != nil {
			t.Fatal(err)
		}
		p.grants, p.grantsVersion = doc, grantsVersion
	}
}

func (b *backend) AuthenticatePart(_ context.Context, partID, secret string) (partsync.Part, error) {
	b.mu.Lock()
	p, ok := b.parts[partID]
	b.mu.Unlock()
	sum := sha256.Sum256([]byte(secret))
	if !ok || subtle.ConstantTimeCompare(sum[:], p.secretSHA[:]) != 1 {
		return partsync.Part{}, fmt.Errorf("part %s: %w", partID, partsync.ErrUnknownPart)
	}
	return p.part, nil
}

func (b *backend) Documents(_ context.Context, part partsync.Part, haveConfig, haveGrants uint64) (cfg, grants *syncv1.SignedDocument, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.parts[part.ID]
	if p.configVersion > haveConfig {
		cfg = p.config
	}
	if p.grantsVersion > haveGrants {
		grants = p.grants
	}
	return cfg, grants, nil
}

func (b *backend) HandleProposal(_ context.Context, part partsync.Part, storeID string, seq uint64, p *syncv1.ConfigProposal) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.handled++
	k := fmt.Sprintf("%s/%s/%d", part.ID, storeID, seq)
	if _, ok := b.proposals[k]; !ok {
		b.proposals[k] = p
		b.outcomes[part.ID] = append(b.outcomes[part.ID], &syncv1.ProposalOutcome{Seq: seq, Accepted: true, Revision: seq + 100})
	}
	return nil
}

func (b *backend) ProposalOutcomes(_ context.Context, part partsync.Part) ([]*syncv1.ProposalOutcome, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := b.outcomes[part.ID]
	delete(b.outcomes, part.ID)
	return out, nil
}

func (b *backend) PollInterval(partsync.Part) time.Duration { return 20 * time.Second }

// askRestart makes a restart order pending for a part.
func (b *backend) askRestart(t testing.TB, id, orderID string) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	doc, err := b.signer.Sign(&syncv1.RestartOrder{PartId: id, Id: orderID, RequestedAt: timestamppb.New(t0), ExpiresAt: timestamppb.New(t0.Add(24 * time.Hour))})
	if err != nil {
		t.Fatal(err)
	}
	b.restarts[id] = doc
}

func (b *backend) PendingRestart(_ context.Context, part partsync.Part) (*syncv1.SignedDocument, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.restarts[part.ID], nil
}

func (b *backend) RestartHandled(_ context.Context, part partsync.Part, r *syncv1.RestartReport) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.reports[part.ID] = append(b.reports[part.ID], r)
	delete(b.restarts, part.ID)
	return nil
}

func (b *backend) restartReports(id string) []*syncv1.RestartReport {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.reports[id]
}

// logBuffer collects every log line, so a test can check that no secret
// reached one.
type logBuffer struct {
	mu  gosync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

type env struct {
	t       testing.TB
	backend *backend
	store   ingest.Store
	blobs   ingest.BlobStore
	clock   *clock.Fake
	logs    *logBuffer
	url     string
}

func newEnv(t testing.TB, opts partsync.Options) *env {
	t.Helper()
	return newEnvOn(t, opts, func(b *backend) partsync.Backend { return b })
}

// newEnvOn is newEnv serving the backend wrap makes of the test backend.
func newEnvOn(t testing.TB, opts partsync.Options, wrap func(*backend) partsync.Backend) *env {
	t.Helper()
	dir := t.TempDir()
	blobs, err := ingest.NewFileBlobStore(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := badgeringest.Open(badgeringest.Options{Dir: filepath.Join(dir, "ingest"), Blobs: blobs})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, backend: newBackend(t), store: st, blobs: blobs, clock: clock.NewFake(t0), logs: &logBuffer{}}
	opts.Clock = e.clock
	opts.Logger = zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(e.logs), zap.DebugLevel))
	mux := http.NewServeMux()
	mux.Handle(partsync.NewHandler(wrap(e.backend), st, opts))
	srv := httptest.NewServer(mux)
	e.url = srv.URL
	t.Cleanup(func() {
		srv.Close()
		if err := st.Close(); err != nil {
			t.Error(err)
		}
	})
	return e
}

// client is the daemon's own sync client (sync.NewClient): the part's
// credentials in the header, gzip bodies, retryablehttp with short waits.
func (e *env) client(url, partID, secret string) syncv1connect.SyncServiceClient {
	e.t.Helper()
	c, err := cloudsync.NewClient(cloudsync.ClientOptions{
		CloudURL: url, PartID: partID, PartSecret: secret,
		RetryMax: 1, RetryWaitMin: time.Millisecond, RetryWaitMax: 2 * time.Millisecond,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// part provisions a part and returns a client acting as it.
func (e *env) part(id string) syncv1connect.SyncServiceClient {
	return e.client(e.url, id, e.backend.provision(id))
}

func records(stream string, seqs ...uint64) []*syncv1.Record {
	out := make([]*syncv1.Record, len(seqs))
	for i, s := range seqs {
		out[i] = &syncv1.Record{Seq: s, Time: timestamppb.New(t0.Add(time.Duration(s) * time.Second)), Payload: payload(stream, s)}
	}
	return out
}

func payload(stream string, seq uint64) []byte {
	return fmt.Appendf(nil, "%s record %d", stream, seq)
}

func span(from, through uint64) []uint64 {
	var out []uint64
	for s := from; s <= through; s++ {
		out = append(out, s)
	}
	return out
}

func upload(t testing.TB, c syncv1connect.SyncServiceClient, storeID, stream string, recs []*syncv1.Record) uint64 {
	t.Helper()
	ans, err := c.Upload(context.Background(), connect.NewRequest(&syncv1.UploadRequest{StoreId: storeID, Stream: stream, Records: recs}))
	if err != nil {
		t.Fatalf("upload %d records of %s: %v", len(recs), stream, err)
	}
	return ans.Msg.GetAckedThrough()
}

func gap(t testing.TB, seq uint64, stream string, first, last uint64) *syncv1.Record {
	t.Helper()
	b, err := proto.Marshal(&syncv1.GapRecord{Stream: stream, FirstSeq: first, LastSeq: last, Count: last - first + 1, Reason: "over budget"})
	if err != nil {
		t.Fatal(err)
	}
	return &syncv1.Record{Seq: seq, Time: timestamppb.New(t0), Payload: b}
}

func codeOf(err error) connect.Code {
	if err == nil {
		return 0
	}
	return connect.CodeOf(err)
}

// outsyncClient is sync.NewClient with a chosen body compression.
func outsyncClient(url, partID, secret, compression string) (syncv1connect.SyncServiceClient, error) {
	return cloudsync.NewClient(cloudsync.ClientOptions{
		CloudURL: url, PartID: partID, PartSecret: secret, Compression: compression,
		RetryMax: 1, RetryWaitMin: time.Millisecond, RetryWaitMax: 2 * time.Millisecond,
	})
}
