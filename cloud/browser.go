package cloud

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"time"

	"connectrpc.com/connect"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	"github.com/outpost-robotics/outpost/cloud/store"
	"github.com/outpost-robotics/outpost/credential"
)

// Browser sessions (docs/CREDENTIALS.md, "Browser sessions"): the fleet app
// signs in for a cookie, since a page cannot keep a private key the way the
// CLI does. The cookie holds a credential.IssueBrowserSession token; the
// interceptor reads it only when the call carries no Authorization, and only
// on a request a page of the cloud's own origin made (sameOriginCall). The
// cookie yields the subject; the call is then decided like any other.

// Cookie names: over TLS the __Host- prefix makes the browser refuse the
// cookie unless it is Secure, for "/", and set by this very host (no
// sibling domain can plant one).
const (
	sessionCookie       = "outpost_session"
	secureSessionCookie = "__Host-outpost_session"
)

// requestInfo is what the interceptor and SignIn need of the HTTP request
// that Connect does not pass on: whether it came over TLS, and its Host.
type requestInfo struct {
	tls  bool
	host string
}

type requestInfoKey struct{}

// withRequestInfo records each request's requestInfo in its context.
func withRequestInfo(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ri := requestInfo{tls: r.TLS != nil, host: r.Host}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestInfoKey{}, ri)))
	})
}

func requestInfoFrom(ctx context.Context) requestInfo {
	ri, _ := ctx.Value(requestInfoKey{}).(requestInfo)
	return ri
}

// cookieName is the session cookie's name for a request.
func (ri requestInfo) cookieName() string {
	if ri.tls {
		return secureSessionCookie
	}
	return sessionCookie
}

// origin is the cloud's own origin as this request reached it.
func (ri requestInfo) origin() string {
	if ri.tls {
		return "https://" + ri.host
	}
	return "http://" + ri.host
}

// browserContentTypes are the Connect encodings a page's call may use; a
// form or text/plain POST (which any site can make without asking the
// browser first) is none of them.
var browserContentTypes = map[string]bool{
	"application/json": true, "application/connect+json": true,
	"application/proto": true, "application/connect+proto": true,
}

// sameOriginCall refuses a call that a page of another origin could have
// made, before a browser session is accepted or set. Each check alone
// stops a cross-site request in today's browsers; together they do not
// depend on any one browser feature (SameSite=Strict already keeps the
// cookie off cross-site requests):
//   - POST only: a Connect GET (side-effect-free calls) can be made by any
//     page with an <img> or a link, which the browser sends without asking;
//   - a Connect content type and Connect-Protocol-Version: 1: another origin
//     can send neither without a CORS preflight, which the cloud never
//     answers, so only form, multipart and text/plain bodies could come;
//   - Sec-Fetch-Site: same-origin, which the browser sets and a page cannot;
//     when a browser sends no Sec-Fetch-Site, an Origin equal to the
//     cloud's own.
func sameOriginCall(ctx context.Context, method string, h http.Header) error {
	refuse := func(format string, args ...any) error {
		return connect.NewError(connect.CodePermissionDenied, fmt.Errorf("browser session refused: "+format, args...))
	}
	if method != http.MethodPost {
		return refuse("%s request: the session cookie is accepted on POST only, so no link or image from another site can use it", method)
	}
	ct, _, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil || !browserContentTypes[ct] {
		return refuse("content type %q: the session cookie is accepted with Connect's JSON or protobuf only", h.Get("Content-Type"))
	}
	if h.Get("Connect-Protocol-Version") != "1" {
		return refuse("no Connect-Protocol-Version: 1 header")
	}
	ri := requestInfoFrom(ctx)
	switch site := h.Get("Sec-Fetch-Site"); site {
	case "same-origin":
		return nil
	case "":
		if o := h.Get("Origin"); o == "" || o != ri.origin() {
			return refuse("the request's Origin %q is not the cloud's own (%s)", o, ri.origin())
		}
		return nil
	default:
		return refuse("Sec-Fetch-Site is %q: only the cloud's own pages may use its session cookie", site)
	}
}

