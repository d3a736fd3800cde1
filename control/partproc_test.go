package control

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/outpost-robotics/outpost/cputime"
	"github.com/outpost-robotics/outpost/qemutest"
)

// partCPUsEnv, when set to a CPU list such as "0" or "0-1", makes
// BenchmarkControlRPC run the part in a child process of its own, pinned
// to those CPUs, and its clients on the machine's other CPUs: the part's
// cores are then its own, as on a robot whose clients are laptops on its
// network, and the part's CPU per call is its process's.
const partCPUsEnv = "OUTPOST_CONTROL_PART_CPUS"

// partProfileEnv names a file for the part process's CPU profile.
const partProfileEnv = "OUTPOST_CONTROL_PART_CPUPROFILE"

// partProcessEnv marks the child process TestPartProcess serves a part in.
const partProcessEnv = "OUTPOST_CONTROL_PART_PROCESS"

// partInfo is what the part process tells its parent: where it listens,
// its certificate's fingerprint and the printed form of an operator's key.
type partInfo struct {
	Addr        string `json:"addr"`
	Fingerprint string `json:"fingerprint"`
	Key         string `json:"key"`
}

// TestPartProcess is the part process of startPartProcess; it is skipped
// unless its parent started it. It serves the fixture's part, writes its
// partInfo as a line on stdout, and serves until its stdin closes.
func TestPartProcess(t *testing.T) {
	cpus := os.Getenv(partProcessEnv)
	if cpus == "" {
		t.Skip("the part process of BenchmarkControlRPC; run by it")
	}
	set, err := parseCPUs(cpus)
	if err != nil {
		t.Fatal(err)
	}
	if err := pinProcess(set); err != nil {
		t.Fatal(err)
	}
	if path := os.Getenv(partProfileEnv); path != "" {
		defer cputime.Profile(t, path)()
	}
	e := newEnv(t)
	e.srv.opts.MaxSessions = 64
	line, err := json.Marshal(partInfo{Addr: e.addr, Fingerprint: e.fingerprint, Key: e.creds.key(opKey)})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println(string(line))
	_, _ = io.Copy(io.Discard, os.Stdin)
}

// partProcess is a part served by a child process.
type partProcess struct {
	dialer
	key   string
	child *qemutest.Child
}

// startPartProcess runs the fixture's part in a child process pinned to
// cpus, pins this process to the machine's other CPUs, and returns how to
// reach the part. The child ends with b.
func startPartProcess(b *testing.B, cpus string) *partProcess {
	b.Helper()
	part, err := parseCPUs(cpus)
	if err != nil {
		b.Fatal(err)
	}
	var rest unix.CPUSet
	for i := range runtime.NumCPU() {
		if !part.IsSet(i) {
			rest.Set(i)
		}
	}
	if rest.Count() == 0 {
		b.Fatalf("%s=%s leaves no CPU for the clients", partCPUsEnv, cpus)
	}
	child := qemutest.StartChild(b, "TestPartProcess", partProcessEnv+"="+cpus)
	b.Cleanup(func() { child.Stop(b) })
	line, ok := child.Next()
	if !ok {
		b.Fatal("the part process ended before it said where it serves")
	}
	var info partInfo
	if err := json.Unmarshal([]byte(line), &info); err != nil {
		b.Fatalf("the part process said %q: %v", line, err)
	}
	var was unix.CPUSet
	if err := unix.SchedGetaffinity(0, &was); err != nil {
		b.Fatal(err)
	}
	procs := runtime.GOMAXPROCS(0)
	if err := pinProcess(rest); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := pinSet(was); err != nil {
			b.Error(err)
		}
		runtime.GOMAXPROCS(procs)
	})
	d, err := newDialer(b, info.Addr, info.Fingerprint, func() time.Time { return t0 })
	if err != nil {
		b.Fatal(err)
	}
	return &partProcess{dialer: d, key: info.Key, child: child}
}

// cpu is the part process's CPU time so far.
func (p *partProcess) cpu(b *testing.B) cputime.Proc {
	b.Helper()
	pr, err := cputime.Read(p.child.Pid())
	if err != nil {
		b.Fatal(err)
	}
	return pr
}

// parseCPUs reads a CPU list: numbers and ranges, comma-separated.
func parseCPUs(s string) (unix.CPUSet, error) {
	var set unix.CPUSet
	for _, f := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(f, "-")
		a, err1 := strconv.Atoi(lo)
		z := a
		var err2 error
		if isRange {
			z, err2 = strconv.Atoi(hi)
		}
		if err1 != nil || err2 != nil || a < 0 || z < a || z >= runtime.NumCPU() {
			return set, fmt.Errorf("CPU list %q: %q is not a CPU or a range of this machine's %d", s, f, runtime.NumCPU())
		}
		for i := a; i <= z; i++ {
			set.Set(i)
		}
	}
	return set, nil
}

// pinProcess confines every thread of this process to set, and the runtime
// to as many Ps: threads made later inherit their maker's CPUs.
func pinProcess(set unix.CPUSet) error {
	runtime.GOMAXPROCS(set.Count())
	return pinSet(set)
}

// pinSet confines every thread of this process to set.
func pinSet(set unix.CPUSet) error {
	// Twice: a thread made while the first pass ran may have inherited
	// the CPUs of a thread not yet pinned.
	for range 2 {
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return fmt.Errorf("list this process's threads: %w", err)
		}
		for _, t := range tasks {
			tid, err := strconv.Atoi(t.Name())
			if err != nil {
				continue
			}
			if err := unix.SchedSetaffinity(tid, &set); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("pin thread %d to %d CPUs: %w", tid, set.Count(), err)
			}
		}
	}
	return nil
}

func TestParseCPUs(t *testing.T) {
	n := runtime.NumCPU()
	all := make([]int, n)
	for i := range all {
		all[i] = i
	}
	for _, tc := range []struct {
		in   string
		want []int // nil: an error
	}{
		{"0", []int{0}},
		{"0-0", []int{0}},
		// The whole machine parses; startPartProcess refuses it for
		// leaving the clients no CPU.
		{fmt.Sprintf("0-%d", n-1), all},
		{"", nil},
		{"-1", nil},
		{"1-0", nil},
		{"0,", nil},
		{"a", nil},
		{"0-", nil},
		{fmt.Sprint(n), nil},
		{"99999999999999999999", nil},
		{"0-99999999", nil},
	} {
		set, err := parseCPUs(tc.in)
		if tc.want == nil {
			if err == nil {
				t.Errorf("parseCPUs(%q) = %d CPUs, want an error", tc.in, set.Count())
			}
			continue
		}
		if err != nil || set.Count() != len(tc.want) {
			t.Errorf("parseCPUs(%q) = %d CPUs, %v; want %v", tc.in, set.Count(), err, tc.want)
			continue
		}
		for _, c := range tc.want {
			if !set.IsSet(c) {
				t.Errorf("parseCPUs(%q) lacks CPU %d", tc.in, c)
			}
		}
	}
}
