package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1/syncv1connect"
	"github.com/outpost-robotics/outpost/cloud/auth"
	"github.com/outpost-robotics/outpost/cloud/cloudtest"
	"github.com/outpost-robotics/outpost/cloud/store"
	"github.com/outpost-robotics/outpost/credential"
	"github.com/outpost-robotics/outpost/web"
	"github.com/outpost-robotics/outpost/webtest"
)

// reportStatus has a part tell the cloud its status through the part sync
// API, as its daemon does each cycle.
func reportStatus(t *testing.T, cl *cloudtest.Cloud, p cloudtest.Part, st *syncv1.PartStatus) {
	t.Helper()
	c := syncv1connect.NewSyncServiceClient(cl.HTTPClient(), cl.URL,
		connect.WithInterceptors(credential.Bearer{Authorization: "Part " + p.ID + ":" + p.Secret}))
	if _, err := c.ReportStatus(context.Background(), connect.NewRequest(&syncv1.ReportStatusRequest{Status: st})); err != nil {
		t.Fatalf("report status: %v", err)
	}
}

// whoAmIWithCookie calls WhoAmI as the fleet app does, with cookie, and
// returns the status and the Connect error's code and message.
func whoAmIWithCookie(t *testing.T, cl *cloudtest.Cloud, cookie string) (int, string, string) {
	t.Helper()
	r, _ := http.NewRequest(http.MethodPost, cl.URL+"/outpost.fleet.v1.AuthService/WhoAmI", strings.NewReader("{}"))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Connect-Protocol-Version", "1")
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	r.Header.Set("Cookie", cookie)
	res, err := cl.HTTPClient().Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var e struct{ Code, Message string }
	_ = json.Unmarshal(b, &e)
	return res.StatusCode, e.Code, e.Message
}

func signInThroughPage(tab *webtest.Tab, email, password string) {
	tab.WaitVisible("#signin")
	tab.Eval(`document.getElementById('signin-email').value = ''; document.getElementById('signin-password').value = ''; true`, nil)
	tab.Type("#signin-email", email)
	tab.Type("#signin-password", password)
	tab.Click("#signin-submit")
}

