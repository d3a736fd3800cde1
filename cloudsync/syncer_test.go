package cloudsync

import (
	"context"
	"crypto/ed25519"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/cache"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/faultproxy"
	"github.com/outpost-robotics/outpost/signed"
)

const day = 24 * time.Hour

// harness is a part with a real store whose cloud is unreachable: a fault
// proxy that partitions every request.
type harness struct {
	clk     *clock.Fake
	store   *cache.Store
	signer  signed.Signer
	offline *OfflineClock
	syncer  *Syncer
	logs    *observer.ObservedLogs
	expired []string
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{clk: clock.NewFake(cloudEpoch), signer: seededSigner("k1", 1)}
	var err error
	h.store, err = cache.Open(context.Background(), t.TempDir(), cache.Options{Clock: h.clk, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.store.Close() })

	dead := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(dead.Close)
	proxy, err := faultproxy.New(dead.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	proxy.SetDown(true)

	client, err := NewClient(ClientOptions{CloudURL: proxy.URL(), PartID: "part-1", PartSecret: strings.Repeat("s", 40), RetryMax: 1, RetryWaitMin: time.Millisecond, RetryWaitMax: 2 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.DebugLevel)
	h.logs = logs
	h.offline = NewOfflineClock(h.clk, cache.OfflineClock{})
	keys := signed.Keys{"k1": h.signer.Key.Public().(ed25519.PublicKey)}
	h.syncer, err = New(Options{
		Store: h.store, Client: client, Clock: h.clk, Logger: zap.New(core),
		Trust: NewTrust("part-1", keys, h.offline), Offline: h.offline,
		OnExpired: func(_ context.Context, why string) { h.expired = append(h.expired, why) },
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// hold stores a grant bundle as if an earlier cycle had accepted it.
func (h *harness) hold(t *testing.T, version uint64, issued time.Time, ttl time.Duration) {
	t.Helper()
	doc, err := h.signer.Sign(&syncv1.GrantBundle{PartId: "part-1", Version: version, IssuedAt: timestamppb.New(issued), ExpiresAt: timestamppb.New(issued.Add(ttl))})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := proto.Marshal(doc)
	if err := h.store.PutDocument(context.Background(), cache.KindGrants, cache.Document{Raw: raw, Version: version, FetchedAt: issued}); err != nil {
		t.Fatal(err)
	}
}

func TestOfflineIsLoggedOnceNotEveryCycle(t *testing.T) {
	h := newHarness(t)
	for range 5 {
		if res := h.syncer.Cycle(context.Background()); res.Pulled || res.Err == nil {
			t.Fatalf("cycle through a partition: %+v", res)
		}
		h.clk.Advance(15 * time.Second)
	}
	if st, _ := h.syncer.State(); st != StateOffline {
		t.Fatalf("state %v, want offline", st)
	}
	if n := h.logs.FilterMessage("cloud sync state changed").Len(); n != 1 {
		t.Fatalf("state change logged %d times over 5 offline cycles, want 1", n)
	}
}

func TestGrantsExpireOnDaySixtyAndOnlyThen(t *testing.T) {
	h := newHarness(t)
	h.offline.Contact(cloudEpoch)
	h.hold(t, 3, cloudEpoch, 60*day)
	ctx := context.Background()

	h.clk.Advance(59 * day)
	h.syncer.Cycle(ctx)
	if len(h.expired) != 0 {
		t.Fatalf("expired on day 59: %v", h.expired)
	}
	if g, err := h.syncer.LoadGrants(ctx); err != nil || g.GetVersion() != 3 {
		t.Fatalf("day 59: grants %v, %v; want version 3 in force", g, err)
	}

	h.clk.Advance(day)
	h.clk.SetWall(cloudEpoch) // setting the clock back does not help
	h.syncer.Cycle(ctx)
	h.syncer.Cycle(ctx)
	if len(h.expired) != 1 {
		t.Fatalf("OnExpired called %d times, want once", len(h.expired))
	}
	why := h.syncer.ExpiredReason()
	for _, want := range []string{"expired", "reconnect", "break-glass"} {
		if !strings.Contains(why, want) {
			t.Errorf("reason %q does not say %q", why, want)
		}
	}
	if st, _ := h.syncer.State(); st != StateExpired {
		t.Fatalf("state %v, want expired", st)
	}
	if _, err := h.syncer.LoadGrants(ctx); err == nil {
		t.Fatal("expired grants still load")
	}
}

func TestHeldDocumentsAreVerifiedOnLoad(t *testing.T) {
	h := newHarness(t)
	h.offline.Contact(cloudEpoch)
	h.hold(t, 3, cloudEpoch, 60*day)
	ctx := context.Background()
	held, err := h.store.GetDocument(ctx, cache.KindGrants)
	if err != nil {
		t.Fatal(err)
	}
	var doc syncv1.SignedDocument
	if err := proto.Unmarshal(held.Raw, &doc); err != nil {
		t.Fatal(err)
	}
	doc.Payload[len(doc.Payload)-1] ^= 0xff // a flipped bit on the SD card
	raw, _ := proto.Marshal(&doc)
	held.Raw = raw
	if err := h.store.PutDocument(ctx, cache.KindGrants, held); err != nil {
		t.Fatal(err)
	}
	if _, err := h.syncer.LoadGrants(ctx); err == nil {
		t.Fatal("a tampered stored bundle loaded")
	}
}

func TestCyclesAreJitteredWithinTenPercent(t *testing.T) {
	h := newHarness(t)
	lo, hi := time.Hour, time.Duration(0)
	for range 2000 {
		d := h.syncer.nextDelay()
		lo, hi = min(lo, d), max(hi, d)
	}
	if lo < 13500*time.Millisecond || hi > 16500*time.Millisecond {
		t.Fatalf("delays in [%v, %v], want within 15s ±10%%", lo, hi)
	}
	if hi-lo < 2*time.Second {
		t.Fatalf("delays in [%v, %v]: not spread", lo, hi)
	}
}

func TestStoreIDIsStableAndNewForANewStore(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	a, err := h.syncer.StoreID(ctx)
	if err != nil || len(a) != 32 {
		t.Fatalf("store id %q, %v", a, err)
	}
	if b, _ := h.syncer.StoreID(ctx); b != a {
		t.Fatalf("store id changed: %q then %q", a, b)
	}
	if c, _ := newHarness(t).syncer.StoreID(ctx); c == a {
		t.Fatal("two stores share an id")
	}
}
