package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/cloud"
	"github.com/outpost-robotics/outpost/cloud/ingest"
	"github.com/outpost-robotics/outpost/cloud/ingest/badgeringest"
	"github.com/outpost-robotics/outpost/cloud/store/badgerstore"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// startCloud runs a real cloud on loopback over an in-memory store and a
// fake clock, and returns its URL and the admin's token.
// cliTestTime is the time of startCloud's cloud, whose fake clock never
// moves: the CLI dates its proofs by it.
var cliTestTime = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func startCloud(t *testing.T) (string, string) {
	t.Helper()
	log := zap.NewNop()
	st, err := badgerstore.Open("", log)
	if err != nil {
		t.Fatal(err)
	}
	clk := clock.NewFake(cliTestTime)
	dir := t.TempDir()
	signer, _, err := cloud.Bootstrap(context.Background(), st, dir, clk, log)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := os.ReadFile(filepath.Join(dir, cloud.AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := ingest.NewFileBlobStore(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	ing, err := badgeringest.Open(badgeringest.Options{Dir: filepath.Join(dir, "ingest"), Blobs: blobs})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := cloud.New(cloud.Config{Store: st, Signer: signer, Clock: clk, Log: log, Ingest: ing, Blobs: blobs,
		Alerts: cloud.AlertOptions{AllowLoopbackHTTP: true, RetryMax: 1, RetryWaitMin: time.Millisecond, RetryWaitMax: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cloud.Serve(ctx, ln, srv.Handler(), "", "", log) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		if err := st.Close(); err != nil {
			t.Error(err)
		}
		if err := ing.Close(); err != nil {
			t.Error(err)
		}
	})
	return "http://" + ln.Addr().String(), strings.TrimSpace(string(tok))
}

// session runs CLI commands in-process and keeps a transcript.
type session struct {
	t         *testing.T
	vars      map[string]string
	configDir string
	out       strings.Builder
	// terminal says stdin is a terminal (a person answering prompts).
	terminal bool
}

// run runs one command line with the environment vars and stdin, appends
// "$ command", its output and its error to the transcript, and returns stdout.
func (s *session) run(stdin string, args ...string) string {
	s.t.Helper()
	e := env{
		getenv:        func(k string) string { return s.vars[k] },
		stdin:         strings.NewReader(stdin),
		stdinTerminal: s.terminal,
		configDir:     s.configDir,
		now:           func() time.Time { return cliTestTime },
	}
	root := newRoot(e)
	var stdout, stderr bytes.Buffer
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	fmt.Fprintf(&s.out, "$ outpost %s\n%s%s", strings.Join(args, " "), stdout.String(), stderr.String())
	if err != nil {
		fmt.Fprintf(&s.out, "outpost: %s\n", describe(err))
	}
	s.out.WriteString("\n")
	return stdout.String()
}

// field reads a dotted path from a --json answer.
func (s *session) field(out string, path ...string) string {
	s.t.Helper()
	var v any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		s.t.Fatalf("not JSON: %v\n%s", err, out)
	}
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			s.t.Fatalf("no %v in %s", path, out)
		}
		v = m[p]
	}
	str, ok := v.(string)
	if !ok {
		s.t.Fatalf("no string at %v in %s", path, out)
	}
	return str
}

var (
	reJWT    = regexp.MustCompile(`eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+`)
	reSecret = regexp.MustCompile(`(^|[^A-Za-z0-9_-])[A-Za-z0-9_-]{43}($|[^A-Za-z0-9_-])`)
	reID     = regexp.MustCompile(`[0-9a-f]{32}`)
	reKey    = regexp.MustCompile(`(opk_[0-9a-f]{32}_|ops_)[A-Za-z0-9_-]{43}`)
)

// normalize replaces what differs between runs: IDs (numbered in order of
// appearance, so the transcript still shows which is which), secrets,
// tokens, the cloud's address and the config folder.
func normalize(text, cloudURL, configDir string) string {
	text = strings.ReplaceAll(text, cloudURL, "http://CLOUD")
	text = strings.ReplaceAll(text, configDir, "CONFIG")
	text = reJWT.ReplaceAllString(text, "<token>")
	text = reKey.ReplaceAllString(text, "$1<private key>")
	ids := map[string]string{}
	text = reID.ReplaceAllStringFunc(text, func(id string) string {
		if _, ok := ids[id]; !ok {
			ids[id] = fmt.Sprintf("<id%d>", len(ids)+1)
		}
		return ids[id]
	})
	return reSecret.ReplaceAllString(text, "$1<secret>$2")
}

func TestCLIGolden(t *testing.T) {
	url, adminToken := startCloud(t)
	s := &session{t: t, configDir: t.TempDir(), vars: map[string]string{"OUTPOST_CLOUD": url, "OUTPOST_TOKEN": adminToken}}
	admin := func() { s.vars["OUTPOST_TOKEN"] = adminToken }
	saved := func() { delete(s.vars, "OUTPOST_TOKEN") }

	s.run("", "cloud", "info")
	s.run("", "whoami")
	s.run("ann's password 1\n", "user", "create", "ann@example.com", "--password-stdin")
	saved()
	s.run("wrong password!!\n", "login", "ann@example.com", "--password-stdin")
	s.run("ann's password 1\n", "login", "ann@example.com", "--password-stdin")
	s.run("", "whoami")
	org := s.field(s.run("", "org", "create", "Acme Robotics", "--json"), "org", "id")
	s.run("", "org", "list")
	plant := s.field(s.run("", "location", "create", "Plant", "--org", org, "--json"), "location", "id")
	line := s.field(s.run("", "location", "create", "Line 1", "--org", org, "--parent", plant, "--json"), "location", "id")
	s.run("", "location", "move", plant, "--parent", line)
	s.run("", "location", "move", line)
	s.run("", "location", "move", line, "--root")
	s.run("", "location", "list", "--org", org)
	machine := s.field(s.run("", "machine", "create", "arm-1", "--location", line, "--json"), "machine", "id")
	s.run("", "machine", "get", machine)
	s.run("", "location", "delete", line, "--yes")
	s.run("", "location", "create", "", "--org", org)
	admin()
	s.run("", "user", "create", "bob@example.com")
	saved()
	s.run("", "role", "grant", "--subject", "user:bob@example.com", "--role", "operator", "--scope", "location/"+line)
	s.run("", "role", "grant", "--subject", "user:bob@example.com", "--role", "king", "--scope", "location/"+line)
	s.run("", "role", "list", "--scope", "machine/"+machine)
	s.run("", "apikey", "create", "--name", "ci", "--role", "operator", "--scope", "machine/"+machine)
	s.run("", "access", "check", "--subject", "user:bob@example.com", "--action", "machine.rename", "--resource", "machine/"+machine)
	s.run("", "access", "check", "--subject", "user:bob@example.com", "--action", "machine.control", "--resource", "machine/"+machine, "--json")
	s.run("", "access", "check", "--subject", "user:bob@example.com", "--action", "machine.fly", "--resource", "machine/"+machine)
	s.run("", "audit", "list", "--org", org, "--limit", "3")
	s.vars["OUTPOST_TOKEN"] = "not-a-token"
	s.run("", "org", "list")

	got := normalize(s.out.String(), url, s.configDir)
	path := filepath.Join("testdata", "session.golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("transcript differs from %s (run with -update if the change is intended):\n%s", path, got)
	}
}

// TestSubjectSpellings: --subject and user delete take a subject in its one
// spelling, user/EMAIL, and still in the old user:EMAIL; both name the same
// user, and user delete sends the one spelling.
func TestSubjectSpellings(t *testing.T) {
	url, adminToken := startCloud(t)
	s := &session{t: t, configDir: t.TempDir(), vars: map[string]string{"OUTPOST_CLOUD": url, "OUTPOST_TOKEN": adminToken}}
	s.run("", "user", "create", "bob@example.com")
	org := s.field(s.run("", "org", "create", "Acme Robotics", "--json"), "org", "id")
	line := s.field(s.run("", "location", "create", "Line 1", "--org", org, "--json"), "location", "id")
	machine := s.field(s.run("", "machine", "create", "arm-1", "--location", line, "--json"), "machine", "id")
	granted := s.run("", "role", "grant", "--subject", "user/bob@example.com", "--role", "operator", "--scope", "location/"+line)
	check := func(subject string) string {
		return s.run("", "access", "check", "--subject", subject, "--action", "machine.control", "--resource", "machine/"+machine, "--json")
	}
	canonical, old := check("user/bob@example.com"), check("user:bob@example.com")
	deleted := s.run("", "user", "delete", "user/bob@example.com", "--yes")
	if !strings.Contains(granted, "bob@example.com") || !strings.Contains(canonical, `"allowed": true`) || canonical != old ||
		!strings.HasPrefix(deleted, "deleted user bob@example.com") {
		t.Fatalf("the spellings do not name the same user:\n%s", s.out.String())
	}
}

func TestCompletion(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		root := newRoot(env{getenv: func(string) string { return "" }, stdin: strings.NewReader("")})
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetArgs([]string{"completion", shell})
		if err := root.Execute(); err != nil || out.Len() == 0 {
			t.Fatalf("completion %s: %v", shell, err)
		}
	}
	root := newRoot(env{getenv: func(string) string { return "" }, stdin: strings.NewReader("")})
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs([]string{"__complete", "access", "check", "--action", "location.m"})
	if err := root.Execute(); err != nil || !strings.Contains(out.String(), "location.move") {
		t.Fatalf("action completion: %v %q", err, out.String())
	}
}