// TestFleetAppAgainstTheCloud: served by the real cloud, the owner signs in
// through the page (a wrong password first, shown as the cloud wrote it),
// sees the machines of the grant with each one's status, searches, pages
// at a phone's width, and signs out, after which the browser's session
// cookie no longer works; an operator sees only the machine of its grant.
func TestFleetAppAgainstTheCloud(t *testing.T) {
	cl := cloudtest.New(t, cloudtest.Options{})
	mine := cl.Provision(t, cloudtest.PartOptions{})
	other := cl.Provision(t, cloudtest.PartOptions{})
	const ownerEmail, ownerPW = "owner@example.com", "owner's correct horse battery"
	const opEmail, opPW = "operator@example.com", "operator's correct horse battery"
	cl.CreateUser(t, ownerEmail, ownerPW, "owner", "org/"+mine.OrgID)
	cl.CreateUser(t, opEmail, opPW, "operator", "machine/"+other.MachineID)
	reportStatus(t, cl, mine, &syncv1.PartStatus{Version: "1.2.3",
		Backlog:   []*syncv1.StreamBacklog{{Stream: "logs/info", Records: 7}},
		Resources: []*syncv1.ResourceStatus{{Name: "component/arm", State: "failed", Error: "no arm"}, {Name: "component/motor", State: "running"}}})

	tab := chromium.NewTab(t)
	tab.SetViewport(1280, 800, false)
	tab.Navigate(cl.URL + "/")
	signInThroughPage(tab, ownerEmail, "not the password")
	if got := tab.WaitText("#signin-status", "wrong"); got != "wrong email or password" {
		t.Errorf("a wrong password shows %q, want the cloud's message", got)
	}
	tab.Screenshot("signin")

	signInThroughPage(tab, ownerEmail, ownerPW)
	tab.WaitText("#who-email", ownerEmail)
	row := `#fleet-list tr[data-machine="` + mine.MachineID + `"]`
	tab.WaitText(row+` td[data-field="state"]`, "online")
	for field, want := range map[string]string{
		"name": "robot", "version": "1.2.3", "config": "v0", "backlog": "7 records", "failing": "component/arm",
	} {
		if got := tab.Text(row + ` td[data-field="` + field + `"]`); !strings.Contains(got, want) {
			t.Errorf("the row's %s says %q, want %q", field, got, want)
		}
	}
	if got := tab.Text("#fleet-list"); strings.Contains(got, other.MachineID) || strings.Count(got, "robot") != 1 {
		t.Errorf("the owner of one org sees %q", got)
	}
	var cookieVisible string
	tab.Eval(`document.cookie`, &cookieVisible)
	if cookieVisible != "" {
		t.Errorf("the page can read its cookie: %q", cookieVisible)
	}
	tab.Screenshot("fleet")

	// Search, from the keyboard's field.
	tab.Type("#fleet-search", "no such robot")
	tab.WaitText("#fleet-status", "0 of 1 machines match")
	tab.Eval(`const s = document.getElementById('fleet-search'); s.value = ''; s.dispatchEvent(new Event('input')); true`, nil)
	tab.WaitText("#fleet-status", "1 machine.")

	// A phone: the list is cards, nothing wider than the screen.
	tab.SetViewport(375, 812, true)
	tab.Navigate(cl.URL + "/")
	tab.WaitText(row+` td[data-field="state"]`, "online")
	var widths struct{ Doc, Win float64 }
	tab.Eval(`({doc: document.documentElement.scrollWidth, win: innerWidth})`, &widths)
	if widths.Doc > widths.Win {
		t.Errorf("at 375 px the fleet page is %v px wide", widths.Doc)
	}
	tab.Screenshot("fleet-phone")

	// The session cookie, as the browser holds it (HttpOnly: only the
	// browser sees it).
	var cookie string
	ctx, cancel := tab.Context()
	got, err := chromedp.Run(ctx, func(ctx context.Context, tg *chromedp.Target) (network.GetCookiesResult, error) {
		return cdp.Call(ctx, tg, network.GetCookies, network.GetCookiesParams{URLs: []string{cl.URL}})
	})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	cs := got.Cookies
	for _, c := range cs {
		if c.Name == "outpost_session" {
			cookie = c.Name + "=" + c.Value
			cl.Remember(c.Value)
			if !c.HTTPOnly || c.SameSite != network.CookieSameSiteStrict {
				t.Errorf("the browser holds %+v", c)
			}
		}
	}
	if cookie == "" {
		t.Fatalf("the browser holds no session cookie: %+v", cs)
	}
	if st, code, msg := whoAmIWithCookie(t, cl, cookie); st != http.StatusOK {
		t.Fatalf("the cookie before sign-out: %d %s %s", st, code, msg)
	}

	tab.Click("#signout")
	tab.WaitText("#signed-out", "Signed out.")
	tab.WaitVisible("#signin")
	if st, code, msg := whoAmIWithCookie(t, cl, cookie); code != "unauthenticated" || !strings.Contains(msg, "revoked") {
		t.Errorf("the cookie after sign-out: %d %s %s", st, code, msg)
	}

	// The operator, in the same browser: only the machine of its grant.
	signInThroughPage(tab, opEmail, opPW)
	tab.WaitText("#who-email", opEmail)
	tab.WaitText("#fleet-status", "1 machine.")
	var rows []string
	tab.Eval(`[...document.querySelectorAll('#fleet-list tbody tr')].map(r => r.dataset.machine)`, &rows)
	if len(rows) != 1 || rows[0] != other.MachineID {
		t.Errorf("the operator sees machines %q, want only %s", rows, other.MachineID)
	}
	tab.WaitText(`#fleet-list tr[data-machine="`+other.MachineID+`"] td[data-field="state"]`, "never seen")
}

