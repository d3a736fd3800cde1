package badgeringest_test

import (
	"bytes"
	"context"
	"expvar"
	"fmt"
	"strings"
	"testing"

	"github.com/outpost-robotics/outpost/cloud/ingest"
)

// TestWatermarkOverLosses checks the watermark after batches whose losses
// overlap, share their last sequence, run ahead of what is held and join
// ranges committed by earlier batches, against a model that marks every
// sequence held or lost.
func TestWatermarkOverLosses(t *testing.T) {
	type loss struct{ first, last uint64 }
	type batch struct {
		recs   []uint64 // sequences of captures stored with the batch
		losses []loss   // ranges of captures declared lost with it
	}
	for _, tc := range []struct {
		name    string
		batches []batch
	}{
		{"contiguous ranges in one batch", []batch{{losses: []loss{{1, 2}, {3, 4}, {5, 6}}}}},
		{"ranges out of order", []batch{{losses: []loss{{5, 6}, {1, 2}, {3, 4}}}}},
		{"a range inside another", []batch{{losses: []loss{{1, 10}, {3, 4}}, recs: []uint64{11}}}},
		{"overlapping ranges", []batch{{losses: []loss{{1, 5}, {4, 8}, {8, 9}}}}},
		{"two ranges ending together", []batch{{losses: []loss{{4, 6}, {1, 6}}, recs: []uint64{7}}}},
		{"a range ahead, joined later", []batch{
			{losses: []loss{{5, 9}}},
			{recs: []uint64{1, 2}},
			{losses: []loss{{3, 4}}, recs: []uint64{10}},
		}},
		{"committed and new ranges interleave", []batch{
			{losses: []loss{{2, 2}, {6, 7}, {12, 20}}},
			{recs: []uint64{1, 3, 8}},
			{losses: []loss{{4, 5}, {9, 11}}, recs: []uint64{21}},
			{recs: []uint64{22}, losses: []loss{{30, 30}}},
		}},
		{"a hole stays a hole", []batch{
			{losses: []loss{{1, 3}, {5, 6}}, recs: []uint64{7}},
			{losses: []loss{{1, 3}}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			s, _ := open(t, t.TempDir())
			defer s.Close()
			gaps := ingest.StreamKey{PartID: "p", StoreID: "s", Stream: "gaps"}
			caps := ingest.StreamKey{PartID: "p", StoreID: "s", Stream: "captures"}
			held := map[uint64]bool{}
			gapSeq := uint64(0)
			for i, b := range tc.batches {
				var gapRecs []ingest.Record
				var losses []ingest.Loss
				for _, l := range b.losses {
					gapSeq++
					gapRecs = append(gapRecs, ingest.Record{Seq: gapSeq, Payload: []byte(fmt.Sprint(l))})
					losses = append(losses, ingest.Loss{Stream: caps.Stream, First: l.first, Last: l.last, Reason: "evicted"})
					for q := l.first; q <= l.last; q++ {
						held[q] = true
					}
				}
				if len(gapRecs) > 0 {
					if _, err := s.PutBatch(ctx, gaps, gapRecs, losses); err != nil {
						t.Fatalf("batch %d: %v", i, err)
					}
				}
				var recs []ingest.Record
				for _, q := range b.recs {
					recs = append(recs, ingest.Record{Seq: q, Payload: []byte{byte(q)}})
					held[q] = true
				}
				if _, err := s.PutRecords(ctx, caps, recs); err != nil {
					t.Fatalf("batch %d: %v", i, err)
				}
				want := uint64(0)
				for held[want+1] {
					want++
				}
				if got, err := s.AckedThrough(ctx, caps); err != nil || got != want {
					t.Fatalf("after batch %d: watermark %d, %v; want %d", i, got, err, want)
				}
			}
		})
	}
}

// TestLossesOutgrowOneTransaction checks the largest gap batch the sync API
// takes (10,000 records, each declaring a loss with a 1 KiB reason: 10 MB
// of losses, more than txnMaxBytes): it is stored and every loss takes
// effect.
func TestLossesOutgrowOneTransaction(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t, t.TempDir())
	defer s.Close()
	gaps := ingest.StreamKey{PartID: "p", StoreID: "s", Stream: "gaps"}
	reason := strings.Repeat("r", 1<<10)
	const n = 10_000
	var recs []ingest.Record
	var losses []ingest.Loss
	for i := uint64(1); i <= n; i++ {
		recs = append(recs, ingest.Record{Seq: i, Payload: bytes.Repeat([]byte("g"), 60)})
		losses = append(losses, ingest.Loss{Stream: "captures", First: 2*i - 1, Last: 2 * i, Reason: reason})
	}
	res, err := s.PutBatch(ctx, gaps, recs, losses)
	if err != nil || res.AckedThrough != n {
		t.Fatalf("PutBatch = %+v, %v", res, err)
	}
	if w, err := s.AckedThrough(ctx, ingest.StreamKey{PartID: "p", StoreID: "s", Stream: "captures"}); err != nil || w != 2*n {
		t.Errorf("captures watermark = %d, %v; want %d", w, err, 2*n)
	}
}

// BenchmarkPutBatchLosses measures a catch-up batch: n gap records, each
// declaring two captures lost, in one PutBatch (what a part back from a
// long outage sends), on a fresh store each time.
func BenchmarkPutBatchLosses(b *testing.B) {
	for _, n := range []int{1000, 3300, 10_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			ctx := context.Background()
			gaps := ingest.StreamKey{PartID: "p", StoreID: "s", Stream: "gaps"}
			var recs []ingest.Record
			var losses []ingest.Loss
			for i := uint64(1); i <= uint64(n); i++ {
				recs = append(recs, ingest.Record{Seq: i, Payload: bytes.Repeat([]byte("g"), 60)})
				losses = append(losses, ingest.Loss{Stream: "captures", First: 2*i - 1, Last: 2 * i, Reason: "over byte budget"})
			}
			for b.Loop() {
				b.StopTimer()
				s, _ := open(b, b.TempDir())
				b.StartTimer()
				if _, err := s.PutBatch(ctx, gaps, recs, losses); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				s.Close()
				b.StartTimer()
			}
		})
	}
}

