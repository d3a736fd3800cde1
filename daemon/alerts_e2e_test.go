package daemon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/cloud"
	"github.com/outpost-robotics/outpost/cloud/cloudtest"
	"github.com/outpost-robotics/outpost/cloud/partsync"
)

// alertReceiver is a webhook on loopback that checks each request as a
// receiver holding the rule's secret would (cloud.VerifyAlert: the MAC of
// the body, the signed time within five minutes of the cloud's clock),
// refuses what does not verify, and keeps what does.
type alertReceiver struct {
	*httptest.Server
	mu     sync.Mutex
	secret []byte
	got    []cloud.AlertPayload
	bad    []string
}

func newAlertReceiver(t *testing.T, now func() time.Time) *alertReceiver {
	t.Helper()
	a := &alertReceiver{}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
		a.mu.Lock()
		defer a.mu.Unlock()
		if err != nil {
			a.bad = append(a.bad, "read the body: "+err.Error())
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if err := cloud.VerifyAlert(a.secret, r.Header.Get("Outpost-Signature"), body, now(), 5*time.Minute); err != nil || a.secret == nil {
			a.bad = append(a.bad, fmt.Sprint("signature: ", err))
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var p cloud.AlertPayload
		if err := json.Unmarshal(body, &p); err != nil {
			a.bad = append(a.bad, "body: "+err.Error())
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if id := r.Header.Get("Outpost-Event"); id != p.ID {
			a.bad = append(a.bad, fmt.Sprintf("Outpost-Event %q names another event than the body's %q", id, p.ID))
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		a.got = append(a.got, p)
	}))
	t.Cleanup(a.Close)
	return a
}

// trust sets the rule's secret, as CreateAlertRule showed it (hex).
func (a *alertReceiver) trust(t *testing.T, hexSecret string) {
	t.Helper()
	b, err := hex.DecodeString(hexSecret)
	if err != nil || len(b) != 32 {
		t.Fatalf("the rule's secret: %d bytes, %v; want 32 bytes in hex", len(b), err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.secret = b
}

// received returns the events accepted so far and the refusals.
func (a *alertReceiver) received() ([]cloud.AlertPayload, []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]cloud.AlertPayload(nil), a.got...), append([]string(nil), a.bad...)
}

// TestAlertOnARealPartGoingOffline: an offline rule over the location of a
// real outpostd stays quiet while the part syncs and while it has been
// silent for less than the rule's window; once the cloud's clock passes
// the window after the daemon stopped, the rule fires once (later rounds
// post nothing more) and the webhook on loopback receives it signed,
// naming the part and its machine. Restarted on the same store, the part
// reports again and the rule resolves. The rule's history holds both,
// delivered, and neither the webhook's token nor the signing secret is in
// the cloud's or the part's log.
//
// The part runs on the machine's clock, the cloud on a fake one set to the
// same time: the cloud dates a part's reports by its own clock when they
// arrive ("last seen"), so moving it is the part's silence getting longer.
func TestAlertOnARealPartGoingOffline(t *testing.T) {
	ctx := context.Background()
	cloudClk := clock.NewFake(time.Now().Truncate(time.Second))
	cl := cloudtest.New(t, cloudtest.Options{
		Clock: cloudClk,
		Sync:  partsync.Options{PollInterval: 200 * time.Millisecond},
		// http to a receiver on loopback, and no long backoff if a
		// delivery is retried.
		Alerts: cloud.AlertOptions{AllowLoopbackHTTP: true, RetryMax: 3, RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond},
	})
	cp := cl.Provision(t, cloudtest.PartOptions{Config: &configv1.RobotConfig{LogLevel: "info"}})
	admin := cl.Admin(t)
	machine, err := admin.Machine.GetMachine(ctx, connect.NewRequest(&fleetv1.GetMachineRequest{MachineId: cp.MachineID}))
	if err != nil {
		t.Fatal(err)
	}
	m := machine.Msg.GetMachine()

	p := &part{Dir: t.TempDir()}
	p.DataDir, p.RunDir = p.Dir+"/data", p.Dir+"/run"
	p.BootPath = cp.WriteBootstrap(t, p.Dir)
	var runs []*running
	start := func() *running {
		t.Helper()
		r := run(t, p, clock.NewReal(), func(o *Options) { o.SyncInterval = 200 * time.Millisecond })
		t.Cleanup(func() {
			if t.Failed() {
				t.Log(tail(r.stderr.String()))
			}
		})
		runs = append(runs, r)
		return r
	}
	// reportedAt waits until the cloud holds a report of the part received
	// at the cloud's present time.
	reportedAt := func(what string) {
		t.Helper()
		cloudtest.Eventually(t, what, func() error {
			res, err := admin.Machine.GetMachineStatus(ctx, connect.NewRequest(&fleetv1.GetMachineStatusRequest{MachineId: cp.MachineID}))
			if err != nil {
				return err
			}
			for _, ps := range res.Msg.GetParts() {
				if ps.GetPart().GetId() != cp.ID {
					continue
				}
				if now := cloudClk.Now(); ps.GetLastSeen() == nil || !ps.GetLastSeen().AsTime().Equal(now) {
					return fmt.Errorf("part last seen %v, want at %s", ps.GetLastSeen(), now.UTC().Format(time.RFC3339))
				}
				return nil
			}
			return fmt.Errorf("machine status lacks part/%s: %v", cp.ID, res.Msg)
		})
	}
	evaluate := func() {
		t.Helper()
		if err := cl.Server.EvaluateAlerts(ctx); err != nil {
			t.Fatalf("evaluate alerts: %v", err)
		}
	}

	r := start()
	reportedAt("the cloud has the part's first report")

	hook := newAlertReceiver(t, cloudClk.Now)
	token := rand.Text()
	cl.Remember(token)
	rule, err := admin.Alert.CreateAlertRule(ctx, connect.NewRequest(&fleetv1.CreateAlertRuleRequest{
		Scope: "location/" + cp.LocationID, Name: "part offline", Kind: "offline", WindowSeconds: 60,
		WebhookUrl: hook.URL + "/outpost?token=" + token,
	}))
	if err != nil {
		t.Fatal(err)
	}
	secret := rule.Msg.GetSecret()
	cl.Remember(secret)
	hook.trust(t, secret)
	ruleID := rule.Msg.GetRule().GetId()

	evaluate()
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	// Offline by the fleet view (silent past two and a half intervals),
	// but not for the rule's minute yet.
	cloudClk.Advance(30 * time.Second)
	evaluate()
	if got, bad := hook.received(); len(got) != 0 || len(bad) != 0 {
		t.Fatalf("within the window the webhook got %+v, refused %v; want nothing", got, bad)
	}

	cloudClk.Advance(90 * time.Second)
	for range 3 {
		evaluate()
	}
	got, bad := hook.received()
	if len(bad) != 0 || len(got) != 1 {
		t.Fatalf("past the window the webhook got %d events %+v, refused %v; want one firing", len(got), got, bad)
	}
	f := got[0]
	if f.State != "firing" || f.Rule.ID != ruleID || f.Rule.Kind != "offline" || f.OrgID != cp.OrgID ||
		f.Part == nil || f.Part.ID != cp.ID || f.Part.Name == "" || f.Machine == nil || f.Machine.ID != cp.MachineID || f.Machine.Name != m.GetName() ||
		!strings.Contains(f.Detail, "silent for 2m0s") {
		t.Fatalf("firing %+v: want part/%s of machine %q silent for 2m0s", f, cp.ID, m.GetName())
	}

	r = start()
	reportedAt("the cloud has the restarted part's report")
	evaluate()
	evaluate()
	got, bad = hook.received()
	if len(bad) != 0 || len(got) != 2 || got[1].State != "resolved" || got[1].Part == nil || got[1].Part.ID != cp.ID ||
		got[1].Machine == nil || got[1].Machine.ID != cp.MachineID {
		t.Fatalf("after the part returned the webhook got %+v, refused %v; want firing then resolved", got, bad)
	}
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}

	h, err := admin.Alert.ListAlertEvents(ctx, connect.NewRequest(&fleetv1.ListAlertEventsRequest{RuleId: ruleID}))
	if err != nil {
		t.Fatal(err)
	}
	evs := h.Msg.GetEvents()
	if len(evs) != 2 || evs[0].GetState() != "resolved" || evs[1].GetState() != "firing" {
		t.Fatalf("history %v: want resolved, firing (newest first)", evs)
	}
	for i, ev := range evs {
		if ev.GetId() != got[len(got)-1-i].ID || !ev.GetDelivered() || ev.GetAttempts() != 1 || ev.GetStatusCode() != http.StatusOK ||
			ev.GetPartId() != cp.ID || ev.GetMachineId() != cp.MachineID {
			t.Fatalf("event %v: want the one posted, delivered at the first attempt", ev)
		}
	}
	// cloudtest checks the cloud's log for every remembered secret when the
	// test ends; the part's log is checked here (it never sees them).
	logs := map[string]string{"the cloud": cl.Logs()}
	for i, r := range runs {
		logs[fmt.Sprintf("the part (run %d)", i+1)] = r.stderr.String()
	}
	for name, log := range logs {
		for what, s := range map[string]string{"the webhook's token": token, "the signing secret": secret} {
			if strings.Contains(log, s) {
				t.Errorf("%s appears in the log of %s", what, name)
			}
		}
	}
}