// TestPartRefusesBrowserSession: a browser session, signed by the very
// cloud key the part's bundle trusts, is no credential on a part: not as
// an access token with a proof of possession, and not as a cookie.
func TestPartRefusesBrowserSession(t *testing.T) {
	e := newEnv(t, web.Config{App: web.AppConsole})
	tok, _, err := credential.IssueBrowserSession(cloudKey, cloudKID, "u1", t0, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	sk := credential.NewPrivateKey()
	authz, proof, err := credential.Session(tok, sk).Headers(credential.TLSAudience(e.part.Fingerprint()), "", t0)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		header map[string]string
		says   string
	}{
		{"as a DPoP token with a proof", map[string]string{"Authorization": authz, "DPoP": proof}, "typ"},
		{"as a cookie", map[string]string{"Cookie": "outpost_session=" + tok, "Sec-Fetch-Site": "same-origin"}, "this call needs a credential"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, _ := http.NewRequest(http.MethodPost, e.url+"/outpost.control.v1.ControlService/WhoAmI", strings.NewReader("{}"))
			r.Header.Set("Content-Type", "application/json")
			r.Header.Set("Connect-Protocol-Version", "1")
			for k, v := range tc.header {
				r.Header.Set(k, v)
			}
			res, err := http.DefaultClient.Do(r)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			var body struct{ Code, Message string }
			_ = json.NewDecoder(res.Body).Decode(&body)
			if body.Code != "unauthenticated" || !strings.Contains(body.Message, tc.says) {
				t.Errorf("the part answered %d %s %q, want unauthenticated saying %q", res.StatusCode, body.Code, body.Message, tc.says)
			}
		})
	}
}

