package web_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/control/v1/controlv1connect"
	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1/fleetv1connect"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1/syncv1connect"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/cloud/relay"
	"github.com/outpost-robotics/outpost/cloudsync"
	"github.com/outpost-robotics/outpost/control"
	"github.com/outpost-robotics/outpost/controlwire"
	"github.com/outpost-robotics/outpost/credential"
	"github.com/outpost-robotics/outpost/robot"
	"github.com/outpost-robotics/outpost/robot/builtin"
	"github.com/outpost-robotics/outpost/robot/component"
	"github.com/outpost-robotics/outpost/web"
	"github.com/outpost-robotics/outpost/webtest"
)

// chromium is the test binary's browser, started by the first test that
// opens a tab.
var chromium = webtest.New()

func TestMain(m *testing.M) { os.Exit(chromium.Run(m)) }

// hostile is markup a server string might carry: shown as text, it is
// harmless; parsed, it would run.
const hostile = `<img src=x onerror="globalThis.pwned=1">`

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

// The part's fixture: machine m1 with part p1 in location l1 of org o1.
// The owner's key owns the machine; the operator's key operates it and is
// named with markup.
const (
	ownerKey    = "a0000000000000000000000000000001"
	operatorKey = "a0000000000000000000000000000002"
	cloudKID    = "kid-cloud"
)

// cloudKey is the stand-in cloud's signing key, which the part's bundle
// holds: the relay's assertions are signed with it.
var cloudKey = credential.NewPrivateKey()

func bundle() *syncv1.GrantBundle {
	return &syncv1.GrantBundle{
		PartId: "p1", MachineId: "m1", Version: 1,
		IssuedAt: timestamppb.New(t0), ExpiresAt: timestamppb.New(t0.Add(60 * 24 * time.Hour)),
		Hierarchy: &syncv1.Hierarchy{
			Orgs:      []string{"o1"},
			Locations: []*syncv1.HierarchyLocation{{Id: "l1", OrgId: "o1"}},
			Machine:   &syncv1.HierarchyMachine{Id: "m1", LocationId: "l1"},
			PartIds:   []string{"p1"},
		},
		Principals: []*syncv1.Principal{{
			Kind: syncv1.SubjectKind_SUBJECT_KIND_API_KEY, Id: ownerKey, DisplayName: "owner's key",
			Grants: []*syncv1.Grant{{Role: syncv1.Role_ROLE_OWNER, Scope: "machine/m1"}},
		}, {
			Kind: syncv1.SubjectKind_SUBJECT_KIND_API_KEY, Id: operatorKey, DisplayName: hostile,
			Grants: []*syncv1.Grant{{Role: syncv1.Role_ROLE_OPERATOR, Scope: "machine/m1"}},
		}},
		TokenKeys: []*syncv1.PublicKey{{KeyId: cloudKID, Ed25519: cloudKey.Public().(ed25519.PublicKey)}},
	}
}

// The part's stores: in memory, honest. Grants, audit and logs matter here.
type partGrants struct{}

func (partGrants) CurrentGrants(context.Context) (*syncv1.GrantBundle, error) { return bundle(), nil }

type partAudit struct {
	mu     sync.Mutex
	events []*syncv1.AuditEvent
}

func (a *partAudit) Append(_ context.Context, ev *syncv1.AuditEvent) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events = append(a.events, ev)
	return nil
}

func (a *partAudit) all() []*syncv1.AuditEvent {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]*syncv1.AuditEvent(nil), a.events...)
}

type partCerts struct {
	mu        sync.Mutex
	cert, key []byte
}

func (c *partCerts) LoadCert(context.Context) ([]byte, []byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cert == nil {
		return nil, nil, control.ErrNoCert
	}
	return c.cert, c.key, nil
}

func (c *partCerts) SaveCert(_ context.Context, cert, key []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cert, c.key = cert, key
	return nil
}

type partConfig struct{}

func (partConfig) CurrentConfig(context.Context) (control.ConfigState, error) {
	return control.ConfigState{}, nil
}

func (partConfig) ProposeEdit(context.Context, *syncv1.ConfigProposal) (control.EditResult, error) {
	return control.EditResult{}, errors.New("not in this test")
}

// partLogs holds three entries; Follow sends them and ends.
type partLogs struct{}

func logEntries() []*controlv1.LogEntry {
	return []*controlv1.LogEntry{
		{Time: timestamppb.New(t0), Level: "info", Logger: "robot", Message: "motor built"},
		{Time: timestamppb.New(t0.Add(time.Second)), Level: "warn", Logger: "sync", Message: hostile},
		{Time: timestamppb.New(t0.Add(2 * time.Second)), Level: "error", Logger: "robot", Message: "third"},
	}
}

func (partLogs) Tail(context.Context, int, string) ([]*controlv1.LogEntry, error) {
	return logEntries(), nil
}

