package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/control/v1/controlv1connect"
	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/cache"
	"github.com/outpost-robotics/outpost/capture"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/cloud/cloudtest"
	"github.com/outpost-robotics/outpost/cloud/ingest"
	"github.com/outpost-robotics/outpost/cloud/partsync"
	"github.com/outpost-robotics/outpost/control"
	"github.com/outpost-robotics/outpost/controlwire"
	"github.com/outpost-robotics/outpost/daemon"
)

// robotPart is a real robot part for the robot commands: the fleet cloud
// in process (cloudtest), and the daemon in process (daemon.Run) on its
// bootstrap file, with its control plane on loopback and ICE kept there.
type robotPart struct {
	cloud           *cloudtest.Cloud
	part            cloudtest.Part
	ep              daemon.Endpoints
	owner, operator cloudtest.APIKey
	stop            func() // SIGTERM: the final sync runs; idempotent
	logs            *lockedLog
}

// robotOptions shape startRobot's part.
type robotOptions struct {
	// cloudURL is the cloud's URL in the bootstrap file (a fault proxy);
	// empty means the cloud's own.
	cloudURL string
	// syncEvery is the daemon's sync interval.
	syncEvery time.Duration
	// prepare writes into the part's store before the daemon opens it.
	prepare func(t *testing.T, st *cache.Store)
	// config is the machine's config; nil means robotConfig.
	config *configv1.RobotConfig
	// addTo is a machine to add the part to, instead of provisioning a
	// new machine; its config stays as it is.
	addTo string
}

// robotConfig is the machine's config: one fake motor, nothing captured.
var robotConfig = &configv1.RobotConfig{LogLevel: "info", Components: []*configv1.Component{
	{Name: "arm", Type: configv1.ComponentType_COMPONENT_TYPE_MOTOR, Model: "fake"},
}}

func startRobot(t *testing.T, cl *cloudtest.Cloud, o robotOptions) *robotPart {
	t.Helper()
	ctx := context.Background()
	rp := &robotPart{cloud: cl}
	cfg := robotConfig
	if o.config != nil {
		cfg = o.config
	}
	if o.addTo != "" {
		rp.part = addPart(t, cl, o.addTo, o.cloudURL)
	} else {
		rp.part = cl.Provision(t, cloudtest.PartOptions{CloudURL: o.cloudURL, Config: cfg})
	}
	rp.owner = cl.CreateAPIKey(t, "owner", "machine/"+rp.part.MachineID)
	rp.operator = cl.CreateAPIKey(t, "operator", "machine/"+rp.part.MachineID)
	dir := t.TempDir()
	boot := rp.part.WriteBootstrap(t, dir)
	if o.prepare != nil {
		st, err := cache.Open(ctx, filepath.Join(dir, "data", "store"), cache.Options{Clock: clock.NewReal(), GCInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		o.prepare(t, st)
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
	}
	sig := make(chan os.Signal, 1)
	errc := make(chan error, 1)
	ready := make(chan daemon.Endpoints, 1)
	logs := &lockedLog{}
	rp.logs = logs
	go func() {
		errc <- daemon.Run(ctx, daemon.Options{
			ConfigPath: boot, DataDir: filepath.Join(dir, "data"), RuntimeDir: filepath.Join(dir, "run"),
			Listen: "127.0.0.1:0", MetricsListen: "-", Clock: clock.NewReal(), Stderr: logs, Signals: sig, LogFormat: "json",
			SyncInterval: o.syncEvery, WebRTCSettings: controlwire.LoopbackICE,
			OnReady: func(e daemon.Endpoints) { ready <- e },
		})
	}()
	var once sync.Once
	rp.stop = func() {
		once.Do(func() {
			sig <- syscall.SIGTERM
			if err := <-errc; err != nil {
				t.Errorf("daemon.Run: %v\n%s", err, logs.String())
			}
			for _, k := range []cloudtest.APIKey{rp.owner, rp.operator} {
				if secret := k.Token[len(k.Token)-43:]; strings.Contains(logs.String(), secret) {
					t.Error("an API key's secret appears in the daemon's log")
				}
			}
		})
	}
	t.Cleanup(rp.stop)
	select {
	case rp.ep = <-ready:
	case err := <-errc:
		t.Fatalf("daemon.Run: %v\n%s", err, logs.String())
	}
	rp.waitForGrants(t, 1)
	return rp
}

// grantsVersion reads the part's grant bundle version on its break-glass socket.
func (rp *robotPart) grantsVersion(t *testing.T) uint64 {
	t.Helper()
	return rp.status(t).GetGrantsVersion()
}

// status asks the part how it stands, on its break-glass socket.
func (rp *robotPart) status(t *testing.T) *controlv1.StatusResponse {
	t.Helper()
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", rp.ep.Socket)
	}}
	defer tr.CloseIdleConnections()
	st, err := controlv1connect.NewControlServiceClient(&http.Client{Transport: tr}, "http://socket").
		Status(context.Background(), connect.NewRequest(&controlv1.StatusRequest{}))
	if err != nil {
		t.Fatalf("status on the break-glass socket: %v", err)
	}
	return st.Msg
}

