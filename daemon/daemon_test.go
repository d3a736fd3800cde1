package daemon

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/control/v1/controlv1connect"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/cache"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/partfile"
	"github.com/outpost-robotics/outpost/signed"
)

var epoch = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

// part is a provisioned part on disk: a bootstrap file trusting signer, a
// data folder, a runtime folder, and a cloud that answers every call with
// 401 at once (so sync fails fast and never retries).
type part struct {
	Dir, BootPath, DataDir, RunDir string
	signer                         signed.Signer
}

func newPart(t testing.TB) *part {
	t.Helper()
	cloud := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, `{"code":"unauthenticated","message":"test cloud refuses"}`, http.StatusUnauthorized)
	}))
	t.Cleanup(cloud.Close)
	return newPartOf(t, cloud.URL)
}

// secret is the test part's secret in its bootstrap file.
const secret = "s3cr3t-0123456789abcdef0123456789abcdef"

// newPartOf is newPart with a cloud of the test's own.
func newPartOf(t testing.TB, cloudURL string) *part {
	t.Helper()
	dir := t.TempDir()
	p := &part{Dir: dir, BootPath: filepath.Join(dir, "outpostd.json"), DataDir: filepath.Join(dir, "data"), RunDir: filepath.Join(dir, "run"),
		signer: signed.Signer{KeyID: "k1", Key: ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))}}
	pub := base64.StdEncoding.EncodeToString(p.signer.Key.Public().(ed25519.PublicKey))
	boot := `{"cloudUrl": "` + cloudURL + `", "partId": "part-1", "partSecret": "` + secret + `",
  "cloudKeys": [{"keyId": "k1", "ed25519": "` + pub + `"}]}`
	if err := os.WriteFile(p.BootPath, []byte(boot), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// hold stores a signed config (and grants) as an earlier sync would have,
// and the offline clock of a part that last saw the cloud at now.
func (p *part) hold(t testing.TB, now time.Time, cfg *configv1.RobotConfig) {
	t.Helper()
	p.holdFor(t, now, 60*24*time.Hour, cfg)
}

// holdFor is hold with documents valid for ttl from now.
func (p *part) holdFor(t testing.TB, now time.Time, ttl time.Duration, cfg *configv1.RobotConfig) {
	t.Helper()
	ctx := context.Background()
	st, err := cache.Open(ctx, filepath.Join(p.DataDir, "store"), cache.Options{Clock: clock.NewFake(now), GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	put := func(kind cache.Kind, m proto.Message) {
		doc, err := p.signer.Sign(m)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := proto.Marshal(doc)
		if err := st.PutDocument(ctx, kind, cache.Document{Raw: raw, Version: 1, FetchedAt: now}); err != nil {
			t.Fatal(err)
		}
	}
	exp := timestamppb.New(now.Add(ttl))
	put(cache.KindConfig, &syncv1.ConfigDocument{PartId: "part-1", Version: 1, IssuedAt: timestamppb.New(now), ExpiresAt: exp, Config: cfg, MachineRevision: 3})
	put(cache.KindGrants, &syncv1.GrantBundle{PartId: "part-1", MachineId: "m-1", Version: 1, IssuedAt: timestamppb.New(now), ExpiresAt: exp,
		Hierarchy: &syncv1.Hierarchy{Orgs: []string{"o-1"}, Locations: []*syncv1.HierarchyLocation{{Id: "l-1", OrgId: "o-1"}},
			Machine: &syncv1.HierarchyMachine{Id: "m-1", LocationId: "l-1"}, PartIds: []string{"part-1"}}})
	if err := st.PutOfflineClock(ctx, cache.OfflineClock{LastCloudTime: now}); err != nil {
		t.Fatal(err)
	}
}

// notifySocket is a fake NOTIFY_SOCKET, as systemd provides one.
func notifySocket(t *testing.T) *net.UnixConn {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	return c
}

// next returns the next message on the socket; the deadline only guards
// against a hung test, nothing waits for it to pass.
func next(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 4096)
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no notify message: %v", err)
	}
	return string(buf[:n])
}

// expect reads messages until one starts with prefix, returning those before.
func expect(t *testing.T, c *net.UnixConn, prefix string) []string {
	t.Helper()
	var before []string
	for {
		m := next(t, c)
		if strings.HasPrefix(m, prefix) {
			return before
		}
		before = append(before, m)
	}
}

// pending returns the messages already queued on the socket, without waiting.
func pending(c *net.UnixConn) []string {
	var out []string
	buf := make([]byte, 4096)
	for {
		_ = c.SetReadDeadline(time.Now())
		n, err := c.Read(buf)
		if err != nil {
			return out
		}
		out = append(out, string(buf[:n]))
	}
}

// syncBuffer is a log writer safe for the daemon's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type running struct {
	sig    chan os.Signal
	errc   chan error
	ready  chan Endpoints
	stderr *syncBuffer
}

