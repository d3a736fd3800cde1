package cloud_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	"github.com/outpost-robotics/outpost/cloud/cloudtest"
	"github.com/outpost-robotics/outpost/credential"
)

// browserCall is one HTTP request as a page of the cloud's own origin
// sends it, which a case may change.
type browserCall struct {
	method, path, body string
	header             http.Header
}

func sameOrigin(path, body, cookie string) *browserCall {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	h.Set("Connect-Protocol-Version", "1")
	h.Set("Sec-Fetch-Site", "same-origin")
	if cookie != "" {
		h.Set("Cookie", cookie)
	}
	return &browserCall{method: http.MethodPost, path: path, body: body, header: h}
}

// browserAnswer is what the cloud answered: the status, the Connect
// error's code and message, the Set-Cookie lines and the body.
type browserAnswer struct {
	status        int
	code, message string
	setCookie     []string
	body          map[string]any
}

func (e *env) browser(t *testing.T, hc *http.Client, c *browserCall) browserAnswer {
	t.Helper()
	r, err := http.NewRequest(c.method, e.URL+c.path, strings.NewReader(c.body))
	if err != nil {
		t.Fatal(err)
	}
	r.Header = c.header
	res, err := hc.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	a := browserAnswer{status: res.StatusCode, setCookie: res.Header.Values("Set-Cookie")}
	_ = json.Unmarshal(raw, &a.body)
	if res.StatusCode != http.StatusOK {
		a.code, _ = a.body["code"].(string)
		a.message, _ = a.body["message"].(string)
	}
	return a
}

const (
	whoAmIPath  = "/outpost.fleet.v1.AuthService/WhoAmI"
	signInPath  = "/outpost.fleet.v1.AuthService/SignIn"
	signOutPath = "/outpost.fleet.v1.AuthService/SignOut"
)

// browserSignIn signs in for a browser session and returns the cookie as
// the browser sends it back ("name=value").
func (e *env) browserSignIn(t *testing.T, hc *http.Client, email, password string) (string, *http.Cookie) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"email": email, "password": password, "cookieSession": true})
	a := e.browser(t, hc, sameOrigin(signInPath, string(body), ""))
	if a.status != http.StatusOK || len(a.setCookie) != 1 {
		t.Fatalf("browser sign-in: %d %s %s, Set-Cookie %q", a.status, a.code, a.message, a.setCookie)
	}
	if tok, ok := a.body["accessToken"]; ok {
		t.Errorf("the response's body carries the token (%v): a script could read it", tok != "")
	}
	c, err := http.ParseSetCookie(a.setCookie[0])
	if err != nil {
		t.Fatal(err)
	}
	e.Remember(c.Value)
	return c.Name + "=" + c.Value, c
}