// waitForGrants waits until the part holds a grant bundle of version at
// least v: the sync cycle that brings it has run.
func (rp *robotPart) waitForGrants(t *testing.T, v uint64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for rp.grantsVersion(t) < v {
		if time.Now().After(deadline) {
			t.Fatalf("the part never held grants of version %d", v)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// lockedLog collects the daemon's log lines.
type lockedLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// robotSession runs CLI commands in process, with ICE on loopback, and
// keeps a transcript.
type robotSession struct {
	t         *testing.T
	vars      map[string]string
	configDir string
	out       strings.Builder
}

func newRobotSession(t *testing.T, vars map[string]string) *robotSession {
	// `outpost robot trust` pins fingerprints in the user's config folder.
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
	return &robotSession{t: t, vars: vars, configDir: t.TempDir()}
}

// run runs one command line; it appends it, its output and its error to
// the transcript, and returns stdout and the error.
func (s *robotSession) run(args ...string) (string, error) {
	s.t.Helper()
	root := newRoot(env{
		getenv: func(k string) string { return s.vars[k] }, stdin: strings.NewReader(""),
		configDir: s.configDir, webrtcSettings: controlwire.LoopbackICE,
	})
	var stdout, stderr bytes.Buffer
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	root.SetArgs(args)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := root.ExecuteContext(ctx)
	fmt.Fprintf(&s.out, "$ outpost %s\n%s%s", strings.Join(args, " "), stdout.String(), stderr.String())
	if err != nil {
		fmt.Fprintf(&s.out, "outpost: %s\n", describe(err))
	}
	s.out.WriteString("\n")
	return stdout.String(), err
}

// ok runs a command that must succeed.
func (s *robotSession) ok(args ...string) string {
	s.t.Helper()
	out, err := s.run(args...)
	if err != nil {
		s.t.Fatalf("outpost %s: %v", strings.Join(args, " "), describe(err))
	}
	return out
}

// fails runs a command that must fail with code (0: any error).
func (s *robotSession) fails(code connect.Code, args ...string) error {
	s.t.Helper()
	_, err := s.run(args...)
	if err == nil || code != 0 && connect.CodeOf(err) != code {
		s.t.Fatalf("outpost %s: %v, want %v", strings.Join(args, " "), err, code)
	}
	return err
}

var (
	reRobotAddr    = regexp.MustCompile(`127\.0\.0\.1:[0-9]+`)
	reFingerprint  = regexp.MustCompile(`[0-9a-f]{64}`)
	reGrantVersion = regexp.MustCompile(`grants version [0-9]+`)
)

// heldCaptures are what the part holds when the data session starts: five
// readings of the imu, the third an image of the cam kept in a blob.
func heldCaptures(t *testing.T, st *cache.Store) {
	ctx := context.Background()
	sink := daemon.CaptureSink{Store: st}
	if err := sink.PutBlobChunk(ctx, "image/cam/3", 0, []byte("jpeg bytes")); err != nil {
		t.Fatal(err)
	}
	if err := sink.SealBlob(ctx, "image/cam/3"); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	for i := 1; i <= 5; i++ {
		at := t0.Add(time.Duration(i) * time.Minute)
		c := capture.Capture{Kind: "method", Component: "imu", Method: "readings", Time: at, Tick: uint64(i), Tags: []string{"field"}, Data: map[string]any{"x": i}}
		if i == 3 {
			c = capture.Capture{Kind: "method", Component: "cam", Method: "image", Time: at, Tick: 3, BlobID: "image/cam/3", MimeType: "image/jpeg"}
		}
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sink.Append(ctx, capture.StreamCaptures, capture.Record{Payload: b, Time: at}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRobotDataGolden is a field tech's session with the captures a part
// holds (its uploads held back on the wire): list, tag, delete and export
// as the machine's owner over TLS and WebRTC; the operator lists them
// without their tags and is refused edits; then
// the network heals and the admin sees in the cloud what the part sent:
// the tags, and never the deleted captures.
func TestRobotDataGolden(t *testing.T) {
	cl := cloudtest.New(t, cloudtest.Options{})
	proxyURL, release := cl.HoldUploads(t)
	rp := startRobot(t, cl, robotOptions{cloudURL: proxyURL, syncEvery: time.Hour, prepare: heldCaptures})
	s := newRobotSession(t, map[string]string{"OUTPOST_ROBOT": rp.ep.Control, "OUTPOST_API_KEY": rp.owner.Token})
	export := filepath.Join(t.TempDir(), "export")

	s.ok("robot", "trust", rp.ep.Control, "--yes")
	s.ok("robot", "data", "ls")
	s.ok("robot", "data", "tag", "1", "2", "--add", "reviewed", "--remove", "field")
	s.ok("robot", "data", "tag", "1", "--add", "reviewed")
	s.fails(0, "robot", "data", "tag", "1")
	s.fails(0, "robot", "data", "tag", "zero", "--add", "x")
	s.fails(connect.CodeInvalidArgument, "robot", "data", "tag", "1", "--add", "tab\there")
	s.fails(0, "robot", "data", "rm", "3", "4")
	s.ok("robot", "data", "rm", "3", "4", "--yes")
	s.fails(connect.CodeNotFound, "robot", "data", "rm", "3", "--yes")
	s.ok("robot", "--webrtc", "data", "tag", "5", "--add", "over-webrtc")
	s.ok("robot", "data", "ls")
	s.ok("robot", "data", "export", "--out", export)
	s.vars["OUTPOST_API_KEY"] = rp.operator.Token
	s.ok("robot", "whoami")
	s.ok("robot", "data", "ls", "--limit", "1")
	s.fails(connect.CodePermissionDenied, "robot", "data", "tag", "5", "--add", "x")
	s.fails(connect.CodePermissionDenied, "robot", "--webrtc", "data", "rm", "5", "--yes")

	files, err := filepath.Glob(filepath.Join(export, "*"))
	if err != nil || len(files) != 3 {
		t.Fatalf("exported %v, %v; want the 3 captures left", files, err)
	}

	// The network heals; the final sync at shutdown uploads what is left.
	release()
	rp.stop()
	delete(s.vars, "OUTPOST_API_KEY")
	s.vars["OUTPOST_CLOUD"], s.vars["OUTPOST_TOKEN"] = cl.URL, cl.AdminToken(t)
	s.ok("data", "captures", "--machine", rp.part.MachineID)

	got := s.out.String()
	got = strings.ReplaceAll(got, export, "EXPORT")
	got = reRobotAddr.ReplaceAllString(got, "ROBOT")
	got = reFingerprint.ReplaceAllString(got, "<fingerprint>")
	got = reGrantVersion.ReplaceAllString(got, "grants version N")
	got = normalize(got, cl.URL, s.configDir)
	got = strings.ReplaceAll(got, filepath.Join(os.Getenv("XDG_CONFIG_HOME"), "outpost", "known_robots"), "KNOWN_ROBOTS")
	compareGolden(t, "robot_data.golden", got)
}

// TestRobotViaCloud is `outpost robot --via-cloud PART_ID` end to end: the
// real cloud with its signaling relay, a real daemon online with it, and
// the CLI's own command path, over WebRTC signaled through the cloud with
// an API key. The operator's key works for status and commands and is
// refused the config with the seed's reason, and it is the part that
// decides: the refusal is in the part's audit log, and once the key is
// revoked at the cloud the part refuses it on a session the cloud had
// let through, from the sync that brings the new grants.
func TestRobotViaCloud(t *testing.T) {
	// A short sync interval makes "the next sync" come soon. One second,
	// not less: a cycle's deadline is 4/5 of the interval, and on a loaded
	// machine a 160 ms deadline (a 200 ms interval) is missed cycle after
	// cycle, so nothing the test waits for ever reaches the cloud.
	cl := cloudtest.New(t, cloudtest.Options{Sync: partsync.Options{PollInterval: time.Second}})
	rp := startRobot(t, cl, robotOptions{syncEvery: time.Second})
	s := newRobotSession(t, map[string]string{"OUTPOST_CLOUD": cl.URL, "OUTPOST_API_KEY": rp.operator.Token})
	via := "--via-cloud=" + rp.part.ID
	cloudtest.Eventually(t, "the part online", func() error {
		if st := rp.status(t).GetSyncState(); st != controlv1.SyncState_SYNC_STATE_ONLINE {
			return fmt.Errorf("sync state %v", st)
		}
		return nil
	})

	var st controlv1.StatusResponse
	if err := protojson.Unmarshal([]byte(s.ok("robot", via, "status", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	// The status is this part's. Its sync state is whatever the part's
	// last cycle left (a loaded part may have missed one since: degraded,
	// docs/ARCHITECTURE.md decision 33); that it has run one is certain.
	if st.GetPartId() != rp.part.ID || st.GetMachineId() != rp.part.MachineID || st.GetSyncState() == controlv1.SyncState_SYNC_STATE_UNSPECIFIED {
		t.Fatalf("status through the cloud: %v", &st)
	}
	if out := s.ok("robot", via, "whoami"); !strings.Contains(out, "webrtc") || !strings.Contains(out, "apikey/"+rp.operator.ID) || !strings.Contains(out, "operator") {
		t.Fatalf("whoami through the cloud:\n%s", out)
	}
	if out := s.ok("robot", via, "do", "arm", `{"move":1}`); !strings.Contains(out, `"move": 1`) || !strings.Contains(out, "echo") {
		t.Fatalf("do through the cloud:\n%s", out)
	}
	err := s.fails(connect.CodePermissionDenied, "robot", via, "config")
	if msg := describe(err); !strings.Contains(msg, "apikey/"+rp.operator.ID+" may not machine.view machine/"+rp.part.MachineID+": as operator") {
		t.Fatalf("config through the cloud refused with %q, want the seed's reason", msg)
	}
	// The refusal is the part's: it is in the part's audit stream, which
	// the next syncs bring to the cloud, with the transport it came by.
	cloudtest.Eventually(t, "the part's audit event of the refused config", func() error {
		recs, _, err := cl.Ingest().Records(context.Background(), ingest.Query{PartIDs: []string{rp.part.ID}, Stream: "audit"})
		if err != nil {
			return err
		}
		for _, r := range recs {
			var ev syncv1.AuditEvent
			if proto.Unmarshal(r.Payload, &ev) == nil && !ev.GetAllowed() && ev.GetAction() == "machine.view" &&
				ev.GetSubject() == "apikey/"+rp.operator.ID && ev.GetTransport() == control.TransportWebRTC {
				return nil
			}
		}
		return errors.New("not there yet")
	})

	// A session through the cloud, opened the way every robot command
	// opens one; then the key is revoked at the cloud.
	f := &robotFlags{g: &globals{env: env{getenv: func(string) string { return "" }, webrtcSettings: controlwire.LoopbackICE}, cloud: cl.URL},
		apiKey: rp.operator.Token, viaCloud: rp.part.ID}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := f.connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.close()
	if _, err := conn.control.WhoAmI(ctx, connect.NewRequest(&controlv1.WhoAmIRequest{})); err != nil {
		t.Fatalf("whoami on the open session: %v", err)
	}
	before := rp.grantsVersion(t)
	cl.RevokeAPIKey(t, rp.operator.ID)
	rp.waitForGrants(t, before+1)
	_, err = conn.control.WhoAmI(ctx, connect.NewRequest(&controlv1.WhoAmIRequest{}))
	// The part closes the session when the bundle arrives; a call that
	// comes first is refused by the bundle.
	refused := connect.CodeOf(err) == connect.CodeUnauthenticated && strings.Contains(err.Error(), "API key "+rp.operator.ID+" is unknown to this part or revoked")
	closed := connect.CodeOf(err) == connect.CodeUnavailable && strings.Contains(err.Error(), "closed")
	if !refused && !closed {
		t.Fatalf("the revoked key on the open session, after the part's sync: %v", err)
	}
	// A new session with the revoked key is refused by the cloud already.
	s.fails(connect.CodeUnauthenticated, "robot", via, "status")
}

// TestRobotMotor drives the fake motor through the motor API as the
// machine's operator, over TLS and WebRTC: power, speed for a distance,
// stop; bad flags are refused before anything is sent.
func TestRobotMotor(t *testing.T) {
	cl := cloudtest.New(t, cloudtest.Options{})
	rp := startRobot(t, cl, robotOptions{syncEvery: time.Hour})
	s := newRobotSession(t, map[string]string{"OUTPOST_ROBOT": rp.ep.Control, "OUTPOST_API_KEY": rp.operator.Token})
	s.ok("robot", "trust", rp.ep.Control, "--yes")

	tests := []struct {
		args []string
		want string
	}{
		{[]string{"robot", "motor", "arm"}, "arm moving: false\n"},
		{[]string{"robot", "motor", "arm", "--power", "0.5"}, "arm moving: true\n"},
		{[]string{"robot", "motor", "arm", "--power", "0"}, "arm moving: false\n"},
		{[]string{"robot", "--webrtc", "motor", "arm", "--rpm", "60"}, "arm moving: true\n"},
		{[]string{"robot", "stop"}, ""},
		{[]string{"robot", "motor", "arm"}, "arm moving: false\n"},
		{[]string{"robot", "motor", "arm", "--rpm", "60", "--revolutions", "2"}, "arm moving: false\n"},
		{[]string{"robot", "motor", "arm", "--power", "-1", "--json"}, "{\n  \"moving\": true\n}\n"},
	}
	for _, tc := range tests {
		if got := s.ok(tc.args...); tc.want != "" && got != tc.want {
			t.Errorf("outpost %s = %q, want %q", strings.Join(tc.args, " "), got, tc.want)
		}
	}
	for _, bad := range [][]string{
		{"robot", "motor", "arm", "--power", "2"},
		{"robot", "motor", "arm", "--power", "NaN"},
		{"robot", "motor", "arm", "--power", "1", "--rpm", "5"},
		{"robot", "motor", "arm", "--revolutions", "3"},
		{"robot", "motor", "arm", "--rpm", "Inf"},
	} {
		if err := s.fails(0, bad...); connect.CodeOf(err) != connect.CodeUnknown {
			t.Errorf("outpost %s: %v, want a flag error before any call", strings.Join(bad, " "), err)
		}
	}
	s.fails(connect.CodeNotFound, "robot", "motor", "wheel", "--power", "1")

	// The console's link: a delegation for this part and the page's key;
	// the part accepted the delegation before the link was printed.
	out := s.ok("robot", "console", "--print", "--ttl", "1h")
	link := regexp.MustCompile(`https://` + regexp.QuoteMeta(rp.ep.Control) + `/#d=([A-Za-z0-9_.-]+)&k=([A-Za-z0-9_-]{43})\n`).FindStringSubmatch(out)
	if link == nil || !strings.Contains(out, "apikey/"+rp.operator.ID) || !strings.Contains(out, "operator here") {
		t.Fatalf("outpost robot console --print:\n%s", out)
	}
	if strings.Contains(out, rp.operator.Token[len(rp.operator.Token)-43:]) {
		t.Fatal("the console's link holds the API key's own private key")
	}
	// --qr draws the same kind of link, for a phone's camera.
	qr := s.ok("robot", "console", "--qr")
	_, code, ok := strings.Cut(qr, "do not share it):\n")
	if !ok {
		t.Fatalf("outpost robot console --qr printed no QR code:\n%s", qr)
	}
	if got := decodeQRText(t, code); !regexp.MustCompile(`^https://` + regexp.QuoteMeta(rp.ep.Control) + `/#d=[A-Za-z0-9_.-]+&k=[A-Za-z0-9_-]{43}$`).MatchString(got) {
		t.Fatalf("outpost robot console --qr: the code reads %q", got)
	}
	if err := s.fails(0, "robot", "console", "--print", "--robot", "127.0.0.1:9"); !strings.Contains(err.Error(), "not a trusted robot") {
		t.Fatalf("a console for an untrusted address: %v", err)
	}
}

// TestRobotConfigEditIsSigned: `outpost robot config edit` signs the edit
// with the caller's key, so an owner's edit made on the part becomes the
// machine's next revision, authored by that key; an edit made on the
// break-glass socket carries no signature and waits for an owner, authored
// by the part, whatever the part claims.
func TestRobotConfigEditIsSigned(t *testing.T) {
	ctx := context.Background()
	cl := cloudtest.New(t, cloudtest.Options{})
	// Cycles long enough that an upload fits in one on a loaded machine.
	rp := startRobot(t, cl, robotOptions{syncEvery: 3 * time.Second})
	s := newRobotSession(t, map[string]string{"OUTPOST_ROBOT": rp.ep.Control, "OUTPOST_API_KEY": rp.owner.Token})
	s.ok("robot", "trust", rp.ep.Control, "--yes")
	dir := t.TempDir()
	write := func(name, level string) string {
		cfg := proto.Clone(robotConfig).(*configv1.RobotConfig)
		cfg.LogLevel = level
		b, err := protojson.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	proposals := func(n int) []*fleetv1.ConfigProposal {
		var out []*fleetv1.ConfigProposal
		defer func() {
			if t.Failed() {
				t.Logf("daemon log:\n%s", rp.logs.String())
			}
		}()
		cloudtest.Eventually(t, fmt.Sprintf("%d proposals at the cloud", n), func() error {
			res, err := cl.Admin(t).Config.ListConfigProposals(ctx, connect.NewRequest(&fleetv1.ListConfigProposalsRequest{MachineId: rp.part.MachineID}))
			if err != nil {
				return err
			}
			if out = res.Msg.GetProposals(); len(out) < n {
				return fmt.Errorf("%d proposals", len(out))
			}
			return nil
		})
		return out
	}

	s.ok("robot", "config", "edit", write("owner.json", "debug"))
	got := proposals(1)[0]
	if got.GetState() != "accepted" || got.GetAuthor() != "apikey/"+rp.owner.ID {
		t.Fatalf("the owner's signed edit: %v", got)
	}
	s2 := newRobotSession(t, map[string]string{})
	s2.ok("robot", "--socket", rp.ep.Socket, "config", "edit", write("socket.json", "warn"))
	got = proposals(2)[1]
	if got.GetState() != "conflict" || got.GetAuthor() != "part:"+rp.part.ID {
		t.Fatalf("the socket's unsigned edit: %v", got)
	}
}