// TestFleetTreeAndServerPaging: with more machines than a page, the list
// is the server's pages (Next and Previous), its search finds a machine
// the page never loaded, the Failing filter narrows it on the server, and
// the location tree, driven from the keyboard alone, opens, moves and
// chooses a location, whose subtree the list then shows.
func TestFleetTreeAndServerPaging(t *testing.T) {
	cl := cloudtest.New(t, cloudtest.Options{})
	ctx := context.Background()
	org, plant, line, office := auth.NewID(), auth.NewID(), auth.NewID(), auth.NewID()
	var rover cloudtest.Part
	err := cl.Store().Update(ctx, func(tx store.Tx) error {
		if err := tx.PutOrg(ctx, store.Org{ID: org, Name: "Acme"}); err != nil {
			return err
		}
		for _, l := range []store.Location{{ID: plant, OrgID: org, Name: "Plant"}, {ID: line, OrgID: org, ParentID: plant, Name: "Line 1"}, {ID: office, OrgID: org, Name: "Office"}} {
			if err := tx.PutLocation(ctx, l); err != nil {
				return err
			}
		}
		machine := func(loc, name string) error {
			m := store.Machine{ID: auth.NewID(), LocationID: loc, Name: name}
			if err := tx.PutMachine(ctx, m); err != nil {
				return err
			}
			return tx.PutPart(ctx, store.Part{ID: auth.NewID(), MachineID: m.ID, Name: "main", Main: true})
		}
		for i := range 30 {
			if err := machine(plant, fmt.Sprintf("arm %02d", i)); err != nil {
				return err
			}
		}
		return machine(office, "forklift")
	})
	if err != nil {
		t.Fatal(err)
	}
	// rover, a real part in Line 1 that reports a failing resource.
	admin := cl.Admin(t)
	m, err := admin.Machine.CreateMachine(ctx, connect.NewRequest(&fleetv1.CreateMachineRequest{LocationId: line, Name: "rover"}))
	if err != nil {
		t.Fatal(err)
	}
	boot, err := admin.Machine.BootstrapPart(ctx, connect.NewRequest(&fleetv1.BootstrapPartRequest{PartId: m.Msg.GetMachine().GetParts()[0].GetId(), CloudUrl: cl.URL}))
	if err != nil {
		t.Fatal(err)
	}
	cl.Remember(m.Msg.GetMainPartSecret(), boot.Msg.GetBootstrap().GetPartSecret())
	rover = cloudtest.Part{ID: boot.Msg.GetBootstrap().GetPartId(), Secret: boot.Msg.GetBootstrap().GetPartSecret(), MachineID: m.Msg.GetMachine().GetId()}
	reportStatus(t, cl, rover, &syncv1.PartStatus{Version: "1.2.3", Resources: []*syncv1.ResourceStatus{{Name: "process/pump", State: "failed"}}})
	const email, pw = "owner@example.com", "owner's correct horse battery"
	cl.CreateUser(t, email, pw, "owner", "org/"+org)

	tab := chromium.NewTab(t)
	tab.SetViewport(1280, 900, false)
	tab.Navigate(cl.URL + "/")
	signInThroughPage(tab, email, pw)
	tab.WaitText("#fleet-status", "1–25 of 32 machines.")
	var marks int
	tab.Eval(`performance.getEntriesByName('fleet-list-rendered', 'mark').length`, &marks)
	if marks != 1 {
		t.Errorf("%d marks of the list rendered, want 1 (BenchmarkFleetListRendered reads it)", marks)
	}
	rows := func() (names []string) {
		tab.Eval(`[...document.querySelectorAll('#fleet-list tbody td[data-field="name"]')].map(td => td.textContent)`, &names)
		return names
	}
	if got := rows(); len(got) != 25 || got[0] != "arm 00" || got[24] != "arm 24" {
		t.Errorf("the first page: %q", got)
	}
	tab.Click("#fleet-next")
	tab.WaitText("#fleet-status", "26–32 of 32 machines.")
	if got := rows(); len(got) != 7 || got[5] != "forklift" || got[6] != "rover" {
		t.Errorf("the second page: %q", got)
	}
	if got := tab.Text(`#fleet-list tr[data-machine="` + rover.MachineID + `"] td[data-field="failing"]`); got != "process/pump" {
		t.Errorf("rover's failing cell: %q", got)
	}
	tab.Click("#fleet-prev")
	tab.WaitText("#fleet-status", "1–25 of 32 machines.")

	// The search is the server's: rover was never on the first page.
	tab.Type("#fleet-search", "ROV")
	tab.WaitText("#fleet-status", "1 of 32 machines match “ROV”.")
	if got := rows(); len(got) != 1 || got[0] != "rover" {
		t.Errorf("searching ROV: %q", got)
	}
	tab.Eval(`const s = document.getElementById('fleet-search'); s.value = ''; s.dispatchEvent(new Event('input')); true`, nil)
	tab.WaitText("#fleet-status", "1–25 of 32 machines.")
	tab.Click("#fleet-failing")
	tab.WaitText("#fleet-status", "1 of 32 machines shown.")
	tab.Click("#fleet-failing")
	tab.WaitText("#fleet-status", "1–25 of 32 machines.")

	// The tree, by keyboard: Acme (open) > Office, Plant (closed) > Line 1.
	focused := func() (s string) {
		tab.Eval(`document.activeElement.dataset.node || ''`, &s)
		return s
	}
	key := func(k string) { tab.Type(`#fleet-tree [tabindex="0"]`, k) }
	key(kb.ArrowDown)
	if got := focused(); got != "location/"+office {
		t.Errorf("Down from Acme focuses %q, want Office", got)
	}
	key(kb.ArrowDown)
	key(kb.ArrowRight) // open Plant
	var open string
	tab.Eval(`document.querySelector('[data-node="location/`+plant+`"]').getAttribute('aria-expanded')`, &open)
	if open != "true" {
		t.Errorf("Right on Plant: aria-expanded=%q", open)
	}
	key(kb.ArrowRight) // to Line 1
	if got := focused(); got != "location/"+line {
		t.Errorf("Right on open Plant focuses %q, want Line 1", got)
	}
	key(kb.Enter)
	tab.WaitText("#fleet-status", "1 machine in Line 1.")
	key(kb.ArrowLeft) // back to Plant
	key(" ")
	tab.WaitText("#fleet-status", "1–25 of 31 machines in Plant.")
	tab.Screenshot("fleet-tree")
	key(kb.ArrowLeft) // close Plant
	key(kb.Home)
	key(kb.End)
	if got := focused(); got != "location/"+plant {
		t.Errorf("End with Plant closed focuses %q, want Plant", got)
	}
	var selected []string
	tab.Eval(`[...document.querySelectorAll('#fleet-tree [aria-selected="true"]')].map(li => li.dataset.node)`, &selected)
	if len(selected) != 1 || selected[0] != "location/"+plant {
		t.Errorf("selected tree items: %q", selected)
	}
}
