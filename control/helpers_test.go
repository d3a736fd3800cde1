package control

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/control/v1/controlv1connect"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/controlclient"
	"github.com/outpost-robotics/outpost/controlwire"
	"github.com/outpost-robotics/outpost/credential"
)

// Small, honest in-memory dependencies: the tests run real rbac, real TLS,
// real HTTP on loopback and real pion peers around them.

type memGrants struct {
	mu sync.Mutex
	b  *syncv1.GrantBundle
}

func (g *memGrants) CurrentGrants(context.Context) (*syncv1.GrantBundle, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.b, nil
}

func (g *memGrants) set(b *syncv1.GrantBundle) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.b = b
}

type memAudit struct {
	mu     sync.Mutex
	events []*syncv1.AuditEvent
	fail   bool
}

func (a *memAudit) Append(_ context.Context, ev *syncv1.AuditEvent) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.fail {
		return errors.New("disk full")
	}
	a.events = append(a.events, ev)
	return nil
}

func (a *memAudit) all() []*syncv1.AuditEvent {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.events)
}

type memCerts struct {
	mu        sync.Mutex
	cert, key []byte
	saves     int
}

func (c *memCerts) LoadCert(context.Context) ([]byte, []byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cert == nil {
		return nil, nil, ErrNoCert
	}
	return c.cert, c.key, nil
}

func (c *memCerts) SaveCert(_ context.Context, cert, key []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cert, c.key = cert, key
	c.saves++
	return nil
}

type fakeRobot struct {
	controlv1connect.UnimplementedComponentServiceHandler
	mu       sync.Mutex
	stops    int
	restarts int
	image    []byte
}

func (r *fakeRobot) ListResources(context.Context, *connect.Request[controlv1.ListResourcesRequest]) (*connect.Response[controlv1.ListResourcesResponse], error) {
	return connect.NewResponse(&controlv1.ListResourcesResponse{Resources: []*controlv1.ResourceStatus{
		{Kind: controlv1.ResourceKind_RESOURCE_KIND_COMPONENT, Name: "arm", State: controlv1.ResourceState_RESOURCE_STATE_RUNNING},
	}}), nil
}

func (r *fakeRobot) GetStatus(_ context.Context, req *connect.Request[controlv1.GetStatusRequest]) (*connect.Response[controlv1.GetStatusResponse], error) {
	st, _ := structpb.NewStruct(map[string]any{"name": req.Msg.GetName(), "ok": true})
	return connect.NewResponse(&controlv1.GetStatusResponse{Status: st}), nil
}

func (r *fakeRobot) DoCommand(_ context.Context, req *connect.Request[controlv1.DoCommandRequest]) (*connect.Response[controlv1.DoCommandResponse], error) {
	return connect.NewResponse(&controlv1.DoCommandResponse{Result: req.Msg.GetCommand()}), nil
}

func (r *fakeRobot) Stop(context.Context, *connect.Request[controlv1.StopRequest]) (*connect.Response[controlv1.StopResponse], error) {
	r.mu.Lock()
	r.stops++
	r.mu.Unlock()
	return connect.NewResponse(&controlv1.StopResponse{}), nil
}

func (r *fakeRobot) SensorReadings(context.Context, *connect.Request[controlv1.SensorReadingsRequest]) (*connect.Response[controlv1.SensorReadingsResponse], error) {
	rd, _ := structpb.NewStruct(map[string]any{"temp": 21.5})
	return connect.NewResponse(&controlv1.SensorReadingsResponse{Readings: rd}), nil
}

func (r *fakeRobot) CameraImage(context.Context, *connect.Request[controlv1.CameraImageRequest]) (*connect.Response[controlv1.CameraImageResponse], error) {
	return connect.NewResponse(&controlv1.CameraImageResponse{Image: r.image, MimeType: "image/jpeg"}), nil
}

// counts returns the stops and restarts so far.
func (r *fakeRobot) counts() (stops, restarts int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stops, r.restarts
}

func (r *fakeRobot) StopAll(context.Context) (map[string]string, error) {
	r.mu.Lock()
	r.stops++
	r.mu.Unlock()
	return nil, nil
}