// sessionCookieValue returns the session cookie a request carries: "" for
// none, an error for more than one (a planted cookie beside the real one).
func sessionCookieValue(ctx context.Context, h http.Header) (string, error) {
	name := requestInfoFrom(ctx).cookieName()
	var found []string
	for _, c := range (&http.Request{Header: h}).Cookies() {
		if c.Name == name {
			found = append(found, c.Value)
		}
	}
	switch len(found) {
	case 0:
		return "", nil
	case 1:
		return found[0], nil
	}
	return "", connect.NewError(connect.CodeUnauthenticated, fmt.Errorf("browser session refused: %d %s cookies: clear this site's cookies and sign in again", len(found), name))
}

// browserPrincipal authenticates a call by its session cookie.
func (s *Server) browserPrincipal(ctx context.Context, method string, h http.Header, token string) (*principal, error) {
	if err := sameOriginCall(ctx, method, h); err != nil {
		return nil, err
	}
	claims, err := credential.VerifyBrowserSession(token, s.signer.Keys(), s.clock.Now())
	if err != nil {
		return nil, connect.NewError(connect.CodeUnauthenticated, errors.New("browser session is invalid or expired: sign in again"))
	}
	p, err := s.sessionPrincipal(ctx, claims, "sign in again")
	if err != nil {
		return nil, err
	}
	p.browser = true
	return p, nil
}

// sessionCookieFor is the Set-Cookie of a new browser session, living
// until exp.
func sessionCookieFor(ctx context.Context, token string, now, exp time.Time) *http.Cookie {
	ri := requestInfoFrom(ctx)
	return &http.Cookie{Name: ri.cookieName(), Value: token, Path: "/", MaxAge: int(exp.Sub(now).Seconds()),
		HttpOnly: true, Secure: ri.tls, SameSite: http.SameSiteStrictMode}
}

// clearedSessionCookie is the Set-Cookie that removes the session cookie.
func clearedSessionCookie(ctx context.Context) *http.Cookie {
	ri := requestInfoFrom(ctx)
	return &http.Cookie{Name: ri.cookieName(), Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: ri.tls, SameSite: http.SameSiteStrictMode}
}

// checkBrowserSignIn refuses a sign-in for a browser session that is not a
// same-origin call, or asks for what a browser session cannot have: another
// site must not sign a browser in to an account of its choosing.
func checkBrowserSignIn(ctx context.Context, req *connect.Request[fleetv1.SignInRequest]) error {
	m := req.Msg
	if len(m.GetSessionPublicKey()) != 0 {
		return invalid("session_public_key: leave it empty with cookie_session: a browser session is bound to no key")
	}
	if max := int64(credential.MaxBrowserSessionTTL / time.Second); m.GetTtlSeconds() < 0 || m.GetTtlSeconds() > max {
		return invalid("ttl_seconds: 0 for the default, at most %d (12 hours) for a browser session", max)
	}
	return sameOriginCall(ctx, req.HTTPMethod(), req.Header())
}

// browserSignIn answers a sign-in for a browser session: the token goes in
// the cookie alone, never in the response's body, where a script could
// read it.
func (s *Server) browserSignIn(ctx context.Context, u store.User, ttl time.Duration) (*connect.Response[fleetv1.SignInResponse], error) {
	now := s.clock.Now()
	tok, exp, err := s.signer.IssueBrowserSession(u.ID, now, ttl)
	if err != nil {
		return nil, s.errs.Internal("sign in", err)
	}
	res := connect.NewResponse(&fleetv1.SignInResponse{ExpiresAt: ts(exp), User: userPB(u)})
	res.Header().Add("Set-Cookie", sessionCookieFor(ctx, tok, now, exp).String())
	return res, nil
}