func (partLogs) Follow(context.Context, string) (<-chan *controlv1.LogEntry, error) {
	es := logEntries()
	ch := make(chan *controlv1.LogEntry, len(es))
	for _, e := range es {
		ch <- e
	}
	close(ch)
	return ch, nil
}

type partData struct{}

func (partData) ListCaptures(context.Context, string, int) ([]*controlv1.CaptureInfo, error) {
	return nil, nil
}

func (partData) ReadCapture(context.Context, uint64) (*controlv1.CaptureInfo, []byte, error) {
	return nil, nil, errors.New("not in this test")
}

func (partData) TagCaptures(context.Context, []uint64, []string, []string) (int, error) {
	return 0, nil
}

func (partData) DeleteCaptures(context.Context, []uint64) (int, error) { return 0, nil }

type partStatus struct{}

func (partStatus) SyncStatus(context.Context) (*controlv1.StatusResponse, error) {
	return &controlv1.StatusResponse{PartId: "p1", MachineId: "m1", Version: "test", SyncState: controlv1.SyncState_SYNC_STATE_ONLINE}, nil
}

// brokerSync is the part's sync client for the relay's two calls, going
// straight to the broker instead of over the cloud's part sync API (whose
// own tests cover that hop): the part takes offers and answers them as it
// does in production, through cloudsync.Relay.
type brokerSync struct {
	syncv1connect.SyncServiceClient
	b      *relay.Broker
	partID string
}

func (s brokerSync) NextOffer(ctx context.Context, req *connect.Request[syncv1.NextOfferRequest]) (*connect.Response[syncv1.NextOfferResponse], error) {
	resp, err := s.b.NextOffer(ctx, s.partID, req.Msg)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(resp), nil
}

func (s brokerSync) AnswerOffer(ctx context.Context, req *connect.Request[syncv1.AnswerOfferRequest]) (*connect.Response[syncv1.AnswerOfferResponse], error) {
	resp, err := s.b.AnswerOffer(ctx, s.partID, req.Msg)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(resp), nil
}

// gate stands in for the cloud's authz interceptor in front of
// RelayService: "Authorization: Test owner" (or operator) is that key's
// caller; anything else is refused. The real interceptor authenticates a
// session and requires machine.control on the part.
type gate struct{}

type subjectKey struct{}

var gateSubjects = map[string]string{
	"Test owner": "apikey/" + ownerKey, "Test operator": "apikey/" + operatorKey,
	// A key the cloud vouches for that the part's bundle does not hold yet.
	"Test stranger": "apikey/a0000000000000000000000000000009",
}

func (gate) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		sub, ok := gateSubjects[req.Header().Get("Authorization")]
		if !ok {
			return nil, connect.NewError(connect.CodeUnauthenticated, errors.New("sign in first"))
		}
		return next(context.WithValue(ctx, subjectKey{}, sub), req)
	}
}

func (gate) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (gate) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// authStub answers the sign-in form: a right password signs in (as the
// email given, markup and all), a wrong one is refused with the cloud's
// words.
type authStub struct {
	fleetv1connect.UnimplementedAuthServiceHandler
}

// wrongPassword is the stub's refusal; it carries markup to prove the page
// shows a refusal as text.
const wrongPassword = "email or password is wrong <b>" + hostile + "</b>"

func (authStub) SignIn(_ context.Context, req *connect.Request[fleetv1.SignInRequest]) (*connect.Response[fleetv1.SignInResponse], error) {
	if req.Msg.GetPassword() != "correct horse battery" {
		return nil, connect.NewError(connect.CodeUnauthenticated, errors.New(wrongPassword))
	}
	return connect.NewResponse(&fleetv1.SignInResponse{AccessToken: "t", User: &fleetv1.User{Id: "u1", Email: req.Msg.GetEmail()}}), nil
}

// controlStub is a ControlService with canned answers, served at /stub/ for
// the Connect client's tests over plain HTTP: the real control plane needs
// proofs of possession the page does not make yet.
type controlStub struct {
	controlv1connect.UnimplementedControlServiceHandler
}

func (controlStub) WhoAmI(context.Context, *connect.Request[controlv1.WhoAmIRequest]) (*connect.Response[controlv1.WhoAmIResponse], error) {
	return connect.NewResponse(&controlv1.WhoAmIResponse{Subject: "apikey/x", DisplayName: hostile, Role: "operator", GrantsVersion: 1 << 60}), nil
}

func (controlStub) GetConfig(context.Context, *connect.Request[controlv1.GetConfigRequest]) (*connect.Response[controlv1.GetConfigResponse], error) {
	return nil, connect.NewError(connect.CodePermissionDenied, errors.New(`operator of machine/m1 may not machine.view: an operator can see and use only the CONTROL tab`))
}

