package cache

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	badger "github.com/dgraph-io/badger/v4"
)

// checkRuns checks a stream's meta and Stats against its runs: the runs
// decode, cover increasing disjoint ranges, and the records after the ack
// cursor (and their bytes, as runLive counts them) are what Stats says.
// It returns the live sequences.
func checkRuns(t *testing.T, s *Store, st Stream) []uint64 {
	t.Helper()
	stats, err := s.Stats(context.Background(), st)
	must(t, err)
	var live []uint64
	var count, bytes, prevLast uint64
	err = s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: streamPrefix(st)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			last, size := seqSize(it.Item().Key())
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			if len(v) != int(size) {
				t.Errorf("run %d: key says %d bytes, value has %d", last, size, len(v))
			}
			recs, prio, err := decodeRun(last, v, nil)
			if err != nil {
				return err
			}
			if st == StreamCaptures && prio != it.Item().UserMeta() {
				t.Errorf("run %d: priority %d, user meta %d", last, prio, it.Item().UserMeta())
			}
			if recs[0].seq <= prevLast {
				t.Errorf("run %d starts at %d, inside the previous run (through %d)", last, recs[0].seq, prevLast)
			}
			prevLast = last
			c, n := runLive(len(it.Item().Key()), len(v), recs, stats.AckedThrough)
			if c == 0 {
				t.Errorf("run %d holds only acknowledged records", last)
			}
			count += c
			bytes += n
			for _, r := range recs {
				if r.seq > stats.AckedThrough {
					live = append(live, r.seq)
				}
			}
		}
		return nil
	})
	must(t, err)
	var first uint64
	if len(live) > 0 {
		first = live[0]
	}
	if stats.Count != count || stats.Bytes != bytes || stats.First != first {
		t.Fatalf("%s: Stats say %d records of %d bytes from %d; the runs hold %d of %d from %d",
			st, stats.Count, stats.Bytes, stats.First, count, bytes, first)
	}
	return live
}

func readAll(t *testing.T, s *Store, st Stream, after uint64) []Entry {
	t.Helper()
	es, err := s.Read(context.Background(), st, after, 1<<20, 0)
	must(t, err)
	return es
}

func seqsOf(es []Entry) []uint64 {
	out := make([]uint64, len(es))
	for i, e := range es {
		out[i] = e.Seq
	}
	return out
}

func seqRange(from, through uint64) []uint64 {
	var out []uint64
	for s := from; s <= through; s++ {
		out = append(out, s)
	}
	return out
}

func TestRunsAckedInPart(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		stream Stream
		acks   []uint64
	}{
		{"logs, inside a run", StreamLogsInfo, []uint64{40}},
		{"logs, run boundary then inside", StreamLogsInfo, []uint64{100, 150}},
		{"captures, twice inside one run", StreamCaptures, []uint64{10, 20, 99}},
		{"captures, across runs", StreamCaptures, []uint64{150, 250}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openTest(t, dir, testOptions(t))
			for b := 0; b < 3; b++ {
				recs := make([]Record, 100)
				for i := range recs {
					recs[i] = Record{Payload: bytes.Repeat([]byte{byte(b*100 + i)}, 600), Priority: 3}
				}
				_, err := s.AppendBatch(ctx, tc.stream, recs)
				must(t, err)
			}
			if got := checkRuns(t, s, tc.stream); len(got) != 300 {
				t.Fatalf("%d records live, want 300", len(got))
			}
			for _, a := range tc.acks {
				must(t, s.Ack(ctx, tc.stream, a))
				live := checkRuns(t, s, tc.stream)
				if want := seqRange(a+1, 300); !equalSeqs(live, want) {
					t.Fatalf("after ack %d: live %v", a, live)
				}
				// Read from before the cursor returns nothing acked.
				es := readAll(t, s, tc.stream, 0)
				if !equalSeqs(seqsOf(es), seqRange(a+1, 300)) {
					t.Fatalf("after ack %d: read %v", a, seqsOf(es))
				}
				for _, e := range es {
					if want := bytes.Repeat([]byte{byte(e.Seq - 1)}, 600); !bytes.Equal(e.Payload, want) {
						t.Fatalf("record %d: wrong payload", e.Seq)
					}
				}
			}
			// It all holds across a restart, and acking the rest empties it.
			must(t, s.Close())
			s = openTest(t, dir, testOptions(t))
			last := tc.acks[len(tc.acks)-1]
			if live := checkRuns(t, s, tc.stream); !equalSeqs(live, seqRange(last+1, 300)) {
				t.Fatalf("after restart: live %v", live)
			}
			must(t, s.Ack(ctx, tc.stream, 300))
			checkRuns(t, s, tc.stream)
			st, err := s.Stats(ctx, tc.stream)
			must(t, err)
			if st.Count != 0 || st.Bytes != 0 || st.First != 0 {
				t.Fatalf("after acking everything: %+v", st)
			}
			if tc.stream == StreamCaptures {
				checkCaptureIndex(t, s)
			}
		})
	}
}

