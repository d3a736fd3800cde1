package cache

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/outpost-robotics/outpost/clock"
)

const memChildEnv = "OUTPOST_CACHE_MEM_CHILD"

// procStatus returns fields of /proc/self/status in kB.
func procStatus(keys ...string) map[string]string {
	out := map[string]string{}
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		for _, want := range keys {
			if k == want {
				out[k] = strings.TrimSpace(v)
			}
		}
	}
	return out
}

// memChild writes 1 GB of 64 KB captures into a store it keeps open, then
// prints its memory figures.
func memChild(dir string) {
	ctx := context.Background()
	s, err := Open(ctx, dir, Options{Clock: clock.NewReal(), GCInterval: -1})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(3)
	}
	batch := make([]Record, 16)
	for i := range batch {
		p := make([]byte, 64<<10)
		for j := range p {
			p[j] = byte(j*31 + i)
		}
		batch[i] = Record{Payload: p, Priority: uint8(i)}
	}
	for written := 0; written < 1<<30; written += 16 * 64 << 10 {
		if _, err := s.AppendBatch(ctx, StreamCaptures, batch); err != nil {
			fmt.Println("append:", err)
			os.Exit(4)
		}
	}
	// Read some back too, as the sync package would.
	if _, err := s.Read(ctx, StreamCaptures, 0, 64, 4<<20); err != nil {
		fmt.Println("read:", err)
		os.Exit(5)
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	st := procStatus("VmRSS", "RssAnon", "RssFile", "VmHWM")
	kb := func(k string) string { return strings.ReplaceAll(st[k], " ", "") }
	fmt.Printf("VmRSS=%s RssAnon=%s RssFile=%s VmHWM=%s HeapInuse=%dMB GoSys=%dMB\n",
		kb("VmRSS"), kb("RssAnon"), kb("RssFile"), kb("VmHWM"), ms.HeapInuse>>20, ms.Sys>>20)
	os.Exit(0)
}

// TestMemoryHolding1GB measures the resident memory of a process that holds
// 1 GB of captures in an open store (goal: at most 60 MB). It runs in a
// child process so the test binary's own memory does not count; skipped
// under -race and -short unless OUTPOST_CACHE_BIG is set.
func TestMemoryHolding1GB(t *testing.T) {
	if dir := os.Getenv(memChildEnv); dir != "" {
		memChild(dir)
		return
	}
	if (raceEnabled || testing.Short()) && os.Getenv(bigEnv) == "" {
		t.Skip("writes 1 GB; set " + bigEnv + "=1 to run under -race or -short")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestMemoryHolding1GB$")
	cmd.Env = append(os.Environ(), memChildEnv+"="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	line := strings.TrimSpace(string(out))
	t.Logf("holding 1 GB of captures: %s", line)
	var rss int
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, "VmRSS="); ok {
			rss, _ = strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(v, "kB")))
		}
	}
	if rss == 0 || rss > 60<<10 {
		t.Fatalf("VmRSS %d kB holding 1 GB of captures, goal ≤ 60 MB", rss)
	}
}
