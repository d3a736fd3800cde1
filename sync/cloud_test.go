package sync_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	gosync "sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/protobuf/types/known/timestamppb"

	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/cache"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/cloud/ingest"
	"github.com/outpost-robotics/outpost/cloud/ingest/badgeringest"
	"github.com/outpost-robotics/outpost/cloud/partsync"
	"github.com/outpost-robotics/outpost/faultproxy"
	"github.com/outpost-robotics/outpost/signed"
	outsync "github.com/outpost-robotics/outpost/sync"
)

const (
	partID     = "part-1"
	partSecret = "part-secret-0123456789abcdefghijklmnop"
	day        = 24 * time.Hour
)

var epoch = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// signingBackend is the fleet side of an in-process cloud: one part, whose
// config and grants the test issues (signed, versioned) when it likes. The
// part sync handler and the ingest store behind it are the real cloud's.
type signingBackend struct {
	signer signed.Signer
	clk    clock.Clock

	mu      gosync.Mutex
	version uint64
	config  *syncv1.SignedDocument
	grants  *syncv1.SignedDocument
}

// issue signs a new config and grant bundle version, valid for ttl from now.
func (b *signingBackend) issue(t *testing.T, ttl time.Duration) uint64 {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.version++
	now := b.clk.Now()
	cfg, err := b.signer.Sign(&syncv1.ConfigDocument{PartId: partID, MachineId: "m1", Version: b.version, IssuedAt: timestamppb.New(now), ExpiresAt: timestamppb.New(now.Add(ttl))})
	if err != nil {
		t.Fatal(err)
	}
	gr, err := b.signer.Sign(&syncv1.GrantBundle{PartId: partID, MachineId: "m1", Version: b.version, IssuedAt: timestamppb.New(now), ExpiresAt: timestamppb.New(now.Add(ttl))})
	if err != nil {
		t.Fatal(err)
	}
	b.config, b.grants = cfg, gr
	return b.version
}

func (b *signingBackend) AuthenticatePart(_ context.Context, id, secret string) (partsync.Part, error) {
	if id != partID || secret != partSecret {
		return partsync.Part{}, partsync.ErrUnknownPart
	}
	return partsync.Part{ID: id, MachineID: "m1", OrgID: "o1"}, nil
}

func (b *signingBackend) Documents(_ context.Context, _ partsync.Part, haveConfig, haveGrants uint64) (*syncv1.SignedDocument, *syncv1.SignedDocument, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var cfg, gr *syncv1.SignedDocument
	if b.version > haveConfig {
		cfg = b.config
	}
	if b.version > haveGrants {
		gr = b.grants
	}
	return cfg, gr, nil
}

func (b *signingBackend) HandleProposal(context.Context, partsync.Part, string, uint64, *syncv1.ConfigProposal) error {
	return nil
}

func (b *signingBackend) PollInterval(partsync.Part) time.Duration { return 0 }

// startCloud serves the real part sync handler over a real Badger ingest
// store on loopback until tb ends: the cloud a part talks to, with backend
// as its fleet side. wire counts the bytes the server reads.
func startCloud(tb testing.TB, backend partsync.Backend, clk clock.Clock) (url string, ing ingest.Store, wire *atomic.Int64) {
	tb.Helper()
	blobs, err := ingest.NewFileBlobStore(tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	store, err := badgeringest.Open(badgeringest.Options{Dir: tb.TempDir(), Blobs: blobs})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { store.Close() })
	path, h := partsync.NewHandler(backend, store, partsync.Options{Clock: clk})
	mux := http.NewServeMux()
	mux.Handle(path, h)
	wire = new(atomic.Int64)
	srv := httptest.NewUnstartedServer(mux)
	srv.Listener = countingListener{Listener: srv.Listener, n: wire}
	srv.Start()
	tb.Cleanup(srv.Close)
	return srv.URL, store, wire
}

// world is a part (real store, real syncer) and an in-process cloud (real
// part sync handler and ingest store) with the fault proxy between them.
type world struct {
	clk     *clock.Fake
	backend *signingBackend
	ingest  ingest.Store
	proxy   *faultproxy.Proxy
	store   *cache.Store
	syncer  *outsync.Syncer
	offline *outsync.OfflineClock

	logs *observer.ObservedLogs

	mu      gosync.Mutex
	expired int
	grants  []uint64
}

