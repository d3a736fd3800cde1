package badgeringest

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/outpost-robotics/outpost/cloud/ingest"
	"github.com/outpost-robotics/outpost/cloud/ingest/ingesttest"
)

// TestTimeRunsAnswerInOrder puts batches whose records' times are out of
// order, far apart, tied and more than a run holds, from several parts
// whose runs overlap in time, deletes records (first, middle and last of
// runs), and checks every query against a model: the whole order, windows
// that begin inside runs, one part, and paging at several page sizes.
func TestTimeRunsAnswerInOrder(t *testing.T) {
	ctx := context.Background()
	s := openSmall(t, t.TempDir(), 0)
	t0 := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	rng := rand.New(rand.NewPCG(1, 2))
	type held struct {
		k       ingest.TimeKey
		payload string
	}
	var model []held
	for _, part := range []string{"p1", "p2", "p3"} {
		key := ingest.StreamKey{PartID: part, StoreID: "s", Stream: "captures"}
		seq := uint64(0)
		for batch := range 6 {
			recs := make([]ingest.Record, 300+rng.IntN(300))
			for i := range recs {
				seq++
				// Mostly a few ms apart, some far out (a clock that
				// jumped), some tied, some before the batch began.
				at := t0.Add(time.Duration(batch)*7*time.Second + time.Duration(i)*3*time.Millisecond)
				switch rng.IntN(20) {
				case 0:
					at = at.Add(time.Duration(rng.IntN(100)) * time.Minute)
				case 1:
					at = at.Add(-time.Duration(rng.IntN(30)) * time.Second)
				case 2:
					at = t0
				}
				recs[i] = ingest.Record{Seq: seq, Time: at, Payload: fmt.Appendf(nil, "%s/%d", part, seq)}
				if rng.IntN(50) == 0 {
					recs[i].Time = time.Time{}
					continue
				}
				model = append(model, held{ingest.TimeKey{Time: at, StreamKey: key, Seq: seq}, string(recs[i].Payload)})
			}
			if _, err := s.PutRecords(ctx, key, recs); err != nil {
				t.Fatal(err)
			}
		}
		var gone []uint64
		for seq := uint64(1); seq <= 3600; seq += uint64(1 + rng.IntN(9)) {
			gone = append(gone, seq)
		}
		if _, err := s.DeleteRecords(ctx, key, gone); err != nil {
			t.Fatal(err)
		}
		model = slices.DeleteFunc(model, func(h held) bool {
			_, found := slices.BinarySearch(gone, h.k.Seq)
			return h.k.PartID == part && found
		})
	}
	slices.SortFunc(model, func(a, b held) int { return a.k.Compare(b.k) })

	query := func(q ingest.TimeQuery) []string {
		t.Helper()
		var got []string
		for _, r := range ingesttest.AllByTime(t, s, q, 10_000) {
			got = append(got, string(r.Payload))
		}
		return got
	}
	want := func(from, to time.Time, part string) []string {
		var out []string
		for _, h := range model {
			if (from.IsZero() || !h.k.Time.Before(from)) && (to.IsZero() || h.k.Time.Before(to)) && (part == "" || h.k.PartID == part) {
				out = append(out, h.payload)
			}
		}
		return out
	}
	cases := []struct {
		name     string
		from, to time.Time
		part     string
		limit    int
	}{
		{name: "all", limit: ingest.MaxLimit},
		{name: "all-pages-of-7", limit: 7},
		{name: "window-inside-runs", from: t0.Add(5*time.Second + 500*time.Millisecond), to: t0.Add(20 * time.Second), limit: 13},
		{name: "from-only", from: t0.Add(31 * time.Second), limit: 100},
		{name: "one-part", part: "p2", limit: 50},
		{name: "empty-window", from: t0.Add(-time.Hour), to: t0.Add(-59 * time.Minute)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := ingest.TimeQuery{Streams: []string{"captures"}, From: tc.from, To: tc.to, Limit: tc.limit}
			if tc.part != "" {
				q.PartIDs = []string{tc.part}
			}
			got, w := query(q), want(tc.from, tc.to, tc.part)
			if !slices.Equal(got, w) {
				t.Fatalf("%d records, want %d; first difference at %d", len(got), len(w), firstDiff(got, w))
			}
		})
	}
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestTimeRunsPerPut checks what the runs are for: a put of a thousand
// records with times writes a few time keys, not one per record; and that
// deleting every record of a put leaves none of its runs behind.
func TestTimeRunsPerPut(t *testing.T) {
	ctx := context.Background()
	s := openSmall(t, t.TempDir(), 0)
	key := ingest.StreamKey{PartID: "p", StoreID: "s", Stream: "captures"}
	t0 := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	recs := make([]ingest.Record, 1000)
	seqs := make([]uint64, len(recs))
	for i := range recs {
		recs[i] = ingest.Record{Seq: uint64(i + 1), Time: t0.Add(time.Duration(i) * time.Millisecond), Payload: bytes.Repeat([]byte("r"), 100)}
		seqs[i] = uint64(i + 1)
	}
	if _, err := s.PutRecords(ctx, key, recs); err != nil {
		t.Fatal(err)
	}
	count := func() int { return keysUnder(t, s, timePrefix('T', key.Stream)) }
	// 999 steps of 1 ms are 3 bytes each: about 300 to a run.
	if n := count(); n < 1 || n > 5 {
		t.Errorf("a put of 1,000 records wrote %d time runs, want a few", n)
	}
	if _, err := s.DeleteRecords(ctx, key, seqs); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 0 {
		t.Errorf("%d time runs left after every record was deleted", n)
	}
}

