package cloudsync_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/http"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1/syncv1connect"
	"github.com/outpost-robotics/outpost/cache"
	"github.com/outpost-robotics/outpost/cloudsync"
	"github.com/outpost-robotics/outpost/faultproxy"
	"github.com/outpost-robotics/outpost/signed"
)

// robot stands for the daemon's robot runtime: it counts the restarts the
// syncer asks of it, and fails them with fail while that is set.
type robot struct {
	mu       gosync.Mutex
	restarts []string // the orders' ids, in the order acted on
	fail     error
}

func (r *robot) option(o *cloudsync.Options) {
	o.OnRestart = func(_ context.Context, order *syncv1.RestartOrder) error {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.fail != nil {
			return r.fail
		}
		r.restarts = append(r.restarts, order.GetId())
		return nil
	}
}

func (r *robot) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.restarts)
}

func (r *robot) setFail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fail = err
}

func newRestartWorld(t *testing.T, o worldOptions) (*world, *robot) {
	t.Helper()
	r := &robot{}
	o.extra = append(o.extra, r.option)
	return newWorldWith(t, o), r
}

// restartMachine asks the part's machine to restart, as `outpost machine
// restart` does.
func (w *world) restartMachine(t *testing.T) {
	t.Helper()
	if _, err := w.cloud.Admin(t).Machine.RestartMachine(context.Background(), connect.NewRequest(&fleetv1.RestartMachineRequest{MachineId: w.part.MachineID})); err != nil {
		t.Fatal(err)
	}
}

// restartState is the part's restart as the fleet API shows it.
func (w *world) restartState(t *testing.T) *fleetv1.PartRestart {
	t.Helper()
	m, err := w.cloud.Admin(t).Machine.GetMachine(context.Background(), connect.NewRequest(&fleetv1.GetMachineRequest{MachineId: w.part.MachineID}))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range m.Msg.GetMachine().GetParts() {
		if p.GetId() == w.part.ID {
			return p.GetRestart()
		}
	}
	t.Fatalf("machine/%s has no part/%s", w.part.MachineID, w.part.ID)
	return nil
}

// mustCycle runs a cycle that reaches the cloud and returns its result.
func (w *world) mustCycle(t *testing.T) cloudsync.Result {
	t.Helper()
	res := w.cycle(t)
	if !res.Pulled {
		t.Fatalf("the cycle did not reach the cloud: %v", res.Err)
	}
	return res
}

// TestRestartHappensOnceAndIsCleared asks the real cloud for a restart:
// the next pull carries it, the part restarts once and reports it, the
// cloud clears the request, and neither more cycles nor a reboot of the
// part restart it again.
func TestRestartHappensOnceAndIsCleared(t *testing.T) {
	w, r := newRestartWorld(t, worldOptions{})
	w.mustCycle(t)
	w.restartMachine(t)
	if st := w.restartState(t); st.GetRequestedAt() == nil || !st.GetExpiresAt().AsTime().Equal(w.cloudClk.Now().Add(24*time.Hour)) {
		t.Fatalf("after the request the cloud shows %v, want pending, lapsing in 24 h", st)
	}
	res := w.mustCycle(t)
	if res.Err != nil || res.Restart.GetOutcome() != syncv1.RestartOutcome_RESTART_OUTCOME_RESTARTED || r.count() != 1 {
		t.Fatalf("the cycle after the request: %+v, %d restarts; want one restart", res, r.count())
	}
	st := w.restartState(t)
	if st.GetRequestedAt() != nil || st.GetOutcome() != "restarted" || !st.GetHandledAt().AsTime().Equal(w.cloudClk.Now()) {
		t.Fatalf("after the part reported, the cloud shows %v; want the request cleared and restarted now", st)
	}
	for range 3 {
		if res := w.mustCycle(t); res.Restart != nil {
			t.Fatalf("a later cycle acted on a restart: %v", res.Restart)
		}
	}
	w.reboot(t, w.clk.Now())
	w.mustCycle(t)
	if r.count() != 1 {
		t.Fatalf("%d restarts after more cycles and a reboot, want 1", r.count())
	}
	// A second request is a new one: it happens, once.
	w.advance(time.Minute)
	w.restartMachine(t)
	w.mustCycle(t)
	w.mustCycle(t)
	if r.count() != 2 || w.restartState(t).GetRequestedAt() != nil {
		t.Fatalf("a second request: %d restarts and %v, want 2 and cleared", r.count(), w.restartState(t))
	}
}