func newWorld(t *testing.T, budget cache.Budget, extra ...func(*outsync.Options)) *world {
	t.Helper()
	ctx := context.Background()
	w := &world{clk: clock.NewFake(epoch)}
	signer := signed.Signer{KeyID: "k1", Key: ed25519.NewKeyFromSeed(make([]byte, 32))}
	w.backend = &signingBackend{signer: signer, clk: w.clk}

	url, ing, _ := startCloud(t, w.backend, w.clk)
	w.ingest = ing
	var err error
	w.proxy, err = faultproxy.New(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.proxy.Close() })

	w.store, err = cache.Open(ctx, t.TempDir(), cache.Options{Clock: w.clk, GCInterval: -1, Budget: budget})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.store.Close() })
	client, err := outsync.NewClient(outsync.ClientOptions{CloudURL: w.proxy.URL(), PartID: partID, PartSecret: partSecret,
		RetryMax: 2, RetryWaitMin: time.Millisecond, RetryWaitMax: 4 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	w.offline = outsync.NewOfflineClock(w.clk, cache.OfflineClock{})
	keys := signed.Keys{"k1": signer.Key.Public().(ed25519.PublicKey)}
	core, logs := observer.New(zapcore.InfoLevel)
	w.logs = logs
	opts := outsync.Options{
		Store: w.store, Client: client, Clock: w.clk, Offline: w.offline, Logger: zap.New(core),
		Trust:      outsync.NewTrust(partID, keys, w.offline),
		BatchBytes: 16 << 10, CycleBytes: 256 << 10,
		// A hung answer ends at the cycle deadline, on the fake clock: the
		// test advances it only while a cycle waits (see cycle).
		CycleTimeout: 10 * time.Second,
		OnExpired: func(context.Context, string) {
			w.mu.Lock()
			w.expired++
			w.mu.Unlock()
		},
		OnGrants: func(_ context.Context, g *syncv1.GrantBundle) {
			w.mu.Lock()
			w.grants = append(w.grants, g.GetVersion())
			w.mu.Unlock()
		},
	}
	for _, f := range extra {
		f(&opts)
	}
	w.syncer, err = outsync.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// cycle runs one sync cycle. A cycle stuck on a hung answer is released by
// advancing the fake clock past its deadline once the cycle has armed it.
func (w *world) cycle(t *testing.T) outsync.Result {
	t.Helper()
	done := make(chan outsync.Result, 1)
	armed := w.clk.Waiters()
	go func() { done <- w.syncer.Cycle(context.Background()) }()
	for {
		select {
		case res := <-done:
			return res
		case <-w.proxy.Hung():
			if err := w.clk.BlockUntil(context.Background(), armed+1); err != nil {
				t.Fatal(err)
			}
			w.clk.Advance(11 * time.Second)
		}
	}
}

// fill appends n records to each of the streams, returning their payloads.
func (w *world) fill(t *testing.T, streams []cache.Stream, n int) map[cache.Stream]int {
	t.Helper()
	out := map[cache.Stream]int{}
	for _, st := range streams {
		for i := range n {
			if _, err := w.store.Append(context.Background(), st, cache.Record{Payload: fmt.Appendf(nil, "%s record %d of %d", st, i, n), Priority: 5}); err != nil {
				t.Fatal(err)
			}
			out[st]++
		}
	}
	return out
}

// backlog returns the records waiting on the part, across streams.
func (w *world) backlog(t *testing.T) uint64 {
	t.Helper()
	var n uint64
	for _, st := range outsync.UploadOrder {
		s, err := w.store.Stats(context.Background(), st)
		if err != nil {
			t.Fatal(err)
		}
		n += s.Count
	}
	return n
}

// checkExactlyOnce asserts the cloud holds every record of want exactly once.
func (w *world) checkExactlyOnce(t *testing.T, want map[cache.Stream]int) {
	t.Helper()
	for st, n := range want {
		c, err := w.ingest.Count(context.Background(), partID, string(st))
		if err != nil {
			t.Fatal(err)
		}
		if c.Records != uint64(n) || c.Conflicts != 0 {
			t.Errorf("%s: the cloud holds %d records (%d conflicting), want %d exactly once", st, c.Records, c.Conflicts, n)
		}
	}
}

// TestConvergesExactlyOnceUnderEveryFault sends a backlog of several streams
// through each fault the network can do to a request, then through a random
// mix of all of them, and checks the cloud ends with each record once and
// the part with nothing left.
func TestConvergesExactlyOnceUnderEveryFault(t *testing.T) {
	streams := []cache.Stream{cache.StreamAudit, cache.StreamLogsWarn, cache.StreamLogsInfo, cache.StreamCaptures}
	faults := []faultproxy.Fault{faultproxy.Status503, faultproxy.Status429, faultproxy.ResetBefore, faultproxy.ResetAfter,
		faultproxy.HangAfter, faultproxy.TruncateAfter, faultproxy.SlowAfter, faultproxy.Duplicate}
	run := func(t *testing.T, decide faultproxy.Decider) {
		w := newWorld(t, cache.Budget{})
		w.backend.issue(t, 60*day)
		want := w.fill(t, streams, 300)
		w.proxy.SetDecider(decide)
		for i := 0; w.backlog(t) > 0; i++ {
			if i == 200 {
				t.Fatalf("no convergence after 200 cycles: %d records left", w.backlog(t))
			}
			w.cycle(t)
		}
		w.checkExactlyOnce(t, want)
	}
	for i, f := range faults {
		t.Run(f.String(), func(t *testing.T) {
			// About a third of requests meet the fault, pulls, uploads and
			// status reports alike, at seeded random: a fixed "every third
			// request" falls into step with a cycle's own three requests and
			// faults the same upload forever, which no network does.
			run(t, faultproxy.Random(uint64(100+i), map[faultproxy.Fault]float64{f: 0.3}))
		})
	}
	t.Run("random-mix", func(t *testing.T) {
		probs := map[faultproxy.Fault]float64{}
		for _, f := range faults {
			probs[f] = 0.05
		}
		run(t, faultproxy.Random(42, probs))
	})
}

// TestSixtyDaysOffline lives sixty days without the cloud on the fake clock,
// with captures piling up against the byte budget, then reconnects.
func TestSixtyDaysOffline(t *testing.T) {
	const budget = 256 << 10
	w := newWorld(t, cache.Budget{MaxBytes: budget})
	ctx := context.Background()
	first := w.backend.issue(t, 60*day)
	if res := w.cycle(t); res.NewGrants != first || res.NewConfig != first {
		t.Fatalf("first cycle: %+v", res)
	}
	w.proxy.SetDown(true)

	for d := 1; d <= 60; d++ {
		w.clk.Advance(day)
		w.fill(t, []cache.Stream{cache.StreamCaptures}, 200) // ~6 KB a day: 60 days overflow the budget
		if res := w.cycle(t); res.Pulled {
			t.Fatalf("day %d: pulled through a partition", d)
		}
		if u := w.store.Usage(); u.Bytes > budget {
			t.Fatalf("day %d: store holds %d bytes, over the %d budget", d, u.Bytes, budget)
		}
		g, err := w.syncer.LoadGrants(ctx)
		switch {
		case d < 60 && (err != nil || g.GetVersion() != first):
			t.Fatalf("day %d: grants %v, %v; want version %d in force", d, g, err, first)
		case d == 60 && err == nil:
			t.Fatal("day 60: grants still in force")
		}
	}
	if st, _ := w.syncer.State(); st != outsync.StateExpired || w.expired != 1 {
		t.Fatalf("after 60 days: state %v, OnExpired called %d times; want expired, once", st, w.expired)
	}
	gaps, _ := w.store.Stats(ctx, cache.StreamGaps)
	if gaps.Count == 0 {
		t.Fatal("captures were evicted over budget without a gap record")
	}

	// The cloud comes back with fresh documents: the first cycle takes them.
	w.proxy.SetDown(false)
	next := w.backend.issue(t, 60*day)
	res := w.cycle(t)
	if res.NewGrants != next || res.NewConfig != next {
		t.Fatalf("reconnect: first cycle took grants %d and config %d, want %d", res.NewGrants, res.NewConfig, next)
	}
	if st, _ := w.syncer.State(); st == outsync.StateExpired {
		t.Fatal("still expired after fresh grants arrived")
	}
	if g, err := w.syncer.LoadGrants(ctx); err != nil || g.GetVersion() != next {
		t.Fatalf("after reconnect: grants %v, %v", g, err)
	}

	// The catch-up: whatever survived the budget arrives exactly once.
	held, _ := w.store.Stats(ctx, cache.StreamCaptures)
	for i := 0; w.backlog(t) > 0; i++ {
		if i == 100 {
			t.Fatalf("catch-up did not finish: %d records left", w.backlog(t))
		}
		if res := w.cycle(t); res.Err != nil {
			t.Fatalf("catch-up cycle: %v", res.Err)
		}
	}
	c, err := w.ingest.Count(ctx, partID, string(cache.StreamCaptures))
	if err != nil || c.Conflicts != 0 || c.Records < held.Count {
		t.Fatalf("the cloud holds %+v captures, %v; the part held %d", c, err, held.Count)
	}
	acked, _ := w.ingest.AckedThrough(ctx, ingest.StreamKey{PartID: partID, StoreID: mustStoreID(t, w), Stream: string(cache.StreamCaptures)})
	if acked != held.Last {
		t.Fatalf("the cloud's watermark is %d, the part's last capture %d: evicted ranges were not all declared", acked, held.Last)
	}
}

func mustStoreID(t *testing.T, w *world) string {
	t.Helper()
	id, err := w.syncer.StoreID(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestRefusedDocumentsLeaveTheHeldOnesInForce has the cloud send a forged
// bundle, a replayed older one and an expired one, each with the config it
// held, and checks the part keeps what it held and logs each refusal once.
func TestRefusedDocumentsLeaveTheHeldOnesInForce(t *testing.T) {
	w := newWorld(t, cache.Budget{})
	ctx := context.Background()
	held := w.backend.issue(t, 60*day)
	w.cycle(t)
	rogue := signed.Signer{KeyID: "k1", Key: ed25519.NewKeyFromSeed([]byte("an attacker's key, 32 bytes long"))}
	now := w.clk.Now()
	bundle := func(s signed.Signer, version uint64, expires time.Time) *syncv1.SignedDocument {
		d, err := s.Sign(&syncv1.GrantBundle{PartId: partID, Version: version, IssuedAt: timestamppb.New(now), ExpiresAt: timestamppb.New(expires)})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	tests := []struct {
		name string
		doc  *syncv1.SignedDocument
	}{
		{"forged", bundle(rogue, held+10, now.Add(60*day))},
		{"replayed", bundle(w.backend.signer, held-1, now.Add(60*day))},
		{"expired", bundle(w.backend.signer, held+20, now.Add(-time.Minute))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w.backend.mu.Lock()
			w.backend.grants = tc.doc
			w.backend.version = held + 100 // so Documents sends it
			w.backend.mu.Unlock()
			// The stale config the backend sends along is refused too, as a
			// rollback, under its own kind: count the bundle's refusals.
			refusals := func() int {
				return w.logs.FilterMessage("refused a document from the cloud; keeping the one held").FilterField(zap.String("kind", "grants")).Len()
			}
			before := refusals()
			for range 3 {
				if res := w.cycle(t); res.NewGrants != 0 || res.Err == nil {
					t.Fatalf("%s bundle: %+v", tc.name, res)
				}
			}
			if n := refusals() - before; n != 1 {
				t.Fatalf("a %s bundle sent 3 times was logged %d times, want once", tc.name, n)
			}
			g, err := w.syncer.LoadGrants(ctx)
			if err != nil || g.GetVersion() != held {
				t.Fatalf("after a %s bundle: holding %v, %v; want version %d", tc.name, g, err, held)
			}
		})
	}
}

// TestBlobConfirmedOnceTheCloudHoldsIt uploads a blob through the real
// cloud and checks the confirmation reaches file sync exactly when the
// cloud holds it whole, and the store's copy is gone after.
func TestBlobConfirmedOnceTheCloudHoldsIt(t *testing.T) {
	ctx := context.Background()
	var confirmed []string
	var w *world
	w = newWorld(t, cache.Budget{}, func(o *outsync.Options) {
		o.OnBlobUploaded = func(_ context.Context, id string) {
			if info, err := w.store.BlobInfo(ctx, id); err != nil || !info.Sealed {
				t.Errorf("confirmed %s without the store's copy (%v)", id, err)
			}
			confirmed = append(confirmed, id)
		}
	})
	data := make([]byte, 100<<10)
	for i := range data {
		data[i] = byte(i * 7)
	}
	if err := w.store.PutBlobChunk(ctx, "folder-file-1", 0, data); err != nil {
		t.Fatal(err)
	}
	if err := w.store.SealBlob(ctx, "folder-file-1"); err != nil {
		t.Fatal(err)
	}
	w.proxy.SetDecider(faultproxy.Random(9, map[faultproxy.Fault]float64{faultproxy.ResetAfter: 0.3}))
	for i := 0; ; i++ {
		if i == 50 {
			t.Fatal("the blob never completed")
		}
		w.cycle(t)
		if _, err := w.store.BlobInfo(ctx, "folder-file-1"); errors.Is(err, cache.ErrNotFound) {
			break
		}
	}
	if len(confirmed) != 1 || confirmed[0] != "folder-file-1" {
		t.Fatalf("confirmed %v, want the blob once", confirmed)
	}
	b, err := w.ingest.Blob(ctx, partID, "folder-file-1")
	if err != nil || !b.Complete {
		t.Fatalf("cloud blob %+v, %v", b, err)
	}
}
