package demo

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/cloud/pgtest"
)

// The binaries the demo runs, looked up in Options.Bin.
const (
	binCLI    = "outpost"
	binDaemon = "outpostd"
	binCloud  = "outpost-cloud"
)

// productionSyncInterval is how often parts sync when nobody shortens it.
const productionSyncInterval = 15 * time.Second

// maxSocketPath is the longest Unix socket path Linux takes (sun_path
// holds 108 bytes with the terminating NUL).
const maxSocketPath = 107

// captureHz is how often each part captures its sensor's readings.
const captureHz = 5

// machineConfig is the machine's own config: one document for both parts,
// which places a fake motor and a fake sensor on each (the main part's by
// default, the arm's by "part"); each part runs only its share and
// captures its sensor's readings at captureHz.
const machineConfig = `{
  "components": [
    {"name": "motor", "type": "COMPONENT_TYPE_MOTOR", "model": "fake"},
    {"name": "sensor", "type": "COMPONENT_TYPE_SENSOR", "model": "fake",
     "attributes": {"readings": {"temperature_c": 21.5}}},
    {"name": "arm-motor", "part": "arm", "type": "COMPONENT_TYPE_MOTOR", "model": "fake"},
    {"name": "arm-sensor", "part": "arm", "type": "COMPONENT_TYPE_SENSOR", "model": "fake",
     "attributes": {"readings": {"temperature_c": 21.5}}}
  ],
  "captures": [
    {"component": "sensor", "method": "readings", "frequency_hz": 5, "tags": ["demo"]},
    {"component": "arm-sensor", "method": "readings", "frequency_hz": 5, "tags": ["demo"]}
  ]
}
`

// Options configures Run.
type Options struct {
	// Bin is the folder holding outpost, outpostd and outpost-cloud.
	Bin string
	// Out receives the steps and the summary.
	Out io.Writer
	// Keep leaves the temporary folder (the cloud's data, the parts'
	// stores, logs and bootstrap files) in place and prints its path.
	Keep bool
	// Stay keeps the cloud and both parts running after the summary, for
	// the fleet app, until ctx is done; the run still counts as passed.
	Stay bool
	// TempDir is where the temporary folder is made; "" is the system's.
	TempDir string
	// Clock paces the polling and measures the run; nil is the machine's.
	Clock clock.Clock
	// SyncInterval is how often parts sync (and the cloud tells them to);
	// 0 means 2 s, shortened from the production 15 s so the demo is quick.
	SyncInterval time.Duration
	// Pile is how many captures each part must hold while the cloud is
	// down before the demo restarts it; 0 means 25 (5 s of capture).
	Pile int
	// Timeout bounds the whole run; 0 means 5 minutes.
	Timeout time.Duration
	// Postgres runs the cloud on a private PostgreSQL server (Debian's,
	// in a temporary folder of its own, on a Unix socket) instead of its
	// embedded storage; the server and its folder go when the demo ends.
	Postgres bool
}

// Summary is what a run showed.
type Summary struct {
	// Elapsed is the run's wall time, from start to the summary.
	Elapsed time.Duration
	// Dir is the temporary folder; it is gone unless Options.Keep.
	Dir string
	// Held is how many captures each part (by name) held while offline.
	Held map[string]int
	// Arrived is how many of those the cloud listed after its restart.
	Arrived map[string]int
	// Offline is how long the cloud was down.
	Offline time.Duration
	// Refused is the operator's refusal for the config, as the part said it.
	Refused string
	// Online is how many captures the cloud had before it was stopped.
	Online int
	// Revoked is the part's refusal of the revoked API key.
	Revoked string
	// RevokedAfter is how long after the revocation the parts refused the key.
	RevokedAfter time.Duration
}

// StepError is a failed expectation: which step, and why.
type StepError struct {
	// Step is the step's number as printed.
	Step int
	// Title is the step's title as printed.
	Title string
	// Err says what went wrong.
	Err error
}

func (e *StepError) Error() string {
	return fmt.Sprintf("step %d (%s): %v", e.Step, e.Title, e.Err)
}

func (e *StepError) Unwrap() error { return e.Err }