func (r *fakeRobot) Restart(context.Context) error {
	r.mu.Lock()
	r.restarts++
	r.mu.Unlock()
	return nil
}

type memConfig struct {
	mu        sync.Mutex
	state     ConfigState
	proposals []*syncv1.ConfigProposal
}

func (c *memConfig) CurrentConfig(context.Context) (ConfigState, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state, nil
}

func (c *memConfig) proposal(i int) *syncv1.ConfigProposal {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.proposals[i]
}

func (c *memConfig) ProposeEdit(_ context.Context, p *syncv1.ConfigProposal) (EditResult, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.proposals = append(c.proposals, p)
	res := EditResult{Applied: true, ProposalSeq: uint64(len(c.proposals))}
	if p.GetBaseRevision() != c.state.MachineRevision {
		res.Conflict = fmt.Sprintf("edited from revision %d, the part runs revision %d: the cloud will decide", p.GetBaseRevision(), c.state.MachineRevision)
	}
	c.state.Config, c.state.LocalEdits = p.GetConfig(), true
	return res, nil
}

type memLogs struct {
	mu      sync.Mutex
	entries []*controlv1.LogEntry
	live    chan *controlv1.LogEntry // nil: Follow replays entries and ends
}

func (l *memLogs) Tail(_ context.Context, limit int, _ string) ([]*controlv1.LogEntry, error) {
	return l.entries[max(0, len(l.entries)-limit):], nil
}

func (l *memLogs) setLive(ch chan *controlv1.LogEntry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.live = ch
}

func (l *memLogs) Follow(ctx context.Context, _ string) (<-chan *controlv1.LogEntry, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.live != nil {
		return l.live, nil
	}
	ch := make(chan *controlv1.LogEntry, len(l.entries))
	for _, e := range l.entries {
		ch <- e
	}
	close(ch)
	return ch, nil
}

type memData struct {
	mu        sync.Mutex
	caps      map[uint64]*controlv1.CaptureInfo
	data      map[uint64][]byte
	deletedBy []string // CallerRef of each DeleteCaptures call
	vanish    []uint64 // captures ListCaptures lists and then removes (an upload in between)
}

func (d *memData) ListCaptures(_ context.Context, component string, limit int) ([]*controlv1.CaptureInfo, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []*controlv1.CaptureInfo
	for _, c := range d.caps {
		if component == "" || c.GetComponent() == component {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b *controlv1.CaptureInfo) int { return int(b.GetId()) - int(a.GetId()) })
	for _, id := range d.vanish {
		delete(d.caps, id)
	}
	return out[:min(limit, len(out))], nil
}

func (d *memData) ReadCapture(_ context.Context, id uint64) (*controlv1.CaptureInfo, []byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	c, ok := d.caps[id]
	if !ok {
		return nil, nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("no capture %d", id))
	}
	return c, d.data[id], nil
}

func (d *memData) TagCaptures(_ context.Context, ids []uint64, add, remove []string) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, id := range ids {
		if c, ok := d.caps[id]; ok {
			c.Tags = slices.DeleteFunc(append(c.Tags, add...), func(t string) bool { return slices.Contains(remove, t) })
			n++
		}
	}
	return n, nil
}

func (d *memData) DeleteCaptures(ctx context.Context, ids []uint64) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.deletedBy = append(d.deletedBy, CallerRef(ctx))
	n := 0
	for _, id := range ids {
		if _, ok := d.caps[id]; ok {
			delete(d.caps, id)
			n++
		}
	}
	return n, nil
}

type memStatus struct{}

func (memStatus) SyncStatus(context.Context) (*controlv1.StatusResponse, error) {
	return &controlv1.StatusResponse{PartId: "p1", SyncState: controlv1.SyncState_SYNC_STATE_OFFLINE}, nil
}

// The fixture: org o1 > location l1 > machine m1 with part p1.
const (
	ownerUser = "u0000000000000000000000000000001"
	opUser    = "u0000000000000000000000000000002"
	noneUser  = "u0000000000000000000000000000003"
	ownerKey  = "a0000000000000000000000000000001"
	opKey     = "a0000000000000000000000000000002"
	goneKey   = "a0000000000000000000000000000003"
	tokenKID  = "kid-cloud-1"
)

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

