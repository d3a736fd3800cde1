package cloud_test

import (
	"context"
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

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/cloud"
	"github.com/outpost-robotics/outpost/cloud/cloudtest"
)

// alertTestOptions let the cloud post to a webhook on loopback over http
// and keep the backoff between retries short.
var alertTestOptions = cloud.AlertOptions{AllowLoopbackHTTP: true, RetryMax: 3, RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond}

// webhook is a receiver on loopback that checks every request's signature
// with the rule's secret on the cloud's clock, as a real receiver would,
// and answers from a script of status codes (then 200).
type webhook struct {
	*httptest.Server
	t      *testing.T
	now    func() time.Time
	mu     sync.Mutex
	keys   [][]byte
	script []int
	got    []cloud.AlertPayload
	bad    []string
	hits   int
}

func newWebhook(t *testing.T, now func() time.Time) *webhook {
	w := &webhook{t: t, now: now}
	w.Server = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.mu.Lock()
		defer w.mu.Unlock()
		w.hits++
		var err error
		for _, k := range w.keys {
			if err = cloud.VerifyAlert(k, r.Header.Get("Outpost-Signature"), body, w.now(), 5*time.Minute); err == nil {
				break
			}
		}
		if err != nil || len(w.keys) == 0 {
			w.bad = append(w.bad, fmt.Sprint("signature: ", err))
			rw.WriteHeader(http.StatusUnauthorized)
			return
		}
		if len(w.script) > 0 {
			code := w.script[0]
			w.script = w.script[1:]
			if code != http.StatusOK {
				rw.WriteHeader(code)
				return
			}
		}
		var p cloud.AlertPayload
		if err := json.Unmarshal(body, &p); err != nil {
			w.bad = append(w.bad, "body: "+err.Error())
			rw.WriteHeader(http.StatusBadRequest)
			return
		}
		w.got = append(w.got, p)
	}))
	t.Cleanup(w.Close)
	return w
}

// setSecret adds a rule's secret to those the receiver accepts.
func (w *webhook) setSecret(hexSecret string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	b, err := hex.DecodeString(hexSecret)
	if err != nil || len(b) != 32 {
		w.t.Fatalf("the rule's secret %d bytes, %v: want 32 bytes in hex", len(b), err)
	}
	w.keys = append(w.keys, b)
}

// received returns the payloads accepted so far and the refusals.
func (w *webhook) received() ([]cloud.AlertPayload, []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]cloud.AlertPayload(nil), w.got...), append([]string(nil), w.bad...)
}

// alertWorld is an organization with Plant/Line 1, a machine "rover" in
// Line 1 whose main part reports through the real part sync API, and a
// second organization with a location of its own.
type alertWorld struct {
	e                          *env
	org, plant, line, other    string
	otherLoc, rover, roverPart string
	part                       *scriptedPart
}

func newAlertWorld(t *testing.T) *alertWorld {
	e := newEnvWith(t, cloudtest.Options{Alerts: alertTestOptions})
	ctx := context.Background()
	a := e.client(e.adminToken)
	w := &alertWorld{e: e}
	w.org = check(a.Org.CreateOrg(ctx, req(&fleetv1.CreateOrgRequest{Name: "Acme"})))(t).GetOrg().GetId()
	w.other = check(a.Org.CreateOrg(ctx, req(&fleetv1.CreateOrgRequest{Name: "Other"})))(t).GetOrg().GetId()
	loc := func(org, parent, name string) string {
		return check(a.Location.CreateLocation(ctx, req(&fleetv1.CreateLocationRequest{OrgId: org, ParentLocationId: parent, Name: name})))(t).GetLocation().GetId()
	}
	w.plant = loc(w.org, "", "Plant")
	w.line = loc(w.org, w.plant, "Line 1")
	w.otherLoc = loc(w.other, "", "Elsewhere")
	m := check(a.Machine.CreateMachine(ctx, req(&fleetv1.CreateMachineRequest{LocationId: w.line, Name: "rover"})))(t)
	e.Remember(m.GetMainPartSecret())
	w.rover, w.roverPart = m.GetMachine().GetId(), m.GetMachine().GetParts()[0].GetId()
	boot := check(a.Machine.BootstrapPart(ctx, req(&fleetv1.BootstrapPartRequest{PartId: w.roverPart, CloudUrl: e.URL})))(t).GetBootstrap()
	w.part = e.part(t, boot)
	return w
}

