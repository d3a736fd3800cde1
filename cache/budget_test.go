package cache

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func counts(t *testing.T, s *Store) map[Stream]uint64 {
	t.Helper()
	out := map[Stream]uint64{}
	for _, st := range allStreams {
		stats, err := s.Stats(context.Background(), st)
		if err != nil {
			t.Fatal(err)
		}
		out[st] = stats.Count
	}
	return out
}

func capturesByPriority(t *testing.T, s *Store) map[uint8]int {
	t.Helper()
	es, err := s.Read(context.Background(), StreamCaptures, 0, 1<<20, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[uint8]int{}
	for _, e := range es {
		out[e.Priority]++
	}
	return out
}

func TestBudgetEvictsInOrderWithGapRecords(t *testing.T) {
	ctx := context.Background()
	opts := testOptions(t)
	const budget = 200 << 10
	opts.Budget.MaxBytes = budget
	s := openTest(t, t.TempDir(), opts)
	rec := func(prio uint8) Record { return Record{Payload: make([]byte, 256), Priority: prio} }
	fill := []struct {
		st   Stream
		prio uint8
		n    int
	}{
		{StreamLogsDebug, 0, 150},
		{StreamLogsInfo, 0, 150},
		{StreamCaptures, 1, 100}, // appended first: older, but of higher priority
		{StreamCaptures, 0, 100},
		{StreamAudit, 0, 50},
	}
	for _, f := range fill {
		for i := 0; i < f.n; i++ {
			if _, err := s.Append(ctx, f.st, rec(f.prio)); err != nil {
				t.Fatalf("fill %s: %v", f.st, err)
			}
		}
	}
	if c := counts(t, s); c[StreamLogsDebug] != 150 || c[StreamGaps] != 0 {
		t.Fatalf("evicted while under budget: %v (usage %d)", c, s.Usage().Bytes)
	}
	start := counts(t, s)
	// Warn logs are never evicted and may evict anything: push until all
	// evictable data is gone, checking the order at every step. (Audit
	// events may evict only within their share: TestAuditShareOfTheBudget.)
	for i := 0; ; i++ {
		if _, err := s.Append(ctx, StreamLogsWarn, rec(0)); err != nil {
			t.Fatalf("warn append %d: %v", i, err)
		}
		c := counts(t, s)
		prios := capturesByPriority(t, s)
		switch {
		case c[StreamLogsDebug] > 0:
			if c[StreamLogsInfo] != start[StreamLogsInfo] || c[StreamCaptures] != start[StreamCaptures] {
				t.Fatalf("step %d: info or captures evicted before debug logs: %v", i, c)
			}
		case c[StreamLogsInfo] > 0:
			if c[StreamCaptures] != start[StreamCaptures] {
				t.Fatalf("step %d: captures evicted before info logs: %v", i, c)
			}
		case prios[0] > 0:
			if prios[1] != 100 {
				t.Fatalf("step %d: priority 1 captures evicted before priority 0: %v", i, prios)
			}
		}
		if c[StreamCaptures] > 0 && s.Usage().Bytes > budget {
			t.Fatalf("step %d: %d bytes over budget %d while evictable data remains", i, s.Usage().Bytes, budget)
		}
		if c[StreamLogsWarn] != start[StreamLogsWarn]+uint64(i)+1 {
			t.Fatalf("step %d: warn logs lost: %v", i, c)
		}
		if c[StreamLogsDebug]+c[StreamLogsInfo]+c[StreamCaptures] == 0 {
			break
		}
		if i > 5000 {
			t.Fatal("eviction does not make progress")
		}
	}
	// The gap records say what went, in order, and add up.
	gaps, err := s.Read(ctx, StreamGaps, 0, 1<<20, 0)
	if err != nil {
		t.Fatal(err)
	}
	lost := map[string]uint64{}
	order := []string{}
	for _, e := range gaps {
		g, err := DecodeGap(e.Payload)
		if err != nil {
			t.Fatal(err)
		}
		key := string(g.Stream)
		if g.Stream == StreamCaptures {
			key += "/" + string('0'+g.Priority)
		}
		if len(order) == 0 || order[len(order)-1] != key {
			order = append(order, key)
		}
		if g.Count == 0 || g.Bytes == 0 || g.From > g.Through || g.Reason == "" || !g.At.Equal(t0) {
			t.Fatalf("bad gap %+v", g)
		}
		lost[key] += g.Count
	}
	wantOrder := []string{"logs.debug", "logs.info", "captures/0", "captures/1"}
	if strings.Join(order, ",") != strings.Join(wantOrder, ",") {
		t.Fatalf("gap order %v, want %v", order, wantOrder)
	}
	if lost["logs.debug"] != 150 || lost["logs.info"] != 150 || lost["captures/0"] != 100 || lost["captures/1"] != 100 {
		t.Fatalf("gap counts %v", lost)
	}
	if u := s.Usage(); u.EvictedRecords != 500 || u.EvictedBytes == 0 {
		t.Fatalf("usage counts %d records (%d bytes) evicted, want the gap records' 500", u.EvictedRecords, u.EvictedBytes)
	}
	// A debug log cannot push out warn logs: over budget it is refused,
	// while never-evicted streams keep being accepted.
	for s.Usage().Bytes <= budget {
		if _, err := s.Append(ctx, StreamLogsWarn, rec(0)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Append(ctx, StreamLogsDebug, rec(0)); !errors.Is(err, ErrOverBudget) {
		t.Fatalf("debug append over budget = %v, want ErrOverBudget", err)
	}
	if _, err := s.Append(ctx, StreamLogsWarn, rec(0)); err != nil {
		t.Fatalf("warn append over budget: %v", err)
	}
}

func TestBudgetRankLimitsWhatMayBeEvicted(t *testing.T) {
	ctx := context.Background()
	opts := testOptions(t)
	opts.Budget.MaxBytes = 64 << 10
	s := openTest(t, t.TempDir(), opts)
	big := Record{Payload: make([]byte, 1000), Priority: 5}
	for {
		if _, err := s.Append(ctx, StreamCaptures, big); err != nil {
			if !errors.Is(err, ErrOverBudget) {
				t.Fatal(err)
			}
			break
		}
		if counts(t, s)[StreamGaps] > 0 {
			break // a priority-5 capture evicted older priority-5 captures: allowed
		}
	}
	// Debug and info logs never push out captures.
	for _, st := range []Stream{StreamLogsDebug, StreamLogsInfo} {
		if _, err := s.Append(ctx, st, Record{Payload: make([]byte, 4000)}); !errors.Is(err, ErrOverBudget) {
			t.Fatalf("%s append into a store full of captures = %v, want ErrOverBudget", st, err)
		}
	}
	// A lower-priority capture does not push out higher-priority ones.
	low := Record{Payload: make([]byte, 4000), Priority: 1}
	if _, err := s.Append(ctx, StreamCaptures, low); !errors.Is(err, ErrOverBudget) {
		t.Fatalf("low-priority capture = %v, want ErrOverBudget", err)
	}
}

// TestDiskFull simulates ENOSPC through the DiskFree seam rather than
// filling a real disk.
func TestDiskFull(t *testing.T) {
	ctx := context.Background()
	var free atomic.Int64
	free.Store(1 << 30)
	opts := testOptions(t)
	opts.Budget.MinFreeBytes = 64 << 20
	opts.DiskFree = func(string) (uint64, error) { return uint64(free.Load()), nil }
	s := openTest(t, t.TempDir(), opts)
	for i := 1; i <= 3; i++ {
		if _, err := s.Append(ctx, StreamAudit, Record{Payload: payload(i)}); err != nil {
			t.Fatal(err)
		}
	}
	free.Store(1 << 20)
	_, err := s.Append(ctx, StreamAudit, Record{Payload: payload(4)})
	if !errors.Is(err, ErrDiskFull) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("append on a full disk = %v, want ErrDiskFull and ENOSPC", err)
	}
	t.Log(err)
	if err := s.PutBlobChunk(ctx, "b", 0, []byte("x")); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("blob on a full disk = %v", err)
	}
	es, err := s.Read(ctx, StreamAudit, 0, 10, 0)
	if err != nil || len(es) != 3 {
		t.Fatalf("read on a full disk = %d entries, %v", len(es), err)
	}
	free.Store(1 << 30)
	seq, err := s.Append(ctx, StreamAudit, Record{Payload: payload(4)})
	if err != nil || seq != 4 {
		t.Fatalf("append after space returned = %d, %v; want 4", seq, err)
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	must(t, os.MkdirAll(to, 0o700))
	ents, err := os.ReadDir(from)
	must(t, err)
	for _, e := range ents {
		if e.Name() == "LOCK" {
			continue
		}
		in, err := os.Open(filepath.Join(from, e.Name()))
		must(t, err)
		out, err := os.Create(filepath.Join(to, e.Name()))
		must(t, err)
		_, err = io.Copy(out, in)
		must(t, err)
		in.Close()
		must(t, out.Close())
	}
}

func findFiles(t *testing.T, dir, suffix string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+suffix))
	must(t, err)
	return m
}