// run starts the daemon in-process on p; edit adjusts its options.
func run(t *testing.T, p *part, clk clock.Clock, edit func(*Options)) *running {
	t.Helper()
	r := &running{sig: make(chan os.Signal, 1), errc: make(chan error, 1), ready: make(chan Endpoints, 1), stderr: &syncBuffer{}}
	o := Options{
		ConfigPath: p.BootPath, DataDir: p.DataDir, RuntimeDir: p.RunDir, Listen: "127.0.0.1:0", MetricsListen: "127.0.0.1:0",
		Clock: clk, Stderr: r.stderr, Signals: r.sig, LogFormat: "json",
		OnReady: func(e Endpoints) { r.ready <- e },
	}
	if edit != nil {
		edit(&o)
	}
	go func() { r.errc <- Run(context.Background(), o) }()
	t.Cleanup(func() {
		select {
		case r.sig <- syscall.SIGTERM:
		default:
		}
		if err := <-r.errc; err != nil && !t.Failed() {
			t.Errorf("Run: %v", err)
		}
		r.errc <- nil
	})
	return r
}

// stop sends SIGTERM and returns Run's result.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.sig <- syscall.SIGTERM
	err := <-r.errc
	r.errc <- nil // for the cleanup
	return err
}

func sensorConfig(hz float64, sensors ...string) *configv1.RobotConfig {
	cfg := &configv1.RobotConfig{LogLevel: "info"}
	for _, s := range sensors {
		cfg.Components = append(cfg.Components, &configv1.Component{Name: s, Type: configv1.ComponentType_COMPONENT_TYPE_SENSOR, Model: "fake"})
		cfg.Captures = append(cfg.Captures, &configv1.CaptureMethod{Component: s, Method: "readings", FrequencyHz: hz, Priority: 5})
	}
	return cfg
}

// socketClient talks to the break-glass socket, as `outpost doctor` does.
func socketClient(path string) *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", path)
	}}}
}