func (w *alertWorld) report(t *testing.T, st *syncv1.PartStatus) {
	t.Helper()
	if _, err := w.part.client.ReportStatus(context.Background(), connect.NewRequest(&syncv1.ReportStatusRequest{Status: st})); err != nil {
		t.Fatalf("report status: %v", err)
	}
}

func (w *alertWorld) createRule(t *testing.T, r *fleetv1.CreateAlertRuleRequest) (*fleetv1.AlertRule, string) {
	t.Helper()
	res := check(w.e.client(w.e.adminToken).Alert.CreateAlertRule(context.Background(), req(r)))(t)
	w.e.Remember(res.GetSecret())
	return res.GetRule(), res.GetSecret()
}

func (w *alertWorld) history(t *testing.T, ruleID string) []*fleetv1.AlertEvent {
	t.Helper()
	return check(w.e.client(w.e.adminToken).Alert.ListAlertEvents(context.Background(), req(&fleetv1.ListAlertEventsRequest{RuleId: ruleID})))(t).GetEvents()
}

func evaluate(t *testing.T, e *env) {
	t.Helper()
	if err := e.Server.EvaluateAlerts(context.Background()); err != nil {
		t.Fatalf("evaluate alerts: %v", err)
	}
}

// TestAlertOfflineFiresOnceAndResolves: a rule on Plant covers the rover in
// Line 1 below it. While the part reports, nothing fires; once the fake
// clock passes the limit, the rule fires once (two evaluations at once,
// as two replicas would, and later rounds deliver nothing more), the
// webhook receives it signed, and when the part reports again it
// resolves. The history holds both transitions, delivered.
func TestAlertOfflineFiresOnceAndResolves(t *testing.T) {
	w := newAlertWorld(t)
	e := w.e
	hook := newWebhook(t, e.clk.Now)
	w.report(t, &syncv1.PartStatus{Version: "1.2.3"})
	rule, secret := w.createRule(t, &fleetv1.CreateAlertRuleRequest{Scope: "location/" + w.plant, Name: "rover offline",
		Kind: "offline", WindowSeconds: 300, WebhookUrl: hook.URL + "/hook?token=abc"})
	hook.setSecret(secret)

	evaluate(t, e)
	e.clk.Advance(4 * time.Minute) // offline (past 2.5 intervals) but not for 5 minutes
	evaluate(t, e)
	if got, bad := hook.received(); len(got) != 0 || len(bad) != 0 {
		t.Fatalf("before the limit the webhook got %v, refused %v", got, bad)
	}

	e.clk.Advance(2 * time.Minute)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { evaluate(t, e) })
	}
	wg.Wait()
	evaluate(t, e)
	got, bad := hook.received()
	if len(bad) != 0 || len(got) != 1 {
		t.Fatalf("after the limit the webhook got %d events %+v, refused %v; want one firing", len(got), got, bad)
	}
	p := got[0]
	if p.State != "firing" || p.Rule.ID != rule.GetId() || p.Part == nil || p.Part.ID != w.roverPart || p.Machine.Name != "rover" ||
		p.LocationPath != "Plant/Line 1" || !strings.Contains(p.Detail, "silent for 6m0s") {
		t.Fatalf("firing payload %+v", p)
	}
	rules := check(e.client(e.adminToken).Alert.ListAlertRules(context.Background(), req(&fleetv1.ListAlertRulesRequest{Scope: "org/" + w.org})))(t).GetRules()
	if len(rules) != 1 || rules[0].GetFiring() != 1 {
		t.Fatalf("rules of the org %v: want the rule, firing for one part", rules)
	}

	w.report(t, &syncv1.PartStatus{Version: "1.2.3"})
	evaluate(t, e)
	evaluate(t, e)
	got, bad = hook.received()
	if len(bad) != 0 || len(got) != 2 || got[1].State != "resolved" || got[1].Part.ID != w.roverPart {
		t.Fatalf("after the part returned the webhook got %+v, refused %v; want firing then resolved", got, bad)
	}
	h := w.history(t, rule.GetId())
	if len(h) != 2 || h[0].GetState() != "resolved" || h[1].GetState() != "firing" {
		t.Fatalf("history %v: want resolved, firing (newest first)", h)
	}
	for _, ev := range h {
		if !ev.GetDelivered() || ev.GetAttempts() != 1 || ev.GetStatusCode() != 200 || ev.GetPartId() != w.roverPart || ev.GetMachineId() != w.rover {
			t.Fatalf("event %v: want delivered at the first attempt", ev)
		}
	}
	if strings.Contains(e.Logs(), "token=abc") {
		t.Fatal("the webhook URL (which may hold a token) reached the log")
	}
}