// part is one robot part of the demo's machine.
type part struct {
	name     string
	id       string
	dir      string
	addr     string // control plane, TLS
	metrics  string
	certHex  string // as reported to the cloud
	proc     *child
	motor    string // its motor's and its sensor's names in the config
	sensor   string
	held     []uint64  // capture sequences held while offline
	heldFrom time.Time // the earliest of them
}

// run is one demo run's state.
type run struct {
	opts     Options
	clk      clock.Clock
	rep      *report
	dir      string
	env      []string // every CLI call's environment
	kids     children
	n        int // the current step
	calls    int // outpost CLI commands run
	cloudURL string
	cloudLog string
	cloudDB  string // the PostgreSQL URL the cloud serves from, or ""
	cloud    *child
	parts    []*part

	adminToken, ownerToken, apiKey, keyID string
	ownerPassword                         string
	offlineSince                          time.Duration // uptime when the cloud was stopped
	orgID, locID, machineID               string
	sum                                   Summary
}

// who is whom a CLI call acts as: the environment it adds, and how that
// is shown.
type who struct {
	env  []string
	show []string
}

// Run provisions a fleet on a new outpost-cloud, starts two parts'
// outpostd, and drives them through the outpost CLI, printing each step;
// it returns an error naming the step whose expectation failed. Every
// child process is gone when it returns, and the temporary folder too
// unless opts.Keep.
func Run(ctx context.Context, opts Options) (sum *Summary, err error) {
	if opts.Out == nil {
		opts.Out = io.Discard
	}
	if opts.Clock == nil {
		opts.Clock = clock.NewReal()
	}
	opts.SyncInterval = cmp.Or(opts.SyncInterval, 2*time.Second)
	opts.Pile = cmp.Or(opts.Pile, 25)
	opts.Timeout = cmp.Or(opts.Timeout, 5*time.Minute)
	r := &run{opts: opts, clk: opts.Clock, rep: newReport(opts.Out)}
	started := r.clk.Uptime()

	for _, b := range []string{binCLI, binDaemon, binCloud} {
		p := filepath.Join(opts.Bin, b)
		if st, err := os.Stat(p); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			return nil, fmt.Errorf("no %s program in %s: build the binaries first (make build puts them in bin/)", b, opts.Bin)
		}
	}
	r.dir, err = os.MkdirTemp(opts.TempDir, "outpost-demo-")
	if err != nil {
		return nil, fmt.Errorf("make the demo's folder: %w", err)
	}
	r.sum.Dir = r.dir
	defer func() {
		r.kids.killAll()
		if err != nil && !errors.Is(err, context.Canceled) {
			r.showLogs()
		}
		if opts.Keep {
			r.rep.printf("\nThe demo's folder is kept: %s", r.dir)
			return
		}
		if rerr := os.RemoveAll(r.dir); rerr != nil && err == nil {
			err = fmt.Errorf("remove the demo's folder: %w", rerr)
		}
	}()

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	deadline := r.clk.NewTimer(opts.Timeout)
	defer deadline.Stop()
	go func() {
		select {
		case <-deadline.C():
			cancel(fmt.Errorf("the demo took longer than %s", opts.Timeout))
		case <-ctx.Done():
		}
	}()

	if err := r.scenario(ctx); err != nil {
		// The demo's own deadline is no interrupt: say so, not "canceled".
		if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
			var se *StepError
			if !errors.As(err, &se) {
				return nil, cause
			}
			se.Err = cause
		}
		return nil, err
	}
	r.sum.Elapsed = r.clk.Uptime() - started
	r.summary()
	if opts.Stay {
		deadline.Stop() // the run's bound is over; the user ends the stay
		r.rep.printf("\nThe cloud and both parts keep running: open the fleet app at %s/ and sign in as ann@example.com (password in %s). Ctrl-C stops them.",
			r.cloudURL, filepath.Join(r.dir, "ann.password"))
		<-ctx.Done()
		// Ctrl-C reaches only the demo (its children have their own process
		// groups): stop them as the last step does, and check they exit well.
		// Each stop is bounded by its own grace.
		if err := r.step(context.WithoutCancel(ctx), stopAllTitle, r.stopAll); err != nil {
			return nil, err
		}
	}
	return &r.sum, nil
}

// stopAllTitle is the last step's.
const stopAllTitle = "Stop the parts and the cloud"

