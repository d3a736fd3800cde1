package badgeringest

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/outpost-robotics/outpost/cloud/ingest"
)

// TestPreWrittenRepeatsAreNotLive checks the payloads a put writes before
// its lock when some or all of its records turn out held: batches that
// arrived out of order and come again, one overlapping what is held, and a
// put that ends before its commit. The live count stays the stored
// payloads' bytes, every record reads back, the counts hold, and after a
// reopen (which goes by the extents committed) the live count is the same.
func TestPreWrittenRepeatsAreNotLive(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openSmall(t, dir, 1<<20)
	key := ingest.StreamKey{PartID: "p", StoreID: "s", Stream: "captures"}
	batch := func(first, last uint64) []ingest.Record {
		var recs []ingest.Record
		for seq := first; seq <= last; seq++ {
			recs = append(recs, ingest.Record{Seq: seq, Payload: markedPayload(string(rune('a'+seq%26))+"-"+string(rune('0'+seq%10)), 1000)})
		}
		return recs
	}
	put := func(recs []ingest.Record, wantStored int) {
		t.Helper()
		res, err := s.PutRecords(ctx, key, recs)
		if err != nil {
			t.Fatal(err)
		}
		if res.Stored != wantStored {
			t.Fatalf("put of %d..%d stored %d, want %d", recs[0].Seq, recs[len(recs)-1].Seq, res.Stored, wantStored)
		}
	}
	live := func() int64 {
		var n int64
		for _, b := range s.segs.liveBytes() {
			n += b
		}
		return n
	}
	// 101..200 arrives before 1..100, so the watermark stays below it and
	// its repeat is written before the lock finds it held.
	put(batch(101, 200), 100)
	put(batch(101, 200), 0)
	if got := live(); got != 100*1000 {
		t.Fatalf("live bytes after a repeat: %d, want %d", got, 100*1000)
	}
	// 150..250 overlaps what is held: half its bytes are dead, in the
	// middle of nothing; 251..300 is new.
	put(batch(150, 300), 100)
	if got := live(); got != 200*1000 {
		t.Fatalf("live bytes after an overlap: %d, want %d", got, 200*1000)
	}
	// A put that ends before its commit.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.PutRecords(cctx, key, batch(301, 400)); !errors.Is(err, context.Canceled) {
		t.Fatalf("put with a cancelled context: %v", err)
	}
	if got := live(); got != 200*1000 {
		t.Fatalf("live bytes after a put that did not commit: %d, want %d", got, 200*1000)
	}
	put(batch(1, 100), 100)
	check := func(s *Store) {
		t.Helper()
		for seq := uint64(1); seq <= 300; seq++ {
			rec, err := s.Record(ctx, key, seq)
			if err != nil || !bytes.Equal(rec.Payload, batch(seq, seq)[0].Payload) {
				t.Fatalf("seq %d: %v", seq, err)
			}
		}
		if c, err := s.Count(ctx, key.PartID, key.Stream); err != nil || c.Records != 300 {
			t.Fatalf("count %+v, %v; want 300 records", c, err)
		}
	}
	check(s)
	want := live()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(Options{Dir: filepath.Join(dir, "db"), Blobs: s.blobs, segmentSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	var got int64
	for _, b := range s2.segs.liveBytes() {
		got += b
	}
	if got != want || got != 300*1000 {
		t.Errorf("live bytes after reopen %d, before %d; want %d", got, want, 300*1000)
	}
	check(s2)
}