// TestAlertRetriesThenDelivers: a failing resource (a crash-looping process
// reported failed) fires; the webhook answers 500 twice, then 200: the
// delivery is retried with backoff and recorded as delivered at the third
// attempt. A test-fire reaches the same webhook signed and joins the
// history; a webhook that keeps failing is recorded as not delivered.
func TestAlertRetriesThenDelivers(t *testing.T) {
	w := newAlertWorld(t)
	e, ctx := w.e, context.Background()
	hook := newWebhook(t, e.clk.Now)
	rule, secret := w.createRule(t, &fleetv1.CreateAlertRuleRequest{Scope: "org/" + w.org, Name: "failing", Kind: "failing", WebhookUrl: hook.URL})
	hook.setSecret(secret)
	hook.mu.Lock()
	hook.script = []int{500, 500}
	hook.mu.Unlock()
	w.report(t, &syncv1.PartStatus{Resources: []*syncv1.ResourceStatus{{Name: "process/pump", State: "failed", Error: "crash loop"}}})
	evaluate(t, e)
	got, bad := hook.received()
	if len(bad) != 0 || len(got) != 1 || got[0].State != "firing" || !strings.Contains(got[0].Detail, "process/pump") {
		t.Fatalf("webhook got %+v, refused %v; want one firing naming process/pump", got, bad)
	}
	h := w.history(t, rule.GetId())
	if len(h) != 1 || !h[0].GetDelivered() || h[0].GetAttempts() != 3 || h[0].GetStatusCode() != 200 {
		t.Fatalf("history %v: want one event delivered at the third attempt", h)
	}

	test := check(e.client(e.adminToken).Alert.TestAlertRule(ctx, req(&fleetv1.TestAlertRuleRequest{RuleId: rule.GetId()})))(t).GetEvent()
	if test.GetState() != "test" || !test.GetDelivered() {
		t.Fatalf("test-fire %v: want delivered", test)
	}
	if got, _ := hook.received(); len(got) != 2 || got[1].State != "test" || got[1].Part != nil {
		t.Fatalf("webhook got %+v: want the test event second", got)
	}

	hook.mu.Lock()
	hook.script = []int{500, 500, 500, 500, 500}
	hook.mu.Unlock()
	test = check(e.client(e.adminToken).Alert.TestAlertRule(ctx, req(&fleetv1.TestAlertRuleRequest{RuleId: rule.GetId()})))(t).GetEvent()
	if test.GetDelivered() || test.GetAttempts() != 4 || test.GetStatusCode() != 500 || !strings.Contains(test.GetError(), "500") {
		t.Fatalf("test-fire to a failing webhook %v: want 4 attempts, not delivered", test)
	}
	if h := w.history(t, rule.GetId()); len(h) != 3 {
		t.Fatalf("history %v: want the two test-fires and the firing", h)
	}
}

