package web_test

import (
	"context"
	"fmt"
	"io"
	"mime/quotedprintable"
	"net/mail"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1/syncv1connect"
	"github.com/outpost-robotics/outpost/cloud/auth"
	"github.com/outpost-robotics/outpost/cloud/cloudtest"
	"github.com/outpost-robotics/outpost/cloud/store"
	"github.com/outpost-robotics/outpost/credential"
	"github.com/outpost-robotics/outpost/partfile"
	"github.com/outpost-robotics/outpost/web"
	"github.com/outpost-robotics/outpost/webtest"
)

// signInFresh forgets the browser's cookies (every tab shares them) and
// signs in through the page.
func signInFresh(t *testing.T, tab *webtest.Tab, cl *cloudtest.Cloud, email, password string) {
	t.Helper()
	clearCookies(t, tab)
	tab.Navigate(cl.URL + "/")
	signInThroughPage(tab, email, password)
	tab.WaitText("#who-email", email)
}

// clearCookies forgets every cookie of the browser.
func clearCookies(t *testing.T, tab *webtest.Tab) {
	t.Helper()
	ctx, cancel := tab.Context()
	defer cancel()
	if _, err := chromedp.Call(ctx, network.ClearBrowserCookies, cdp.Empty{}); err != nil {
		t.Fatalf("clear the browser's cookies: %v", err)
	}
}

// evalf runs a script built with Sprintf, its arguments quoted as JS strings.
func evalf(tab *webtest.Tab, out any, format string, args ...string) {
	quoted := make([]any, len(args))
	for i, a := range args {
		quoted[i] = webtest.JSString(a)
	}
	tab.Eval(fmt.Sprintf(format, quoted...), out)
}

// setValue sets a form control's value as a person choosing it would.
func setValue(tab *webtest.Tab, id, value string) {
	evalf(tab, nil, `(() => { const e = document.getElementById(%s); e.value = %s; e.dispatchEvent(new Event('input', {bubbles: true})); e.dispatchEvent(new Event('change', {bubbles: true})); return true; })()`, id, value)
}

// unlabelled lists the page's visible form controls that have no label a
// screen reader would read.
func unlabelled(tab *webtest.Tab) []string {
	var out []string
	tab.Eval(`[...document.querySelectorAll('input, select, textarea')].filter((e) => e.offsetParent !== null && e.type !== 'hidden' && !(e.labels && e.labels.length) && !e.getAttribute('aria-label')).map((e) => e.id || e.outerHTML)`, &out)
	return out
}

// locationID finds a location of the tree by its name.
func locationID(t *testing.T, tab *webtest.Tab, name string) string {
	t.Helper()
	var id string
	evalf(tab, &id, `(() => { const li = [...document.querySelectorAll('#locations-tree li[data-location]')].find((li) => li.querySelector('h3').firstChild.textContent === %s); return li ? li.dataset.location : ''; })()`, name)
	if id == "" {
		t.Fatalf("no location %q in the tree: %s", name, tab.Text("#locations-tree"))
	}
	return id
}

// inviteLink waits for the n-th invitation mail to rcpt and returns the
// link to the page it carries.
func inviteLink(t *testing.T, cl *cloudtest.Cloud, rcpt string, n int) string {
	t.Helper()
	m := cl.Mail.Wait(t, rcpt, n)
	msg, err := mail.ReadMessage(strings.NewReader(m.Data))
	if err != nil {
		t.Fatal(err)
	}
	var body io.Reader = msg.Body
	if strings.EqualFold(msg.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
		body = quotedprintable.NewReader(body)
	}
	b, err := io.ReadAll(body)
	if err != nil {
		t.Fatal(err)
	}
	link := regexp.MustCompile(regexp.QuoteMeta(cl.URL) + `/invite#[A-Za-z0-9_-]{43}`).FindString(string(b))
	if link == "" {
		t.Fatalf("the invitation mail holds no link to %s/invite:\n%s", cl.URL, b)
	}
	cl.Remember(link[strings.Index(link, "#")+1:])
	return link
}