// TestTornTailIsRepaired takes a crash image (a copy of a live store's
// files), tears and garbles the ends of its logs, and checks that Badger's
// own recovery opens it with an intact prefix of the acknowledged records.
func TestTornTailIsRepaired(t *testing.T) {
	ctx := context.Background()
	live := openTest(t, t.TempDir(), testOptions(t))
	const n = 200
	for i := 1; i <= n; i++ {
		// Mix small records (write-ahead log) and large ones (value log).
		size := 100
		if i%2 == 0 {
			size = 4000
		}
		p := make([]byte, size)
		copy(p, payload(i))
		if _, err := live.Append(ctx, StreamCaptures, Record{Payload: p}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name  string
		wreck func(t *testing.T, dir string)
	}{
		{"untouched", func(*testing.T, string) {}},
		// Badger preallocates its log files, so tearing means cutting
		// inside the data written: the value log holds ~400 KB here, the
		// write-ahead log ~30 KB.
		{"truncated value log", func(t *testing.T, dir string) {
			for _, f := range findFiles(t, dir, ".vlog") {
				must(t, os.Truncate(f, 150<<10+77))
			}
		}},
		{"truncated write-ahead log", func(t *testing.T, dir string) {
			for _, f := range findFiles(t, dir, ".mem") {
				must(t, os.Truncate(f, 4<<10+33))
			}
		}},
		{"garbage after the logs' data", func(t *testing.T, dir string) {
			for _, f := range findFiles(t, dir, ".vlog") {
				fh, err := os.OpenFile(f, os.O_WRONLY|os.O_APPEND, 0)
				must(t, err)
				_, err = fh.Write([]byte(strings.Repeat("\xde\xad\xbe\xef", 1000)))
				must(t, err)
				must(t, fh.Close())
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "store")
			copyDir(t, live.Dir(), dir)
			tc.wreck(t, dir)
			s := openTest(t, dir, testOptions(t))
			es, err := s.Read(ctx, StreamCaptures, 0, n, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range es {
				if !strings.HasPrefix(string(e.Payload), string(payload(int(e.Seq)))) {
					t.Fatalf("seq %d = %q...", e.Seq, e.Payload[:12])
				}
			}
			// Whatever did not survive is accounted for by gap records.
			gaps, err := s.Read(ctx, StreamGaps, 0, 100, 0)
			must(t, err)
			var lost uint64
			for _, e := range gaps {
				g, err := DecodeGap(e.Payload)
				must(t, err)
				lost += g.Count
			}
			if st, _ := s.Stats(ctx, StreamCaptures); uint64(len(es))+lost != st.Last {
				t.Fatalf("%d records read + %d in gap records != last seq %d", len(es), lost, st.Last)
			}
			if _, err := os.Stat(dir + ".corrupt"); err == nil {
				t.Fatal("moved aside")
			}
			if _, err := s.Append(ctx, StreamCaptures, Record{Payload: []byte("after")}); err != nil {
				t.Fatalf("append after repair: %v", err)
			}
			t.Logf("%d of %d records survived, %d gap records", len(es), n, len(gaps))
		})
	}
}

func TestCorruptStoreIsMovedAside(t *testing.T) {
	ctx := context.Background()
	parent := t.TempDir()
	dir := filepath.Join(parent, "store")
	s := openTest(t, dir, testOptions(t))
	if _, err := s.Append(ctx, StreamAudit, Record{Payload: []byte("before")}); err != nil {
		t.Fatal(err)
	}
	if got := s.MovedAside(); got != "" {
		t.Fatalf("MovedAside of a sound store = %q, want none", got)
	}
	must(t, s.Close())
	must(t, os.WriteFile(filepath.Join(dir, "MANIFEST"), []byte("this is not a manifest at all"), 0o600))

	core, logs := observer.New(zapcore.ErrorLevel)
	opts := testOptions(t)
	opts.Logger = zap.New(core)
	s = openTest(t, dir, opts)
	aside, err := filepath.Glob(dir + ".corrupt-*")
	must(t, err)
	if len(aside) != 1 {
		t.Fatalf("moved-aside copies: %v", aside)
	}
	if _, err := os.Stat(filepath.Join(aside[0], "MANIFEST")); err != nil {
		t.Fatalf("the corrupted store was not kept: %v", err)
	}
	if got := s.MovedAside(); got != aside[0] {
		t.Fatalf("MovedAside = %q, want %q", got, aside[0])
	}
	if logs.Len() == 0 || !strings.Contains(logs.All()[0].Message, "corrupted") {
		t.Fatalf("no loud log: %v", logs.All())
	}
	gaps, err := s.Read(ctx, StreamGaps, 0, 10, 0)
	if err != nil || len(gaps) != 1 {
		t.Fatalf("gap records = %d, %v", len(gaps), err)
	}
	g, err := DecodeGap(gaps[0].Payload)
	must(t, err)
	if !strings.Contains(g.Reason, "moved aside to "+aside[0]) {
		t.Fatalf("gap reason %q", g.Reason)
	}
	t.Log(g.Reason)
	if seq, err := s.Append(ctx, StreamAudit, Record{Payload: []byte("after")}); err != nil || seq != 1 {
		t.Fatalf("append to the fresh store = %d, %v", seq, err)
	}
}

// TestEvictionsMergeIntoOneGapRecord checks that a long spell over budget
// leaves one gap record per stream (and capture priority), extended by
// each eviction until it is read for upload, and that the records' counts
// and bytes add up to what was evicted.
func TestEvictionsMergeIntoOneGapRecord(t *testing.T) {
	ctx := context.Background()
	opts := testOptions(t)
	opts.Budget.MaxBytes = 64 << 10
	s := openTest(t, t.TempDir(), opts)
	appendN := func(st Stream, n int) {
		t.Helper()
		for i := 0; i < n; i++ {
			if _, err := s.Append(ctx, st, Record{Payload: make([]byte, 200)}); err != nil {
				t.Fatalf("append %s: %v", st, err)
			}
		}
	}
	gaps := func() []Gap {
		t.Helper()
		es, err := s.Read(ctx, StreamGaps, 0, 1<<20, 0)
		if err != nil {
			t.Fatal(err)
		}
		out := make([]Gap, len(es))
		for i, e := range es {
			if out[i], err = DecodeGap(e.Payload); err != nil {
				t.Fatal(err)
			}
		}
		return out
	}
	// Thousands of captures through a budget of a few hundred: hundreds of
	// evictions, one open gap record.
	appendN(StreamCaptures, 3000)
	evicted := s.evictedRecords.Load()
	if evicted < 2000 {
		t.Fatalf("only %d evictions: the test needs many", evicted)
	}
	got := gaps()
	if len(got) != 1 {
		t.Fatalf("%d gap records after %d evictions, want 1: %+v", len(got), evicted, got)
	}
	if g := got[0]; g.Stream != StreamCaptures || g.From != 1 || g.Count != evicted || g.Through < evicted || g.Bytes != s.evictedBytes.Load() {
		t.Errorf("merged gap record %+v; want captures from 1, count %d, bytes %d", g, evicted, s.evictedBytes.Load())
	}
	// Reading the gaps (as an upload does) freezes that record: the next
	// evictions start a second one, and it starts where the first ended.
	appendN(StreamCaptures, 1000)
	got = gaps()
	if len(got) != 2 {
		t.Fatalf("%d gap records after a read and more evictions, want 2: %+v", len(got), got)
	}
	if got[1].From <= got[0].Through || got[0].Count+got[1].Count != s.evictedRecords.Load() {
		t.Errorf("gap records %+v do not continue one another or do not add up to %d", got, s.evictedRecords.Load())
	}
	// Each stream has its own record: debug logs evicted by captures.
	appendN(StreamLogsDebug, 50)
	appendN(StreamCaptures, 500)
	var debug int
	for _, g := range gaps() {
		if g.Stream == StreamLogsDebug {
			debug++
		}
	}
	if debug != 1 {
		t.Errorf("%d gap records for debug logs, want 1", debug)
	}
}