// TestRestartIsNotRepeatedWhenItsReportIsLost has the status report that
// says a restart happened fail, and the part reboot: the cloud sends the
// order again and again, and the part restarts once.
func TestRestartIsNotRepeatedWhenItsReportIsLost(t *testing.T) {
	w, r := newRestartWorld(t, worldOptions{})
	w.mustCycle(t)
	w.proxy.SetDecider(func(_ int64, req *http.Request) faultproxy.Fault {
		if req.URL.Path == syncv1connect.SyncServiceReportStatusProcedure {
			return faultproxy.Status503
		}
		return faultproxy.Pass
	})
	w.restartMachine(t)
	w.mustCycle(t)
	w.mustCycle(t)
	w.reboot(t, w.clk.Now())
	w.mustCycle(t)
	if r.count() != 1 || w.restartState(t).GetRequestedAt() == nil {
		t.Fatalf("with reports lost: %d restarts, cloud shows %v; want 1 and still pending", r.count(), w.restartState(t))
	}
	w.proxy.SetDecider(nil)
	w.mustCycle(t)
	if r.count() != 1 || w.restartState(t).GetRequestedAt() != nil || w.restartState(t).GetOutcome() != "restarted" {
		t.Fatalf("once reports pass: %d restarts, cloud shows %v; want 1 and cleared", r.count(), w.restartState(t))
	}
}

// TestRestartAskedOfflineHappensOnReturn asks a restart while the part is
// cut off: nothing happens during the partition, and it happens once when
// the part is back within the request's life. Asked again and kept off
// for longer than that, it never happens.
func TestRestartAskedOfflineHappensOnReturn(t *testing.T) {
	w, r := newRestartWorld(t, worldOptions{tamper: true})
	w.mustCycle(t)
	w.proxy.SetDown(true)
	w.restartMachine(t)
	for range 3 {
		w.advance(4 * time.Hour)
		w.cycle(t)
	}
	if r.count() != 0 {
		t.Fatalf("%d restarts during the partition", r.count())
	}
	w.proxy.SetDown(false)
	w.mustCycle(t)
	w.mustCycle(t)
	if r.count() != 1 || w.restartState(t).GetRequestedAt() != nil {
		t.Fatalf("back after 12 h: %d restarts, cloud shows %v; want 1 and cleared", r.count(), w.restartState(t))
	}

	w.proxy.SetDown(true)
	w.restartMachine(t)
	w.advance(24 * time.Hour)
	w.cycle(t)
	w.proxy.SetDown(false)
	w.mustCycle(t)
	if r.count() != 1 {
		t.Fatalf("a request 24 h old restarted the part: %d restarts", r.count())
	}
	st := w.restartState(t)
	if st.GetRequestedAt() == nil || w.cloudClk.Now().Before(st.GetExpiresAt().AsTime()) {
		t.Fatalf("the cloud shows %v, want the request lapsed", st)
	}
	w.tamper.mu.Lock()
	sent := len(w.tamper.seenRestarts)
	w.tamper.mu.Unlock()
	if sent != 1 {
		t.Fatalf("the cloud sent %d restart orders, want 1: the first request, once (the same cycle's report cleared it); none lapsed", sent)
	}
}

