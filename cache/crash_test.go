package cache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"

	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/qemutest"
)

const crashChildEnv = "OUTPOST_CACHE_CRASH_CHILD"

var crashStreams = []Stream{StreamLogsInfo, StreamCaptures, StreamAudit}

// crashChild appends from many goroutines until it is killed, reporting
// every append that returned on stdout, one line each, before going on.
func crashChild(dir, run string) {
	s, err := Open(context.Background(), dir, Options{Clock: clock.NewReal(), GCInterval: -1})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(3)
	}
	os.Stdout.WriteString("ready\n")
	var mu sync.Mutex
	for g := 0; g < 16; g++ {
		go func() {
			rng := rand.New(rand.NewPCG(uint64(g), uint64(len(run))))
			for i := 0; ; i++ {
				st := crashStreams[rng.IntN(len(crashStreams))]
				size := 64 + rng.IntN(256)
				if rng.IntN(8) == 0 {
					size = 2000 + rng.IntN(4000) // value log
				}
				p := make([]byte, size)
				copy(p, fmt.Sprintf("%s/%d/%d/", run, g, i))
				seq, err := s.Append(context.Background(), st, Record{Payload: p, Priority: uint8(g)})
				if err != nil {
					fmt.Fprintln(os.Stderr, "child append:", err)
					os.Exit(4)
				}
				h := sha256.Sum256(p)
				line := fmt.Sprintf("%s %d %s\n", st, seq, hex.EncodeToString(h[:8]))
				mu.Lock()
				os.Stdout.WriteString(line) // one write(2) of < PIPE_BUF: atomic
				mu.Unlock()
			}
		}()
	}
	select {}
}

type reported struct {
	st   Stream
	seq  uint64
	hash string
}

// TestCrashKill runs a child process that appends from 16 goroutines, kills
// it with SIGKILL at seeded random moments, and checks after each kill that
// every append that had returned is present exactly once, with contiguous
// sequence numbers.
func TestCrashKill(t *testing.T) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir, os.Getenv(crashChildEnv+"_RUN"))
		return
	}
	if testing.Short() {
		t.Skip("spawns 50 processes")
	}
	kills := 50
	if qemutest.Emulated() {
		// The architecture is what the emulated run checks; the native run
		// covers the count.
		kills = 12
	}
	dir := t.TempDir() + "/store"
	rng := rand.New(rand.NewPCG(20261122, 4))
	all := map[Stream]map[uint64]string{}
	for _, st := range crashStreams {
		all[st] = map[uint64]string{}
	}
	var total, unreported int
	start := time.Now()
	for k := 0; k < kills; k++ {
		child := qemutest.StartChild(t, "TestCrashKill", crashChildEnv+"="+dir, crashChildEnv+"_RUN="+strconv.Itoa(k))
		// Most kills land while appends run; one in eight during startup.
		var delay time.Duration
		if rng.IntN(8) == 0 {
			delay = time.Duration(rng.IntN(40)) * time.Millisecond
		} else {
			child.Ready(t)
			delay = time.Duration(5+rng.IntN(120)) * time.Millisecond
		}
		time.Sleep(delay)
		var got []reported
		for _, l := range child.Kill(t) {
			if l == "ready" {
				continue
			}
			f := strings.Fields(l)
			if len(f) != 3 {
				t.Fatalf("bad child line %q", l)
			}
			seq, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				t.Fatalf("bad child line %q", l)
			}
			got = append(got, reported{Stream(f[0]), seq, f[2]})
		}
		for _, r := range got {
			if prev, dup := all[r.st][r.seq]; dup {
				t.Fatalf("kill %d: %s seq %d returned twice (%s, %s)", k, r.st, r.seq, prev, r.hash)
			}
			all[r.st][r.seq] = r.hash
		}
		total += len(got)
		unreported += verifyCrashStore(t, dir, all, k)
	}
	if aside, _ := filepath.Glob(dir + ".corrupt-*"); len(aside) > 0 {
		t.Fatalf("a crash made the store unopenable: %v", aside)
	}
	t.Logf("%d kills, %d acknowledged appends all present exactly once, %d unacknowledged appends also present, %v",
		kills, total, unreported, time.Since(start).Round(time.Millisecond))
}

// verifyCrashStore opens the store and checks every reported append.
func verifyCrashStore(t *testing.T, dir string, all map[Stream]map[uint64]string, k int) (unreported int) {
	t.Helper()
	ctx := context.Background()
	opts := testOptions(t)
	opts.Logger = zaptest.NewLogger(t, zaptest.Level(zapcore.WarnLevel))
	s, err := Open(ctx, dir, opts)
	if err != nil {
		t.Fatalf("kill %d: reopen: %v", k, err)
	}
	defer s.Close()
	for _, st := range crashStreams {
		es, err := s.Read(ctx, st, 0, 1<<30, 0)
		if err != nil {
			t.Fatalf("kill %d: read %s: %v", k, st, err)
		}
		stats, err := s.Stats(ctx, st)
		must(t, err)
		if uint64(len(es)) != stats.Last || stats.Count != stats.Last {
			t.Fatalf("kill %d: %s has %d records, last seq %d, count %d", k, st, len(es), stats.Last, stats.Count)
		}
		seen := map[string]uint64{}
		for i, e := range es {
			if e.Seq != uint64(i+1) {
				t.Fatalf("kill %d: %s seq %d at position %d: not contiguous", k, st, e.Seq, i)
			}
			h := sha256.Sum256(e.Payload)
			hs := hex.EncodeToString(h[:8])
			if prev, dup := seen[hs]; dup {
				t.Fatalf("kill %d: %s payload at seq %d duplicates seq %d", k, st, e.Seq, prev)
			}
			seen[hs] = e.Seq
			if want, ok := all[st][e.Seq]; ok {
				if want != hs {
					t.Fatalf("kill %d: %s seq %d holds another payload than acknowledged", k, st, e.Seq)
				}
			} else {
				unreported++
				// Present though the child died before reporting it: it
				// stays, so later kills must find it too.
				all[st][e.Seq] = hs
			}
		}
		for seq := range all[st] {
			if seq > uint64(len(es)) {
				t.Fatalf("kill %d: acknowledged %s seq %d is missing (last %d)", k, st, seq, len(es))
			}
		}
	}
	return unreported
}