// TestAlertRuleKinds: each kind holds on what a part reports, through one
// rule per kind over the same part.
func TestAlertRuleKinds(t *testing.T) {
	w := newAlertWorld(t)
	e := w.e
	hook := newWebhook(t, e.clk.Now)
	secrets := map[string]string{}
	rules := map[string]string{}
	for _, r := range []*fleetv1.CreateAlertRuleRequest{
		{Kind: "capture_backlog", Threshold: 100},
		{Kind: "store_bytes", Threshold: 1 << 20},
		{Kind: "rollout_failed"},
		{Kind: "error_logs", Threshold: 2, WindowSeconds: 600},
	} {
		r.Scope, r.Name, r.WebhookUrl = "location/"+w.line, r.Kind, hook.URL
		rule, secret := w.createRule(t, r)
		rules[rule.GetId()], secrets[r.Kind] = r.Kind, secret
	}
	for _, secret := range secrets {
		hook.setSecret(secret)
	}
	w.report(t, &syncv1.PartStatus{StoreBytes: 2 << 20,
		Backlog:  []*syncv1.StreamBacklog{{Stream: "captures", Records: 101}, {Stream: "logs.info", Records: 5000}},
		Packages: []*syncv1.PackageStatus{{Name: "nav", IssuedVersion: "2.0.0", State: "rolled_back", Error: "health check failed"}}})
	for i, level := range []string{"error", "info", "fatal", "error"} {
		w.part.upload(t, "logs.warn", record(t, uint64(i+1), e.clk.Now(), &syncv1.LogEntry{Level: level, Message: "m"}))
	}
	evaluate(t, e)
	fired := map[string]string{}
	for id, kind := range rules {
		for _, ev := range w.history(t, id) {
			if !ev.GetDelivered() {
				t.Errorf("%s: %v not delivered", kind, ev)
			}
			fired[kind] = ev.GetState() + ": " + ev.GetDetail()
		}
	}
	for kind, want := range map[string]string{
		"capture_backlog": "firing: 101 captures waiting",
		"store_bytes":     "firing: the store holds 2097152 bytes",
		"rollout_failed":  "firing: package nav 2.0.0 rolled back",
		"error_logs":      "firing: 3 error logs in the last 10m0s",
	} {
		if !strings.HasPrefix(fired[kind], want) {
			t.Errorf("%s: history says %q, want %q...", kind, fired[kind], want)
		}
	}
	// Past the window the error logs no longer count; below the thresholds
	// the others resolve.
	e.clk.Advance(11 * time.Minute)
	w.report(t, &syncv1.PartStatus{StoreBytes: 10, Backlog: []*syncv1.StreamBacklog{{Stream: "captures", Records: 100}}})
	evaluate(t, e)
	for id, kind := range rules {
		h := w.history(t, id)
		if len(h) != 2 || h[0].GetState() != "resolved" {
			t.Errorf("%s: history %v, want resolved after firing", kind, h)
		}
	}
}