func equalSeqs(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestRunsReadLimitsInsideARun reads a run of 100 records a few at a time.
func TestRunsReadLimitsInsideARun(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir(), testOptions(t))
	recs := make([]Record, 100)
	for i := range recs {
		recs[i] = Record{Payload: payload(i + 1)}
	}
	_, err := s.AppendBatch(ctx, StreamLogsInfo, recs)
	must(t, err)
	var after uint64
	for after < 100 {
		es, err := s.Read(ctx, StreamLogsInfo, after, 7, 0)
		must(t, err)
		if want := seqRange(after+1, min(after+7, 100)); !equalSeqs(seqsOf(es), want) {
			t.Fatalf("read after %d: %v, want %v", after, seqsOf(es), want)
		}
		for _, e := range es {
			if !bytes.Equal(e.Payload, payload(int(e.Seq))) || !e.Time.Equal(t0) {
				t.Fatalf("record %d: %q at %v", e.Seq, e.Payload, e.Time)
			}
		}
		after = es[len(es)-1].Seq
	}
	// A byte limit stops inside the run, after at least one record.
	es, err := s.Read(ctx, StreamLogsInfo, 10, 100, 3*len(payload(1)))
	must(t, err)
	if !equalSeqs(seqsOf(es), []uint64{11, 12, 13}) {
		t.Fatalf("read with a byte limit: %v", seqsOf(es))
	}
}

// TestRunsEditAndDeleteInside edits and deletes captures inside runs,
// and checks the runs, the index, the gap records and the accounting.
func TestRunsEditAndDeleteInside(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir, testOptions(t))
	recs := make([]Record, 50)
	for i := range recs {
		recs[i] = Record{Payload: capPayload(i+1, ""), Priority: 2}
	}
	_, err := s.AppendBatch(ctx, StreamCaptures, recs)
	must(t, err)
	_, err = s.AppendBatch(ctx, StreamCaptures, recs)
	must(t, err)
	must(t, s.Ack(ctx, StreamCaptures, 5))

	res, err := s.DeleteCaptures(ctx, []uint64{3, 7, 8, 9, 50, 51, 100}, "on request", nil)
	must(t, err)
	if !equalSeqs(res.Changed, []uint64{7, 8, 9, 50, 51, 100}) || !equalSeqs(res.Missing, []uint64{3}) {
		t.Fatalf("delete: %+v", res)
	}
	res, err = s.EditCaptures(ctx, []uint64{6, 10, 8, 99}, func(seq uint64, p []byte) ([]byte, error) {
		return append(bytes.Clone(p), fmt.Sprintf("tag=%d", seq)...), nil
	})
	must(t, err)
	if !equalSeqs(res.Changed, []uint64{6, 10, 99}) || !equalSeqs(res.Missing, []uint64{8}) {
		t.Fatalf("edit: %+v", res)
	}
	checkCaptureIndex(t, s)
	var want []uint64
	for seq := uint64(6); seq <= 99; seq++ {
		if seq != 7 && seq != 8 && seq != 9 && seq != 50 && seq != 51 {
			want = append(want, seq)
		}
	}
	if live := checkRuns(t, s, StreamCaptures); !equalSeqs(live, want) {
		t.Fatalf("live %v, want %v", live, want)
	}
	es := readAll(t, s, StreamCaptures, 0)
	if !equalSeqs(seqsOf(es), want) {
		t.Fatalf("read %v", seqsOf(es))
	}
	for _, e := range es {
		i := int((e.Seq-1)%50) + 1
		p := capPayload(i, "")
		if e.Seq == 6 || e.Seq == 10 || e.Seq == 99 {
			p = append(p, fmt.Sprintf("tag=%d", e.Seq)...)
		}
		if !bytes.Equal(e.Payload, p) || e.Priority != 2 || !e.Time.Equal(t0) {
			t.Fatalf("record %d: %q prio %d at %v", e.Seq, e.Payload, e.Priority, e.Time)
		}
	}
	gaps := readGaps(t, s)
	if len(gaps) != 3 || gaps[0].From != 7 || gaps[0].Through != 9 || gaps[0].Count != 3 ||
		gaps[1].From != 50 || gaps[1].Through != 51 || gaps[2].From != 100 || gaps[2].Through != 100 {
		t.Fatalf("gap records %+v", gaps)
	}
	// Deleting everything left empties the stream, with the accounting.
	must(t, s.Close())
	s = openTest(t, dir, testOptions(t))
	_, err = s.DeleteCaptures(ctx, want, "all", nil)
	must(t, err)
	checkRuns(t, s, StreamCaptures)
	checkCaptureIndex(t, s)
	st, err := s.Stats(ctx, StreamCaptures)
	must(t, err)
	if st.Count != 0 || st.Bytes != 0 {
		t.Fatalf("after deleting all: %+v", st)
	}
}

