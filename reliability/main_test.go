package reliability

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// long selects the long run of every scenario (`make reliability`); the
// default is the CI-sized run that `make test` includes.
var long = flag.Bool("long", false, "run the long version of every scenario (make reliability)")

// suite is what TestMain prepares for the scenarios and collects from them.
// It is package state only because TestMain has no other way to hand
// anything to tests: the paths are written once before m.Run, and the
// summary is guarded by its mutex.
var suite struct {
	outpostd, cloud, cli string // the binaries, built once per test binary

	mu      sync.Mutex
	lines   []string
	results map[bool]int
}

// TestMain builds outpostd, outpost-cloud and the CLI once (without -race: the
// children are the system under test, the race detector is for the test
// process), runs the scenarios, then prints their result lines and the
// closing tally on stdout.
func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	bin, err := os.MkdirTemp("", "outpost-reliability-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "reliability:", err)
		return 1
	}
	defer os.RemoveAll(bin)
	build := exec.Command("go", "build", "-trimpath", "-o", bin+string(filepath.Separator), "./cmd/outpostd", "./cmd/outpost-cloud", "./cmd/outpost")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "reliability: build outpostd, outpost-cloud and outpost: %v\n%s", err, out)
		return 1
	}
	suite.outpostd, suite.cloud, suite.cli = filepath.Join(bin, "outpostd"), filepath.Join(bin, "outpost-cloud"), filepath.Join(bin, "outpost")
	suite.results = map[bool]int{}

	code := m.Run()

	suite.mu.Lock()
	defer suite.mu.Unlock()
	if len(suite.lines) > 0 {
		fmt.Println()
		for _, l := range suite.lines {
			fmt.Println(l)
		}
		fmt.Printf("%d passed, %d failed\n", suite.results[true], suite.results[false])
	}
	return code
}

// report is one scenario's result line: "name: PASS|FAIL key=value ...".
// It is printed by TestMain after every scenario ran, so the lines stay
// together and unindented; a FAIL also fails the test.
type report struct {
	t      *testing.T
	name   string
	keys   []string
	vals   map[string]string
	reason string
}

// newReport starts the result of scenario name; it is recorded when the
// test ends, as FAIL if the test failed for any reason.
func newReport(t *testing.T, name string) *report {
	r := &report{t: t, name: name, vals: map[string]string{}}
	t.Cleanup(r.finish)
	return r
}

// set records key=value, keeping the order keys were first set in.
func (r *report) set(key string, v any) {
	if _, ok := r.vals[key]; !ok {
		r.keys = append(r.keys, key)
	}
	r.vals[key] = fmt.Sprint(v)
}

// fail fails the scenario with a reason (the first one is the line's).
func (r *report) fail(format string, args ...any) {
	r.t.Helper()
	msg := fmt.Sprintf(format, args...)
	if r.reason == "" {
		r.reason = msg
	}
	r.t.Error(msg)
}

// fatal is fail, then the end of the test.
func (r *report) fatal(format string, args ...any) {
	r.t.Helper()
	r.fail(format, args...)
	r.t.FailNow()
}

// check fails the scenario with a reason unless ok.
func (r *report) check(ok bool, format string, args ...any) bool {
	r.t.Helper()
	if !ok {
		r.fail(format, args...)
	}
	return ok
}

func (r *report) finish() {
	if r.t.Skipped() {
		return
	}
	pass := !r.t.Failed()
	var b strings.Builder
	b.WriteString(r.name)
	if pass {
		b.WriteString(": PASS")
	} else {
		b.WriteString(": FAIL")
	}
	for _, k := range r.keys {
		fmt.Fprintf(&b, " %s=%s", k, r.vals[k])
	}
	if !pass {
		reason := r.reason
		if reason == "" {
			reason = "the test failed; see its log"
		}
		fmt.Fprintf(&b, " reason=%q", reason)
	}
	suite.mu.Lock()
	defer suite.mu.Unlock()
	suite.lines = append(suite.lines, b.String())
	suite.results[pass]++
}