// TestAlertRuleHostileInput: bad kinds, thresholds, windows, names and URLs
// are refused with a clear error; a rule on another organization's
// location is refused to an owner of this one; a rule's ID that is not
// one is refused before any lookup.
func TestAlertRuleHostileInput(t *testing.T) {
	w := newAlertWorld(t)
	e, ctx := w.e, context.Background()
	owner := e.token(e.CreateUser(t, "owner@acme.test", "a long password 1", "owner", "org/"+w.org))
	c := e.client(owner)
	ok := &fleetv1.CreateAlertRuleRequest{Scope: "location/" + w.line, Name: "r", Kind: "offline", WindowSeconds: 600, WebhookUrl: "https://hooks.example.com/x"}
	with := func(f func(r *fleetv1.CreateAlertRuleRequest)) *fleetv1.CreateAlertRuleRequest {
		r := &fleetv1.CreateAlertRuleRequest{Scope: ok.Scope, Name: ok.Name, Kind: ok.Kind, WindowSeconds: ok.WindowSeconds, WebhookUrl: ok.WebhookUrl}
		f(r)
		return r
	}
	for _, tc := range []struct {
		name string
		req  *fleetv1.CreateAlertRuleRequest
		code connect.Code
		msg  string
	}{
		{"unknown kind", with(func(r *fleetv1.CreateAlertRuleRequest) { r.Kind = "meltdown" }), connect.CodeInvalidArgument, "kind"},
		{"window too short", with(func(r *fleetv1.CreateAlertRuleRequest) { r.WindowSeconds = 5 }), connect.CodeInvalidArgument, "window_seconds"},
		{"window too long", with(func(r *fleetv1.CreateAlertRuleRequest) { r.WindowSeconds = 1 << 31 }), connect.CodeInvalidArgument, "window_seconds"},
		{"threshold on offline", with(func(r *fleetv1.CreateAlertRuleRequest) { r.Threshold = 3 }), connect.CodeInvalidArgument, "threshold"},
		{"no threshold", with(func(r *fleetv1.CreateAlertRuleRequest) { r.Kind, r.WindowSeconds = "store_bytes", 0 }), connect.CodeInvalidArgument, "threshold"},
		{"huge threshold", with(func(r *fleetv1.CreateAlertRuleRequest) {
			r.Kind, r.WindowSeconds, r.Threshold = "store_bytes", 0, 1<<64-1
		}), connect.CodeInvalidArgument, "threshold"},
		{"empty name", with(func(r *fleetv1.CreateAlertRuleRequest) { r.Name = "" }), connect.CodeInvalidArgument, "name"},
		{"control in name", with(func(r *fleetv1.CreateAlertRuleRequest) { r.Name = "a\x00b" }), connect.CodeInvalidArgument, "name"},
		{"no URL", with(func(r *fleetv1.CreateAlertRuleRequest) { r.WebhookUrl = "" }), connect.CodeInvalidArgument, "webhook_url"},
		{"file URL", with(func(r *fleetv1.CreateAlertRuleRequest) { r.WebhookUrl = "file:///etc/passwd" }), connect.CodeInvalidArgument, "webhook_url"},
		{"gopher", with(func(r *fleetv1.CreateAlertRuleRequest) { r.WebhookUrl = "gopher://hooks.example.com/" }), connect.CodeInvalidArgument, "scheme"},
		{"http elsewhere", with(func(r *fleetv1.CreateAlertRuleRequest) { r.WebhookUrl = "http://hooks.example.com/" }), connect.CodeInvalidArgument, "http is accepted only"},
		{"metadata service", with(func(r *fleetv1.CreateAlertRuleRequest) { r.WebhookUrl = "https://169.254.169.254/latest" }), connect.CodeInvalidArgument, "link-local"},
		{"private address", with(func(r *fleetv1.CreateAlertRuleRequest) { r.WebhookUrl = "https://10.0.0.8/hook" }), connect.CodeInvalidArgument, "private"},
		{"mapped private", with(func(r *fleetv1.CreateAlertRuleRequest) { r.WebhookUrl = "https://[::ffff:192.168.1.1]/hook" }), connect.CodeInvalidArgument, "private"},
		{"unspecified", with(func(r *fleetv1.CreateAlertRuleRequest) { r.WebhookUrl = "https://0.0.0.0/" }), connect.CodeInvalidArgument, "unspecified"},
		{"user info", with(func(r *fleetv1.CreateAlertRuleRequest) { r.WebhookUrl = "https://u:p@hooks.example.com/" }), connect.CodeInvalidArgument, "user"},
		{"relative", with(func(r *fleetv1.CreateAlertRuleRequest) { r.WebhookUrl = "/hook" }), connect.CodeInvalidArgument, "absolute"},
		{"long URL", with(func(r *fleetv1.CreateAlertRuleRequest) {
			r.WebhookUrl = "https://h.example/" + strings.Repeat("a", 3000)
		}), connect.CodeInvalidArgument, "2048"},
		{"machine scope", with(func(r *fleetv1.CreateAlertRuleRequest) { r.Scope = "machine/" + w.rover }), connect.CodeInvalidArgument, "scope"},
		{"bad scope", with(func(r *fleetv1.CreateAlertRuleRequest) { r.Scope = "location/../x" }), connect.CodeInvalidArgument, "scope"},
		{"unknown location", with(func(r *fleetv1.CreateAlertRuleRequest) { r.Scope = "location/" + strings.Repeat("ab", 16) }), connect.CodeNotFound, "no location"},
		{"another org's location", with(func(r *fleetv1.CreateAlertRuleRequest) { r.Scope = "location/" + w.otherLoc }), connect.CodePermissionDenied, "denied"},
		{"another org", with(func(r *fleetv1.CreateAlertRuleRequest) { r.Scope = "org/" + w.other }), connect.CodePermissionDenied, "denied"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Alert.CreateAlertRule(ctx, req(tc.req))
			if connect.CodeOf(err) != tc.code || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want %v mentioning %q", err, tc.code, tc.msg)
			}
		})
	}
	if _, err := c.Alert.CreateAlertRule(ctx, req(ok)); err != nil {
		t.Fatalf("a good rule: %v", err)
	}
	for _, id := range []string{"", "x", "../../etc", strings.Repeat("z", 32)} {
		if _, err := c.Alert.DeleteAlertRule(ctx, req(&fleetv1.DeleteAlertRuleRequest{RuleId: id})); connect.CodeOf(err) != connect.CodeInvalidArgument {
			t.Fatalf("delete rule %q: %v, want InvalidArgument", id, err)
		}
	}
	if _, err := c.Alert.ListAlertEvents(ctx, req(&fleetv1.ListAlertEventsRequest{RuleId: strings.Repeat("ab", 16)})); connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("history of a rule that does not exist: %v, want NotFound", err)
	}
}

