package web_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"google.golang.org/protobuf/proto"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/control/v1/controlv1connect"
	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/cloud/cloudtest"
	"github.com/outpost-robotics/outpost/cloud/ingest"
	"github.com/outpost-robotics/outpost/cloud/partsync"
	"github.com/outpost-robotics/outpost/controlwire"
	"github.com/outpost-robotics/outpost/credential"
	"github.com/outpost-robotics/outpost/daemon"
	"github.com/outpost-robotics/outpost/faultproxy"
	"github.com/outpost-robotics/outpost/webtest"
)

// consolePart is a real outpostd (daemon.Run in process, on a fake clock)
// provisioned by a real cloud it reaches through a fault proxy, which the
// test takes down to stop the cloud for the part.
type consolePart struct {
	cl              *cloudtest.Cloud
	proxy           *faultproxy.Proxy
	part            cloudtest.Part
	owner, operator cloudtest.APIKey
	clk             *clock.Fake
	ep              daemon.Endpoints
	fingerprint     string
	sock            controlv1connect.ControlServiceClient
	comp            controlv1connect.ComponentServiceClient
}

const syncEvery = 15 * time.Second

func startConsolePart(t testing.TB) *consolePart {
	t.Helper()
	cl := cloudtest.New(t, cloudtest.Options{Sync: partsync.Options{PollInterval: 200 * time.Millisecond}})
	proxy, err := faultproxy.New(cl.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	cp := &consolePart{cl: cl, proxy: proxy, clk: clock.NewFake(time.Now())}
	cp.part = cl.Provision(t, cloudtest.PartOptions{CloudURL: proxy.URL(), Config: &configv1.RobotConfig{LogLevel: "info", Components: []*configv1.Component{
		{Name: "arm", Type: configv1.ComponentType_COMPONENT_TYPE_MOTOR, Model: "fake"},
	}, Captures: []*configv1.CaptureMethod{
		// One capture per sync interval the test moves the clock by.
		{Component: "arm", Method: "is_moving", FrequencyHz: 1.0 / syncEvery.Seconds(), Tags: []string{"field"}},
	}}})
	cp.owner = cl.CreateAPIKey(t, "owner", "machine/"+cp.part.MachineID)
	cp.operator = cl.CreateAPIKey(t, "operator", "machine/"+cp.part.MachineID)
	dir := t.TempDir()
	boot := cp.part.WriteBootstrap(t, dir)
	sig := make(chan os.Signal, 1)
	errc := make(chan error, 1)
	ready := make(chan daemon.Endpoints, 1)
	logs := &lockedBuffer{}
	go func() {
		errc <- daemon.Run(context.Background(), daemon.Options{
			ConfigPath: boot, DataDir: filepath.Join(dir, "data"), RuntimeDir: filepath.Join(dir, "run"),
			Listen: "127.0.0.1:0", MetricsListen: "-", Clock: cp.clk, Stderr: logs, Signals: sig, LogFormat: "json",
			SyncInterval: syncEvery, WebRTCSettings: controlwire.LoopbackICE,
			OnReady: func(e daemon.Endpoints) { ready <- e },
		})
	}()
	t.Cleanup(func() {
		// The final sync runs on the fake clock: heal the network and
		// move the clock until the daemon is done.
		proxy.SetDown(false)
		sig <- syscall.SIGTERM
		for {
			select {
			case err := <-errc:
				if err != nil {
					t.Errorf("daemon.Run: %v\n%s", err, logs.String())
				}
				return
			case <-time.After(20 * time.Millisecond):
				cp.clk.Advance(time.Second)
			}
		}
	})
	select {
	case cp.ep = <-ready:
	case err := <-errc:
		t.Fatalf("daemon.Run: %v\n%s", err, logs.String())
	}
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", cp.ep.Socket)
	}}}
	cp.sock = controlv1connect.NewControlServiceClient(hc, "http://outpostd")
	cp.comp = controlv1connect.NewComponentServiceClient(hc, "http://outpostd")
	st := cp.syncUntil(t, "the part's first grants and config", func(st *controlv1.StatusResponse) bool {
		return st.GetGrantsVersion() > 0 && st.GetConfigVersion() > 0
	})
	cp.fingerprint = st.GetCertSha256()
	return cp
}

