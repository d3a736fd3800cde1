package badgeringest_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/outpost-robotics/outpost/cloud/ingest"
	"github.com/outpost-robotics/outpost/cloud/ingest/badgeringest"
	"github.com/outpost-robotics/outpost/cloud/ingest/ingesttest"
)

func open(t testing.TB, dir string) (*badgeringest.Store, ingest.BlobStore) {
	t.Helper()
	blobs, err := ingest.NewFileBlobStore(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := badgeringest.Open(badgeringest.Options{Dir: filepath.Join(dir, "db"), Blobs: blobs})
	if err != nil {
		t.Fatal(err)
	}
	return s, blobs
}

func TestConformance(t *testing.T) {
	ingesttest.Run(t, func(t *testing.T) (ingest.Store, ingest.BlobStore) {
		return open(t, t.TempDir())
	})
}

// TestReopen checks that what a put acknowledged survives a restart, with
// its watermark and lost ranges.
func TestReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	key := ingest.StreamKey{PartID: "p", StoreID: "s", Stream: "captures"}
	s, _ := open(t, dir)
	if _, err := s.PutRecords(ctx, key, []ingest.Record{{Seq: 1, Payload: []byte("a")}, {Seq: 3, Payload: []byte("c")}}); err != nil {
		t.Fatal(err)
	}
	if w, err := s.DeclareLost(ctx, key, 2, 2, "evicted"); err != nil || w != 3 {
		t.Fatalf("DeclareLost = %d, %v", w, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, _ = open(t, dir)
	defer s.Close()
	if w, err := s.AckedThrough(ctx, key); err != nil || w != 3 {
		t.Fatalf("after reopen: watermark %d, %v; want 3", w, err)
	}
	res, err := s.PutRecords(ctx, key, []ingest.Record{{Seq: 3, Payload: []byte("c")}, {Seq: 4, Payload: []byte("d")}})
	if err != nil || res.Stored != 1 || res.Duplicates != 1 || res.AckedThrough != 4 {
		t.Fatalf("after reopen: %+v, %v", res, err)
	}
}

// TestOneCommitPerBatch checks what a batch costs the disk: one synced
// commit for thousands of gap records and their losses, and none for a
// repeat, whose answer the part may have missed.
func TestOneCommitPerBatch(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t, t.TempDir())
	defer s.Close()
	gaps := ingest.StreamKey{PartID: "p", StoreID: "s", Stream: "gaps"}
	var recs []ingest.Record
	var losses []ingest.Loss
	for i := uint64(1); i <= 4000; i++ {
		recs = append(recs, ingest.Record{Seq: i, Payload: bytes.Repeat([]byte("g"), 60)})
		losses = append(losses, ingest.Loss{Stream: "captures", First: 2*i - 1, Last: 2 * i, Reason: "over byte budget"})
	}
	before := s.Commits()
	res, err := s.PutBatch(ctx, gaps, recs, losses)
	if err != nil || res.AckedThrough != 4000 {
		t.Fatalf("PutBatch = %+v, %v", res, err)
	}
	if n := s.Commits() - before; n != 1 {
		t.Errorf("4,000 gap records and their losses took %d synced commits, want 1", n)
	}
	if w, err := s.AckedThrough(ctx, ingest.StreamKey{PartID: "p", StoreID: "s", Stream: "captures"}); err != nil || w != 8000 {
		t.Errorf("captures watermark = %d, %v; want 8000", w, err)
	}
	before = s.Commits()
	if _, err := s.PutBatch(ctx, gaps, recs, losses); err != nil {
		t.Fatal(err)
	}
	if n := s.Commits() - before; n != 0 {
		t.Errorf("a repeated batch took %d synced commits, want 0", n)
	}
	// A default-sized batch of captures (1 MiB of 1 KiB records) is one
	// commit as well.
	caps := ingest.StreamKey{PartID: "p", StoreID: "s", Stream: "captures"}
	var capRecs []ingest.Record
	for i := uint64(8001); i <= 9024; i++ {
		capRecs = append(capRecs, ingest.Record{Seq: i, Payload: bytes.Repeat([]byte("c"), 1024)})
	}
	before = s.Commits()
	if _, err := s.PutRecords(ctx, caps, capRecs); err != nil {
		t.Fatal(err)
	}
	if n := s.Commits() - before; n != 1 {
		t.Errorf("1 MiB of captures took %d synced commits, want 1", n)
	}
}

// BenchmarkPutRecords measures storing 1 MiB batches of 1 KiB records,
// each batch synced to disk before it is acknowledged.
func BenchmarkPutRecords(b *testing.B) {
	ctx := context.Background()
	s, _ := open(b, b.TempDir())
	defer s.Close()
	key := ingest.StreamKey{PartID: "p", StoreID: "s", Stream: "captures"}
	const perBatch = 1024
	payload := bytes.Repeat([]byte("x"), 1024)
	seq := uint64(0)
	b.SetBytes(perBatch * 1024)
	start := time.Now()
	for b.Loop() {
		batch := make([]ingest.Record, perBatch)
		for i := range batch {
			seq++
			batch[i] = ingest.Record{Seq: seq, Payload: payload}
		}
		res, err := s.PutRecords(ctx, key, batch)
		if err != nil || res.AckedThrough != seq {
			b.Fatal(fmt.Sprint(res.AckedThrough, err))
		}
	}
	b.ReportMetric(float64(seq)*1024/(1<<20)/time.Since(start).Seconds(), "MB/s")
}

// BenchmarkReadPages measures reading a stream of 100,000 records of 200
// bytes back in pages of 100, by sequence and by time, and a record at a
// time in random order: records per second.
func BenchmarkReadPages(b *testing.B) {
	ctx := context.Background()
	s, _ := open(b, b.TempDir())
	defer s.Close()
	key := ingest.StreamKey{PartID: "p", StoreID: "s", Stream: "readings"}
	const n, perPut = 100_000, 1000
	t0 := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	payload := bytes.Repeat([]byte("r"), 200)
	for first := 1; first <= n; first += perPut {
		batch := make([]ingest.Record, perPut)
		for i := range batch {
			seq := uint64(first + i)
			batch[i] = ingest.Record{Seq: seq, Time: t0.Add(time.Duration(seq) * 10 * time.Millisecond), Payload: payload}
		}
		if _, err := s.PutRecords(ctx, key, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("by-sequence", func(b *testing.B) {
		for b.Loop() {
			if got := len(ingesttest.All(b, s, ingest.Query{Stream: key.Stream, Limit: 100}, n)); got != n {
				b.Fatalf("%d records", got)
			}
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "records/s")
	})
	b.Run("by-time", func(b *testing.B) {
		for b.Loop() {
			if got := len(ingesttest.AllByTime(b, s, ingest.TimeQuery{Streams: []string{key.Stream}, Limit: 100}, n)); got != n {
				b.Fatalf("%d records", got)
			}
		}
		b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "records/s")
	})
	b.Run("one-at-a-time", func(b *testing.B) {
		rng := rand.New(rand.NewPCG(1, 2))
		reads := 0
		for b.Loop() {
			for range 10_000 {
				if _, err := s.Record(ctx, key, 1+uint64(rng.IntN(n))); err != nil {
					b.Fatal(err)
				}
			}
			reads += 10_000
		}
		b.ReportMetric(float64(reads)/b.Elapsed().Seconds(), "records/s")
	})
}