// step runs one numbered step.
func (r *run) step(ctx context.Context, title string, f func(ctx context.Context) error) error {
	r.n++
	r.rep.title(r.n, title)
	if err := f(ctx); err != nil {
		// The caller prints the error, and it may quote a command's output.
		return &StepError{Step: r.n, Title: title, Err: redactedError{err: err, msg: r.rep.redact(err.Error())}}
	}
	return nil
}

// redactedError is an error whose message has the secrets masked.
type redactedError struct {
	err error
	msg string
}

func (e redactedError) Error() string { return e.msg }
func (e redactedError) Unwrap() error { return e.err }

func (r *run) scenario(ctx context.Context) error {
	addrs, err := freePorts(5)
	if err != nil {
		return err
	}
	cloudAddr := addrs[0]
	r.cloudURL = "http://" + cloudAddr
	r.cloudLog = filepath.Join(r.dir, "outpost-cloud.log")
	r.parts = []*part{
		{name: "main", dir: filepath.Join(r.dir, "main"), addr: addrs[1], metrics: addrs[2], motor: "motor", sensor: "sensor"},
		{name: "arm", dir: filepath.Join(r.dir, "arm"), addr: addrs[3], metrics: addrs[4], motor: "arm-motor", sensor: "arm-sensor"},
	}
	// outpostd listens on a Unix socket in its runtime folder, and a
	// socket's path is at most 107 bytes on Linux.
	if sock := filepath.Join(r.parts[0].dir, "run", "control.sock"); len(sock) > maxSocketPath {
		return fmt.Errorf("the demo's folder %s is too deep for outpostd's socket (%d bytes, at most %d): set TMPDIR to a shorter folder", r.dir, len(sock), maxSocketPath)
	}
	laptop := filepath.Join(r.dir, "laptop")
	for _, d := range []string{laptop, r.parts[0].dir, r.parts[1].dir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("make %s: %w", d, err)
		}
	}
	// The CLI keeps its login and pinned certificates under
	// XDG_CONFIG_HOME: a folder of the demo's, never the user's own. Any
	// OUTPOST_* of the user's shell would steer the CLI elsewhere.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OUTPOST_") && !strings.HasPrefix(kv, "XDG_CONFIG_HOME=") {
			r.env = append(r.env, kv)
		}
	}
	r.env = append(r.env, "XDG_CONFIG_HOME="+laptop, "OUTPOST_CLOUD="+r.cloudURL)
	storage := "embedded storage in a temporary folder"
	if r.opts.Postgres {
		pg, err := pgtest.StartTemp(ctx)
		if err != nil {
			return fmt.Errorf("start a private PostgreSQL for --postgres: %w", err)
		}
		// The programs end before the database they use.
		defer func() { r.kids.killAll(); _ = pg.Stop() }()
		if err := pg.CreateDatabase(ctx, "outpost"); err != nil {
			return err
		}
		r.cloudDB = pg.URL("outpost")
		storage = "on a private PostgreSQL at " + pg.Dir
	}

	r.rep.printf("Outpost demo: a fleet cloud and two robot parts on 127.0.0.1, driven through the real outpost CLI.")
	r.rep.printf("Parts sync every %s here, shortened from %s for the demo. Programs from %s; files in %s.",
		r.opts.SyncInterval, productionSyncInterval, r.opts.Bin, r.dir)
	r.rep.printf("The fleet app will be at %s/ once the cloud starts: sign in as ann@example.com with the password the demo writes to %s.",
		r.cloudURL, filepath.Join(r.dir, "ann.password"))

	steps := []struct {
		title string
		f     func(context.Context) error
	}{
		{"Start the fleet cloud (" + storage + ")", r.startCloud},
		{"As the cloud's admin, create two users: an owner and an operator", r.createUsers},
		{"As the owner, sign in and create an organization and a location", r.createOrg},
		{"Create a machine with two parts and give it a config", r.createMachine},
		{"Give the operator a role on the machine and an API key", r.createOperator},
		{"Start both parts' outpostd from their bootstrap files", r.startParts},
		{"Pin each part's certificate to the fingerprint the part reported to the cloud", r.pinParts},
		{"As operator (API key), drive the motor and read the sensor", r.operatorDrives},
		{"As operator, ask for the config: refused", r.operatorRefused},
		{"As owner (access token), read the config and the logs", r.ownerReads},
		{"Stop the cloud", r.stopCloud},
		{"Keep driving the parts offline while captures pile up", r.driveOffline},
		{"Restart the cloud and watch the backlog arrive", r.restartCloud},
		{"Revoke the operator's API key; the parts refuse it after their next sync", r.revokeKey},
	}
	if !r.opts.Stay {
		// With Stay, Run stops them after the stay, as this step.
		steps = append(steps, struct {
			title string
			f     func(context.Context) error
		}{stopAllTitle, r.stopAll})
	}
	for _, s := range steps {
		if err := r.step(ctx, s.title, s.f); err != nil {
			return err
		}
	}
	return nil
}

