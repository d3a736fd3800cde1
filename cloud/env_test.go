package cloud_test

import (
	"context"
	"crypto/ed25519"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/cloud/cloudtest"
	"github.com/outpost-robotics/outpost/cloud/store"
	"github.com/outpost-robotics/outpost/credential"
)

// env is a real cloud on loopback (cloudtest) on a fake clock, with the
// admin's session at hand. Every credential the tests come by is
// remembered; the test fails if the cloud's log holds one.
type env struct {
	*cloudtest.Cloud
	t   testing.TB
	clk *clock.Fake
	// adminToken is a session of the cloud's admin, as `outpost login`
	// prints it.
	adminToken string
}

var epoch = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func newEnv(t testing.TB) *env { return newEnvWith(t, cloudtest.Options{}) }

// newEnvWith starts a cloud with opts on a fake clock at epoch. Its part
// sync API lets failed authentications go on, as the tests make many on
// purpose from one address.
func newEnvWith(t testing.TB, opts cloudtest.Options) *env {
	t.Helper()
	clk := clock.NewFake(epoch)
	opts.Clock = clk
	opts.Sync.AuthFailureBurst = 1000
	cl := cloudtest.New(t, opts)
	return &env{Cloud: cl, t: t, clk: clk, adminToken: cl.AdminToken(t)}
}

// inviteCode waits for the n-th (from 0) invitation mail to rcpt and
// returns its code.
func (e *env) inviteCode(t testing.TB, rcpt string, n int) string {
	t.Helper()
	m := e.Mail.Wait(t, rcpt, n)
	_, rest, ok := strings.Cut(m.Data, "Code: ")
	code, _, _ := strings.Cut(rest, "\r\n")
	if !ok || len(code) != 43 {
		t.Fatalf("invitation mail to %s without a code:\n%s", rcpt, m.Data)
	}
	e.Remember(code)
	return code
}

// client returns the fleet API's clients presenting token: a printed key
// ("opk_..." or "ops_...") proves possession on the cloud's clock, as a
// real client does; anything else is sent as the Authorization header,
// and "" sends none.
func (e *env) client(token string) *cloudtest.Clients { return e.As(token) }

// sessionKey is the session key the tests sign in with; session makes the
// printed session of a token bound to it.
var (
	sessionKey = credential.NewPrivateKey()
	sessionPub = sessionKey.Public().(ed25519.PublicKey)
)

func session(token string) string { return credential.Session(token, sessionKey).String() }

// token makes a session for a user directly, as SignIn would: a session
// key and a token bound to it, in the printed form.
func (e *env) token(userID string) string { return e.UserSession(e.t, userID) }

// update writes fixtures straight into the cloud's fleet store.
func (e *env) update(fn func(ctx context.Context, tx store.Tx) error) {
	e.t.Helper()
	ctx := context.Background()
	if err := e.Store().Update(ctx, func(tx store.Tx) error { return fn(ctx, tx) }); err != nil {
		e.t.Fatal(err)
	}
}

// check(call(...))(t) fails the test on an error and returns the response.
func check[T any](res *connect.Response[T], err error) func(testing.TB) *T {
	return func(t testing.TB) *T {
		t.Helper()
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return res.Msg
	}
}

// wantCode fails unless err has code.
func wantCode(t testing.TB, err error, code connect.Code, contains string) {
	t.Helper()
	if err == nil {
		t.Fatalf("succeeded, want %v", code)
	}
	if connect.CodeOf(err) != code {
		t.Fatalf("got %v, want %v", err, code)
	}
	if !strings.Contains(err.Error(), contains) {
		t.Fatalf("error %q does not say %q", err, contains)
	}
}