// creds are the fixture's credentials: the cloud's signing key (and a
// stranger's), the API keys' private keys and the users' session key. key
// and token return printed forms (credential.Key.String), which the test
// clients send with proofs for the part.
type creds struct {
	signer, other ed25519.PrivateKey
	keys          map[string]ed25519.PrivateKey
	session       ed25519.PrivateKey
}

func newCreds() *creds {
	c := &creds{signer: credential.NewPrivateKey(), other: credential.NewPrivateKey(), session: credential.NewPrivateKey(),
		keys: map[string]ed25519.PrivateKey{}}
	for _, k := range []string{ownerKey, opKey, goneKey} {
		c.keys[k] = credential.NewPrivateKey()
	}
	return c
}

func (c *creds) key(id string) string { return credential.APIKey(id, c.keys[id]).String() }

// token is a session of user whose token is signed by key under kid.
func (c *creds) token(user, kid string, key ed25519.PrivateKey, now time.Time) string {
	tok, _, err := credential.IssueToken(key, kid, user, c.session.Public().(ed25519.PublicKey), now, 12*time.Hour)
	if err != nil {
		panic(err)
	}
	return credential.Session(tok, c.session).String()
}

func (c *creds) bundle(version uint64, issued time.Time, withoutKeys ...string) *syncv1.GrantBundle {
	b := &syncv1.GrantBundle{
		PartId: "p1", MachineId: "m1", Version: version,
		IssuedAt: timestamppb.New(issued), ExpiresAt: timestamppb.New(issued.Add(60 * 24 * time.Hour)),
		Hierarchy: &syncv1.Hierarchy{
			Orgs:      []string{"o1"},
			Locations: []*syncv1.HierarchyLocation{{Id: "l1", OrgId: "o1"}},
			Machine:   &syncv1.HierarchyMachine{Id: "m1", LocationId: "l1"},
			PartIds:   []string{"p1"},
		},
		TokenKeys: []*syncv1.PublicKey{{KeyId: tokenKID, Ed25519: c.signer.Public().(ed25519.PublicKey)}},
	}
	add := func(kind syncv1.SubjectKind, id string, role syncv1.Role, scope string) {
		if slices.Contains(withoutKeys, id) {
			return
		}
		p := &syncv1.Principal{Kind: kind, Id: id, DisplayName: id, Grants: []*syncv1.Grant{{Role: role, Scope: scope}}}
		if kind == syncv1.SubjectKind_SUBJECT_KIND_API_KEY {
			p.PublicKey = c.keys[id].Public().(ed25519.PublicKey)
		}
		b.Principals = append(b.Principals, p)
	}
	add(syncv1.SubjectKind_SUBJECT_KIND_USER, ownerUser, syncv1.Role_ROLE_OWNER, "org/o1")
	add(syncv1.SubjectKind_SUBJECT_KIND_USER, opUser, syncv1.Role_ROLE_OPERATOR, "location/l1")
	add(syncv1.SubjectKind_SUBJECT_KIND_API_KEY, ownerKey, syncv1.Role_ROLE_OWNER, "machine/m1")
	add(syncv1.SubjectKind_SUBJECT_KIND_API_KEY, opKey, syncv1.Role_ROLE_OPERATOR, "machine/m1")
	return b
}

// env is a running control plane with its dependencies.
type env struct {
	dialer
	clock  *clock.Fake
	creds  *creds
	grants *memGrants
	audit  *memAudit
	certs  *memCerts
	robot  *fakeRobot
	config *memConfig
	logs   *memLogs
	data   *memData
	srv    *Server
}

// dialer is how clients reach a part: its address, the certificate they
// pin, and the time their proofs carry. The part runs in this process
// (env) or in a child process of its own (startPartProcess).
type dialer struct {
	t           testing.TB
	addr        string
	fingerprint string
	now         func() time.Time
	client      *http.Client // pinned TLS, HTTP/2
}