// TestBrowserSession: a browser session is set as a strict HttpOnly cookie,
// works from the cloud's own pages only, and ends at sign-out, at a
// password change and at its expiry; every refusal says why.
func TestBrowserSession(t *testing.T) {
	e := newEnv(t)
	hc := e.HTTPClient()
	const email, password = "ada@example.com", "correct horse battery staple"
	uid := e.CreateUser(t, email, password, "", "")

	cookie, c := e.browserSignIn(t, hc, email, password)
	if c.Name != "outpost_session" || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Secure {
		t.Errorf("cookie %+v: want outpost_session, HttpOnly, SameSite=Strict, Path=/, not Secure over plain HTTP", c)
	}
	if c.MaxAge != int((12 * time.Hour).Seconds()) {
		t.Errorf("cookie lives %d s, want 12 h", c.MaxAge)
	}
	if a := e.browser(t, hc, sameOrigin(whoAmIPath, "{}", cookie)); a.status != http.StatusOK || a.body["subject"] != "user/"+uid {
		t.Fatalf("WhoAmI with the cookie: %d %v", a.status, a.body)
	}

	tok := strings.TrimPrefix(cookie, "outpost_session=")
	parts := strings.Split(tok, ".")
	tampered := "outpost_session=" + parts[0] + "." + parts[1] + "x." + parts[2]
	get := url.Values{"connect": {"v1"}, "encoding": {"json"}, "message": {"{}"}}.Encode()
	for _, tc := range []struct {
		name   string
		change func(c *browserCall)
		status int
		code   string
		says   string
	}{
		{"from another site", func(c *browserCall) { c.header.Set("Sec-Fetch-Site", "cross-site") }, 403, "permission_denied", `Sec-Fetch-Site is "cross-site"`},
		{"from a sibling site", func(c *browserCall) { c.header.Set("Sec-Fetch-Site", "same-site") }, 403, "permission_denied", "only the cloud's own pages"},
		{"no Sec-Fetch-Site, another Origin", func(c *browserCall) {
			c.header.Del("Sec-Fetch-Site")
			c.header.Set("Origin", "https://evil.example")
		}, 403, "permission_denied", "is not the cloud's own"},
		{"no Sec-Fetch-Site and no Origin", func(c *browserCall) { c.header.Del("Sec-Fetch-Site") }, 403, "permission_denied", "Origin"},
		{"without Connect-Protocol-Version", func(c *browserCall) { c.header.Del("Connect-Protocol-Version") }, 403, "permission_denied", "Connect-Protocol-Version"},
		{"a Connect GET", func(c *browserCall) {
			c.method, c.path, c.body = http.MethodGet, whoAmIPath+"?"+get, ""
			c.header.Del("Content-Type")
		}, 403, "permission_denied", "POST only"},
		// Connect itself refuses bodies that are not its own before any
		// credential is read.
		{"a form", func(c *browserCall) {
			c.header.Set("Content-Type", "application/x-www-form-urlencoded")
			c.body = "a=b"
		}, 415, "", ""},
		{"text/plain", func(c *browserCall) { c.header.Set("Content-Type", "text/plain") }, 415, "", ""},
		{"two session cookies", func(c *browserCall) { c.header.Set("Cookie", cookie+"; "+cookie) }, 401, "unauthenticated", "2 outpost_session cookies"},
		{"tampered", func(c *browserCall) { c.header.Set("Cookie", tampered) }, 401, "unauthenticated", "browser session is invalid or expired"},
		{"an access token in the cookie", func(c *browserCall) {
			k, _ := credential.ParseKey(e.adminToken)
			c.header.Set("Cookie", "outpost_session="+k.Token)
		}, 401, "unauthenticated", "browser session is invalid"},
		{"as a DPoP token", func(c *browserCall) {
			c.header.Del("Cookie")
			c.header.Set("Authorization", "DPoP "+tok)
			c.header.Set("DPoP", "x.y.z")
		}, 401, "unauthenticated", "access token is invalid or expired"},
		{"as a bearer token", func(c *browserCall) {
			c.header.Del("Cookie")
			c.header.Set("Authorization", "Bearer "+tok)
		}, 401, "unauthenticated", "predates session keys"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			call := sameOrigin(whoAmIPath, "{}", cookie)
			tc.change(call)
			a := e.browser(t, hc, call)
			if a.status != tc.status || a.code != tc.code || !strings.Contains(a.message, tc.says) {
				t.Errorf("got %d %s %q, want %d %s saying %q", a.status, a.code, a.message, tc.status, tc.code, tc.says)
			}
		})
	}

	// An Origin equal to the cloud's own stands in for Sec-Fetch-Site.
	call := sameOrigin(whoAmIPath, "{}", cookie)
	call.header.Del("Sec-Fetch-Site")
	call.header.Set("Origin", e.URL)
	if a := e.browser(t, hc, call); a.status != http.StatusOK {
		t.Errorf("same Origin without Sec-Fetch-Site: %d %s", a.status, a.message)
	}

	// Signing in for a cookie is held to the same rule (another site must
	// not sign a browser in to an account of its choosing), and takes no
	// session key.
	body, _ := json.Marshal(map[string]any{"email": email, "password": password, "cookieSession": true})
	cross := sameOrigin(signInPath, string(body), "")
	cross.header.Set("Sec-Fetch-Site", "cross-site")
	if a := e.browser(t, hc, cross); a.code != "permission_denied" || len(a.setCookie) != 0 {
		t.Errorf("cross-site sign-in: %d %s %q, Set-Cookie %q", a.status, a.code, a.message, a.setCookie)
	}
	body2, _ := json.Marshal(map[string]any{"email": email, "password": password, "cookieSession": true, "sessionPublicKey": make([]byte, 32)})
	if a := e.browser(t, hc, sameOrigin(signInPath, string(body2), "")); a.code != "invalid_argument" || !strings.Contains(a.message, "leave it empty") {
		t.Errorf("cookie sign-in with a key: %d %s %q", a.status, a.code, a.message)
	}
	body3, _ := json.Marshal(map[string]any{"email": email, "password": password, "cookieSession": true, "ttlSeconds": 13 * 3600})
	if a := e.browser(t, hc, sameOrigin(signInPath, string(body3), "")); a.code != "invalid_argument" || !strings.Contains(a.message, "12 hours") {
		t.Errorf("cookie sign-in for 13 h: %d %s %q", a.status, a.code, a.message)
	}

	// Sign-out revokes the session and clears the cookie.
	out := e.browser(t, hc, sameOrigin(signOutPath, "{}", cookie))
	if out.status != http.StatusOK || len(out.setCookie) != 1 {
		t.Fatalf("sign-out: %d %q, Set-Cookie %q", out.status, out.message, out.setCookie)
	}
	if cl, err := http.ParseSetCookie(out.setCookie[0]); err != nil || cl.Name != "outpost_session" || cl.Value != "" || cl.MaxAge >= 0 {
		t.Errorf("sign-out's Set-Cookie %q does not clear the cookie", out.setCookie[0])
	}
	if a := e.browser(t, hc, sameOrigin(whoAmIPath, "{}", cookie)); a.code != "unauthenticated" || !strings.Contains(a.message, "revoked") {
		t.Errorf("the cookie after sign-out: %d %s %q", a.status, a.code, a.message)
	}

	// A password change ends every browser session of the user.
	cookie, _ = e.browserSignIn(t, hc, email, password)
	e.clk.Advance(2 * time.Second) // tokens count whole seconds
	cli := e.As(e.SignIn(t, email, password))
	newPassword := "another correct horse battery"
	e.Remember(newPassword)
	if _, err := cli.Auth.ChangePassword(context.Background(), connect.NewRequest(&fleetv1.ChangePasswordRequest{
		CurrentPassword: password, NewPassword: newPassword, SessionPublicKey: sessionPub})); err != nil {
		t.Fatal(err)
	}
	if a := e.browser(t, hc, sameOrigin(whoAmIPath, "{}", cookie)); a.code != "unauthenticated" || !strings.Contains(a.message, "revoked") {
		t.Errorf("the cookie after a password change: %d %s %q", a.status, a.code, a.message)
	}

	// At its end the page signs in again: the session is not renewed.
	e.clk.Advance(2 * time.Second)
	cookie, _ = e.browserSignIn(t, hc, email, newPassword)
	e.clk.Advance(12*time.Hour + time.Second)
	if a := e.browser(t, hc, sameOrigin(whoAmIPath, "{}", cookie)); a.code != "unauthenticated" || !strings.Contains(a.message, "expired") {
		t.Errorf("the cookie after 12 h: %d %s %q", a.status, a.code, a.message)
	}
}