// TestLoginPrompts: without --password-stdin, login asks on the terminal,
// and refuses when there is none.
func TestLoginPrompts(t *testing.T) {
	url, _ := startCloud(t)
	var asked bool
	e := env{
		getenv:        func(k string) string { return map[string]string{"OUTPOST_CLOUD": url}[k] },
		stdin:         strings.NewReader(""),
		stdinTerminal: true,
		readPassword:  func() (string, error) { asked = true; return "not the password", nil },
		configDir:     t.TempDir(),
	}
	root := newRoot(e)
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs([]string{"login", "someone@example.com"})
	err := root.Execute()
	if !asked || err == nil || !strings.Contains(describe(err), "wrong email or password") || !strings.Contains(out.String(), "Password for someone@example.com") {
		t.Fatalf("asked %v, err %v, out %q", asked, err, out.String())
	}
	e.stdinTerminal = false
	root = newRoot(e)
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs([]string{"login", "someone@example.com"})
	if err := root.Execute(); err == nil || !strings.Contains(err.Error(), "--password-stdin") {
		t.Fatalf("no terminal: %v", err)
	}
}

// TestHelpNeverPrintsSecrets: cobra prints flag defaults in --help, so no
// secret may come from the environment as a default.
func TestHelpNeverPrintsSecrets(t *testing.T) {
	const token, key = "eyJhbGciOi.secret-token.sig", "0123456789abcdef0123456789abcdef:secret-key"
	t.Setenv("OUTPOST_TOKEN", token)
	t.Setenv("OUTPOST_API_KEY", key)
	for _, args := range [][]string{{"--help"}, {"robot", "--help"}, {"robot", "status", "--help"}, {"org", "create", "--help"}} {
		root := newRoot(osEnv())
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs(args)
		if err := root.Execute(); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		if strings.Contains(out.String(), token) || strings.Contains(out.String(), key) {
			t.Fatalf("outpost %v printed a secret from the environment:\n%s", args, out.String())
		}
	}
}

// TestMistypedSubcommandFails: a mistyped subcommand at any depth is an
// error (exit 1) naming what was meant, never help with success; a group
// given no subcommand still prints its help.
func TestMistypedSubcommandFails(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // "" for success
	}{
		{[]string{"machin"}, `unknown command "machin" for "outpost": did you mean "machine"?`},
		{[]string{"machine", "lst"}, `unknown command "lst" for "outpost machine": did you mean one of get, list?`},
		{[]string{"robot", "cnfig"}, `unknown command "cnfig" for "outpost robot": did you mean "config"?`},
		{[]string{"zzzz"}, `unknown command "zzzz" for "outpost": see 'outpost --help'`},
		{[]string{"org", "\x1b[31mred"}, `unknown command "\x1b[31mred" for "outpost org"`},
		{[]string{"machine"}, ""},
		{nil, ""},
	} {
		root := newRoot(osEnv())
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs(tc.args)
		err := root.Execute()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v", tc.args, err)
		case tc.want == "" && !strings.Contains(out.String(), "Usage:"):
			t.Errorf("%q printed no help:\n%s", tc.args, out.String())
		case tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want)):
			t.Errorf("%q: got %v, want %s", tc.args, err, tc.want)
		}
	}
}