// ---- the CLI ----

// outpost runs the CLI as w, showing the command line (stdinNote tells
// what is piped in, without showing it); it fails unless the CLI exits 0.
func (r *run) outpost(ctx context.Context, w who, stdin, stdinNote string, args ...string) (runResult, error) {
	line := commandLine(w.show, append([]string{binCLI}, args...))
	if stdinNote != "" {
		line += " " + stdinNote
	}
	r.rep.cmd(line)
	return r.outpostQuiet(ctx, w, stdin, args...)
}

// outpostQuiet is outpost without showing the command, for polling.
func (r *run) outpostQuiet(ctx context.Context, w who, stdin string, args ...string) (runResult, error) {
	env := append(slices.Clip(r.env), w.env...)
	r.calls++
	res, err := runCmd(ctx, env, stdin, filepath.Join(r.opts.Bin, binCLI), args...)
	if err != nil {
		return res, err
	}
	if res.exitErr != nil {
		if ref, ok := parseRefusal(res.stderr); ok {
			return res, fmt.Errorf("outpost %s: %s", args[0], describe(ref))
		}
		return res, fmt.Errorf("outpost %s: %v: %s", args[0], res.exitErr, clip(strings.TrimSpace(string(res.stderr)), 300))
	}
	return res, nil
}

// outpostJSON runs the CLI with --json, shown, and decodes its answer.
func (r *run) outpostJSON(ctx context.Context, w who, m proto.Message, args ...string) error {
	args = append(slices.Clip(args), "--json")
	res, err := r.outpost(ctx, w, "", "", args...)
	if err != nil {
		return err
	}
	return decode("outpost "+strings.Join(args[:min(2, len(args))], " "), res.stdout, m)
}

// outpostJSONQuiet is outpostJSON without showing the command.
func (r *run) outpostJSONQuiet(ctx context.Context, w who, m proto.Message, args ...string) error {
	args = append(slices.Clip(args), "--json")
	res, err := r.outpostQuiet(ctx, w, "", args...)
	if err != nil {
		return err
	}
	return decode("outpost "+strings.Join(args[:min(2, len(args))], " "), res.stdout, m)
}

// refused runs the CLI, shown, and expects it to fail with code.
func (r *run) refused(ctx context.Context, w who, code string, args ...string) (refusal, error) {
	r.rep.cmd(commandLine(w.show, append([]string{binCLI}, args...)))
	env := append(slices.Clip(r.env), w.env...)
	r.calls++
	res, err := runCmd(ctx, env, "", filepath.Join(r.opts.Bin, binCLI), args...)
	if err != nil {
		return refusal{}, err
	}
	if res.exitErr == nil {
		return refusal{}, fmt.Errorf("outpost %s succeeded; it should have been refused (%s): %s", args[0], code, clip(string(res.stdout), 200))
	}
	ref, ok := parseRefusal(res.stderr)
	if !ok {
		return refusal{}, fmt.Errorf("outpost %s failed without saying why: %v: %s", args[0], res.exitErr, clip(string(res.stderr), 300))
	}
	if ref.Code != code {
		return ref, fmt.Errorf("outpost %s failed with %s, want %s", args[0], describe(ref), code)
	}
	return ref, nil
}

func describe(ref refusal) string {
	if ref.Code == "" {
		return ref.Message
	}
	return fmt.Sprintf("%s [%s]", ref.Message, ref.Code)
}

func (r *run) admin() who {
	return who{env: []string{"OUTPOST_TOKEN=" + r.adminToken},
		show: []string{"OUTPOST_TOKEN=$(cat " + filepath.Join(r.dir, "cloud", "admin.token") + ")"}}
}

// owner uses the saved login against the cloud.
func (r *run) owner() who { return who{} }