// syncUntil moves the part's clock a sync interval at a time until its
// status (read on the break-glass socket) satisfies ok.
func (cp *consolePart) syncUntil(t testing.TB, what string, ok func(*controlv1.StatusResponse) bool) *controlv1.StatusResponse {
	t.Helper()
	var st *controlv1.StatusResponse
	cloudtest.Eventually(t, what, func() error {
		res, err := cp.sock.Status(context.Background(), connect.NewRequest(&controlv1.StatusRequest{}))
		if err != nil {
			return err
		}
		if st = res.Msg; ok(st) {
			return nil
		}
		cp.clk.Advance(syncEvery)
		return errors.New("not yet")
	})
	return st
}

// consoleURL is what `outpost robot console` opens: the part's address
// with a delegation by key and the page's private key in the fragment.
func (cp *consolePart) consoleURL(t testing.TB, key cloudtest.APIKey) string {
	t.Helper()
	k, err := credential.ParseKey(key.Token)
	if err != nil {
		t.Fatal(err)
	}
	pub, priv, _ := ed25519.GenerateKey(nil)
	// Dated by this machine's clock, as the CLI on a laptop dates it; the
	// part judges it by its own reckoning (the cloud's time at the last
	// contact, and its monotonic clock since).
	del, _, err := k.Delegate(cp.fingerprint, pub, time.Now(), credential.MaxDelegationTTL, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	return "https://" + cp.ep.Control + "/#d=" + del + "&k=" + base64.RawURLEncoding.EncodeToString(priv.Seed())
}

// consoleTab is a tab that accepts the part's self-signed certificate, as
// a technician does after comparing its fingerprint.
func consoleTab(t testing.TB) *webtest.Tab {
	tab := chromium.NewTab(t)
	ctx, cancel := tab.Context()
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		return tg.Call(ctx, "Security.setIgnoreCertificateErrors", map[string]any{"ignore": true}, nil)
	})); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			var main string
			tab.Eval(`location.href + "\n" + document.querySelector('#main').textContent`, &main)
			t.Logf("the page said: %s", main)
		}
	})
	return tab
}

