package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"connectrpc.com/connect"

	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	"github.com/outpost-robotics/outpost/web"
)

// TestShellLoadsUnderCSP: the fleet app's page loads in Chromium with every
// file from its own origin, compressed, and without one CSP violation or
// console error (the tab fails the test on any).
func TestShellLoadsUnderCSP(t *testing.T) {
	e := newEnv(t, web.Config{App: web.AppFleet, Title: "Acme fleet", Version: "v1.2.3"})
	tab := chromium.NewTab(t)
	t.Logf("browser: %s", chromium.Version(t))
	tab.Navigate(e.url + "/")
	tab.WaitVisible("#signin")
	if got := tab.Text("#where"); got != "Acme fleet" {
		t.Errorf("header says %q", got)
	}
	if got := tab.Text("#nav"); !strings.Contains(got, "Fleet") {
		t.Errorf("nav says %q", got)
	}
	var res []struct {
		Name    string  `json:"name"`
		Encoded float64 `json:"encoded"`
		Decoded float64 `json:"decoded"`
	}
	// The icon is fetched at low priority, after the modules: wait for it.
	tab.Eval(`new Promise((resolve) => {
  const has = () => performance.getEntriesByType('resource').some((r) => r.name.includes('/assets/icon.'));
  if (has()) return resolve(true);
  new PerformanceObserver((_, o) => { if (has()) { o.disconnect(); resolve(true); } }).observe({type: 'resource', buffered: true});
})`, nil)
	// The page's files, not its calls (the fleet app asks WhoAmI at start).
	tab.Eval(`performance.getEntriesByType('resource').filter(r => r.initiatorType !== 'fetch').map(r => ({name: r.name, encoded: r.encodedBodySize, decoded: r.decodedBodySize}))`, &res)
	if len(res) < 4 {
		t.Fatalf("the page loaded %d resources: %+v", len(res), res)
	}
	var page float64
	tab.Eval(`performance.getEntriesByType('navigation')[0].encodedBodySize`, &page)
	total := page
	for _, r := range res {
		total += r.Encoded
	}
	t.Logf("the browser loaded %d files, %.0f bytes compressed", len(res)+1, total)
	if want := shellBytes(t, e.web); total != float64(want) {
		t.Errorf("the browser loaded %.0f bytes; the shell's files are %d (BenchmarkShellBytes counts what the page loads)", total, want)
	}
	for _, r := range res {
		if !strings.HasPrefix(r.Name, e.url+"/assets/") {
			t.Errorf("the page loaded %s, not one of its assets", r.Name)
		}
		if strings.HasSuffix(r.Name, ".js") && r.Encoded >= r.Decoded {
			t.Errorf("%s came uncompressed (%v bytes for %v)", r.Name, r.Encoded, r.Decoded)
		}
	}
}

// TestCSPViolationsAreCaught: the harness sees what the CSP blocks, and
// Trusted Types make markup assigned as a string throw instead of parse.
func TestCSPViolationsAreCaught(t *testing.T) {
	e := newEnv(t, web.Config{App: web.AppFleet})
	tab := chromium.NewTab(t)
	tab.Navigate(e.url + "/")
	tab.WaitVisible("#signin")

	tab.Eval(`document.body.setAttribute('style', 'background: red'); true`, nil)
	if v := tab.TakeCSPViolations(1); !strings.Contains(v[0], "style-src") {
		t.Errorf("inline style: %v", v)
	}
	msg := tab.EvalErr(`document.getElementById('main').innerHTML = ` + webtestJS(hostile))
	if !strings.Contains(msg, "TrustedHTML") {
		t.Errorf("innerHTML with a string: %s", msg)
	}
	if v := tab.TakeCSPViolations(1); !strings.Contains(v[0], "trusted-types") {
		t.Errorf("innerHTML: %v", v)
	}
	var pwned bool
	tab.Eval(`globalThis.pwned === 1`, &pwned)
	if pwned {
		t.Fatal("markup ran")
	}
}