// TestAlertPermissions: owners of the organization or of a location at or
// above the rule's scope manage it (create, test-fire, delete); operators
// there list it and its history but may not change or test-fire it; a
// machine's owner and another organization's owner see nothing of it; no
// list holds the secret.
func TestAlertPermissions(t *testing.T) {
	w := newAlertWorld(t)
	e, ctx := w.e, context.Background()
	users := map[string]string{}
	for _, u := range []struct{ name, role, scope string }{
		{"org-owner", "owner", "org/" + w.org},
		{"org-operator", "operator", "org/" + w.org},
		{"plant-owner", "owner", "location/" + w.plant},
		{"line-operator", "operator", "location/" + w.line},
		{"machine-owner", "owner", "machine/" + w.rover},
		{"other-owner", "owner", "org/" + w.other},
	} {
		users[u.name] = e.token(e.CreateUser(t, u.name+"@acme.test", "a long password 1", u.role, u.scope))
	}
	type verdict struct{ create, list, history, testFire, del bool }
	for _, tc := range []struct {
		who  string
		want verdict
	}{
		{"org-owner", verdict{true, true, true, true, true}},
		{"org-operator", verdict{false, true, true, false, false}},
		{"plant-owner", verdict{true, true, true, true, true}},
		{"line-operator", verdict{false, true, true, false, false}},
		{"machine-owner", verdict{}},
		{"other-owner", verdict{}},
	} {
		t.Run(tc.who, func(t *testing.T) {
			hook := newWebhook(t, e.clk.Now)
			rule, secret := w.createRule(t, &fleetv1.CreateAlertRuleRequest{Scope: "location/" + w.line, Name: "r", Kind: "failing", WebhookUrl: hook.URL})
			hook.setSecret(secret)
			c := e.client(users[tc.who])
			allowed := func(what string, err error) bool {
				if err != nil && connect.CodeOf(err) != connect.CodePermissionDenied {
					t.Fatalf("%s: want allowed or PermissionDenied, got %v", what, err)
				}
				return err == nil
			}
			var got verdict
			created, err := c.Alert.CreateAlertRule(ctx, req(&fleetv1.CreateAlertRuleRequest{Scope: "location/" + w.line, Name: tc.who, Kind: "failing", WebhookUrl: hook.URL}))
			if got.create = allowed("create", err); got.create {
				e.Remember(created.Msg.GetSecret())
			}
			res, err := c.Alert.ListAlertRules(ctx, req(&fleetv1.ListAlertRulesRequest{Scope: "location/" + w.line}))
			if got.list = allowed("list", err); got.list && len(res.Msg.GetRules()) == 0 {
				t.Fatal("allowed to list, listed nothing")
			}
			_, err = c.Alert.ListAlertEvents(ctx, req(&fleetv1.ListAlertEventsRequest{RuleId: rule.GetId()}))
			got.history = allowed("history", err)
			_, err = c.Alert.TestAlertRule(ctx, req(&fleetv1.TestAlertRuleRequest{RuleId: rule.GetId()}))
			got.testFire = allowed("test-fire", err)
			_, err = c.Alert.DeleteAlertRule(ctx, req(&fleetv1.DeleteAlertRuleRequest{RuleId: rule.GetId()}))
			got.del = allowed("delete", err)
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
	raw, err := json.Marshal(check(e.client(e.adminToken).Alert.ListAlertRules(ctx, req(&fleetv1.ListAlertRulesRequest{Scope: "org/" + w.org})))(t))
	if err != nil || strings.Contains(strings.ToLower(string(raw)), "secret") {
		t.Fatalf("a list of rules mentions a secret: %s", raw)
	}
}
