package cloudsync_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1/syncv1connect"
	"github.com/outpost-robotics/outpost/cache"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/cloud/cloudtest"
	"github.com/outpost-robotics/outpost/cloud/ingest"
	"github.com/outpost-robotics/outpost/cloudsync"
	"github.com/outpost-robotics/outpost/faultproxy"
	"github.com/outpost-robotics/outpost/signed"
)

const day = 24 * time.Hour

var epoch = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// robotConfig is the machine config the test cloud serves: the sync loop
// does not apply it, only verifies, stores and hands it on.
func robotConfig() *configv1.RobotConfig {
	return &configv1.RobotConfig{LogLevel: "info", Components: []*configv1.Component{
		{Name: "sensor1", Type: configv1.ComponentType_COMPONENT_TYPE_SENSOR, Model: "fake"},
	}}
}

// world is a part (real store, real syncer, on its own fake clock) and the
// real outpost-cloud (cloudtest: fleet API, document signing, part sync
// API, Badger ingest, on a second fake clock) with the fault proxy between
// them. Two clocks, because a part's wall clock can be wrong while the
// cloud's is right; advance moves both, as time passes for both.
type world struct {
	clk      *clock.Fake // the part's
	cloudClk *clock.Fake // the cloud's: the true time
	cloud    *cloudtest.Cloud
	part     cloudtest.Part
	tamper   *tamperer // nil unless the world was made with one
	proxy    *faultproxy.Proxy
	client   syncv1connect.SyncServiceClient
	opts     []func(*cloudsync.Options)
	dir      string // the part's store
	budget   cache.Budget
	store    *cache.Store
	syncer   *cloudsync.Syncer
	offline  *cloudsync.OfflineClock

	log  *zap.Logger
	logs *observer.ObservedLogs

	mu      gosync.Mutex
	expired int
	grants  []uint64
}

// worldOptions vary newWorld.
type worldOptions struct {
	budget cache.Budget
	tamper bool // put a tamperer on the wire between the proxy and the cloud
	// front, when set, serves in front of the cloud's URL and returns its
	// own: another thing on the wire between the proxy and the cloud.
	front func(t *testing.T, upstream string) string
	extra []func(*cloudsync.Options)
	// slowDisk is what each synced commit of the cloud's ingest costs the
	// part's fake clock: a slow disk's flush, paid within the part's
	// deadlines, deterministically however loaded the machine is.
	slowDisk time.Duration
}

func newWorld(t *testing.T, budget cache.Budget, extra ...func(*cloudsync.Options)) *world {
	t.Helper()
	return newWorldWith(t, worldOptions{budget: budget, extra: extra})
}

func newWorldWith(t *testing.T, o worldOptions) *world {
	t.Helper()
	w := &world{clk: clock.NewFake(epoch), cloudClk: clock.NewFake(epoch), opts: o.extra, dir: t.TempDir(), budget: o.budget}
	co := cloudtest.Options{Clock: w.cloudClk}
	if o.slowDisk > 0 {
		co.IngestAfterSync = func() { w.clk.Advance(o.slowDisk) }
	}
	w.cloud = cloudtest.New(t, co)
	upstream := w.cloud.URL
	if o.tamper {
		w.tamper = &tamperer{}
		upstream = w.tamper.start(t, upstream)
	}
	if o.front != nil {
		upstream = o.front(t, upstream)
	}
	var err error
	w.proxy, err = faultproxy.New(upstream, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.proxy.Close() })
	// The bootstrap file names the proxy: it is where this part reaches the cloud.
	w.part = w.cloud.Provision(t, cloudtest.PartOptions{CloudURL: w.proxy.URL(), Config: robotConfig()})
	w.client, err = cloudsync.NewClient(cloudsync.ClientOptions{CloudURL: w.part.CloudURL, PartID: w.part.ID, PartSecret: w.part.Secret,
		RetryMax: 2, RetryWaitMin: time.Millisecond, RetryWaitMax: 4 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.InfoLevel)
	w.log, w.logs = zap.New(core), logs
	w.boot(t, cache.OfflineClock{})
	return w
}