// TestTimeIndexOfBothKinds checks a store holding per-record time keys, as
// stores before runs wrote them, beside runs: a query merges both, and a
// delete takes a record out of either.
func TestTimeIndexOfBothKinds(t *testing.T) {
	ctx := context.Background()
	s := openSmall(t, t.TempDir(), 0)
	key := ingest.StreamKey{PartID: "p", StoreID: "s", Stream: "captures"}
	t0 := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	var recs []ingest.Record
	for seq := uint64(1); seq <= 6; seq++ {
		recs = append(recs, ingest.Record{Seq: seq, Time: t0.Add(time.Duration(seq) * time.Second), Payload: fmt.Appendf(nil, "%d", seq)})
	}
	if _, err := s.PutRecords(ctx, key, recs); err != nil {
		t.Fatal(err)
	}
	// Seqs 1, 3 and 5 as an old store indexed them: a t key each, no run.
	err := s.db.Update(func(txn *badger.Txn) error {
		if err := dropTimes(txn, key, []timeEntry{{recs[0].Time.UnixNano(), 1}, {recs[2].Time.UnixNano(), 3}, {recs[4].Time.UnixNano(), 5}}); err != nil {
			return err
		}
		for _, i := range []int{0, 2, 4} {
			if err := txn.Set(timeKey('t', key, recs[i].Time.UnixNano(), recs[i].Seq), nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	payloads := func(q ingest.TimeQuery) string {
		t.Helper()
		got, _, err := s.RecordsByTime(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		var b []byte
		for _, r := range got {
			b = append(b, r.Payload...)
		}
		return string(b)
	}
	if got := payloads(ingest.TimeQuery{Streams: []string{"captures"}}); got != "123456" {
		t.Errorf("both kinds merged: %q, want 123456", got)
	}
	if got := payloads(ingest.TimeQuery{Streams: []string{"captures"}, From: t0.Add(3 * time.Second)}); got != "3456" {
		t.Errorf("from seq 3's time: %q, want 3456", got)
	}
	if _, err := s.DeleteRecords(ctx, key, []uint64{3, 4}); err != nil {
		t.Fatal(err)
	}
	if got := payloads(ingest.TimeQuery{Streams: []string{"captures"}}); got != "1256" {
		t.Errorf("after deleting 3 and 4: %q, want 1256", got)
	}
	err = s.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get(timeKey('t', key, recs[2].Time.UnixNano(), 3))
		return err
	})
	if err != badger.ErrKeyNotFound {
		t.Errorf("the old time key of a deleted record: %v, want it gone", err)
	}
}

// TestTimeRunsAtTheEdgesOfTime checks records at the ends of int64
// nanoseconds, where a run's span and a query's look-back overflow.
func TestTimeRunsAtTheEdgesOfTime(t *testing.T) {
	ctx := context.Background()
	s := openSmall(t, t.TempDir(), 0)
	key := ingest.StreamKey{PartID: "p", StoreID: "s", Stream: "captures"}
	times := []int64{math.MinInt64, math.MinInt64 + 1, -1, 0, 1, math.MaxInt64 - 1, math.MaxInt64}
	var recs []ingest.Record
	for i, ns := range times {
		recs = append(recs, ingest.Record{Seq: uint64(i + 1), Time: time.Unix(0, ns), Payload: []byte{byte('a' + i)}})
	}
	if _, err := s.PutRecords(ctx, key, recs); err != nil {
		t.Fatal(err)
	}
	for _, from := range []time.Time{{}, time.Unix(0, math.MinInt64), time.Unix(0, math.MinInt64+5), time.Unix(0, 0), time.Unix(0, math.MaxInt64)} {
		got, _, err := s.RecordsByTime(ctx, ingest.TimeQuery{Streams: []string{"captures"}, From: from})
		if err != nil {
			t.Fatal(err)
		}
		var want, have []byte
		for _, r := range recs {
			if from.IsZero() || !r.Time.Before(from) {
				want = append(want, r.Payload...)
			}
		}
		for _, r := range got {
			have = append(have, r.Payload...)
		}
		if !bytes.Equal(have, want) {
			t.Errorf("from %v: %q, want %q", from, have, want)
		}
	}
	if _, err := s.DeleteRecords(ctx, key, []uint64{1, 7}); err != nil {
		t.Fatal(err)
	}
	got, _, err := s.RecordsByTime(ctx, ingest.TimeQuery{Streams: []string{"captures"}})
	if err != nil || len(got) != len(times)-2 {
		t.Fatalf("after deleting the two ends: %d records, %v", len(got), err)
	}
}

// FuzzDecodeTimeRun feeds hostile run values: the decoder refuses what no
// writer makes, and what it accepts re-encodes to a run of the same
// entries.
func FuzzDecodeTimeRun(f *testing.F) {
	key := ingest.StreamKey{PartID: "p", StoreID: "s", Stream: "c"}
	var seeds [][]byte
	_ = writeTimeRuns(key, []timeEntry{{0, 1}, {5, 2}, {5, 3}, {1_000_000, 9}, {int64(timeRunSpan), 4}}, func(_, v []byte) error {
		seeds = append(seeds, v)
		return nil
	})
	for _, v := range seeds {
		f.Add(int64(0), uint64(1), v)
	}
	f.Add(int64(math.MaxInt64), uint64(math.MaxUint64), []byte{1, 2})
	f.Add(int64(-5), uint64(0), []byte{0x80})
	f.Add(int64(0), uint64(1), bytes.Repeat([]byte{0}, maxRunValue+1))
	f.Fuzz(func(t *testing.T, ns int64, seq uint64, v []byte) {
		es, err := decodeTimeRun(timeEntry{ns, seq}, v)
		if err != nil {
			return
		}
		if es[0] != (timeEntry{ns, seq}) {
			t.Fatalf("run begins at %+v, its key says %+v", es[0], timeEntry{ns, seq})
		}
		for i := 1; i < len(es); i++ {
			if compareEntries(es[i-1], es[i]) >= 0 || uint64(es[i].ns-ns) > uint64(timeRunSpan) {
				t.Fatalf("accepted entries out of order or too far apart: %+v", es)
			}
		}
		if len(v) > maxRunBytes {
			return // a writer would have split it
		}
		var again [][]byte
		_ = writeTimeRuns(key, slices.Clone(es), func(_, v []byte) error {
			again = append(again, v)
			return nil
		})
		if len(again) != 1 {
			t.Fatalf("run %x re-encodes as %d runs", v, len(again))
		}
		if back, err := decodeTimeRun(es[0], again[0]); err != nil || !slices.Equal(back, es) {
			t.Fatalf("run %x re-encodes as %x: %v", v, again[0], err)
		}
	})
}
