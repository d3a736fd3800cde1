package cloud

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1/fleetv1connect"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/cloud/ingest"
	"github.com/outpost-robotics/outpost/cloud/ingest/badgeringest"
	"github.com/outpost-robotics/outpost/cloud/mailtest"
	"github.com/outpost-robotics/outpost/cloud/partsync"
	"github.com/outpost-robotics/outpost/cloud/store"
	"github.com/outpost-robotics/outpost/cloud/store/badgerstore"
	"github.com/outpost-robotics/outpost/credential"
	"github.com/outpost-robotics/outpost/netlimit"
)

// logs collects every log line of every server the tests start, and secrets
// every credential the tests saw; TestMain fails the run if a log line holds one.
var logs = &lockedBuffer{}
var secrets = &secretSet{}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) Sync() error { return nil }

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type secretSet struct {
	mu sync.Mutex
	m  map[string]bool
}

// add records a secret; short strings are skipped, they would match by chance.
func (s *secretSet) add(vals ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]bool{}
	}
	for _, v := range vals {
		if len(v) >= 12 {
			s.m[v] = true
		}
	}
}

func (s *secretSet) all() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for v := range s.m {
		out = append(out, v)
	}
	return out
}

func TestMain(m *testing.M) {
	code := m.Run()
	text := logs.String()
	leaked := 0
	for _, s := range secrets.all() {
		if strings.Contains(text, s) {
			fmt.Fprintf(os.Stderr, "a secret (%d bytes, starting %.4q) appears in the server logs\n", len(s), s)
			leaked++
		}
	}
	if code == 0 && leaked > 0 {
		code = 1
	}
	if code == 0 && loggedServers.Load() && !strings.Contains(text, `"procedure"`) {
		fmt.Fprintln(os.Stderr, "the log check saw no server log lines: it checked nothing")
		code = 1
	}
	os.Exit(code)
}

func testLogger() *zap.Logger {
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	return zap.New(zapcore.NewCore(enc, logs, zap.DebugLevel))
}

// env is a real server on loopback over an in-memory store.
type env struct {
	t          testing.TB
	url        string
	st         store.Store
	clk        *clock.Fake
	srv        *Server
	adminToken string
	ingest     ingest.Store
	blobs      ingest.BlobStore
	// mail is the SMTP relay invitations go through.
	mail *mailtest.Server
}

// inviteCode waits for the n-th (from 0) invitation mail to rcpt and
// returns its code.
func (e *env) inviteCode(t testing.TB, rcpt string, n int) string {
	t.Helper()
	m := e.mail.Wait(t, rcpt, n)
	_, rest, ok := strings.Cut(m.Data, "Code: ")
	code, _, _ := strings.Cut(rest, "\r\n")
	if !ok || len(code) != 43 {
		t.Fatalf("invitation mail to %s without a code:\n%s", rcpt, m.Data)
	}
	secrets.add(code)
	return code
}

var epoch = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func newEnv(t testing.TB) *env {
	loggedServers.Store(true)
	return newEnvLog(t, testLogger())
}

// loggedServers says a server logged into logs, so the log check had something to check.
var loggedServers atomic.Bool

// newEnvLog starts a server logging to log.
func newEnvLog(t testing.TB, log *zap.Logger) *env {
	t.Helper()
	return newEnvLimits(t, log, Limits())
}

// newEnvLimits starts a server logging to log, serving within lim.
func newEnvLimits(t testing.TB, log *zap.Logger, lim netlimit.Limits) *env {
	t.Helper()
	st, err := badgerstore.Open("", log)
	if err != nil {
		t.Fatal(err)
	}
	clk := clock.NewFake(epoch)
	dir := t.TempDir()
	signer, _, err := Bootstrap(context.Background(), st, dir, clk, log)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := os.ReadFile(dir + "/" + AdminTokenFile)
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := ingest.NewFileBlobStore(dir + "/blobs")
	if err != nil {
		t.Fatal(err)
	}
	ing, err := badgeringest.Open(badgeringest.Options{Dir: dir + "/ingest", Blobs: blobs})
	if err != nil {
		t.Fatal(err)
	}
	mail := mailtest.New(t)
	secrets.add(mail.Password)
	mailer, err := NewSMTPMailer(SMTPConfig{Host: mail.Host, Port: mail.Port, From: "outpost@example.com",
		Username: mail.Username, Password: mail.Password, TLSConfig: mail.TLSConfig})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{Store: st, Signer: signer, Clock: clk, Log: log, Ingest: ing, Blobs: blobs,
		Sync: partsync.Options{AuthFailureBurst: 1000}, Mailer: mailer})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeLimited(ctx, ln, srv.Handler(), "", "", lim, log) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		if err := st.Close(); err != nil {
			t.Error(err)
		}
		if err := ing.Close(); err != nil {
			t.Error(err)
		}
	})
	e := &env{t: t, url: "http://" + ln.Addr().String(), st: st, clk: clk, srv: srv, adminToken: strings.TrimSpace(string(tok)),
		ingest: ing, blobs: blobs, mail: mail}
	secrets.add(e.adminToken)
	return e
}