// TestRunsEviction evicts captures kept in runs over the byte budget:
// whole runs go, the lowest priority first, and the gap records cover
// them.
func TestRunsEviction(t *testing.T) {
	ctx := context.Background()
	opts := testOptions(t)
	opts.Budget.MaxBytes = 400 << 10
	s := openTest(t, t.TempDir(), opts)
	batch := func(prio uint8) {
		recs := make([]Record, 50)
		for i := range recs {
			recs[i] = Record{Payload: make([]byte, 1000), Priority: prio}
		}
		_, err := s.AppendBatch(ctx, StreamCaptures, recs)
		must(t, err)
	}
	batch(1) // 1..50
	batch(5) // 51..100
	batch(1) // 101..150
	must(t, s.Ack(ctx, StreamCaptures, 20))
	for range 6 {
		batch(5)
	}
	live := checkRuns(t, s, StreamCaptures)
	checkCaptureIndex(t, s)
	u := s.Usage()
	if u.Bytes > opts.Budget.MaxBytes {
		t.Fatalf("usage %d over the budget %d", u.Bytes, opts.Budget.MaxBytes)
	}
	have := map[uint64]bool{}
	for _, seq := range live {
		have[seq] = true
	}
	declared := map[uint64]bool{}
	for _, g := range readGaps(t, s) {
		for seq := g.From; seq <= g.Through; seq++ {
			declared[seq] = true
		}
	}
	// Priority 1 went first, whole runs: nothing of 21..50 or 101..150.
	for seq := uint64(21); seq <= 450; seq++ {
		if !have[seq] && !declared[seq] {
			t.Fatalf("capture %d neither present nor declared lost", seq)
		}
		if (seq <= 50 || (seq > 100 && seq <= 150)) && have[seq] {
			t.Fatalf("capture %d of priority 1 survived while priority 5 was evicted", seq)
		}
	}
	if u.EvictedRecords == 0 {
		t.Fatal("nothing evicted")
	}
}