func TestNotifyProtocol(t *testing.T) {
	ns := notifySocket(t)
	t.Setenv("WATCHDOG_USEC", "2000000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	p := newPart(t)
	clk := clock.NewFake(epoch)
	wedged := make(chan struct{})
	release := make(chan struct{})
	var wedge sync.Once
	var wedging bool
	var mu sync.Mutex
	r := run(t, p, clk, func(o *Options) {
		o.beforeWatchdog = func() {
			mu.Lock()
			w := wedging
			mu.Unlock()
			if w {
				wedge.Do(func() { close(wedged); <-release })
			}
		}
	})

	// READY=1 is the first message, and by then the control port listens.
	if m := next(t, ns); !strings.HasPrefix(m, "READY=1\n") {
		t.Fatalf("first message %q, want READY=1", m)
	}
	ep := <-r.ready
	conn, err := net.Dial("tcp", ep.Control)
	if err != nil {
		t.Fatalf("READY sent but the control port does not listen: %v", err)
	}
	conn.Close()

	// The main loop pings at half of WatchdogSec.
	clk.Advance(time.Second)
	expect(t, ns, "WATCHDOG=1")

	// Wedge the loop: however much time passes, no ping is sent.
	mu.Lock()
	wedging = true
	mu.Unlock()
	clk.Advance(time.Second)
	<-wedged
	pending(ns) // what the loop sent before it wedged
	for range 5 {
		clk.Advance(time.Second)
	}
	for _, m := range pending(ns) {
		if strings.Contains(m, "WATCHDOG=1") {
			t.Fatalf("watchdog pinged while the main loop was wedged: %q", m)
		}
	}
	close(release)
	clk.Advance(time.Second)
	expect(t, ns, "WATCHDOG=1")

	// SIGTERM: STOPPING=1, then a clean exit.
	r.sig <- syscall.SIGTERM
	expect(t, ns, "STOPPING=1")
	if err := <-r.errc; err != nil {
		t.Fatalf("Run after SIGTERM: %v", err)
	}
	r.errc <- nil
}

func TestStartsOfflineWithCachedConfig(t *testing.T) {
	ns := notifySocket(t)
	p := newPart(t)
	p.hold(t, epoch, sensorConfig(1, "sensor1"))
	applied := make(chan error, 1)
	r := run(t, p, clock.NewFake(epoch.Add(time.Hour)), func(o *Options) {
		o.afterApply = func(source string, err error) {
			if source == "cache" {
				applied <- err
			}
		}
	})
	expect(t, ns, "READY=1")
	ep := <-r.ready
	if err := <-applied; err != nil {
		t.Fatalf("cached config not applied: %v", err)
	}

	ctx := context.Background()
	hc := socketClient(ep.Socket)
	ctl := controlv1connect.NewControlServiceClient(hc, "http://outpostd")
	cfg, err := ctl.GetConfig(ctx, connect.NewRequest(&controlv1.GetConfigRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Msg.GetVersion() != 1 || cfg.Msg.GetMachineRevision() != 3 || len(cfg.Msg.GetConfig().GetComponents()) != 1 {
		t.Fatalf("running config %v, want version 1, revision 3, one component", cfg.Msg)
	}
	res, err := controlv1connect.NewComponentServiceClient(hc, "http://outpostd").ListResources(ctx, connect.NewRequest(&controlv1.ListResourcesRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if rs := res.Msg.GetResources(); len(rs) != 1 || rs[0].GetName() != "sensor1" || rs[0].GetState() != controlv1.ResourceState_RESOURCE_STATE_RUNNING {
		t.Fatalf("resources %v, want sensor1 running", rs)
	}
	st, err := ctl.Status(ctx, connect.NewRequest(&controlv1.StatusRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if st.Msg.GetPartId() != "part-1" || st.Msg.GetConfigVersion() != 1 || st.Msg.GetOfflineFor().AsDuration() != time.Hour {
		t.Fatalf("status %v, want part-1, config 1, offline for 1h", st.Msg)
	}

	// Metrics on the loopback port see the same.
	resp, err := http.Get("http://" + ep.Metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`outpost_component_up{component="component/sensor1"} 1`,
		`outpost_cloud_contact_age_seconds 3600`,
		`outpost_backlog_records{stream="logs.info"}`,
		// The calls above, counted by control's interceptor.
		`outpost_rpc_requests_total{code="ok",procedure="/outpost.control.v1.ControlService/GetConfig"} 1`,
		`outpost_rpc_duration_seconds_count{procedure="/outpost.control.v1.ControlService/Status"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
}

func TestSIGHUPChangesTheLogLevel(t *testing.T) {
	ns := notifySocket(t)
	p := newPart(t)
	r := run(t, p, clock.NewFake(epoch), nil)
	expect(t, ns, "READY=1")
	<-r.ready

	levelFile := filepath.Join(p.Dir, "log-level")
	for _, tc := range []struct{ file, want string }{
		{"debug\n", `"to":"debug"`},
		{"warn", `"to":"warn"`},
	} {
		if err := os.WriteFile(levelFile, []byte(tc.file), 0o644); err != nil {
			t.Fatal(err)
		}
		r.sig <- syscall.SIGHUP
		expect(t, ns, "RELOADING=1\nMONOTONIC_USEC=")
		// READY=1 ends the reload; the level changed before it.
		expect(t, ns, "READY=1")
		if !strings.Contains(r.stderr.String(), tc.want) {
			t.Fatalf("after SIGHUP with %q, no log level change %s in:\n%s", tc.file, tc.want, r.stderr.String())
		}
	}
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
}

func TestBadBootstrapIsABootstrapError(t *testing.T) {
	p := newPart(t)
	if err := os.WriteFile(p.BootPath, []byte(`{"cloudUrl": "ftp://x"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	err := Run(context.Background(), Options{ConfigPath: p.BootPath, DataDir: p.DataDir, RuntimeDir: p.RunDir, Clock: clock.NewFake(epoch), Stderr: io.Discard, Signals: make(chan os.Signal)})
	var be *partfile.BootstrapError
	if !errors.As(err, &be) || be.Field != "cloud_url" {
		t.Fatalf("Run with a bad bootstrap file: %v, want a BootstrapError on cloud_url", err)
	}
	if _, err := os.Stat(p.DataDir); err == nil {
		t.Error("the store was created although the bootstrap file is bad")
	}
}

func TestMetricsMustBeLoopback(t *testing.T) {
	p := newPart(t)
	err := Run(context.Background(), Options{ConfigPath: p.BootPath, DataDir: p.DataDir, RuntimeDir: p.RunDir, Listen: "127.0.0.1:0",
		MetricsListen: "0.0.0.0:0", Clock: clock.NewFake(epoch), Stderr: io.Discard, Signals: make(chan os.Signal)})
	if err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("Run with metrics on every interface: %v, want a loopback error", err)
	}
}

func TestExpiryStopsTheMachine(t *testing.T) {
	ns := notifySocket(t)
	p := newPart(t)
	p.holdFor(t, epoch, 2*time.Hour, sensorConfig(1, "sensor1"))
	clk := clock.NewFake(epoch)
	applied := make(chan error, 1)
	r := run(t, p, clk, func(o *Options) { o.afterApply = func(_ string, err error) { applied <- err } })
	expect(t, ns, "READY=1")
	ep := <-r.ready
	if err := <-applied; err != nil {
		t.Fatal(err)
	}
	// Three hours offline: the sync loop's minute tick finds the documents
	// expired by the offline clock and the daemon stops the machine.
	clk.Advance(3 * time.Hour)
	expect(t, ns, "STATUS=EXPIRED: ")

	ctl := controlv1connect.NewControlServiceClient(socketClient(ep.Socket), "http://outpostd")
	st, err := ctl.Status(context.Background(), connect.NewRequest(&controlv1.StatusRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if st.Msg.GetSyncState() != controlv1.SyncState_SYNC_STATE_EXPIRED || st.Msg.GetTimeLeft().AsDuration() != 0 {
		t.Fatalf("status after expiry: %v", st.Msg)
	}
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
}

func TestLocalEditIsAppliedAndQueued(t *testing.T) {
	ns := notifySocket(t)
	p := newPart(t)
	p.hold(t, epoch, sensorConfig(1, "sensor1"))
	applied := make(chan error, 1)
	r := run(t, p, clock.NewFake(epoch), func(o *Options) {
		o.afterApply = func(source string, err error) {
			if source == "cache" {
				applied <- err
			}
		}
	})
	expect(t, ns, "READY=1")
	ep := <-r.ready
	if err := <-applied; err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ctl := controlv1connect.NewControlServiceClient(socketClient(ep.Socket), "http://outpostd")

	bad := sensorConfig(1, "sensor1")
	bad.Components[0].Model = "no-such-model-anywhere:x"
	bad.Captures[0].FrequencyHz = 5000
	if _, err := ctl.EditConfig(ctx, connect.NewRequest(&controlv1.EditConfigRequest{Config: bad, BaseRevision: 3})); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("an invalid edit: %v, want invalid_argument", err)
	}
	res, err := ctl.EditConfig(ctx, connect.NewRequest(&controlv1.EditConfigRequest{Config: sensorConfig(2, "sensor1", "sensor2"), BaseRevision: 2}))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Msg.GetApplied() || res.Msg.GetProposalSeq() != 1 || !strings.Contains(res.Msg.GetConflict(), "revision 2") {
		t.Fatalf("edit result %v, want applied, proposal 1, a conflict on revision 2", res.Msg)
	}
	cfg, err := ctl.GetConfig(ctx, connect.NewRequest(&controlv1.GetConfigRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Msg.GetLocalEdits() || len(cfg.Msg.GetConfig().GetComponents()) != 2 || cfg.Msg.GetVersion() != 1 {
		t.Fatalf("config after the edit: %v", cfg.Msg)
	}
	logTail, err := ctl.TailLogs(ctx, connect.NewRequest(&controlv1.TailLogsRequest{Limit: 10, MinLevel: "info"}))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range logTail.Msg.GetEntries() {
		found = found || e.GetMessage() == "local config edit applied and queued"
	}
	if !found {
		t.Fatalf("log tail %v lacks the edit", logTail.Msg.GetEntries())
	}
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}

	st, err := cache.Open(ctx, filepath.Join(p.DataDir, "store"), cache.Options{Clock: clock.NewFake(epoch), GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	props, err := st.Read(ctx, cache.StreamProposals, 0, 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	var prop syncv1.ConfigProposal
	if len(props) != 1 || proto.Unmarshal(props[0].Payload, &prop) != nil || prop.GetBaseRevision() != 2 || len(prop.GetConfig().GetComponents()) != 2 {
		t.Fatalf("queued proposals %v, want the one edit", props)
	}
	// The store kept the shutdown's log lines for the cloud.
	logs := readLogs(t, st, cache.StreamLogsInfo)
	if len(logs) == 0 || logs[len(logs)-1].GetMessage() != "stopped" {
		t.Fatalf("last stored info log %v, want \"stopped\"", logs[len(logs)-1:])
	}
}

func TestSIGHUPReloadsTheBootstrapFile(t *testing.T) {
	ns := notifySocket(t)
	p := newPart(t)
	r := run(t, p, clock.NewFake(epoch), nil)
	expect(t, ns, "READY=1")
	<-r.ready

	orig, err := os.ReadFile(p.BootPath)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, file, want string
	}{
		{"broken file keeps the running one", `{"cloudUrl": 1}`, "reload: keeping the running bootstrap file"},
		{"another part is refused", strings.Replace(string(orig), `"part-1"`, `"part-2"`, 1), "names another part"},
		{"new cloud URL restarts sync", strings.Replace(string(orig), "http://127.0.0.1", "http://localhost", 1), "reloaded the bootstrap file: sync restarts with it"},
		{"unchanged", strings.Replace(string(orig), "http://127.0.0.1", "http://localhost", 1), "reloaded: bootstrap file unchanged"},
	}
	for _, tc := range tests {
		if err := os.WriteFile(p.BootPath, []byte(tc.file), 0o600); err != nil {
			t.Fatal(err)
		}
		r.sig <- syscall.SIGHUP
		expect(t, ns, "RELOADING=1")
		expect(t, ns, "READY=1")
		if !strings.Contains(r.stderr.String(), tc.want) {
			t.Fatalf("%s: log lacks %q:\n%s", tc.name, tc.want, tail(r.stderr.String()))
		}
	}
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
}

func TestWithoutAWatchdogOnlyTheStatusIsRefreshed(t *testing.T) {
	ns := notifySocket(t)
	t.Setenv("WATCHDOG_USEC", "")
	p := newPart(t)
	clk := clock.NewFake(epoch)
	r := run(t, p, clk, nil)
	expect(t, ns, "READY=1")
	ep := <-r.ready
	clk.Advance(statusEvery)
	for _, m := range expect(t, ns, "STATUS=control on "+ep.Control+"; cloud ") {
		if strings.Contains(m, "WATCHDOG=1") {
			t.Fatalf("pinged a watchdog systemd did not set: %q", m)
		}
	}
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
}

// TestFinalSyncIsBounded stops a daemon whose cloud accepts connections and
// never answers: the final sync gives up at finalSync on the injected
// clock, and the daemon still exits cleanly.
func TestFinalSyncIsBounded(t *testing.T) {
	ns := notifySocket(t)
	arrived := make(chan string, 64)
	release := make(chan struct{})
	cloud := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // then the server notices the client leaving
		arrived <- r.URL.Path
		select { // a cloud that hangs
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer cloud.Close()
	defer close(release)
	p := newPartOf(t, cloud.URL)
	clk := clock.NewFake(epoch)
	r := run(t, p, clk, nil)
	expect(t, ns, "READY=1")
	<-r.ready
	// The relay's long poll hangs too; pulls are what matter here.
	nextPull := func() {
		for !strings.HasSuffix(<-arrived, "/Pull") {
		}
	}
	nextPull() // the sync loop's first cycle
	r.sig <- syscall.SIGTERM
	expect(t, ns, "STOPPING=1")
	nextPull() // the final sync's pull, its deadline armed before it
	start := clk.Uptime()
	clk.Advance(defaultFinalSync)
	if err := <-r.errc; err != nil {
		t.Fatalf("Run after a final sync into a hung cloud: %v", err)
	}
	r.errc <- nil
	if d := clk.Uptime() - start; d != defaultFinalSync {
		t.Errorf("stopping took %v of the clock, want the final sync's %v", d, defaultFinalSync)
	}
	if !strings.Contains(r.stderr.String(), "final sync incomplete") {
		t.Errorf("no word of the incomplete final sync:\n%s", tail(r.stderr.String()))
	}
}