// clients are the fleet API's generated clients, sending one credential.
type clients struct {
	server fleetv1connect.ServerServiceClient
	auth   fleetv1connect.AuthServiceClient
	org    fleetv1connect.OrgServiceClient
	loc    fleetv1connect.LocationServiceClient
	mach   fleetv1connect.MachineServiceClient
	user   fleetv1connect.UserServiceClient
	key    fleetv1connect.APIKeyServiceClient
	role   fleetv1connect.RoleServiceClient
	access fleetv1connect.AccessServiceClient
	audit  fleetv1connect.AuditServiceClient
	config fleetv1connect.ConfigServiceClient
	frag   fleetv1connect.FragmentServiceClient
	data   fleetv1connect.DataServiceClient
	relay  fleetv1connect.RelayServiceClient
}

// bearer authenticates calls with token: a printed key ("opk_..." or
// "ops_...") proves possession for the cloud, on the cloud's clock, as a
// real client does; anything else is sent as the Authorization header.
func (e *env) bearer(token string) connect.Interceptor {
	if k, err := credential.ParseKey(token); err == nil {
		now := time.Now
		if e.clk != nil {
			now = e.clk.Now
		}
		return credential.NewCloudProver(k, now)
	}
	return connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			if token != "" {
				req.Header().Set("Authorization", token)
			}
			return next(ctx, req)
		}
	})
}

func (e *env) client(token string, opts ...connect.ClientOption) *clients {
	hc := http.DefaultClient
	opts = append(opts, connect.WithInterceptors(e.bearer(token)))
	return &clients{
		server: fleetv1connect.NewServerServiceClient(hc, e.url, opts...),
		auth:   fleetv1connect.NewAuthServiceClient(hc, e.url, opts...),
		org:    fleetv1connect.NewOrgServiceClient(hc, e.url, opts...),
		loc:    fleetv1connect.NewLocationServiceClient(hc, e.url, opts...),
		mach:   fleetv1connect.NewMachineServiceClient(hc, e.url, opts...),
		user:   fleetv1connect.NewUserServiceClient(hc, e.url, opts...),
		key:    fleetv1connect.NewAPIKeyServiceClient(hc, e.url, opts...),
		role:   fleetv1connect.NewRoleServiceClient(hc, e.url, opts...),
		access: fleetv1connect.NewAccessServiceClient(hc, e.url, opts...),
		audit:  fleetv1connect.NewAuditServiceClient(hc, e.url, opts...),
		config: fleetv1connect.NewConfigServiceClient(hc, e.url, opts...),
		frag:   fleetv1connect.NewFragmentServiceClient(hc, e.url, opts...),
		data:   fleetv1connect.NewDataServiceClient(hc, e.url, opts...),
		relay:  fleetv1connect.NewRelayServiceClient(hc, e.url, opts...),
	}
}

// sessionKey is the session key the tests sign in with; session makes the
// printed session of a token bound to it.
var (
	sessionKey = credential.NewPrivateKey()
	sessionPub = sessionKey.Public().(ed25519.PublicKey)
)

func session(token string) string { return credential.Session(token, sessionKey).String() }

// token makes a session for a user directly, as SignIn would: a session
// key and a token bound to it, in the printed form.
func (e *env) token(userID string) string {
	sk := credential.NewPrivateKey()
	tok, _, err := e.srv.signer.Issue(userID, sk.Public().(ed25519.PublicKey), e.clk.Now(), 0)
	if err != nil {
		e.t.Fatal(err)
	}
	s := credential.Session(tok, sk).String()
	secrets.add(s, s[:4+43])
	return s
}

// adminID is the user ID of the cloud's admin.
func (e *env) adminID() string {
	k, err := credential.ParseKey(e.adminToken)
	if err != nil {
		e.t.Fatal(err)
	}
	c, err := e.srv.signer.Verify(k.Token, e.clk.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	return c.Subject
}

func (e *env) update(fn func(ctx context.Context, tx store.Tx) error) {
	e.t.Helper()
	ctx := context.Background()
	if err := e.st.Update(ctx, func(tx store.Tx) error { return fn(ctx, tx) }); err != nil {
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