// TestStoreWrittenBeforeRuns opens a store written one record per key, as
// every version before runs wrote it, reads, acks, edits and deletes in
// it, and appends runs after its records.
func TestStoreWrittenBeforeRuns(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir, testOptions(t))
	// The old write path, unchanged: appendRecord writes one key per
	// record (and one index key per capture) in encodeRecord's form.
	s.mu.Lock()
	b := s.newBatch()
	for i := 1; i <= 20; i++ {
		_, err := b.appendRecord(StreamCaptures, 4, encodeRecord(Record{Payload: capPayload(i, ""), Priority: 4, Time: t0}))
		must(t, err)
		_, err = b.appendRecord(StreamLogsInfo, 0, encodeRecord(Record{Payload: payload(i), Time: t0}))
		must(t, err)
	}
	must(t, b.commit())
	s.mu.Unlock()
	must(t, s.Close())

	s = openTest(t, dir, testOptions(t))
	recs := make([]Record, 10)
	for i := range recs {
		recs[i] = Record{Payload: capPayload(21+i, ""), Priority: 4}
	}
	first, err := s.AppendBatch(ctx, StreamCaptures, recs)
	must(t, err)
	if first != 21 {
		t.Fatalf("first sequence after the old records: %d", first)
	}
	es := readAll(t, s, StreamCaptures, 0)
	if !equalSeqs(seqsOf(es), seqRange(1, 30)) {
		t.Fatalf("read %v", seqsOf(es))
	}
	for _, e := range es {
		if !bytes.Equal(e.Payload, capPayload(int(e.Seq), "")) || e.Priority != 4 {
			t.Fatalf("capture %d: %q prio %d", e.Seq, e.Payload, e.Priority)
		}
	}
	must(t, s.Ack(ctx, StreamCaptures, 5))
	_, err = s.DeleteCaptures(ctx, []uint64{6, 25}, "on request", nil)
	must(t, err)
	_, err = s.EditCaptures(ctx, []uint64{7, 26}, func(_ uint64, p []byte) ([]byte, error) { return append(bytes.Clone(p), 'x'), nil })
	must(t, err)
	checkCaptureIndex(t, s)
	want := append(seqRange(7, 24), seqRange(26, 30)...)
	if live := checkRuns(t, s, StreamCaptures); !equalSeqs(live, want) {
		t.Fatalf("live %v", live)
	}
	must(t, s.Ack(ctx, StreamLogsInfo, 12))
	if live := checkRuns(t, s, StreamLogsInfo); !equalSeqs(live, seqRange(13, 20)) {
		t.Fatalf("logs live %v", live)
	}
	es = readAll(t, s, StreamLogsInfo, 0)
	if !equalSeqs(seqsOf(es), seqRange(13, 20)) || !bytes.Equal(es[0].Payload, payload(13)) {
		t.Fatalf("logs read %v", seqsOf(es))
	}
}

// TestDamagedRunIsDropped damages a run's value on disk (as a bad sector
// would): Read drops the run with a gap record covering it and goes on.
func TestDamagedRunIsDropped(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir(), testOptions(t))
	for range 3 {
		recs := make([]Record, 10)
		for i := range recs {
			recs[i] = Record{Payload: make([]byte, 100)}
		}
		_, err := s.AppendBatch(ctx, StreamLogsInfo, recs)
		must(t, err)
		must(t, s.settle()) // a run per batch
	}
	// Replace the middle run (11..20) by bytes that do not decode, keeping
	// its key; the same size keeps the accounting's view of it.
	must(t, s.lockSettled())
	err := s.db.Update(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: streamPrefix(StreamLogsInfo)})
		defer it.Close()
		it.Seek(recordSeek(StreamLogsInfo, 11))
		key := it.Item().KeyCopy(nil)
		_, size := seqSize(key)
		bad := bytes.Repeat([]byte{0xff}, int(size))
		return txn.Set(key, bad)
	})
	s.mu.Unlock()
	must(t, err)
	es := readAll(t, s, StreamLogsInfo, 0)
	if want := append(seqRange(1, 10), seqRange(21, 30)...); !equalSeqs(seqsOf(es), want) {
		t.Fatalf("read %v", seqsOf(es))
	}
	gaps := readGaps(t, s)
	if len(gaps) != 1 || gaps[0].From != 11 || gaps[0].Through != 20 {
		t.Fatalf("gap records %+v", gaps)
	}
	checkRuns(t, s, StreamLogsInfo)
}