// TestBrowserSessionOverTLS: over TLS the cookie is Secure and __Host-
// prefixed, and the plain name is not read.
func TestBrowserSessionOverTLS(t *testing.T) {
	e := newEnvWith(t, cloudtest.Options{TLS: true})
	hc := e.HTTPClient()
	const email, password = "ada@example.com", "correct horse battery staple"
	e.CreateUser(t, email, password, "", "")
	cookie, c := e.browserSignIn(t, hc, email, password)
	if c.Name != "__Host-outpost_session" || !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Domain != "" {
		t.Errorf("cookie %+v: want __Host-outpost_session, Secure, HttpOnly, SameSite=Strict, Path=/, no Domain", c)
	}
	if a := e.browser(t, hc, sameOrigin(whoAmIPath, "{}", cookie)); a.status != http.StatusOK {
		t.Fatalf("WhoAmI: %d %s", a.status, a.message)
	}
	plain := "outpost_session=" + strings.TrimPrefix(cookie, "__Host-outpost_session=")
	if a := e.browser(t, hc, sameOrigin(whoAmIPath, "{}", plain)); a.code != "unauthenticated" || !strings.Contains(a.message, "no credentials") {
		t.Errorf("the plain cookie name over TLS: %d %s %q", a.status, a.code, a.message)
	}
}

// TestCloudServesTheFleetApp: "/" and any page path answer the app; the
// API's paths stay the API's.
func TestCloudServesTheFleetApp(t *testing.T) {
	e := newEnv(t)
	for _, p := range []string{"/", "/org", "/machines/x"} {
		res, err := e.HTTPClient().Get(e.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || !strings.Contains(string(b), `name="outpost-config"`) || !strings.Contains(string(b), `&#34;app&#34;:&#34;fleet&#34;`) {
			t.Errorf("GET %s: %d %.200s", p, res.StatusCode, b)
		}
		if res.Header.Get("Content-Security-Policy") == "" {
			t.Errorf("GET %s: no CSP", p)
		}
	}
	if _, err := e.client("").Server.GetServerInfo(context.Background(), connect.NewRequest(&fleetv1.GetServerInfoRequest{})); err != nil {
		t.Errorf("the API behind the app: %v", err)
	}
}