// newDialer returns a dialer for the part at addr whose certificate has
// fingerprint, with proofs made at now's time.
func newDialer(t testing.TB, addr, fingerprint string, now func() time.Time) (dialer, error) {
	tlsConf, err := controlclient.PinnedTLSConfig(fingerprint)
	if err != nil {
		return dialer{}, err
	}
	tr := &http.Transport{TLSClientConfig: tlsConf, ForceAttemptHTTP2: true, MaxIdleConnsPerHost: 200}
	t.Cleanup(tr.CloseIdleConnections)
	return dialer{t: t, addr: addr, fingerprint: fingerprint, now: now, client: &http.Client{Transport: tr}}, nil
}

func newEnv(t testing.TB) *env {
	t.Helper()
	return newEnvOf(t, newCreds(), "p1", nil)
}

// newEnvWith is newEnv with edit applied to the server's options.
func newEnvWith(t testing.TB, edit func(*Options)) *env {
	t.Helper()
	return newEnvOf(t, newCreds(), "p1", edit)
}

// newEnvOf starts a part partID, with its own certificate, whose bundle
// holds c's keys: the fixture's subjects, as another part of the fleet
// knows them; edit, when set, changes the server's options.
func newEnvOf(t testing.TB, c *creds, partID string, edit func(*Options)) *env {
	t.Helper()
	e := &env{dialer: dialer{t: t}, clock: clock.NewFake(t0), creds: c, grants: &memGrants{}, audit: &memAudit{}, certs: &memCerts{},
		robot:  &fakeRobot{image: make([]byte, 300<<10)},
		config: &memConfig{state: ConfigState{Config: &configv1.RobotConfig{}, Version: 7, MachineRevision: 3}},
		logs:   &memLogs{entries: []*controlv1.LogEntry{{Level: "info", Message: "hello"}, {Level: "warn", Message: "careful"}}},
		data: &memData{caps: map[uint64]*controlv1.CaptureInfo{1: {Id: 1, Component: "cam"}, 2: {Id: 2, Component: "cam"}},
			data: map[uint64][]byte{1: []byte("one"), 2: []byte("two")}},
	}
	b := e.creds.bundle(1, t0)
	b.PartId = partID
	e.grants.set(b)
	for i := range e.robot.image {
		e.robot.image[i] = byte(i * 7)
	}
	opts := Options{Clock: e.clock, Version: "test", PartID: partID, Grants: e.grants, Audit: e.audit,
		Certs: e.certs, Robot: e.robot, Config: e.config, Logs: e.logs, Data: e.data, Status: memStatus{}}
	if edit != nil {
		edit(&opts)
	}
	srv, err := New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	srv.rtc.settings = controlwire.LoopbackICE
	e.srv = srv
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		// The part's goroutines (connections, handlers, WebRTC sessions)
		// carry a label, so a CPU profile of a benchmark, whose clients
		// run in the same process, splits the part's share from theirs.
		pprof.Do(ctx, pprof.Labels("side", "part"), func(ctx context.Context) { done <- srv.ServeTLS(ctx, ln) })
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeTLS: %v", err)
		}
		_ = srv.Close()
	})
	if e.dialer, err = newDialer(t, ln.Addr().String(), srv.Fingerprint(), e.clock.Now); err != nil {
		t.Fatal(err)
	}
	return e
}

// clients are typed clients over one transport.
type clients struct {
	control controlv1connect.ControlServiceClient
	comp    controlv1connect.ComponentServiceClient
	sig     controlv1connect.SignalingServiceClient
}

func newClients(hc connect.HTTPClient, base string, opts ...connect.ClientOption) clients {
	return clients{
		control: controlv1connect.NewControlServiceClient(hc, base, opts...),
		comp:    controlv1connect.NewComponentServiceClient(hc, base, opts...),
		sig:     controlv1connect.NewSignalingServiceClient(hc, base, opts...),
	}
}

// authed returns clients presenting auth: a key's printed form, sent with
// proofs for this part as a real client does (credential.Prover), or
// anything else, sent as the Authorization header.
func (d *dialer) authed(hc connect.HTTPClient, base, auth string, opts ...connect.ClientOption) clients {
	return newClients(hc, base, append(opts, connect.WithInterceptors(d.interceptor(hc, base, auth)))...)
}