// TestConsoleOffline: the part's console served by a real outpostd whose
// cloud is unreachable. An operator signs in with a delegation and drives
// the motor (the part's state changes, and its audit stream, once the
// cloud is back, holds the call); the operator is refused CONFIG with the
// seed's reason; an owner edits the config offline and, once the cloud
// returns, the edit is a proposal waiting for an owner; at day 60 the page
// says why access ended and what to do.
func TestConsoleOffline(t *testing.T) {
	cp := startConsolePart(t)
	cp.proxy.SetDown(true)
	ctx := context.Background()

	t.Run("operator drives the motor", func(t *testing.T) {
		tab := consoleTab(t)
		tab.Navigate(cp.consoleURL(t, cp.operator))
		tab.WaitText("#who-name", "operator")
		tab.Navigate("https://" + cp.ep.Control + "/control")
		var hash string
		tab.Eval(`location.hash`, &hash)
		if hash != "" {
			t.Errorf("the page kept the fragment %q", hash)
		}
		tab.Click("#motor-arm-set")
		tab.WaitText("#motor-arm-status", "Power set to 0.5")
		st, err := cp.comp.GetStatus(ctx, connect.NewRequest(&controlv1.GetStatusRequest{Name: "arm"}))
		if err != nil {
			t.Fatal(err)
		}
		if p := st.Msg.GetStatus().AsMap()["power"]; p != 0.5 {
			t.Fatalf("the motor's power is %v after the page set it, want 0.5", p)
		}
		tab.Screenshot("console-control")
		tab.Click("#motor-arm-stop")
		tab.WaitText("#motor-arm-status", "Stopped")
	})

	t.Run("operator is refused config", func(t *testing.T) {
		tab := consoleTab(t)
		tab.Navigate(cp.consoleURL(t, cp.operator))
		tab.WaitVisible("#who-name")
		tab.Navigate("https://" + cp.ep.Control + "/config")
		want := "apikey/" + cp.operator.ID + " may not machine.view machine/" + cp.part.MachineID + ": as operator"
		tab.WaitText("#refused-reason", want)
	})

	t.Run("status page", func(t *testing.T) {
		st := cp.syncUntil(t, "the part offline", func(st *controlv1.StatusResponse) bool {
			return st.GetSyncState() == controlv1.SyncState_SYNC_STATE_OFFLINE
		})
		tab := consoleTab(t)
		tab.Navigate(cp.consoleURL(t, cp.operator))
		tab.WaitText("#who-name", "operator")
		tab.WaitVisible("#status-resources")
		for sel, want := range map[string]string{
			"#status-sync":    "offline",
			"#status-left":    consoleDuration(st.GetTimeLeft().AsDuration()),
			"#status-version": st.GetVersion(),
			"#status-config":  fmt.Sprintf("version %d", st.GetConfigVersion()),
			"#status-grants":  fmt.Sprintf("version %d", st.GetGrantsVersion()),
			"#status-cert":    cp.fingerprint,
			"#status-resources tr[data-resource=arm]": "running",
		} {
			if got := tab.Text(sel); want == "" || !strings.Contains(got, want) {
				t.Errorf("%s says %q, want %q", sel, got, want)
			}
		}
		if got := tab.Text("#status-store"); !storeUse.MatchString(got) {
			t.Errorf("#status-store says %q, want the store's use of its budget", got)
		}
		tab.Screenshot("console-status")
	})

	t.Run("logs page filters by level", func(t *testing.T) {
		tab := consoleTab(t)
		tab.Navigate(cp.consoleURL(t, cp.owner))
		tab.WaitText("#who-name", "owner")
		tab.Navigate("https://" + cp.ep.Control + "/logs")
		// Going offline is a warning; starting up is information.
		tab.WaitText("#logs-entries", "cloud sync state changed")
		levels := func() map[string]int {
			var ls []string
			tab.Eval(`[...document.querySelectorAll('#logs-entries tr')].map((r) => r.children[1].textContent)`, &ls)
			n := map[string]int{}
			for _, l := range ls {
				n[l]++
			}
			return n
		}
		if n := levels(); n["info"] == 0 || n["warn"] == 0 {
			t.Fatalf("the part's log shows levels %v, want info and warn", n)
		}
		tab.Eval(`(() => { const s = document.querySelector('#logs-level'); s.value = 'warn'; s.dispatchEvent(new Event('change')); return true; })()`, nil)
		cloudtest.Eventually(t, "only warnings and errors", func() error {
			if n := levels(); n["warn"] == 0 || n["debug"]+n["info"] != 0 {
				return fmt.Errorf("levels %v", n)
			}
			return nil
		})
		tab.WaitText("#logs-entries", "cloud sync state changed")
	})

	t.Run("data page", func(t *testing.T) {
		ids := cp.capturesOffline(t, 3)
		owner := consoleTab(t)
		owner.Navigate(cp.consoleURL(t, cp.owner))
		owner.WaitText("#who-name", "owner")
		owner.Navigate("https://" + cp.ep.Control + "/data")
		owner.WaitText("#data-status", "on the part")
		shown := dataRows(owner)
		if len(shown) < len(ids) || shown[0].tags == nil || !strings.Contains(*shown[0].tags, "field") {
			t.Fatalf("the owner's data page shows %v, want the part's captures %v with their tags", shown, ids)
		}
		tagged, deleted := shown[0].id, shown[1].id
		// A tag is text, whatever it looks like.
		owner.Click(`#data-captures tr[data-capture="` + tagged + `"] input`)
		owner.Type("#data-tags", "reviewed, <img src=x>")
		owner.Click("#data-tag-add")
		owner.WaitText("#data-status", "1 changed.")
		owner.WaitText(`#data-captures tr[data-capture="`+tagged+`"] [data-tags]`, "field, reviewed, <img src=x>")
		var imgs int
		owner.Eval(`document.querySelectorAll('#data-captures img').length`, &imgs)
		if imgs != 0 {
			t.Errorf("a tag became %d img elements", imgs)
		}
		owner.Click(`#data-captures tr[data-capture="` + deleted + `"] input`)
		owner.Click("#data-delete")
		owner.WaitText("#data-status", "1 deleted.")
		owner.WaitGone(`#data-captures tr[data-capture="` + deleted + `"]`)
		held := map[string][]string{}
		res, err := cp.sock.ListCaptures(ctx, connect.NewRequest(&controlv1.ListCapturesRequest{}))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range res.Msg.GetCaptures() {
			held[fmt.Sprint(c.GetId())] = c.GetTags()
		}
		if _, ok := held[deleted]; ok || !slices.Contains(held[tagged], "<img src=x>") {
			t.Fatalf("the part holds %v after the owner tagged %s and deleted %s", held, tagged, deleted)
		}
		shown = dataRows(owner)
		if got := exportedBy(t, owner); !slices.Equal(got.ids, rowIDs(shown)) || !slices.Contains(got.tags[tagged], "reviewed") {
			t.Fatalf("the owner's export holds %v with tags %v, want what was shown, %v", got.ids, got.tags, rowIDs(shown))
		}

		// An operator views and exports the data, without its tags, and
		// is offered no edit.
		op := consoleTab(t)
		op.Navigate(cp.consoleURL(t, cp.operator))
		op.WaitText("#who-name", "operator")
		op.Navigate("https://" + cp.ep.Control + "/data")
		op.WaitText("#data-status", "on the part")
		var offered []string
		op.Eval(`['#data-tags', '#data-tag-add', '#data-tag-remove', '#data-delete', '#data-captures [data-tags]'].filter((s) => document.querySelector(s))`, &offered)
		if len(offered) != 0 || strings.Contains(op.Text("#data thead"), "Tags") || strings.Contains(op.Text("#data-captures"), "reviewed") {
			t.Errorf("the operator's data page offers %v and shows %q", offered, op.Text("#data"))
		}
		opShown := rowIDs(dataRows(op))
		if !slices.Contains(opShown, tagged) {
			t.Fatalf("the operator's data page shows %v, want %s among them", opShown, tagged)
		}
		if got := exportedBy(t, op); !slices.Equal(got.ids, opShown) || len(got.tags) != 0 {
			t.Fatalf("the operator's export holds %v with tags %v, want what was shown, %v, without tags", got.ids, got.tags, opShown)
		}
		owner.Screenshot("console-data")
	})

	t.Run("the link page left at once", func(t *testing.T) {
		tab := consoleTab(t)
		// A browser that never kept a sign-in for this part, on another
		// of its pages (the link is then a new load, not a hash change).
		tab.Navigate("https://" + cp.ep.Control + "/logs")
		tab.Eval(`new Promise((ok, fail) => { const r = indexedDB.deleteDatabase('outpost-console'); r.onsuccess = () => ok(true); r.onerror = () => fail(r.error); })`, nil)
		tab.Navigate("https://" + cp.ep.Control + "/logs")
		tab.WaitVisible("#signin")
		// The sign-in card shows the fingerprint first, in the form the
		// fleet app's SECURITY tab and `outpost robot trust` show it.
		if fp := tab.Text("#fingerprint"); fp != cp.fingerprint || len(fp) != 64 || strings.ToLower(fp) != fp || strings.Contains(fp, ":") {
			t.Errorf("the sign-in card shows the fingerprint %q, want %q (64 lower-case hex digits)", fp, cp.fingerprint)
		}
		// The technician leaves the link's page for another of the
		// console's at the worst time: as the page writes the sign-in.
		onNewDocument(t, tab, `(() => {
  if (sessionStorage.getItem('outpost-test-left')) return;
  sessionStorage.setItem('outpost-test-left', '1');
  const tx = IDBDatabase.prototype.transaction;
  IDBDatabase.prototype.transaction = function (...args) {
    const t = tx.apply(this, args);
    if (args[1] === 'readwrite') location.assign('/control');
    return t;
  };
})()`)
		ctx, cancel := tab.Context()
		defer cancel()
		if _, err := chromedp.Call(ctx, page.Navigate, page.NavigateParams{URL: cp.consoleURL(t, cp.operator)}); err != nil {
			t.Fatal(err)
		}
		// The next page settles: signed in, or asking for a sign-in.
		cloudtest.Eventually(t, "the console's next page signed in or asking to", func() error {
			s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.pathname + ' ' + (document.querySelector('#who-name, #signin') || {}).id`))
			if err != nil || s != "/control who-name" && s != "/control signin" {
				return fmt.Errorf("the page is at %q (%v)", s, err)
			}
			return nil
		})
		// And the storage serves the next sign-in.
		tab.Navigate(cp.consoleURL(t, cp.operator))
		tab.WaitText("#who-name", "operator")
		tab.Navigate("https://" + cp.ep.Control + "/control")
		tab.WaitText("#who-name", "operator")
	})

	t.Run("an interrupted read of the sign-in", func(t *testing.T) {
		tab := consoleTab(t)
		tab.Navigate(cp.consoleURL(t, cp.operator))
		tab.WaitText("#who-name", "operator")
		// The browser ends the read's transaction after the read, as it
		// does when it closes a connection: the transaction aborts, and
		// no request fails.
		// (The page's early commit is left out, so that the abort lands
		// while the transaction is still open, as the browser's own does.)
		onNewDocument(t, tab, `(() => {
  IDBTransaction.prototype.commit = function () {};
  const get = IDBObjectStore.prototype.get;
  IDBObjectStore.prototype.get = function (...args) {
    const r = get.apply(this, args);
    r.addEventListener('success', () => this.transaction.abort());
    return r;
  };
})()`)
		tab.Navigate("https://" + cp.ep.Control + "/control")
		tab.WaitText("#signin-status", "interrupted")
	})

	var edited *configv1.RobotConfig
	t.Run("owner edits the config offline", func(t *testing.T) {
		tab := consoleTab(t)
		tab.Navigate(cp.consoleURL(t, cp.owner))
		tab.WaitText("#who-name", "owner")
		tab.Navigate("https://" + cp.ep.Control + "/config")
		tab.WaitVisible("#config-text")
		tab.Eval(`(() => { const el = document.querySelector('#config-text'); const c = JSON.parse(el.value); c.logLevel = 'debug'; el.value = JSON.stringify(c); return true; })()`, nil)
		tab.Click("#config-save")
		tab.WaitText("#config-status", "waits there for an owner")
		cur, err := cp.sock.GetConfig(ctx, connect.NewRequest(&controlv1.GetConfigRequest{}))
		if err != nil {
			t.Fatal(err)
		}
		if cur.Msg.GetConfig().GetLogLevel() != "debug" || !cur.Msg.GetLocalEdits() {
			t.Fatalf("the part runs %v (local edits %v), want the edit applied", cur.Msg.GetConfig(), cur.Msg.GetLocalEdits())
		}
		edited = cur.Msg.GetConfig()
	})

	t.Run("the cloud returns", func(t *testing.T) {
		if edited == nil {
			t.Skip("no edit")
		}
		cp.proxy.SetDown(false)
		admin := cp.cl.Admin(t)
		var prop *fleetv1.ConfigProposal
		cloudtest.Eventually(t, "the console's edit at the cloud", func() error {
			res, err := admin.Config.ListConfigProposals(ctx, connect.NewRequest(&fleetv1.ListConfigProposalsRequest{MachineId: cp.part.MachineID}))
			if err != nil {
				return err
			}
			for _, p := range res.Msg.GetProposals() {
				if proto.Equal(p.GetConfig(), edited) {
					prop = p
					return nil
				}
			}
			cp.clk.Advance(syncEvery)
			return errors.New("not there yet")
		})
		// Made with a delegation, the edit carries no endorsement the
		// cloud could verify: it is kept for an owner, by the part.
		if prop.GetState() != "conflict" || !strings.Contains(prop.GetMessage(), "no editor's signature") || prop.GetAuthor() != "part:"+cp.part.ID {
			t.Fatalf("the console's edit is %q by %q at the cloud (%s), want kept for an owner", prop.GetState(), prop.GetAuthor(), prop.GetMessage())
		}
		// The motor command is in the part's audit stream, now at the cloud.
		cloudtest.Eventually(t, "the part's audit event of the motor command", func() error {
			recs, _, err := cp.cl.Ingest().Records(ctx, ingest.Query{PartIDs: []string{cp.part.ID}, Stream: "audit"})
			if err != nil {
				return err
			}
			for _, r := range recs {
				var ev syncv1.AuditEvent
				if proto.Unmarshal(r.Payload, &ev) == nil && ev.GetAllowed() && ev.GetSubject() == "apikey/"+cp.operator.ID &&
					strings.HasSuffix(ev.GetProcedure(), "/MotorSetPower") {
					return nil
				}
			}
			cp.clk.Advance(syncEvery)
			return errors.New("not there yet")
		})
		res, err := admin.Config.ResolveConfigProposal(ctx, connect.NewRequest(&fleetv1.ResolveConfigProposalRequest{MachineId: cp.part.MachineID, ProposalId: prop.GetId(), Accept: true}))
		if err != nil {
			t.Fatal(err)
		}
		if res.Msg.GetProposal().GetRevision() == 0 {
			t.Fatalf("the owner accepted the proposal and it became no revision: %v", res.Msg.GetProposal())
		}
	})

	t.Run("grants expire at day 60", func(t *testing.T) {
		tab := consoleTab(t)
		url := cp.consoleURL(t, cp.operator)
		cp.proxy.SetDown(true)
		cp.clk.Advance(60 * 24 * time.Hour)
		cp.syncUntil(t, "expiry", func(st *controlv1.StatusResponse) bool {
			return st.GetSyncState() == controlv1.SyncState_SYNC_STATE_EXPIRED
		})
		tab.Navigate(url)
		tab.WaitText("#access-ended-reason", "grants expired")
		text := tab.Text("#access-ended")
		for _, want := range []string{"reconnect it to the cloud", "break-glass socket", "outpost robot console"} {
			if !strings.Contains(text, want) {
				t.Errorf("the page says %q, want it to say %q", text, want)
			}
		}
		tab.Screenshot("console-expired")
	})
}

// onNewDocument runs script in every document the tab loads from now on,
// before the page's own.
func onNewDocument(t testing.TB, tab *webtest.Tab, script string) {
	t.Helper()
	ctx, cancel := tab.Context()
	defer cancel()
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: script}); err != nil {
		t.Fatal(err)
	}
}

// storeUse is how the status page says the store's use of its budget.
var storeUse = regexp.MustCompile(`^[0-9.]+ (B|KiB|MiB|GiB) of [0-9.]+ (B|KiB|MiB|GiB|TiB) \([0-9]+ %\)$`)

// consoleDuration is how the console's pages write a duration.
func consoleDuration(d time.Duration) string {
	s := int64(d / time.Second)
	days, hours, mins := s/86400, s%86400/3600, s%3600/60
	switch {
	case days > 0:
		return fmt.Sprintf("%d d %d h", days, hours)
	case hours > 0:
		return fmt.Sprintf("%d h %d min", hours, mins)
	}
	return fmt.Sprintf("%d min", mins)
}

// capturesOffline moves the part's clock until it holds at least n
// captures it could not upload, and returns their ids.
func (cp *consolePart) capturesOffline(t testing.TB, n int) []uint64 {
	t.Helper()
	var ids []uint64
	// The clock moves again only once the last move made its capture, so
	// that a slow poller does not age the part's clock by hours.
	advancedAt := -1
	cloudtest.Eventually(t, fmt.Sprintf("%d captures on the part", n), func() error {
		res, err := cp.sock.ListCaptures(context.Background(), connect.NewRequest(&controlv1.ListCapturesRequest{}))
		if err != nil {
			return err
		}
		ids = ids[:0]
		for _, c := range res.Msg.GetCaptures() {
			ids = append(ids, c.GetId())
		}
		if len(ids) >= n {
			return nil
		}
		if len(ids) > advancedAt {
			advancedAt = len(ids)
			cp.clk.Advance(syncEvery)
		}
		return fmt.Errorf("%d so far", len(ids))
	})
	return ids
}

// dataRow is a row of the console's data page: its capture's id, and its
// tags cell (nil when the page shows no tags).
type dataRow struct {
	id   string
	tags *string
}

func (r dataRow) String() string {
	if r.tags == nil {
		return r.id
	}
	return r.id + "[" + *r.tags + "]"
}

func dataRows(tab *webtest.Tab) []dataRow {
	var raw []struct {
		ID   string  `json:"id"`
		Tags *string `json:"tags"`
	}
	tab.Eval(`[...document.querySelectorAll('#data-captures tr')].map((r) => ({id: r.dataset.capture, tags: r.querySelector('[data-tags]')?.textContent ?? null}))`, &raw)
	rows := make([]dataRow, len(raw))
	for i, r := range raw {
		rows[i] = dataRow{r.ID, r.Tags}
	}
	return rows
}

func rowIDs(rows []dataRow) []string {
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.id
	}
	return ids
}

// exported is what a console's export downloaded: the captures' ids in
// order, and the tags of those that carry some.
type exported struct {
	ids  []string
	tags map[string][]string
}

// exportedBy clicks the data page's Export with nothing selected and reads
// the file the browser downloaded.
func exportedBy(t *testing.T, tab *webtest.Tab) exported {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := tab.Context()
	defer cancel()
	if _, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: dir}); err != nil {
		t.Fatal(err)
	}
	tab.Click("#data-export")
	tab.WaitText("#data-status", "Exported")
	var b []byte
	cloudtest.Eventually(t, "the downloaded export", func() error {
		var err error
		b, err = os.ReadFile(filepath.Join(dir, "captures.ndjson"))
		return err
	})
	got := exported{tags: map[string][]string{}}
	for line := range strings.Lines(string(b)) {
		var m struct {
			Info struct {
				ID   string   `json:"id"`
				Tags []string `json:"tags"`
			} `json:"info"`
		}
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("the export's line %q: %v", line, err)
		}
		got.ids = append(got.ids, m.Info.ID)
		if len(m.Info.Tags) > 0 {
			got.tags[m.Info.ID] = m.Info.Tags
		}
	}
	return got
}

// BenchmarkConsoleMotor measures a motor command's round trip from the
// console's page to a real outpostd over HTTPS on loopback, as the page
// makes it (a proof per part nonce, reused; Connect JSON over fetch): the
// page times each call with performance.now().
func BenchmarkConsoleMotor(b *testing.B) {
	cp := startConsolePart(b)
	tab := consoleTab(b)
	tab.Navigate(cp.consoleURL(b, cp.operator))
	tab.WaitVisible("#who-name")
	script := fmt.Sprintf(`(async () => {
  const connect = await import(%q);
  const auth = await import(%q);
  const s = await auth.loadSession();
  const fp = JSON.parse(document.querySelector('meta[name=outpost-config]').content).fingerprint;
  const api = connect.createClient({baseUrl: '/', fetch: auth.delegatedFetch(s, {aud: 'tls/' + fp, healthUrl: '/outpost.control.v1.ControlService/Health'})});
  const time = async (method, req) => {
    const took = [];
    for (let i = 0; i < %d; i++) {
      const t0 = performance.now();
      await api.unary('outpost.control.v1.ComponentService', method, req(i));
      took.push(performance.now() - t0);
    }
    return took.sort((a, b) => a - b);
  };
  const plain = connect.createClient({baseUrl: '/'});
  const health = [];
  for (let i = 0; i < 50; i++) {
    const t0 = performance.now();
    await plain.unary('outpost.control.v1.ControlService', 'Health', {});
    health.push(performance.now() - t0);
  }
  health.sort((a, b) => a - b);
  return [await time('MotorSetPower', (i) => ({name: 'arm', power: (i %% 2) / 2})), await time('MotorIsMoving', () => ({name: 'arm'})), health];
})()`, consoleAsset(b, tab, "js/connect.js"), consoleAsset(b, tab, "js/console_auth.js"), max(b.N, 20))
	b.ResetTimer()
	var took [3][]float64
	tab.Eval(script, &took)
	b.StopTimer()
	// MotorSetPower is audited: the part writes the audit event durably
	// before it acts. MotorIsMoving is not: the console's own cost.
	b.ReportMetric(took[0][len(took[0])/2], "p50-ms")
	b.ReportMetric(took[0][len(took[0])*99/100], "p99-ms")
	b.ReportMetric(took[1][len(took[1])/2], "unaudited-p50-ms")
	b.ReportMetric(took[1][len(took[1])*99/100], "unaudited-p99-ms")
	// Health needs no credential: the transport's own cost.
	b.ReportMetric(took[2][len(took[2])/2], "health-p50-ms")
}

// consoleAsset finds a module's fingerprinted URL in the page's preloads.
func consoleAsset(b testing.TB, tab *webtest.Tab, name string) string {
	base := strings.TrimSuffix(strings.TrimPrefix(name, "js/"), ".js")
	var u string
	tab.Eval(fmt.Sprintf(`[...document.querySelectorAll('link[rel=modulepreload]')].map((l) => new URL(l.href).pathname).find((p) => /\/%s\.[0-9a-f]+\.js$/.test(p)) || ''`, base), &u)
	if u == "" {
		b.Fatalf("the page preloads no %s", name)
	}
	return u
}