// TestOrgPagesAgainstTheCloud: the organization pages, invitations and the
// robot page's SETUP, SECURITY and CODE SAMPLE tabs against the real cloud
// in Chromium. An owner manages locations, invites a user who accepts in
// the page, creates and revokes an API key, edits a fragment and reads the
// audit log; an org operator sees what the server lets it see and the
// server's refusals of the rest, word for word.
func TestOrgPagesAgainstTheCloud(t *testing.T) {
	cl := cloudtest.New(t, cloudtest.Options{})
	mine := cl.Provision(t, cloudtest.PartOptions{})
	other := cl.Provision(t, cloudtest.PartOptions{})
	const ownerEmail, ownerPW = "owner@example.com", "owner's correct horse battery"
	const opEmail, opPW = "operator@example.com", "operator's correct horse battery"
	cl.CreateUser(t, ownerEmail, ownerPW, "owner", "org/"+mine.OrgID)
	cl.CreateUser(t, opEmail, opPW, "operator", "org/"+mine.OrgID)
	orgURL := cl.URL + "/orgs/" + mine.OrgID + "/"

	t.Run("locations", func(t *testing.T) {
		tab := chromium.NewTab(t)
		tab.SetViewport(1280, 900, false)
		signInFresh(t, tab, cl, ownerEmail, ownerPW)
		// The navigation leads to the organization's pages.
		tab.Click(`#nav a[href="/orgs"]`)
		tab.WaitText("#orgs-status", "1 organization")
		tab.Click(`#orgs-list a[href="/orgs/` + mine.OrgID + `/locations"]`)
		tab.WaitVisible("#location-form")
		if got := tab.Text(`#nav [aria-current=page]`); got != "Organizations" {
			t.Errorf("the current page in the nav is %q", got)
		}

		create := func(name, parent string) {
			setValue(tab, "location-name", name)
			setValue(tab, "location-parent", parent)
			tab.Click("#location-create")
			tab.WaitText("#locations-status", "Created "+name)
			tab.WaitText("#locations-tree", name)
		}
		create("Plant A", "")
		plant := locationID(t, tab, "Plant A")
		create("Line 1", plant)
		line := locationID(t, tab, "Line 1")
		create("Spare", "")
		spare := locationID(t, tab, "Spare")

		// Move Spare under Line 1: the tree nests it two deep.
		setValue(tab, "move-to-"+spare, line)
		tab.Click("#move-" + spare)
		tab.WaitText("#locations-status", "Moved Spare")
		tab.WaitVisible(`li[data-location="` + line + `"] li[data-location="` + spare + `"]`)
		var path []string
		evalf(tab, &path, `(() => { let li = document.querySelector('li[data-location=' + CSS.escape(%s) + ']'); const out = []; while (li) { out.push(li.dataset.location); li = li.parentElement.closest('li[data-location]'); } return out; })()`, spare)
		if strings.Join(path, ">") != spare+">"+line+">"+plant {
			t.Errorf("Spare sits under %v, want Line 1 under Plant A", path)
		}
		// Moving Plant A under its own grandchild is refused by the cloud,
		// shown as it said it. The list does not offer it; a person
		// editing the page can still ask.
		evalf(tab, nil, `(() => { const s = document.getElementById('move-to-' + %s); s.append(new Option('x', %s)); s.value = %s; return true; })()`, plant, spare, spare)
		tab.Click("#move-" + plant)
		if got := tab.WaitText(`#locations-status[role=alert]`, "under"); !strings.Contains(got, "itself") && !strings.Contains(got, "descendant") && !strings.Contains(got, "inside") {
			t.Logf("moving a location under its descendant: %s", got)
		}

		// Share Plant A with the other organization, then stop.
		setValue(tab, "share-org-"+plant, other.OrgID)
		tab.Click("#share-" + plant)
		tab.WaitText("#locations-status", "Shared Plant A with org/"+other.OrgID)
		tab.WaitVisible(`li[data-location="` + plant + `"] li[data-shared="` + other.OrgID + `"]`)
		tab.Screenshot("org-locations")
		if u := unlabelled(tab); len(u) > 0 {
			t.Errorf("controls without a label on the locations page: %q", u)
		}
		tab.Click("#unshare-" + plant + "-" + other.OrgID)
		tab.Click("#unshare-" + plant + "-" + other.OrgID + "-yes")
		tab.WaitText("#locations-status", "Stopped sharing Plant A")

		// Deleting a location that holds another is the cloud's to refuse.
		tab.Click("#delete-" + line)
		tab.Click("#delete-" + line + "-yes")
		tab.WaitText(`#locations-status[role=alert]`, "")
		t.Logf("deleting a location with a child: %s", tab.Text("#locations-status"))
		tab.Click("#delete-" + spare)
		tab.Click("#delete-" + spare + "-cancel") // asked, then not done
		tab.Click("#delete-" + spare)
		tab.Click("#delete-" + spare + "-yes")
		tab.WaitText("#locations-status", "Deleted Spare")
		tab.WaitGone(`li[data-location="` + spare + `"]`)

		// A phone: nothing wider than the screen.
		tab.SetViewport(390, 844, true)
		tab.Navigate(orgURL + "locations")
		tab.WaitVisible(`li[data-location="` + line + `"]`)
		var widths struct{ Doc, Win float64 }
		tab.Eval(`({doc: document.documentElement.scrollWidth, win: innerWidth})`, &widths)
		if widths.Doc > widths.Win {
			t.Errorf("at 390 px the locations page is %v px wide", widths.Doc)
		}
		tab.Screenshot("org-locations-phone")
	})

	t.Run("invite accepted in the page", func(t *testing.T) {
		tab := chromium.NewTab(t)
		signInFresh(t, tab, cl, ownerEmail, ownerPW)
		tab.Navigate(orgURL + "members")
		tab.WaitVisible("#invite-form")
		tab.WaitText("#members-list", ownerEmail)
		if u := unlabelled(tab); len(u) > 0 {
			t.Errorf("controls without a label on the members page: %q", u)
		}
		const invitee = "new.hand@example.com"
		tab.Type("#invite-email", invitee)
		tab.Click("#invite-send")
		tab.WaitText("#members-status", "Invitation mailed to "+invitee)
		first := inviteLink(t, cl, invitee, 0)
		var inviteID string
		tab.Eval(`document.querySelector('#invites-list tr[data-invite]').dataset.invite`, &inviteID)
		tab.Click("#resend-" + inviteID)
		tab.WaitText("#members-status", "A new code was mailed")
		link := inviteLink(t, cl, invitee, 1)
		if link == first {
			t.Fatal("the resent invitation carries the old code")
		}

		// Hostile and stale links, in a signed-out browser.
		clearCookies(t, tab)
		accept := func(link, password string) {
			tab.Navigate("about:blank") // a full load of the link, as from a mail
			tab.Navigate(link)
			tab.WaitVisible("#invite")
			setValue(tab, "invite-password", "")
			tab.Type("#invite-password", password)
			tab.Click("#invite-accept")
		}
		for _, tc := range []struct{ name, link, says string }{
			{"a made-up code", cl.URL + "/invite#" + strings.Repeat("A", 43), "no invitation has this code"},
			{"markup for a code", cl.URL + "/invite#" + hostile, "no invitation has this code"},
			{"the code the resend replaced", first, "no invitation has this code: it may have been revoked or resent"},
		} {
			accept(tc.link, "the invitee's new password")
			if got := tab.WaitText("#invite-status[role=alert]", tc.says); !strings.Contains(got, tc.says) {
				t.Errorf("%s: the page says %q", tc.name, got)
			}
		}
		var pwned bool
		tab.Eval(`globalThis.pwned === 1 || document.querySelectorAll('img').length > 0`, &pwned)
		if pwned {
			t.Fatal("a code of markup became an element")
		}
		// A password too short for a new account: the cloud's words.
		accept(link, "short")
		tab.WaitText("#invite-status[role=alert]", "password for the new account")

		// An expired invitation.
		expired := auth.NewSecret()
		cl.Remember(expired)
		if err := cl.Store().Update(context.Background(), func(tx store.Tx) error {
			return tx.PutInvite(context.Background(), store.Invite{ID: auth.NewID(), Email: "late@example.com", Role: "operator",
				Scope: "org/" + mine.OrgID, OrgID: mine.OrgID, CodeHash: auth.HashSecret(expired), InvitedBy: ownerEmail,
				ExpiresAt: time.Now().Add(-time.Minute), CreatedAt: time.Now().Add(-8 * 24 * time.Hour)})
		}); err != nil {
			t.Fatal(err)
		}
		accept(cl.URL+"/invite#"+expired, "the late one's new password")
		tab.WaitText("#invite-status[role=alert]", "this invitation has expired: ask for it to be resent")

		// The real link: the invitee chooses a password and is signed in.
		accept(link, "the invitee's new password")
		tab.WaitText("#who-email", invitee)
		tab.WaitText("#invite-accepted", "operator of org/"+mine.OrgID)
		var href string
		tab.Eval(`location.href`, &href)
		if strings.Contains(href, "#") || strings.Contains(href, link[strings.Index(link, "#")+1:]) {
			t.Errorf("the code stays in the address bar: %s", href)
		}
		tab.WaitText("#fleet-status", "1 machine")
		tab.Screenshot("invite-accepted")

		// Used once, the link is spent.
		clearCookies(t, tab)
		accept(link, "the invitee's new password")
		tab.WaitText("#invite-status[role=alert]", "no invitation has this code")
	})

	t.Run("API keys", func(t *testing.T) {
		tab := chromium.NewTab(t)
		signInFresh(t, tab, cl, ownerEmail, ownerPW)
		tab.Navigate(orgURL + "apikeys")
		tab.WaitVisible("#apikeys-form")
		tab.Type("#apikeys-name", "ci "+hostile)
		tab.Click("#apikeys-create")
		tab.WaitText("#apikeys-status", "Created ci")
		token := tab.Text("#apikeys-secret-value")
		cl.Remember(token)
		if !strings.HasPrefix(token, "opk_") {
			t.Fatalf("the page shows the key as %q", token)
		}
		who, err := cl.As(token).Auth.WhoAmI(context.Background(), connect.NewRequest(&fleetv1.WhoAmIRequest{}))
		if err != nil {
			t.Fatalf("the key the page showed: %v", err)
		}
		keyID := strings.TrimPrefix(who.Msg.GetSubject(), "apikey/")
		tab.WaitText(`#apikeys-list tr[data-key="`+keyID+`"]`, "operator of org/"+mine.OrgID)
		// Revoking asks first.
		tab.Click("#apikeys-revoke-" + keyID)
		tab.WaitText("#apikeys-keys", "Revoke ci")
		tab.Click("#apikeys-revoke-" + keyID + "-yes")
		tab.WaitText("#apikeys-status", "Revoked ci")
		tab.WaitGone(`#apikeys-list tr[data-key="` + keyID + `"]`)
		if _, err := cl.As(token).Auth.WhoAmI(context.Background(), connect.NewRequest(&fleetv1.WhoAmIRequest{})); connect.CodeOf(err) != connect.CodeUnauthenticated {
			t.Errorf("the revoked key: %v", err)
		}
	})

	t.Run("fragments", func(t *testing.T) {
		tab := chromium.NewTab(t)
		signInFresh(t, tab, cl, ownerEmail, ownerPW)
		tab.Navigate(orgURL + "fragments")
		tab.WaitVisible("#fragment-new")
		tab.Type("#fragment-name", "base")
		tab.Click("#fragment-create")
		tab.WaitText("#fragments-status", "Created base")
		tab.WaitVisible("#fragments-list tr[data-fragment]")
		var id string
		tab.Eval(`document.querySelector('#fragments-list tr[data-fragment]').dataset.fragment`, &id)
		tab.Click("#open-" + id)
		tab.WaitVisible("#fragment-form")
		// JSON that does not parse never leaves the page.
		setValue(tab, "fragment-config", `{"components": [`)
		tab.Click("#fragment-save")
		tab.WaitText("#fragments-status[role=alert]", "the config is not JSON")
		setValue(tab, "fragment-config", `{"components": [{"name": "m1", "type": "motor", "model": "fake"}]}`)
		tab.Click("#fragment-save")
		tab.WaitText("#fragments-status", "as revision 2")
		tab.WaitText("#fragment-title", "revision 2")
		f, err := cl.Admin(t).Fragment.GetFragment(context.Background(), connect.NewRequest(&fleetv1.GetFragmentRequest{FragmentId: id}))
		if err != nil || f.Msg.GetFragment().GetRevision() != 2 || f.Msg.GetFragment().GetConfig().GetComponents()[0].GetName() != "m1" {
			t.Fatalf("the fragment after the page's edit: %v %v", f, err)
		}
		tab.Screenshot("org-fragment")
		tab.Click("#fragment-delete")
		tab.Click("#fragment-delete-yes")
		tab.WaitText("#fragments-status", "Deleted base")
	})

	t.Run("audit log", func(t *testing.T) {
		tab := chromium.NewTab(t)
		signInFresh(t, tab, cl, ownerEmail, ownerPW)
		tab.Navigate(orgURL + "audit")
		tab.WaitText("#audit-status", "events on this page")
		text := tab.Text("#audit-list")
		for _, want := range []string{"location.create", "location.move", "invite.manage", "invite.accept", "role.change", "fragment.edit"} {
			if !strings.Contains(text, want) {
				t.Errorf("the audit log has no %s:\n%s", want, text)
			}
		}
		tab.Type("#audit-filter", "location.move denied")
		tab.WaitText("#audit-status", "match")
		var rows int
		tab.Eval(`document.querySelectorAll('#audit-list tbody tr').length`, &rows)
		if rows != 0 {
			t.Logf("denied moves: %d", rows)
		}
		setValue(tab, "audit-filter", "location.move")
		tab.WaitText("#audit-status", "match")
		tab.Eval(`document.querySelectorAll('#audit-list tbody tr').length`, &rows)
		if rows < 1 {
			t.Errorf("filtering on location.move shows %d events", rows)
		}
	})

	t.Run("operator", func(t *testing.T) {
		tab := chromium.NewTab(t)
		signInFresh(t, tab, cl, opEmail, opPW)
		// Read-only views where the server lets an org operator read.
		tab.Navigate(orgURL + "locations")
		tab.WaitText("#locations-tree", "Plant A")
		tab.Navigate(orgURL + "members")
		tab.WaitText("#members-list", ownerEmail)
		tab.Navigate(orgURL + "apikeys")
		tab.WaitVisible("#apikeys-keys")
		// What it may not do has no button (asked of the server) ...
		var visible []string
		tab.Eval(`[...document.querySelectorAll('form, button')].filter((e) => e.offsetParent !== null).map((e) => e.id || e.textContent)`, &visible)
		for _, v := range visible {
			if strings.Contains(v, "create") || strings.Contains(v, "revoke") {
				t.Errorf("the operator sees %q on the API keys page", v)
			}
		}
		// ... and the server refuses it anyway when the page is made to ask.
		tab.Navigate(orgURL + "locations")
		tab.WaitText("#locations-tree", "Plant A")
		tab.Eval(`document.getElementById('location-form').hidden = false; true`, nil)
		tab.Type("#location-name", "sneaky")
		tab.Click("#location-create")
		got := tab.WaitText("#locations-status[role=alert]", "location.create")
		t.Logf("the cloud refuses the operator's location: %s", got)
		// Pages it may not read show the cloud's refusal plainly.
		for page, action := range map[string]string{"audit": "role.change", "fragments": "fragment.use"} {
			tab.Navigate(orgURL + page)
			got := tab.WaitText("#"+page+"-status[role=alert]", action)
			t.Logf("%s: %s", page, got)
		}
		tab.Screenshot("org-operator-refused")
	})

	t.Run("robot tabs", func(t *testing.T) {
		tab := chromium.NewTab(t)
		signInFresh(t, tab, cl, ownerEmail, ownerPW)
		fp := make([]byte, 32)
		for i := range fp {
			fp[i] = byte(i * 7)
		}
		reportStatus(t, cl, mine, &syncv1.PartStatus{Version: "1.2.3", ControlCertSha256: fp})
		dir := t.TempDir()
		ctx, cancel := tab.Context()
		_, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
			Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: dir})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		// The tabs are mounted as the robot page will: each module's tab
		// object rendered with the machine.
		mount := func(module, export string) {
			u := mustAsset(t, cl, "js/"+module)
			evalf(tab, nil, `(async () => {
  const {createClient} = await import(%s);
  const mod = await import(%s);
  const client = createClient({baseUrl: '/'});
  const machine = await client.unary('outpost.fleet.v1.MachineService', 'GetMachine', {machineId: %s});
  const cfg = JSON.parse(document.querySelector('meta[name="outpost-config"]').content);
  document.getElementById('main').replaceChildren(mod[%s].render({client, cfg, machine, orgId: %s, navigate: () => {}}));
  globalThis.tabAction = mod[%s].action;
  return true;
})()`, mustAsset(t, cl, "js/connect.js"), u, mine.MachineID, export, mine.OrgID, export)
		}

		// SETUP: add a part, download its bootstrap file, which works.
		mount("tab_setup.js", "setupTab")
		tab.WaitVisible("#setup-add-form")
		tab.Type("#setup-part-name", "arm")
		tab.Click("#setup-add")
		tab.WaitText("#setup-status", "Added part arm")
		tab.WaitText("#setup-parts-list", "arm")
		var partID string
		tab.Eval(`[...document.querySelectorAll('#setup-parts-list tr[data-part]')].find((r) => r.textContent.startsWith('arm')).dataset.part`, &partID)
		tab.Click("#bootstrap-" + partID)
		tab.Click("#bootstrap-" + partID + "-yes")
		tab.WaitText("#setup-file", "outpostd-arm.json")
		tab.WaitText("#setup-steps", "sudo install -m 0640 -g outpost outpostd-arm.json /etc/outpost/outpostd.json")
		var raw []byte
		cloudtest.Eventually(t, "the bootstrap file is downloaded", func() error {
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				if b, err := os.ReadFile(filepath.Join(dir, e.Name())); err == nil && len(b) > 0 && strings.HasSuffix(string(b), "}\n") {
					raw = b
					return nil
				}
			}
			return fmt.Errorf("%d files in %s", len(ents), dir)
		})
		boot, err := partfile.ParseBootstrap("outpostd-arm.json", raw)
		if err != nil {
			t.Fatalf("the downloaded bootstrap file: %v", err)
		}
		cl.Remember(boot.File.GetPartSecret())
		if boot.File.GetPartId() != partID || boot.File.GetCloudUrl() != cl.URL {
			t.Errorf("the file is for part %s at %s", boot.File.GetPartId(), boot.File.GetCloudUrl())
		}
		arm := cloudtest.Part{ID: partID, Secret: boot.File.GetPartSecret(), MachineID: mine.MachineID}
		reportStatus(t, cl, arm, &syncv1.PartStatus{Version: "1.2.3"})
		tab.Screenshot("tab-setup")

		// SECURITY: the fingerprint as reported, a key on the machine, and
		// rotating the main part's secret (asked first; shown once).
		mount("tab_security.js", "securityTab")
		want := fmt.Sprintf("%x", fp)
		tab.WaitText(`[data-fingerprint="`+mine.ID+`"]`, want)
		tab.Type("#security-keys-name", "line robot")
		tab.Click("#security-keys-create")
		tab.WaitText("#security-keys-status", "Created line robot")
		cl.Remember(tab.Text("#security-keys-secret-value"))
		tab.WaitText("#security-keys-list", "operator of machine/"+mine.MachineID)
		tab.Click("#rotate-" + mine.ID)
		tab.Click("#rotate-" + mine.ID + "-yes")
		tab.WaitText("#security-status", "Rotated main's secret")
		secret := tab.Text("#security-new-secret-value")
		cl.Remember(secret)
		c := syncv1connect.NewSyncServiceClient(cl.HTTPClient(), cl.URL,
			connect.WithInterceptors(credential.Bearer{Authorization: "Part " + mine.ID + ":" + mine.Secret}))
		if _, err := c.ReportStatus(context.Background(), connect.NewRequest(&syncv1.ReportStatusRequest{Status: &syncv1.PartStatus{}})); connect.CodeOf(err) != connect.CodeUnauthenticated {
			t.Errorf("the old secret after the rotation: %v", err)
		}
		mine.Secret = secret
		reportStatus(t, cl, mine, &syncv1.PartStatus{Version: "1.2.3", ControlCertSha256: fp})
		tab.Screenshot("tab-security")
		if u := unlabelled(tab); len(u) > 0 {
			t.Errorf("controls without a label on the SECURITY tab: %q", u)
		}

		// CODE SAMPLE: this machine's IDs and this cloud, filled in.
		mount("tab_code.js", "codeTab")
		cli := tab.WaitText("#code-cli", ownerEmail)
		for _, want := range []string{"outpost login " + ownerEmail + " --cloud " + cl.URL, "outpost machine status " + mine.MachineID, "outpost robot status --via-cloud " + mine.ID} {
			if !strings.Contains(cli, want) {
				t.Errorf("the CLI sample lacks %q:\n%s", want, cli)
			}
		}
		goCode := tab.Text("#code-go")
		for _, want := range []string{`cloudURL  = "` + cl.URL + `"`, `machineID = "` + mine.MachineID + `"`, `partID    = "` + mine.ID + `"`} {
			if !strings.Contains(goCode, want) {
				t.Errorf("the Go sample lacks %q", want)
			}
		}

		// A phone: the tab fits.
		tab.SetViewport(390, 844, true)
		mount("tab_setup.js", "setupTab")
		tab.WaitVisible("#setup-steps")
		var widths struct{ Doc, Win float64 }
		tab.Eval(`({doc: document.documentElement.scrollWidth, win: innerWidth})`, &widths)
		if widths.Doc > widths.Win {
			t.Errorf("at 390 px the SETUP tab is %v px wide", widths.Doc)
		}

		// The tabs' action: the owner may, the operator may not (seed 000:
		// an operator sees only CONTROL).
		for _, tc := range []struct {
			email, password string
			allowed         bool
		}{{ownerEmail, ownerPW, true}, {opEmail, opPW, false}} {
			signInFresh(t, tab, cl, tc.email, tc.password)
			for _, mod := range []string{"tab_setup.js", "tab_security.js", "tab_code.js"} {
				var got struct {
					Action  string
					Allowed bool
				}
				evalf(tab, &got, `(async () => {
  const mod = await import(%s);
  const tab = Object.values(mod).find((v) => v && v.render && v.action);
  const who = await (await fetch('/outpost.fleet.v1.AuthService/WhoAmI', {method: 'POST', headers: {'Content-Type': 'application/json', 'Connect-Protocol-Version': '1'}, body: '{}'})).json();
  const r = await (await fetch('/outpost.fleet.v1.AccessService/CheckAccess', {method: 'POST', headers: {'Content-Type': 'application/json', 'Connect-Protocol-Version': '1'},
    body: JSON.stringify({subject: who.subject, action: tab.action, resource: 'machine/' + %s})})).json();
  return {action: tab.action, allowed: Boolean(r.allowed)};
})()`, mustAsset(t, cl, "js/"+mod), mine.MachineID)
				if got.Action != "machine.view" || got.Allowed != tc.allowed {
					t.Errorf("%s for %s: action %q allowed %v", mod, tc.email, got.Action, got.Allowed)
				}
			}
		}
	})

	t.Run("roles", func(t *testing.T) {
		tab := chromium.NewTab(t)
		signInFresh(t, tab, cl, ownerEmail, ownerPW)
		tab.Navigate(orgURL + "roles")
		tab.WaitText("#roles-count", "grants reach org/"+mine.OrgID)
		tab.WaitVisible("#grant-form")
		// Grant the operator ownership of the location, then change it.
		tab.Type("#grant-subject", "user/"+opEmail)
		setValue(tab, "grant-role", "owner")
		setValue(tab, "grant-scope", "location/"+mine.LocationID)
		tab.Click("#grant-submit")
		tab.WaitText("#roles-status", opEmail+" is now owner of location/"+mine.LocationID)
		setValue(tab, "roles-scope", "location/"+mine.LocationID)
		tab.Click("#roles-show")
		row := `#roles-list tr[data-scope="location/` + mine.LocationID + `"]`
		tab.WaitText(row, opEmail)
		var i string
		tab.Eval(`document.querySelector('`+row+` select').id.replace('role-', '')`, &i)
		setValue(tab, "role-"+i, "operator")
		tab.Click("#change-" + i)
		tab.WaitText("#roles-status", opEmail+" is now operator of location/"+mine.LocationID)
		tab.WaitText(row, "operator")
		// Remove it, asked first.
		tab.Eval(`document.querySelector('`+row+` select').id.replace('role-', '')`, &i)
		tab.Click("#remove-" + i)
		tab.Click("#remove-" + i + "-yes")
		tab.WaitText("#roles-status", "Removed "+opEmail+"'s role on location/"+mine.LocationID)
		tab.WaitGone(row)
		// Limit the operator's organization grant to the machine.
		orgRow := `#roles-list tr[data-subject^="user/"][data-scope="org/` + mine.OrgID + `"]`
		var ids []string
		tab.Eval(`[...document.querySelectorAll('`+orgRow+`')].filter((r) => r.textContent.includes('`+opEmail+`')).map((r) => r.querySelector('input[id^=limit-to-]').id.replace('limit-to-', ''))`, &ids)
		if len(ids) != 1 {
			t.Fatalf("the operator's organization grant: %v", ids)
		}
		tab.Type("#limit-to-"+ids[0], "machine/"+mine.MachineID)
		tab.Click("#limit-" + ids[0])
		tab.WaitText("#roles-status", opEmail+" is now operator of machine/"+mine.MachineID+" only")
		if u := unlabelled(tab); len(u) > 0 {
			t.Errorf("controls without a label on the roles page: %q", u)
		}
	})
}

// mustAsset returns the URL the cloud serves a front-end file at: the
// fingerprint is the file's, whatever the handler's config.
func mustAsset(t *testing.T, _ *cloudtest.Cloud, name string) string {
	t.Helper()
	h, err := web.New(web.Config{App: web.AppFleet})
	if err != nil {
		t.Fatal(err)
	}
	u, ok := h.AssetURL(name)
	if !ok {
		t.Fatalf("no asset %s", name)
	}
	return u
}