func (d *dialer) interceptor(hc connect.HTTPClient, base, auth string) connect.Interceptor {
	k, err := credential.ParseKey(auth)
	if err != nil {
		return credential.Bearer{Authorization: auth}
	}
	return credential.NewPartProver(k, d.fingerprint, d.now, controlclient.HealthNonce(hc, base))
}

// headers returns the Authorization and DPoP values a client with the
// printed key auth sends, with a nonce fresh from the part.
func (d *dialer) headers(auth string) (string, string) {
	d.t.Helper()
	k, err := credential.ParseKey(auth)
	if err != nil {
		d.t.Fatal(err)
	}
	nonce, err := controlclient.HealthNonce(d.client, "https://"+d.addr)(context.Background())
	if err != nil {
		d.t.Fatal(err)
	}
	a, proof, err := k.Headers(credential.TLSAudience(d.fingerprint), nonce, d.now())
	if err != nil {
		d.t.Fatal(err)
	}
	return a, proof
}

func (d *dialer) grpc(auth string) clients {
	return d.authed(d.client, "https://"+d.addr, auth, connect.WithGRPC())
}

// webrtc opens a WebRTC session authenticated with auth, over signaling on
// the TLS port.
func (d *dialer) webrtc(ctx context.Context, auth string) (clients, *controlclient.RTCClient, error) {
	c, err := controlclient.DialWebRTCWith(ctx, d.authed(d.client, "https://"+d.addr, auth).sig, nil, controlwire.LoopbackICE)
	if err != nil {
		return clients{}, nil, err
	}
	d.t.Cleanup(func() { _ = c.Close() })
	return newClients(c.HTTPClient(), controlclient.RTCBaseURL), c, nil
}

// socketClient returns clients on a break-glass socket at path.
func socketClient(path string) clients {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}
	return newClients(&http.Client{Transport: tr}, "http://socket")
}

func (e *env) serveSocket() string {
	e.t.Helper()
	path := filepath.Join(e.t.(interface{ TempDir() string }).TempDir(), "control.sock")
	ln, err := ListenSocket(path, "outpost-test-group-that-does-not-exist")
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.srv.ServeSocket(ctx, ln) }()
	e.t.Cleanup(func() { cancel(); <-done })
	return path
}

func newHTTPClientForTest(conf *tls.Config) *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: conf, ForceAttemptHTTP2: true}}
}

// newJSONRequest is a Connect unary call as curl makes it.
func newJSONRequest(url, auth, proof string) (*http.Request, error) {
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader("{}"))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
		req.Header.Set(credential.ProofHeader, proof)
	}
	return req, nil
}

// MotorSetPower accepts any power for any motor.
func (r *fakeRobot) MotorSetPower(context.Context, *connect.Request[controlv1.MotorSetPowerRequest]) (*connect.Response[controlv1.MotorSetPowerResponse], error) {
	return connect.NewResponse(&controlv1.MotorSetPowerResponse{}), nil
}

// twoParts starts one machine's two parts sharing the fixture's grants: a
// main part "rover" (p1) and "camera-pi" (p2), which runs the motor
// "wheel"; each holds the same signed document's list of parts, with the
// other's pin and address.
func twoParts(t testing.TB) (mainPart, second *env) {
	t.Helper()
	c := newCreds()
	mainPart, second = newEnvOf(t, c, "p1", nil), newEnvOf(t, c, "p2", nil)
	parts := []*configv1.MachinePart{
		{Id: "p1", Name: "rover", Main: true, Fingerprint: mainPart.srv.Fingerprint(), Addresses: []string{mainPart.addr}},
		{Id: "p2", Name: "camera-pi", Fingerprint: second.srv.Fingerprint(), Addresses: []string{second.addr},
			Components: []*configv1.PlacedComponent{{Name: "wheel"}}},
	}
	for _, e := range []*env{mainPart, second} {
		e.config.mu.Lock()
		e.config.state.Parts = parts
		e.config.mu.Unlock()
	}
	return mainPart, second
}