// ownerOnRobot sends the owner's access token to a part.
func (r *run) ownerOnRobot() who {
	e := []string{"OUTPOST_TOKEN=" + r.ownerToken}
	return who{env: e, show: e}
}

func (r *run) operator() who {
	e := []string{"OUTPOST_API_KEY=" + r.apiKey}
	return who{env: e, show: e}
}

func robot(p *part, args ...string) []string {
	return append([]string{"robot", "--robot", p.addr}, args...)
}

// ---- waiting ----

// pending says what a poll saw that does not meet its condition yet.
func pending(format string, args ...any) error { return fmt.Errorf(format, args...) }

// poll checks cond until it returns nil, returns a fatal error, or limit
// passes; the error then says what cond last saw. Any other error from
// cond (a CLI call failing while what is polled comes up, or pending)
// means "not yet".
func (r *run) poll(ctx context.Context, what string, limit time.Duration, cond func(context.Context) error) error {
	start := r.clk.Uptime()
	for {
		err := cond(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var f fatal
		if errors.As(err, &f) {
			return f.err
		}
		if r.clk.Uptime()-start > limit {
			return fmt.Errorf("%s: not within %s; last: %v", what, limit, err)
		}
		if err := r.clk.Sleep(ctx, 300*time.Millisecond); err != nil {
			return err
		}
	}
}

// fatal wraps an error that ends a poll at once.
type fatal struct{ err error }

func (f fatal) Error() string { return f.err.Error() }
func (f fatal) Unwrap() error { return f.err }

// summary prints what the run showed, on one screen.
func (r *run) summary() {
	s := &r.sum
	rule := strings.Repeat("─", 78)
	r.rep.printf("\n%s", rule)
	r.rep.printf("Outpost demo passed in %s: %d steps, %d outpost commands against one outpost-cloud and two parts' outpostd.",
		s.Elapsed.Round(100*time.Millisecond), r.n, r.calls)
	r.rep.printf("  provisioned  org, location, machine rover with parts main and arm, owner ann, operator bob, an operator API key")
	r.rep.printf("  operator     drove the motor and read the sensor; refused the config (%s)", clip(afterLast(s.Refused, " but "), 80))
	r.rep.printf("  owner        read the config and the logs on the part, the logs and %d captures in the cloud", s.Online)
	r.rep.printf("  offline      cloud down %s; the parts kept working and held %d (main) and %d (arm) captures",
		s.Offline.Round(time.Second), s.Held["main"], s.Held["arm"])
	r.rep.printf("  backlog      the cloud received %d of %d (main) and %d of %d (arm); the parts then deleted their copies",
		s.Arrived["main"], s.Held["main"], s.Arrived["arm"], s.Held["arm"])
	r.rep.printf("  revocation   %s after the key was revoked, both parts refused it: %s", s.RevokedAfter.Round(100*time.Millisecond), clip(afterLast(s.Revoked, " is "), 70))
	r.rep.printf("  fleet app    %s/ (ann@example.com, password in %s)", r.cloudURL, filepath.Join(r.dir, "ann.password"))
	r.rep.printf("  sync         every %s here (%s in production); everything on 127.0.0.1", r.opts.SyncInterval, productionSyncInterval)
	if r.opts.Keep {
		r.rep.printf("  files        %s (kept: logs, stores, bootstrap files)", r.dir)
	} else {
		r.rep.printf("  files        %s, removed (--keep keeps them)", r.dir)
	}
	r.rep.printf("%s", rule)
}

// showLogs prints the end of each program's log after a failure.
func (r *run) showLogs() {
	logs := []struct{ name, path string }{{binCloud, r.cloudLog}}
	for _, p := range r.parts {
		logs = append(logs, struct{ name, path string }{binDaemon + " of part " + p.name, filepath.Join(p.dir, "outpostd.log")})
	}
	for _, l := range logs {
		if tail := lastLines(l.path, 5); tail != "" {
			r.rep.printf("\nlast lines of %s (%s):", l.name, l.path)
			r.rep.printf("%s", tail)
		}
	}
}

func compactJSON(s *structpb.Struct) string {
	b, err := json.Marshal(s.AsMap())
	if err != nil {
		return "?"
	}
	return string(b)
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}

func afterLast(s, sep string) string {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[i+len(sep):]
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