// FollowLogs sends the request's level back in n entries, then fails.
func (controlStub) FollowLogs(_ context.Context, req *connect.Request[controlv1.FollowLogsRequest], stream *connect.ServerStream[controlv1.FollowLogsResponse]) error {
	for i := range 3 {
		if err := stream.Send(&controlv1.FollowLogsResponse{Entry: &controlv1.LogEntry{Level: req.Msg.GetMinLevel(), Message: fmt.Sprint("entry ", i)}}); err != nil {
			return err
		}
	}
	return connect.NewError(connect.CodeUnavailable, errors.New("the log stream ended: the part is restarting"))
}

// TailLogs answers with one large entry, for messages over one frame.
func (controlStub) TailLogs(_ context.Context, req *connect.Request[controlv1.TailLogsRequest]) (*connect.Response[controlv1.TailLogsResponse], error) {
	big := make([]byte, int(req.Msg.GetLimit()))
	for i := range big {
		big[i] = 'a' + byte(i%26)
	}
	return connect.NewResponse(&controlv1.TailLogsResponse{Entries: []*controlv1.LogEntry{{Message: string(big)}}}), nil
}

// env is one test's servers on loopback: the front end, a part's real
// control plane (its TLS-port handler, and WebRTC sessions relayed through
// a real relay broker), a stand-in sign-in and the stub ControlService.
type env struct {
	url   string
	web   *web.Handler
	robot *robot.Robot
	audit *partAudit
	part  *control.Server
}

func newEnv(t *testing.T, cfg web.Config) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	clk := clock.NewFake(t0)

	reg := component.NewRegistry()
	if err := builtin.Register(reg, builtin.Options{Clock: clock.NewReal()}); err != nil {
		t.Fatal(err)
	}
	rob, err := robot.New(robot.Options{Clock: clock.NewReal(), Registry: reg, SocketDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rob.Close(context.Background()) })
	if _, err := rob.Apply(ctx, &configv1.RobotConfig{Components: []*configv1.Component{
		{Name: "motor", Type: component.TypeMotor, Model: "fake"},
	}}); err != nil {
		t.Fatal(err)
	}

	audit := &partAudit{}
	part, err := control.New(ctx, control.Options{
		Clock: clk, WebRTCSettings: controlwire.LoopbackICE, Version: "test", PartID: "p1", Grants: partGrants{}, Audit: audit,
		Certs: &partCerts{}, Robot: rob, Config: partConfig{}, Logs: partLogs{}, Data: partData{}, Status: partStatus{},
	})
	if err != nil {
		t.Fatal(err)
	}
	broker := relay.NewBroker(relay.Options{Clock: clk})
	rel, err := cloudsync.NewRelay(cloudsync.RelayOptions{Client: brokerSync{b: broker, partID: "p1"}, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- part.ServeRelay(ctx, rel) }()
	t.Cleanup(func() {
		cancel()
		broker.Close()
		if err := <-done; err != nil {
			t.Errorf("ServeRelay: %v", err)
		}
		_ = part.Close()
	})

	if cfg.Fingerprint == "" && cfg.App == web.AppConsole {
		cfg.Fingerprint = part.Fingerprint()
	}
	h, err := web.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/", h)
	// The part's own API, as its TLS port serves it.
	mux.Handle("/"+controlv1connect.ControlServiceName+"/", part.Handler())
	mux.Handle(fleetv1connect.NewRelayServiceHandler(relay.NewService(broker, relay.ServiceOptions{
		Assert: func(ctx context.Context, partID, sdp string) (string, error) {
			sub, _ := ctx.Value(subjectKey{}).(string)
			return credential.SignAssertion(cloudKey, cloudKID, sub, partID, sdp, clk.Now())
		},
	}), connect.WithInterceptors(gate{})))
	mux.Handle(fleetv1connect.NewAuthServiceHandler(authStub{}))
	stubPath, stub := controlv1connect.NewControlServiceHandler(controlStub{})
	mux.Handle("/stub"+stubPath, http.StripPrefix("/stub", stub))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &env{url: srv.URL, web: h, robot: rob, audit: audit, part: part}
}

// asset returns the URL of one of the front end's files.
func (e *env) asset(t *testing.T, name string) string {
	t.Helper()
	u, ok := e.web.AssetURL(name)
	if !ok {
		t.Fatalf("no asset %s", name)
	}
	return u
}

// script wraps body (JavaScript with await, ending in a return) so that it
// runs with the modules connect, rtc, wire and dom imported from the page's
// own origin.
func (e *env) script(t *testing.T, body string) string {
	t.Helper()
	return fmt.Sprintf(`(async () => {
  const connect = await import(%q);
  const rtc = await import(%q);
  const wire = await import(%q);
  const dom = await import(%q);
  %s
})()`, e.asset(t, "js/connect.js"), e.asset(t, "js/rtc.js"), e.asset(t, "js/wire.js"), e.asset(t, "js/dom.js"), body)
}