// boot opens the part's store on its clock and starts a syncer, resuming
// the offline clock from persisted, as outpostd does on start.
func (w *world) boot(t *testing.T, persisted cache.OfflineClock) {
	t.Helper()
	var err error
	w.store, err = cache.Open(context.Background(), w.dir, cache.Options{Clock: w.clk, GCInterval: -1, Budget: w.budget})
	if err != nil {
		t.Fatal(err)
	}
	store := w.store
	t.Cleanup(func() { store.Close() })
	w.offline = cloudsync.NewOfflineClock(w.clk, persisted)
	opts := cloudsync.Options{
		Store: w.store, Client: w.client, Clock: w.clk, Offline: w.offline, Logger: w.log,
		Trust:      cloudsync.NewTrust(w.part.ID, w.part.Keys, w.offline),
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
	for _, f := range w.opts {
		f(&opts)
	}
	w.syncer, err = cloudsync.New(opts)
	if err != nil {
		t.Fatal(err)
	}
}

// reboot powers the part off and on again: the store closes with what it
// holds, and the part comes back on a new clock reading wall, with no
// uptime, resuming the offline clock it had persisted.
func (w *world) reboot(t *testing.T, wall time.Time) {
	t.Helper()
	ctx := context.Background()
	persisted, err := w.store.GetOfflineClock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.store.Close(); err != nil {
		t.Fatal(err)
	}
	w.clk = clock.NewFake(wall)
	w.boot(t, persisted)
}

// advance lets d pass for the part and the cloud alike.
func (w *world) advance(d time.Duration) {
	w.clk.Advance(d)
	w.cloudClk.Advance(d)
}

func (w *world) expiredCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.expired
}

// cycle runs one sync cycle. A cycle stuck on a hung answer is released by
// advancing the fake clock past its deadline once the cycle has armed it.
// With several uploads in flight, more than one may hang in a cycle that
// the first advance already ended: a hang then waits for the deadline's
// timer only while the cycle runs.
func (w *world) cycle(t *testing.T) cloudsync.Result {
	t.Helper()
	done := make(chan cloudsync.Result, 1)
	ended := make(chan struct{})
	armed := w.clk.Waiters()
	go func() {
		done <- w.syncer.Cycle(context.Background())
		close(ended)
	}()
	for {
		select {
		case res := <-done:
			return res
		case <-w.proxy.Hung():
			ctx, cancel := context.WithCancel(context.Background())
			go func() {
				select {
				case <-ended:
					cancel()
				case <-ctx.Done():
				}
			}()
			err := w.clk.BlockUntil(ctx, armed+1)
			cancel()
			if err == nil {
				w.advance(11 * time.Second)
			}
		}
	}
}

// fill appends n records to each of the streams, returning their counts.
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
	for _, st := range cloudsync.UploadOrder {
		s, err := w.store.Stats(context.Background(), st)
		if err != nil {
			t.Fatal(err)
		}
		n += s.Count
	}
	return n
}

// drain runs cycles until the part holds nothing, failing after limit.
func (w *world) drain(t *testing.T, limit int) {
	t.Helper()
	for i := 0; w.backlog(t) > 0; i++ {
		if i == limit {
			t.Fatalf("no convergence after %d cycles: %d records left", limit, w.backlog(t))
		}
		w.cycle(t)
	}
}

// checkExactlyOnce asserts the cloud holds every record of want exactly
// once, and nothing of any other stream.
func (w *world) checkExactlyOnce(t *testing.T, want map[cache.Stream]int) {
	t.Helper()
	got := w.cloud.Ingested(t, w.part.ID)
	for st, n := range want {
		c := got[string(st)]
		if c.Records != uint64(n) || c.Conflicts != 0 {
			t.Errorf("%s: the cloud holds %d records (%d conflicting), want %d exactly once", st, c.Records, c.Conflicts, n)
		}
		delete(got, string(st))
	}
	if len(got) != 0 {
		t.Errorf("the cloud holds records of streams nobody wrote: %+v", got)
	}
}