func webtestJS(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestSignInShell: the sign-in form is labelled, reachable by keyboard,
// shows the server's refusal as text, and names who signed in as text
// however it is spelled; screenshots at desktop and phone width.
func TestSignInShell(t *testing.T) {
	e := newEnv(t, web.Config{App: web.AppFleet, Title: "Acme fleet", Version: "v1.2.3"})
	tab := chromium.NewTab(t)
	tab.SetViewport(1280, 800, false)
	tab.Navigate(e.url + "/")
	tab.WaitVisible("#signin")

	var labels []string
	tab.Eval(`[...document.querySelectorAll('#signin input')].map(i => i.labels.length ? i.labels[0].textContent : '')`, &labels)
	if strings.Join(labels, ",") != "Email,Password" {
		t.Errorf("the inputs' labels are %q", labels)
	}
	tab.Screenshot("signin-desktop")

	// Keyboard: Tab from the page's start reaches the skip link first,
	// and its focus is visible.
	var outline string
	tab.Eval(`document.querySelector('.skip').focus(); getComputedStyle(document.activeElement).outlineStyle`, &outline)
	if outline == "none" || outline == "" {
		t.Errorf("the focused skip link has no visible outline (%q)", outline)
	}

	tab.Type("#signin-email", "ops@example.com")
	tab.Type("#signin-password", "wrong password")
	tab.Click("#signin-submit")
	got := tab.WaitText("#signin-status", "email or password is wrong")
	if got != wrongPassword {
		t.Errorf("the refusal shows %q, want the server's message as it is, %q", got, wrongPassword)
	}

	tab.Eval(`document.getElementById('signin-email').value = ''; true`, nil)
	tab.Eval(`document.getElementById('signin-password').value = ''; true`, nil)
	tab.Type("#signin-email", hostile)
	tab.Type("#signin-password", "correct horse battery")
	tab.Click("#signin-submit")
	// Signed in, the fleet app shows who in the header and moves on to
	// the Fleet page.
	tab.WaitVisible("#who-email")
	if got := tab.Text("#who-email"); got != hostile {
		t.Errorf("#who shows %q, want %q as text", got, hostile)
	}
	var imgs int
	var pwned bool
	tab.Eval(`document.querySelectorAll('img').length`, &imgs)
	tab.Eval(`globalThis.pwned === 1`, &pwned)
	if imgs != 0 || pwned {
		t.Fatalf("markup from the server became elements (%d img) or ran (%v)", imgs, pwned)
	}

	// A phone: 375 px wide, nothing wider than the screen.
	tab.SetViewport(375, 812, true)
	tab.Navigate(e.url + "/")
	tab.WaitVisible("#signin")
	var widths struct{ Doc, Win, Form float64 }
	tab.Eval(`({doc: document.documentElement.scrollWidth, win: innerWidth, form: document.getElementById('signin').getBoundingClientRect().right})`, &widths)
	if widths.Doc > widths.Win || widths.Form > widths.Win {
		t.Errorf("at 375 px the page is %v px wide and the form ends at %v", widths.Doc, widths.Form)
	}
	tab.Screenshot("signin-phone")
}

// TestConsoleShowsFingerprint: the part's console shows the certificate
// fingerprint before anything is typed.
func TestConsoleShowsFingerprint(t *testing.T) {
	e := newEnv(t, web.Config{App: web.AppConsole, Title: "rover-1", PartID: "p1"})
	tab := chromium.NewTab(t)
	tab.Navigate(e.url + "/control")
	tab.WaitVisible("#fingerprint")
	if got := tab.Text("#fingerprint"); got != e.part.Fingerprint() {
		t.Errorf("the console shows fingerprint %q, want %q", got, e.part.Fingerprint())
	}
	if got := tab.Text("#nav [aria-current=page]"); got != "Control" {
		t.Errorf("the current page in the nav is %q", got)
	}
	tab.Screenshot("console-signin")
}

// TestConnectClient: connect.js against real connect-go handlers over
// fetch: unary calls, the server's refusal with its own words and code, a
// server stream ending in the server's error, 64-bit integers, a message
// over a megabyte, and a real part's public call and its refusal of a call
// without a credential.
func TestConnectClient(t *testing.T) {
	e := newEnv(t, web.Config{App: web.AppFleet})
	tab := chromium.NewTab(t)
	tab.Navigate(e.url + "/")
	tab.WaitVisible("#signin")

	var got struct {
		Who    map[string]any
		Denied struct{ Code, Message string }
		Stream []map[string]any
		End    struct{ Code, Message string }
		Big    int
		Health map[string]any
		Anon   struct{ Code, Message string }
		Bad    struct{ Code, Message string }
	}
	tab.Eval(e.script(t, `
  const stub = connect.createClient({baseUrl: '/stub'});
  const part = connect.createClient({baseUrl: ''});
  const errOf = async (p) => { try { await p; return {code: 'none'}; } catch (err) { return {code: err.code, message: err.message}; } };
  const out = {};
  out.who = await stub.unary('outpost.control.v1.ControlService', 'WhoAmI', {});
  out.denied = await errOf(stub.unary('outpost.control.v1.ControlService', 'GetConfig', {}));
  out.stream = [];
  out.end = await errOf((async () => {
    for await (const m of stub.stream('outpost.control.v1.ControlService', 'FollowLogs', {minLevel: 'warn'})) out.stream.push(m);
  })());
  const big = await stub.unary('outpost.control.v1.ControlService', 'TailLogs', {limit: 1500000});
  out.big = big.entries[0].message.length;
  out.health = await part.unary('outpost.control.v1.ControlService', 'Health', {});
  out.anon = await errOf(part.unary('outpost.control.v1.ControlService', 'Status', {}));
  out.bad = await errOf(part.unary('outpost.control.v1.ControlService', 'Nope', {}));
  return out;`), &got)

	if got.Who["displayName"] != hostile || got.Who["grantsVersion"] != fmt.Sprint(uint64(1)<<60) {
		t.Errorf("WhoAmI = %v", got.Who)
	}
	if got.Denied.Code != "permission_denied" || got.Denied.Message != "operator of machine/m1 may not machine.view: an operator can see and use only the CONTROL tab" {
		t.Errorf("GetConfig's refusal = %+v", got.Denied)
	}
	if len(got.Stream) != 3 || got.Stream[2]["entry"].(map[string]any)["message"] != "entry 2" || got.Stream[0]["entry"].(map[string]any)["level"] != "warn" {
		t.Errorf("FollowLogs streamed %v", got.Stream)
	}
	if got.End.Code != "unavailable" || got.End.Message != "the log stream ended: the part is restarting" {
		t.Errorf("FollowLogs ended with %+v", got.End)
	}
	if got.Big != 1500000 {
		t.Errorf("TailLogs' big message has %d bytes", got.Big)
	}
	if got.Health["serving"] != true {
		t.Errorf("the part's Health = %v", got.Health)
	}
	if got.Anon.Code != "unauthenticated" || !strings.Contains(got.Anon.Message, "this call needs a credential") {
		t.Errorf("the part's Status without a credential = %+v", got.Anon)
	}
	if got.Bad.Code != "not_found" || !strings.Contains(got.Bad.Message, "Nope") {
		t.Errorf("an unknown method = %+v", got.Bad)
	}
}

// TestWebRTCControl: the browser opens a WebRTC session with a real part's
// control plane, signaled through a real relay broker, and makes real calls
// on it: who it is and the part's status, the motor driven through
// ComponentService (the real robot's motor moves), a server stream, a
// message split over many frames, the part's refusal of what an operator
// may not do, and the part's audit of the operator.
func TestWebRTCControl(t *testing.T) {
	e := newEnv(t, web.Config{App: web.AppFleet})
	tab := chromium.NewTab(t)
	tab.Navigate(e.url + "/")
	tab.WaitVisible("#signin")

	open := func(who string) string {
		return fmt.Sprintf(`
  const cloud = connect.createClient({baseUrl: '', headers: {Authorization: %q}});
  const session = await rtc.dialControl({signaling: rtc.relaySignaling(cloud, 'p1'), candidates: rtc.loopbackOnly});
  const part = connect.createClient({baseUrl: rtc.BASE_URL, fetch: session.fetch});
  const errOf = async (p) => { try { await p; return {code: 'none'}; } catch (err) { return {code: err.code, message: err.message}; } };
`, who)
	}
	var owner struct {
		Who      map[string]any
		Status   map[string]any
		Moving   map[string]any
		Stopped  map[string]any
		Logs     []map[string]any
		Resource []any
	}
	tab.Eval(e.script(t, open("Test owner")+`
  const out = {};
  out.who = await part.unary('outpost.control.v1.ControlService', 'WhoAmI', {});
  out.status = await part.unary('outpost.control.v1.ControlService', 'Status', {});
  await part.unary('outpost.control.v1.ComponentService', 'MotorSetPower', {name: 'motor', power: 0.5});
  out.moving = await part.unary('outpost.control.v1.ComponentService', 'GetStatus', {name: 'motor'});
  await part.unary('outpost.control.v1.ControlService', 'StopAll', {});
  out.stopped = await part.unary('outpost.control.v1.ComponentService', 'MotorIsMoving', {name: 'motor'});
  out.logs = [];
  for await (const m of part.stream('outpost.control.v1.ControlService', 'FollowLogs', {})) out.logs.push(m.entry);
  out.resource = (await part.unary('outpost.control.v1.ComponentService', 'ListResources', {})).resources;
  session.close();
  return out;`), &owner)

	if owner.Who["subject"] != "apikey/"+ownerKey || owner.Who["role"] != "owner" || owner.Who["transport"] != "webrtc" {
		t.Errorf("WhoAmI over WebRTC = %v", owner.Who)
	}
	if owner.Status["partId"] != "p1" {
		t.Errorf("Status over WebRTC = %v", owner.Status)
	}
	if st, _ := owner.Moving["status"].(map[string]any); st["power"] != 0.5 || st["moving"] != true {
		t.Errorf("the motor after MotorSetPower 0.5: %v", owner.Moving)
	}
	if owner.Stopped["moving"] == true {
		t.Errorf("the motor moves after StopAll: %v", owner.Stopped)
	}
	if len(owner.Logs) != 3 || owner.Logs[1]["message"] != hostile {
		t.Errorf("FollowLogs over WebRTC: %v", owner.Logs)
	}
	if len(owner.Resource) != 1 {
		t.Errorf("ListResources: %v", owner.Resource)
	}
	// The real robot's motor saw the calls.
	st, err := e.robot.GetStatus(context.Background(), connectRequestGetStatus("motor"))
	if err != nil || st.Msg.GetStatus().GetFields()["moving"].GetBoolValue() {
		t.Errorf("the robot's motor after StopAll: %v, %v", st, err)
	}

	var operator struct {
		Who    map[string]any
		Config struct{ Code, Message string }
		Big    struct{ Code, Message string }
		Power  map[string]any
	}
	tab.Eval(e.script(t, open("Test operator")+`
  const out = {};
  out.who = await part.unary('outpost.control.v1.ControlService', 'WhoAmI', {});
  out.config = await errOf(part.unary('outpost.control.v1.ControlService', 'GetConfig', {}));
  // A 100 KB request: split over frames on the way in.
  out.big = await errOf(part.unary('outpost.control.v1.ComponentService', 'DoCommand', {name: 'nope', command: {pad: 'x'.repeat(100000)}}));
  await part.unary('outpost.control.v1.ComponentService', 'MotorSetPower', {name: 'motor', power: -0.25});
  out.power = await part.unary('outpost.control.v1.ComponentService', 'GetStatus', {name: 'motor'});
  const who = dom.h('p', {id: 'rtc-who'}, 'Operator: ', out.who.displayName);
  document.getElementById('main').append(who);
  session.close();
  return out;`), &operator)

	if operator.Who["role"] != "operator" || operator.Who["displayName"] != hostile {
		t.Errorf("the operator's WhoAmI = %v", operator.Who)
	}
	if operator.Config.Code != "permission_denied" || !strings.Contains(operator.Config.Message, "machine.view") {
		t.Errorf("the operator's GetConfig = %+v", operator.Config)
	}
	t.Logf("the part refuses the operator's GetConfig with: %s", operator.Config.Message)
	if operator.Big.Code != "not_found" {
		t.Errorf("a 100 KB DoCommand on a missing component = %+v", operator.Big)
	}
	if st, _ := operator.Power["status"].(map[string]any); st["power"] != -0.25 {
		t.Errorf("the motor after the operator's MotorSetPower: %v", operator.Power)
	}
	if got := tab.Text("#rtc-who"); got != "Operator: "+hostile {
		t.Errorf("the operator's name shows as %q", got)
	}
	var imgs int
	tab.Eval(`document.querySelectorAll('img').length`, &imgs)
	if imgs != 0 {
		t.Fatal("the operator's name became an element")
	}

	// The part audited the operator's driving, over WebRTC.
	var found bool
	for _, ev := range e.audit.all() {
		if ev.GetSubject() == "apikey/"+operatorKey && ev.GetTransport() == "webrtc" && ev.GetAction() == "machine.control" && ev.GetAllowed() {
			found = true
		}
	}
	if !found {
		t.Errorf("no audit event of the operator's machine.control over webrtc in %v", e.audit.all())
	}
}

// TestWebRTCRefusals: a caller the relay lets through but the part does
// not know is refused by the part, and the page gets the part's words; a
// caller the cloud refuses never reaches the part.
func TestWebRTCRefusals(t *testing.T) {
	e := newEnv(t, web.Config{App: web.AppFleet})
	tab := chromium.NewTab(t)
	tab.Navigate(e.url + "/")
	tab.WaitVisible("#signin")
	var got struct {
		Cloud, Part struct{ Code, Message string }
	}
	tab.Eval(e.script(t, `
  const errOf = async (p) => { try { await p; return {code: 'none'}; } catch (err) { return {code: err.code, message: err.message}; } };
  const dial = (auth) => rtc.dialControl({signaling: rtc.relaySignaling(connect.createClient({headers: {Authorization: auth}}), 'p1'), candidates: rtc.loopbackOnly});
  return {cloud: await errOf(dial('Test nobody')), part: await errOf(dial('Test stranger'))};`), &got)
	if got.Cloud.Code != "unauthenticated" || got.Cloud.Message != "sign in first" {
		t.Errorf("the cloud's refusal: %+v", got.Cloud)
	}
	if got.Part.Code != "unauthenticated" || !strings.Contains(got.Part.Message, "unknown to this part") {
		t.Errorf("the part's refusal: %+v", got.Part)
	}
}

func connectRequestGetStatus(name string) *connect.Request[controlv1.GetStatusRequest] {
	return connect.NewRequest(&controlv1.GetStatusRequest{Name: name})
}