// TestRestartExpiryIsJudgedOnTheCloudsTime gives the part a wall clock a
// year ahead, then one in 1970: a fresh order still restarts it, because
// the order's expiry is judged on the time the pull carried. An order
// replayed after its expiry is reported expired and does nothing.
func TestRestartExpiryIsJudgedOnTheCloudsTime(t *testing.T) {
	w, r := newRestartWorld(t, worldOptions{tamper: true})
	w.mustCycle(t)
	for i, wall := range []time.Time{w.cloudClk.Now().Add(365 * day), time.Unix(0, 0)} {
		w.reboot(t, wall)
		w.advance(time.Minute)
		w.restartMachine(t)
		w.mustCycle(t)
		if r.count() != i+1 {
			t.Fatalf("part clock at %v: %d restarts, want %d", wall, r.count(), i+1)
		}
	}
	w.tamper.mu.Lock()
	old := w.tamper.seenRestarts[len(w.tamper.seenRestarts)-1]
	w.tamper.mu.Unlock()
	w.advance(25 * time.Hour)
	w.restartMachine(t)
	w.mustCycle(t) // the third request, current
	if r.count() != 3 {
		t.Fatalf("%d restarts, want 3", r.count())
	}
	// The second order again, now expired and older than the last handled:
	// ignored. A fresh order that the part sees expired is reported so.
	w.tamper.mu.Lock()
	w.tamper.sendRestart = old
	w.tamper.mu.Unlock()
	if res := w.mustCycle(t); res.Restart != nil || r.count() != 3 {
		t.Fatalf("a replayed old order: %v, %d restarts", res.Restart, r.count())
	}
	w.advance(2 * time.Minute)
	expired := signRestart(t, w.cloud.DocumentSigner(), w.part.ID, "e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0", w.cloudClk.Now().Add(-time.Minute), w.cloudClk.Now().Add(-time.Millisecond))
	w.tamper.mu.Lock()
	w.tamper.sendRestart = expired
	w.tamper.mu.Unlock()
	res := w.mustCycle(t)
	if res.Restart.GetOutcome() != syncv1.RestartOutcome_RESTART_OUTCOME_EXPIRED || r.count() != 3 {
		t.Fatalf("an expired order: %v, %d restarts; want reported expired, no restart", res.Restart, r.count())
	}
	if last, err := w.syncer.LastRestart(context.Background()); err != nil || last.GetId() != "e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0" {
		t.Fatalf("last restart handled: %v, %v", last, err)
	}
}

func signRestart(t *testing.T, s signed.Signer, partID, id string, asked, expires time.Time) *syncv1.SignedDocument {
	t.Helper()
	d, err := s.Sign(&syncv1.RestartOrder{PartId: partID, MachineId: "m", Id: id, RequestedAt: timestamppb.New(asked), ExpiresAt: timestamppb.New(expires)})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestHostileRestartOrdersAreRefused has the wire deliver restart orders
// the part must not act on: forged, for another part, malformed, and the
// cloud's own order replayed after the part handled it.
func TestHostileRestartOrdersAreRefused(t *testing.T) {
	w, r := newRestartWorld(t, worldOptions{tamper: true})
	w.mustCycle(t)
	w.restartMachine(t)
	w.mustCycle(t)
	if r.count() != 1 {
		t.Fatalf("%d restarts, want 1", r.count())
	}
	w.tamper.mu.Lock()
	handled := w.tamper.seenRestarts[0]
	w.tamper.mu.Unlock()

	var keyID string
	for id := range w.part.Keys {
		keyID = id
	}
	rogue := signed.Signer{KeyID: keyID, Key: ed25519.NewKeyFromSeed([]byte("an attacker's key, 32 bytes long"))}
	now := w.cloudClk.Now()
	cloudKey := w.cloud.DocumentSigner()
	later := now.Add(time.Hour)
	grant, err := cloudKey.Sign(&syncv1.GrantBundle{PartId: w.part.ID, Version: 99})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		doc     *syncv1.SignedDocument
		refused string // the logged refusal; "" for an order ignored quietly
	}{
		{"forged", signRestart(t, rogue, w.part.ID, "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1", later, later.Add(day)), "signature"},
		{"another part's", signRestart(t, cloudKey, "another-part", "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2", later, later.Add(day)), "another part"},
		{"no id", signRestart(t, cloudKey, w.part.ID, "", later, later.Add(day)), "want an id"},
		{"a grant bundle", grant, "type"},
		{"replayed", handled, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w.tamper.mu.Lock()
			w.tamper.sendRestart = tc.doc
			w.tamper.mu.Unlock()
			refusals := func() int { return w.logs.FilterMessage("refused a restart order from the cloud").Len() }
			before := refusals()
			for range 3 {
				res := w.mustCycle(t)
				if res.Restart != nil {
					t.Fatalf("acted on a %s order: %v", tc.name, res.Restart)
				}
				if tc.refused != "" && (res.Err == nil || !strings.Contains(res.Err.Error(), tc.refused)) {
					t.Fatalf("a %s order: cycle error %v, want one saying %q", tc.name, res.Err, tc.refused)
				}
			}
			want := 0
			if tc.refused != "" {
				want = 1
			}
			if n := refusals() - before; n != want {
				t.Fatalf("a %s order sent 3 times was logged %d times, want %d", tc.name, n, want)
			}
			if r.count() != 1 {
				t.Fatalf("a %s order restarted the part: %d restarts", tc.name, r.count())
			}
		})
	}
}

