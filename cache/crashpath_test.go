package cache

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/qemutest"
)

const crashPathChildEnv = "OUTPOST_CACHE_CRASHPATH_CHILD"

// crashPathCases are the three places an append can be durable in. A
// small append is first in the intake only, until it is settled; settled,
// a value under the value threshold lives in the write-ahead log (the
// memtable's .mem file) only, one at or over it in the value log with a
// pointer in the write-ahead log. Each of these writes is synced.
var crashPathCases = []struct {
	name   string
	size   int      // payload bytes
	settle bool     // whether the child settles the intake after the append
	in     string   // the file kind holding the payload
	out    []string // the file kinds that must not hold it
}{
	{"write-ahead log", valueThreshold / 4, true, ".mem", []string{".vlog"}},
	{"value log", 2 * valueThreshold, true, ".vlog", []string{".mem"}},
	{"intake", valueThreshold / 4, false, intakeFile, []string{".mem", ".vlog"}},
}

// crashPathPayload is case i's payload: a marker that appears nowhere
// else, padded to the case's size.
func crashPathPayload(i int) []byte {
	p := bytes.Repeat([]byte{'.'}, crashPathCases[i].size)
	copy(p, fmt.Sprintf("crashpath-%d-marker/", i))
	return p
}

// crashPathChild appends one record per case, each on its own (one group
// commit each), settles the intake after it when the case says so, reports
// each returned append as "<case> <seq>", then says "done" and waits to be
// killed.
func crashPathChild(dir string) {
	s, err := Open(context.Background(), dir, Options{Clock: clock.NewReal(), GCInterval: -1})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(3)
	}
	for i := range crashPathCases {
		seq, err := s.Append(context.Background(), StreamLogsInfo, Record{Payload: crashPathPayload(i)})
		if err != nil {
			fmt.Fprintln(os.Stderr, "child append:", err)
			os.Exit(4)
		}
		if crashPathCases[i].settle {
			if err := s.settle(); err != nil {
				fmt.Fprintln(os.Stderr, "child settle:", err)
				os.Exit(4)
			}
		}
		fmt.Printf("%d %d\n", i, seq)
	}
	os.Stdout.WriteString("done\n")
	select {}
}

// TestCrashKeepsBothPaths checks that an acknowledged append survives a
// SIGKILL of its process whichever file holds it: a small record only in
// the write-ahead log, a large one in the value log. It first checks that
// each payload is in the file kind the case names (so that a change of the
// value threshold or of what a group commit syncs keeps both paths
// covered), then kills the child once both appends returned and reads
// both back.
func TestCrashKeepsBothPaths(t *testing.T) {
	if dir := os.Getenv(crashPathChildEnv); dir != "" {
		crashPathChild(dir)
		return
	}
	dir := filepath.Join(t.TempDir(), "store")
	child := qemutest.StartChild(t, "TestCrashKeepsBothPaths", crashPathChildEnv+"="+dir)
	seqs := map[int]uint64{}
	for l, ok := child.Next(); ok && l != "done"; l, ok = child.Next() {
		f := strings.Fields(l)
		if len(f) != 2 {
			t.Fatalf("bad child line %q", l)
		}
		i, err1 := strconv.Atoi(f[0])
		seq, err2 := strconv.ParseUint(f[1], 10, 64)
		if err1 != nil || err2 != nil || i < 0 || i >= len(crashPathCases) {
			t.Fatalf("bad child line %q", l)
		}
		seqs[i] = seq
	}
	if len(seqs) != len(crashPathCases) {
		t.Fatalf("child reported %d appends, want %d", len(seqs), len(crashPathCases))
	}

	// Where each payload went, read while the child holds the store.
	files := map[string][]byte{}
	for kind, glob := range map[string]string{".mem": "*.mem", ".vlog": "*.vlog", intakeFile: intakeFile} {
		names, err := filepath.Glob(filepath.Join(dir, glob))
		must(t, err)
		for _, n := range names {
			b, err := os.ReadFile(n)
			must(t, err)
			files[kind] = append(files[kind], b...)
		}
	}
	for i, c := range crashPathCases {
		marker := crashPathPayload(i)[:len(fmt.Sprintf("crashpath-%d-marker/", i))]
		if !bytes.Contains(files[c.in], marker) {
			t.Errorf("%s: a %d-byte payload is not in the %s files", c.name, c.size, c.in)
		}
		for _, out := range c.out {
			if bytes.Contains(files[out], marker) {
				t.Errorf("%s: a %d-byte payload is also in the %s files", c.name, c.size, out)
			}
		}
	}

	child.Kill(t)

	s := openTest(t, dir, testOptions(t))
	es, err := s.Read(context.Background(), StreamLogsInfo, 0, 100, 0)
	must(t, err)
	got := map[uint64][]byte{}
	for _, e := range es {
		got[e.Seq] = e.Payload
	}
	for i, c := range crashPathCases {
		if p, ok := got[seqs[i]]; !ok || !bytes.Equal(p, crashPathPayload(i)) {
			t.Errorf("%s: acknowledged seq %d lost or changed by the crash (present %v)", c.name, seqs[i], ok)
		}
	}
}