// TestRepeatsAfterTheHighestHeld checks exactly once where a put skips the
// lookup of sequences above the highest held: repeats within one call, out
// of order, across calls, of deleted records, and streams whose keys sort
// next to each other.
func TestRepeatsAfterTheHighestHeld(t *testing.T) {
	type put struct {
		stream string
		seqs   []uint64
		stored int
		dups   int
	}
	for _, tc := range []struct {
		name   string
		puts   []put
		delete []uint64 // deleted from stream "a" after the first put
	}{
		{"a repeat within one call", []put{{"a", []uint64{1, 2, 3, 3}, 3, 1}}, nil},
		{"out of order within one call", []put{{"a", []uint64{3, 1, 2, 1, 3}, 3, 2}}, nil},
		{"across calls", []put{{"a", []uint64{5, 6}, 2, 0}, {"a", []uint64{4, 5, 7}, 2, 1}, {"a", []uint64{1, 7, 8}, 2, 1}}, nil},
		{"a deleted record stays deleted", []put{{"a", []uint64{1, 2, 3}, 3, 0}, {"a", []uint64{3, 4}, 1, 1}}, []uint64{3}},
		{"neighbouring streams", []put{{"a0", []uint64{1, 2, 3, 4, 5}, 5, 0}, {"a", []uint64{1, 2}, 2, 0}, {"a", []uint64{2, 3}, 1, 1}, {"a0", []uint64{5, 6}, 1, 1}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			s, _ := open(t, t.TempDir())
			defer s.Close()
			for i, p := range tc.puts {
				key := ingest.StreamKey{PartID: "p", StoreID: "s", Stream: p.stream}
				var recs []ingest.Record
				for _, q := range p.seqs {
					recs = append(recs, ingest.Record{Seq: q, Payload: []byte(fmt.Sprint(p.stream, q))})
				}
				res, err := s.PutRecords(ctx, key, recs)
				if err != nil || res.Stored != p.stored || res.Duplicates != p.dups || len(res.Conflicts) != 0 {
					t.Fatalf("put %d of %v: %+v, %v; want %d stored, %d repeats", i, p.seqs, res, err, p.stored, p.dups)
				}
				if i == 0 && tc.delete != nil {
					if _, err := s.DeleteRecords(ctx, key, tc.delete); err != nil {
						t.Fatal(err)
					}
				}
			}
			held := map[string]map[uint64]bool{}
			for _, p := range tc.puts {
				if held[p.stream] == nil {
					held[p.stream] = map[uint64]bool{}
				}
				for _, q := range p.seqs {
					held[p.stream][q] = true
				}
			}
			for stream, seqs := range held {
				want := uint64(len(seqs))
				if stream == "a" {
					want -= uint64(len(tc.delete))
				}
				c, err := s.Count(ctx, "p", stream)
				if err != nil || c.Records != want {
					t.Errorf("stream %s holds %d records (%v), want %d", stream, c.Records, err, want)
				}
			}
		})
	}
}

// badgerCount reads one of Badger's process-wide counters (expvar).
func badgerCount(t *testing.T, name string) int64 {
	t.Helper()
	v, ok := expvar.Get(name).(*expvar.Int)
	if !ok {
		t.Fatalf("Badger publishes no counter %s", name)
	}
	return v.Value()
}

// TestBatchCostIsLinear checks what a batch asks of Badger, by its own
// counters rather than by time: a catch-up batch of gap records opens a
// few iterators, not one per loss (Badger sorts every pending write of a
// read-write transaction for each iterator on it, so that was quadratic),
// and a batch of new records looks up none of them in the tree.
func TestBatchCostIsLinear(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t, t.TempDir())
	defer s.Close()
	gaps := ingest.StreamKey{PartID: "p", StoreID: "s", Stream: "gaps"}
	const n = 3300
	var recs []ingest.Record
	var losses []ingest.Loss
	for i := uint64(1); i <= n; i++ {
		recs = append(recs, ingest.Record{Seq: i, Payload: bytes.Repeat([]byte("g"), 60)})
		losses = append(losses, ingest.Loss{Stream: "logs.debug", First: 2*i - 1, Last: 2 * i, Reason: "over byte budget"})
	}
	its := badgerCount(t, "badger_iterator_num_user")
	if _, err := s.PutBatch(ctx, gaps, recs, losses); err != nil {
		t.Fatal(err)
	}
	if got := badgerCount(t, "badger_iterator_num_user") - its; got > 10 {
		t.Errorf("a batch of %d gap records opened %d iterators, want a few", n, got)
	}
	caps := ingest.StreamKey{PartID: "p", StoreID: "s", Stream: "captures"}
	for from := uint64(1); from <= 2001; from += 1000 {
		var batch []ingest.Record
		for q := from; q < from+1000; q++ {
			batch = append(batch, ingest.Record{Seq: q, Payload: bytes.Repeat([]byte("c"), 1024)})
		}
		gets := badgerCount(t, "badger_get_num_user")
		res, err := s.PutRecords(ctx, caps, batch)
		if err != nil || res.Stored != len(batch) {
			t.Fatalf("PutRecords = %+v, %v", res, err)
		}
		if got := badgerCount(t, "badger_get_num_user") - gets; got > 10 {
			t.Errorf("a batch of %d new records made %d lookups in the tree, want a few", len(batch), got)
		}
	}
}