// TestFailedAndDeferredRestarts: a restart that fails is reported failed
// and not tried again; one the daemon defers (it is stopping) is not
// counted as handled, and the next pull acts on it.
func TestFailedAndDeferredRestarts(t *testing.T) {
	w, r := newRestartWorld(t, worldOptions{})
	w.mustCycle(t)
	r.setFail(errors.New("the motor did not stop: " + strings.Repeat("é", 1000)))
	w.restartMachine(t)
	res := w.mustCycle(t)
	if res.Restart.GetOutcome() != syncv1.RestartOutcome_RESTART_OUTCOME_FAILED || len(res.Restart.GetError()) > 1024 || res.Err != nil {
		t.Fatalf("a failed restart: %v, %v", res.Restart, res.Err)
	}
	st := w.restartState(t)
	if st.GetRequestedAt() != nil || st.GetOutcome() != "failed" || !strings.HasPrefix(st.GetError(), "the motor did not stop") {
		t.Fatalf("the cloud shows %v, want the request cleared and failed, with why", st)
	}
	r.setFail(nil)
	w.mustCycle(t)
	if r.count() != 0 {
		t.Fatalf("a failed restart was tried again")
	}

	r.setFail(cloudsync.ErrRestartDeferred)
	w.advance(time.Minute)
	w.restartMachine(t)
	if res := w.mustCycle(t); res.Restart != nil || w.restartState(t).GetRequestedAt() == nil {
		t.Fatalf("a deferred restart: %v; cloud shows %v, want still pending", res.Restart, w.restartState(t))
	}
	last, err := w.syncer.LastRestart(context.Background())
	if err != nil || last.GetOutcome() != syncv1.RestartOutcome_RESTART_OUTCOME_FAILED {
		t.Fatalf("after a deferred restart the last handled is %v, %v; want the failed one", last, err)
	}
	r.setFail(nil)
	w.reboot(t, w.clk.Now())
	w.mustCycle(t)
	if r.count() != 1 || w.restartState(t).GetOutcome() != "restarted" {
		t.Fatalf("after the next start: %d restarts, cloud shows %v", r.count(), w.restartState(t))
	}
}

// TestRestartStateBeforeAnyOrder: a part that never handled an order
// reports none, and still none after deferring its first one, which the
// next cycle acts on.
func TestRestartStateBeforeAnyOrder(t *testing.T) {
	w, r := newRestartWorld(t, worldOptions{budget: cache.Budget{}})
	w.mustCycle(t)
	if last, err := w.syncer.LastRestart(context.Background()); last != nil || err != nil {
		t.Fatalf("LastRestart before any order: %v, %v", last, err)
	}
	if st := w.restartState(t); st != nil {
		t.Fatalf("the cloud shows %v for a part never asked to restart", st)
	}
	r.setFail(fmt.Errorf("stopping: %w", cloudsync.ErrRestartDeferred))
	w.restartMachine(t)
	if res := w.mustCycle(t); res.Restart != nil || res.Err != nil {
		t.Fatalf("a deferred first order: %v, %v", res.Restart, res.Err)
	}
	if last, err := w.syncer.LastRestart(context.Background()); last != nil || err != nil {
		t.Fatalf("LastRestart after deferring the first order: %v, %v", last, err)
	}
	r.setFail(nil)
	if res := w.mustCycle(t); res.Restart.GetOutcome() != syncv1.RestartOutcome_RESTART_OUTCOME_RESTARTED || r.count() != 1 {
		t.Fatalf("the next cycle: %v, %d restarts", res.Restart, r.count())
	}
}