// heldGrants returns the part's grant bundle in force, failing if none is.
func (w *world) heldGrants(t *testing.T) *syncv1.GrantBundle {
	t.Helper()
	g, err := w.syncer.LoadGrants(context.Background())
	if err != nil || g == nil {
		t.Fatalf("no grants in force: %v, %v", g, err)
	}
	return g
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
		want := w.fill(t, streams, 300)
		w.proxy.SetDecider(decide)
		w.drain(t, 200)
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
	res := w.cycle(t)
	if res.NewGrants == 0 || res.NewConfig == 0 {
		t.Fatalf("first cycle: %+v", res)
	}
	first, firstConfig := res.NewGrants, res.NewConfig
	w.proxy.SetDown(true)

	for d := 1; d <= 60; d++ {
		w.advance(day)
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
	if st, _ := w.syncer.State(); st != cloudsync.StateExpired || w.expiredCount() != 1 {
		t.Fatalf("after 60 days: state %v, OnExpired called %d times; want expired, once", st, w.expiredCount())
	}
	gaps, _ := w.store.Stats(ctx, cache.StreamGaps)
	if gaps.Count == 0 {
		t.Fatal("captures were evicted over budget without a gap record")
	}

	// The cloud comes back: what it held for the part is past half its
	// life, so it signs fresh documents, and the first cycle takes them.
	w.proxy.SetDown(false)
	res = w.cycle(t)
	if res.NewGrants <= first || res.NewConfig <= firstConfig {
		t.Fatalf("reconnect: first cycle took grants %d and config %d, want newer than %d and %d", res.NewGrants, res.NewConfig, first, firstConfig)
	}
	if st, _ := w.syncer.State(); st == cloudsync.StateExpired {
		t.Fatal("still expired after fresh grants arrived")
	}
	g := w.heldGrants(t)
	if g.GetVersion() != res.NewGrants || !g.GetIssuedAt().AsTime().Equal(w.cloudClk.Now()) || !g.GetExpiresAt().AsTime().Equal(w.cloudClk.Now().Add(60*day)) {
		t.Fatalf("after reconnect: grants version %d issued %v expiring %v; want %d, fresh for 60 days from %v",
			g.GetVersion(), g.GetIssuedAt().AsTime(), g.GetExpiresAt().AsTime(), res.NewGrants, w.cloudClk.Now())
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
	c := w.cloud.Ingested(t, w.part.ID)[string(cache.StreamCaptures)]
	if c.Conflicts != 0 || c.Records < held.Count {
		t.Fatalf("the cloud holds %+v captures; the part held %d", c, held.Count)
	}
	acked, _ := w.cloud.Ingest().AckedThrough(ctx, ingest.StreamKey{PartID: w.part.ID, StoreID: mustStoreID(t, w), Stream: string(cache.StreamCaptures)})
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

// TestClockSetBackAYear sets the part's wall clock back a year a day after
// its last contact: the grants still expire sixty days after that contact,
// once; what was written under the wrong clock still arrives exactly once;
// and the first contact takes the cloud's time and fresh documents.
func TestClockSetBackAYear(t *testing.T) {
	w := newWorld(t, cache.Budget{})
	first := w.cycle(t).NewGrants
	if first == 0 {
		t.Fatal("the first cycle brought no grants")
	}
	w.proxy.SetDown(true)
	w.advance(day)
	w.clk.SetWall(w.clk.Now().AddDate(-1, 0, 0))
	want := w.fill(t, []cache.Stream{cache.StreamLogsWarn, cache.StreamAudit}, 20)
	w.cycle(t)
	if g := w.heldGrants(t); g.GetVersion() != first {
		t.Fatalf("a day offline: grants version %d, want %d", g.GetVersion(), first)
	}
	w.advance(58 * day)
	w.cycle(t)
	if g := w.heldGrants(t); g.GetVersion() != first || w.expiredCount() != 0 {
		t.Fatalf("day 59 with the clock a year back: grants %d, expired %d times", g.GetVersion(), w.expiredCount())
	}
	w.advance(day)
	w.cycle(t)
	w.cycle(t)
	if _, err := w.syncer.LoadGrants(context.Background()); err == nil || w.expiredCount() != 1 {
		t.Fatalf("day 60 with the clock a year back: grants load (%v), expired %d times; want refused, once", err, w.expiredCount())
	}

	w.proxy.SetDown(false)
	res := w.cycle(t)
	if res.Err != nil || res.NewGrants <= first {
		t.Fatalf("reconnect: %+v", res)
	}
	if st, _ := w.syncer.State(); st != cloudsync.StateOnline || w.syncer.ExpiredReason() != "" {
		t.Fatalf("after reconnect: state %v, expired because %q", st, w.syncer.ExpiredReason())
	}
	if got := w.offline.LastContact(); !got.Equal(w.cloudClk.Now()) {
		t.Fatalf("last contact %v, want the cloud's time %v, not the part's wall clock %v", got, w.cloudClk.Now(), w.clk.Now())
	}
	w.drain(t, 20)
	w.checkExactlyOnce(t, want)
}

// TestClockJumpedAheadAYear jumps the part's wall clock a year ahead while
// it is offline, as a bad NTP step would. The part cannot tell that from a
// year without the cloud, so its grants expire at once; its first contact
// shows the truth, and the documents it held, still valid by the cloud's
// time, come back into force even though the cloud has nothing newer.
func TestClockJumpedAheadAYear(t *testing.T) {
	var configs []uint64
	w := newWorldWith(t, worldOptions{extra: []func(*cloudsync.Options){func(o *cloudsync.Options) {
		o.OnConfig = func(_ context.Context, c *syncv1.ConfigDocument) { configs = append(configs, c.GetVersion()) }
	}}})
	res := w.cycle(t)
	first, firstConfig := res.NewGrants, res.NewConfig
	if first == 0 || firstConfig == 0 {
		t.Fatalf("first cycle: %+v", res)
	}
	w.proxy.SetDown(true)
	w.advance(time.Hour)
	w.clk.SetWall(w.clk.Now().AddDate(1, 0, 0))
	w.cycle(t)
	w.cycle(t)
	if _, err := w.syncer.LoadGrants(context.Background()); err == nil || w.expiredCount() != 1 {
		t.Fatalf("a year ahead: grants load (%v), expired %d times; want refused, once", err, w.expiredCount())
	}
	if st, _ := w.syncer.State(); st != cloudsync.StateExpired {
		t.Fatalf("a year ahead: state %v", st)
	}

	w.proxy.SetDown(false)
	res = w.cycle(t)
	if res.Err != nil || res.NewGrants != 0 || res.NewConfig != 0 {
		t.Fatalf("reconnect: %+v; want no new documents, the held ones are current", res)
	}
	if st, _ := w.syncer.State(); st != cloudsync.StateOnline || w.syncer.ExpiredReason() != "" {
		t.Fatalf("after reconnect: state %v, expired because %q", st, w.syncer.ExpiredReason())
	}
	if g := w.heldGrants(t); g.GetVersion() != first {
		t.Fatalf("after reconnect: grants %d, want %d", g.GetVersion(), first)
	}
	// Back in force means handed to the daemon again, which restarts what
	// the expiry stopped.
	w.mu.Lock()
	grants := append([]uint64(nil), w.grants...)
	w.mu.Unlock()
	if len(grants) != 2 || grants[1] != first || len(configs) != 2 || configs[1] != firstConfig {
		t.Fatalf("OnGrants saw %v and OnConfig %v; want the held versions %d and %d again", grants, configs, first, firstConfig)
	}
	w.cycle(t)
	if w.expiredCount() != 1 {
		t.Fatalf("expired %d times", w.expiredCount())
	}
}

// TestRebootInto1970 runs the sync loop as outpostd does, goes offline for
// ten days, and reboots the part onto a clock that starts in 1970 (a
// Raspberry Pi without an RTC, before NTP). The offline time it had
// persisted carries over: the grants hold through day 59 after the last
// contact and expire on day 60, once; on reconnect, fresh grants arrive and
// what was written before the reboot arrives exactly once.
func TestRebootInto1970(t *testing.T) {
	w := newWorld(t, cache.Budget{})
	ctx := context.Background()
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- w.syncer.Run(runCtx) }()
	cloudtest.Eventually(t, "the first contact", func() error {
		w.mu.Lock()
		defer w.mu.Unlock()
		if len(w.grants) != 1 {
			return fmt.Errorf("the cloud sent %d grant bundles, want 1", len(w.grants))
		}
		return nil
	})
	first := w.heldGrants(t).GetVersion()
	storeID := mustStoreID(t, w)

	w.proxy.SetDown(true)
	want := w.fill(t, []cache.Stream{cache.StreamLogsWarn, cache.StreamCaptures}, 30)
	w.advance(10 * day)
	// The loop persists the offline clock every minute; a power cut
	// loses at most the last one.
	cloudtest.Eventually(t, "the offline clock persisted", func() error {
		c, err := w.store.GetOfflineClock(ctx)
		if err == nil && c.UptimeSince < 10*day {
			err = fmt.Errorf("held uptime since contact %v, want at least %v", c.UptimeSince, 10*day)
		}
		return err
	})
	stop()
	if err := <-ran; err != nil {
		t.Fatal(err)
	}

	w.reboot(t, time.Unix(0, 0))
	if got := w.offline.SinceContact(); got != 10*day {
		t.Fatalf("after the reboot, %v since contact; want the 10 days persisted", got)
	}
	if got := mustStoreID(t, w); got != storeID {
		t.Fatalf("store id %q after the reboot, was %q", got, storeID)
	}
	w.cycle(t)
	if g := w.heldGrants(t); g.GetVersion() != first {
		t.Fatalf("after the reboot: grants %d, want %d", g.GetVersion(), first)
	}
	w.advance(49 * day)
	w.cycle(t)
	if g := w.heldGrants(t); g.GetVersion() != first || w.expiredCount() != 0 {
		t.Fatalf("day 59 after contact: grants %d, expired %d times", g.GetVersion(), w.expiredCount())
	}
	w.advance(day)
	w.cycle(t)
	w.cycle(t)
	if _, err := w.syncer.LoadGrants(ctx); err == nil || w.expiredCount() != 1 {
		t.Fatalf("day 60 after contact, in 1970: grants load (%v), expired %d times; want refused, once", err, w.expiredCount())
	}

	w.proxy.SetDown(false)
	res := w.cycle(t)
	if res.Err != nil || res.NewGrants <= first {
		t.Fatalf("reconnect: %+v", res)
	}
	if got := w.offline.LastContact(); !got.Equal(w.cloudClk.Now()) {
		t.Fatalf("last contact %v, want the cloud's %v", got, w.cloudClk.Now())
	}
	w.drain(t, 20)
	w.checkExactlyOnce(t, want)
}

// tamperer is a man in the middle between the part and the real cloud. It
// is the one stand-in these tests keep, and it stands on the wire, where
// fakes belong: forged, replayed and expired documents are what a hostile
// network (or a broken cloud) sends, and the real cloud never signs the
// latter two for a part. It forwards every call, keeps each grant bundle
// the cloud sends in a pull answer, and while armed puts a document of the
// test's making into every pull answer as the grant bundle; it does the
// same with restart orders (seenRestarts, sendRestart).
type tamperer struct {
	mu           gosync.Mutex
	seen         []*syncv1.SignedDocument
	send         *syncv1.SignedDocument
	seenRestarts []*syncv1.SignedDocument
	sendRestart  *syncv1.SignedDocument
}

// start serves the tamperer in front of upstream until t ends.
func (tp *tamperer) start(t *testing.T, upstream string) string {
	t.Helper()
	target, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	rp := &httputil.ReverseProxy{
		Rewrite:        func(r *httputil.ProxyRequest) { r.SetURL(target) },
		ModifyResponse: tp.rewrite,
	}
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	return srv.URL
}

func (tp *tamperer) rewrite(res *http.Response) error {
	if res.Request.URL.Path != syncv1connect.SyncServicePullProcedure || res.StatusCode != http.StatusOK {
		return nil
	}
	// The cloud answers in the compression the part asked in; the
	// tamperer answers uncompressed, which every client accepts.
	var src io.Reader = res.Body
	switch enc := res.Header.Get("Content-Encoding"); enc {
	case "":
	case "zstd":
		d, err := zstd.NewReader(res.Body)
		if err != nil {
			return fmt.Errorf("tamperer: %w", err)
		}
		defer d.Close()
		src = d
	default:
		return fmt.Errorf("tamperer: the pull answer is in %q", enc)
	}
	body, err := io.ReadAll(src)
	res.Body.Close()
	if err != nil {
		return fmt.Errorf("tamperer: read the pull answer: %w", err)
	}
	res.Header.Del("Content-Encoding")
	var ans syncv1.PullResponse
	if err := proto.Unmarshal(body, &ans); err != nil {
		return fmt.Errorf("tamperer: decode the pull answer: %w", err)
	}
	tp.mu.Lock()
	if g := ans.GetGrants(); g != nil {
		tp.seen = append(tp.seen, g)
	}
	if tp.send != nil {
		ans.Grants = tp.send
	}
	if r := ans.GetRestart(); r != nil {
		tp.seenRestarts = append(tp.seenRestarts, r)
	}
	if tp.sendRestart != nil {
		ans.Restart = tp.sendRestart
	}
	tp.mu.Unlock()
	if body, err = proto.Marshal(&ans); err != nil {
		return fmt.Errorf("tamperer: encode the pull answer: %w", err)
	}
	res.Body = io.NopCloser(bytes.NewReader(body))
	res.ContentLength = int64(len(body))
	res.Header.Set("Content-Length", strconv.Itoa(len(body)))
	return nil
}

// TestRefusedDocumentsLeaveTheHeldOnesInForce has the wire deliver a
// forged bundle, a replayed older one and an expired one, and checks the
// part keeps what it held and logs each refusal once.
func TestRefusedDocumentsLeaveTheHeldOnesInForce(t *testing.T) {
	w := newWorldWith(t, worldOptions{tamper: true})
	ctx := context.Background()
	w.cycle(t)
	// An API key on the machine changes its grants: the cloud signs a
	// second version, and the first, seen on the wire, can be replayed.
	w.cloud.CreateAPIKey(t, "operator", "machine/"+w.part.MachineID)
	w.cycle(t)
	held := w.heldGrants(t).GetVersion()
	w.tamper.mu.Lock()
	seen := append([]*syncv1.SignedDocument(nil), w.tamper.seen...)
	w.tamper.mu.Unlock()
	if len(seen) != 2 || held < 2 {
		t.Fatalf("saw %d bundles on the wire, holding version %d; want 2 and at least 2", len(seen), held)
	}

	var keyID string
	for id := range w.part.Keys {
		keyID = id
	}
	rogue := signed.Signer{KeyID: keyID, Key: ed25519.NewKeyFromSeed([]byte("an attacker's key, 32 bytes long"))}
	now := w.cloudClk.Now()
	bundle := func(s signed.Signer, version uint64, expires time.Time) *syncv1.SignedDocument {
		d, err := s.Sign(&syncv1.GrantBundle{PartId: w.part.ID, MachineId: w.part.MachineID, Version: version, IssuedAt: timestamppb.New(expires.Add(-60 * day)), ExpiresAt: timestamppb.New(expires)})
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
		{"replayed", seen[0]}, // the cloud's own first version, as it crossed the wire
		{"expired", bundle(w.cloud.DocumentSigner(), held+20, now.Add(-time.Minute))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w.tamper.mu.Lock()
			w.tamper.send = tc.doc
			w.tamper.mu.Unlock()
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

// reorderer is a network path that reorders: it holds the hold-th upload
// request until the until-th has been answered, so the cloud stores the
// later batch first. It keeps the order in which uploads reached the cloud.
type reorderer struct {
	hold, until int

	mu       gosync.Mutex
	n        int
	order    []int
	released chan struct{}
}

func (ro *reorderer) start(t *testing.T, upstream string) string {
	t.Helper()
	target, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	ro.released = make(chan struct{})
	rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(target) }}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != syncv1connect.SyncServiceUploadProcedure {
			rp.ServeHTTP(w, r)
			return
		}
		ro.mu.Lock()
		ro.n++
		n := ro.n
		ro.mu.Unlock()
		if n == ro.hold {
			select {
			case <-ro.released:
			case <-r.Context().Done():
				return
			}
		}
		ro.mu.Lock()
		ro.order = append(ro.order, n)
		ro.mu.Unlock()
		rp.ServeHTTP(w, r)
		if n == ro.until {
			close(ro.released)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestUploadsStoredOutOfOrderAreAckedOnce has the cloud store a later
// batch of a stream before an earlier one, with two and with three uploads
// in flight: answers are handled in the order the batches were sent, the
// part deletes only through the cloud's watermark, and every record ends in
// the cloud once, counted once.
func TestUploadsStoredOutOfOrderAreAckedOnce(t *testing.T) {
	for _, inFlight := range []int{2, 3} {
		t.Run(fmt.Sprintf("%d-in-flight", inFlight), func(t *testing.T) {
			ro := &reorderer{hold: 1, until: inFlight}
			w := newWorldWith(t, worldOptions{front: ro.start, extra: []func(*cloudsync.Options){func(o *cloudsync.Options) { o.InFlight = inFlight }}})
			// 16 KiB batches: a few thousand short records make several.
			want := w.fill(t, []cache.Stream{cache.StreamCaptures}, 3000)
			uploaded := 0
			for i := 0; w.backlog(t) > 0; i++ {
				if i == 50 {
					t.Fatalf("no convergence after 50 cycles: %d records left", w.backlog(t))
				}
				res := w.cycle(t)
				if res.Err != nil {
					t.Fatalf("cycle %d: %v", i, res.Err)
				}
				uploaded += res.Uploaded[cache.StreamCaptures]
			}
			w.checkExactlyOnce(t, want)
			if uploaded != want[cache.StreamCaptures] {
				t.Fatalf("cycles counted %d captures uploaded, want %d", uploaded, want[cache.StreamCaptures])
			}
			ro.mu.Lock()
			defer ro.mu.Unlock()
			// Batch 1 is held until batch inFlight is stored, so it is stored
			// after it; a batch the part sent once an answer freed its window
			// may arrive before batch 1 is let go, and that is fine.
			if first, last := slices.Index(ro.order, 1), slices.Index(ro.order, inFlight); first < 0 || last < 0 || first < last {
				t.Fatalf("uploads reached the cloud in the order %v; want batch 1 after batch %d", ro.order, inFlight)
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
	w = newWorld(t, cache.Budget{}, func(o *cloudsync.Options) {
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
	b, err := w.cloud.Ingest().Blob(ctx, w.part.ID, "folder-file-1")
	if err != nil || !b.Complete {
		t.Fatalf("cloud blob %+v, %v", b, err)
	}
}

// TestBacklogDrainsInCyclesBackToBack: a cycle that spends its byte budget
// with uploads still waiting says so, and Run starts the next cycle at once
// instead of after the interval, so a backlog drains at the link's speed
// (each cycle still pulls first). The fake clock never moves here: every
// cycle after the first ran back to back.
func TestBacklogDrainsInCyclesBackToBack(t *testing.T) {
	w := newWorld(t, cache.Budget{})
	// Random payloads: the cycle's budget counts bytes on the wire, and
	// fill's records compress some thirty times.
	rng := rand.New(rand.NewPCG(5, 5))
	want := map[cache.Stream]int{}
	for range 20000 {
		p := make([]byte, 64)
		for i := range p {
			p[i] = byte(rng.Uint32())
		}
		if _, err := w.store.Append(context.Background(), cache.StreamCaptures, cache.Record{Payload: p, Priority: 5}); err != nil {
			t.Fatal(err)
		}
		want[cache.StreamCaptures]++
	}
	if res := w.cycle(t); res.Err != nil || !res.More {
		t.Fatalf("the first cycle of a backlog of %d records: More %v, error %v; want More and no error", want[cache.StreamCaptures], res.More, res.Err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- w.syncer.Run(runCtx) }()
	cloudtest.Eventually(t, "the backlog drained with the clock standing still", func() error {
		if n := w.backlog(t); n != 0 {
			return fmt.Errorf("%d records held", n)
		}
		return nil
	})
	stop()
	if err := <-ran; err != nil {
		t.Fatal(err)
	}
	w.checkExactlyOnce(t, want)
	if res := w.cycle(t); res.Err != nil || res.More {
		t.Fatalf("a cycle with nothing waiting: More %v, error %v; want neither", res.More, res.Err)
	}
}

// TestOneLostCycleIsNotOffline: a part that reached the cloud reports a
// cycle that reached nobody as degraded, saying when the cloud last
// answered, and offline only once the cloud has been silent for three
// intervals; the next answer makes it online again. A part that never
// reached the cloud is offline at once.
func TestOneLostCycleIsNotOffline(t *testing.T) {
	w := newWorld(t, cache.Budget{})
	w.proxy.SetDown(true)
	if res := w.cycle(t); res.Pulled {
		t.Fatal("pulled through a partition")
	}
	if st, _ := w.syncer.State(); st != cloudsync.StateOffline {
		t.Fatalf("never reached the cloud: state %v, want offline", st)
	}
	w.proxy.SetDown(false)
	if res := w.cycle(t); !res.Pulled {
		t.Fatalf("first cycle: %+v", res)
	}
	w.proxy.SetDown(true)
	var elapsed time.Duration
	for _, step := range []struct {
		after time.Duration // since the last answer
		want  cloudsync.State
	}{
		{0, cloudsync.StateDegraded},
		{15 * time.Second, cloudsync.StateDegraded},
		{44 * time.Second, cloudsync.StateDegraded},
		{45 * time.Second, cloudsync.StateOffline},
		{10 * time.Minute, cloudsync.StateOffline},
	} {
		w.advance(step.after - elapsed)
		elapsed = step.after
		if res := w.cycle(t); res.Pulled {
			t.Fatal("pulled through a partition")
		}
		st, msg := w.syncer.State()
		if st != step.want {
			t.Fatalf("%v after the last answer: state %v (%s), want %v", step.after, st, msg, step.want)
		}
		if st == cloudsync.StateDegraded && !strings.Contains(msg, "the cloud did not answer this cycle (last answer") {
			t.Fatalf("degraded without saying why: %q", msg)
		}
	}
	w.proxy.SetDown(false)
	if res := w.cycle(t); !res.Pulled {
		t.Fatalf("cycle after the partition: %+v", res)
	}
	if st, msg := w.syncer.State(); st != cloudsync.StateOnline {
		t.Fatalf("after the cloud answered again: state %v (%s)", st, msg)
	}
}
