// Package storetest is the conformance suite of ingest.Store: every
// implementation (the embedded Badger one, the PostgreSQL one) runs it,
// so exactly-once storage means the same thing whatever holds the data.
package ingesttest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/cloud/ingest"
)

// Open returns a fresh, empty store and the blob store behind it; the
// suite closes the store.
type Open func(t *testing.T) (ingest.Store, ingest.BlobStore)

// Run runs every conformance test against stores from open.
func Run(t *testing.T, open Open) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s ingest.Store, b ingest.BlobStore)
	}{
		{"ExactlyOnce", testExactlyOnce},
		{"Watermark", testWatermark},
		{"LostRanges", testLostRanges},
		{"BatchWithLosses", testBatchWithLosses},
		{"Separation", testSeparation},
		{"LargeBatch", testLargeBatch},
		{"Concurrent", testConcurrent},
		{"Records", testRecords},
		{"RecordsByTime", testRecordsByTime},
		{"BulkLoad", testBulkLoad},
		{"Invalid", testInvalid},
		{"BlobResume", testBlobResume},
		{"BlobMismatch", testBlobMismatch},
		{"BlobEdges", testBlobEdges},
		{"Status", testStatus},
		{"Delete", testDelete},
		{"DeleteBlob", testDeleteBlob},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, b := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("close: %v", err)
				}
			})
			tc.fn(t, s, b)
		})
	}
}

var (
	t0   = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	keyA = ingest.StreamKey{PartID: "part-a", StoreID: "store-1", Stream: "logs.info"}
)

func rec(seq uint64) ingest.Record {
	return ingest.Record{Seq: seq, Time: t0.Add(time.Duration(seq) * time.Second), Payload: fmt.Appendf(nil, "payload %d", seq)}
}

func recs(seqs ...uint64) []ingest.Record {
	out := make([]ingest.Record, len(seqs))
	for i, s := range seqs {
		out[i] = rec(s)
	}
	return out
}

func span(from, through uint64) []uint64 {
	var out []uint64
	for s := from; s <= through; s++ {
		out = append(out, s)
	}
	return out
}

func put(t *testing.T, s ingest.Store, key ingest.StreamKey, rs []ingest.Record) ingest.PutResult {
	t.Helper()
	res, err := s.PutRecords(context.Background(), key, rs)
	if err != nil {
		t.Fatalf("PutRecords(%s): %v", key, err)
	}
	return res
}

func lost(t *testing.T, s ingest.Store, key ingest.StreamKey, first, last uint64) uint64 {
	t.Helper()
	w, err := s.DeclareLost(context.Background(), key, first, last, fmt.Sprintf("evicted %d..%d", first, last))
	if err != nil {
		t.Fatalf("DeclareLost(%s, %d, %d): %v", key, first, last, err)
	}
	return w
}

// All follows q's cursors to the end and returns every record the pages
// held, failing t on an error, a page over q.Limit or more than maxPages
// pages.
func All(t testing.TB, s ingest.Store, q ingest.Query, maxPages int) []ingest.StoredRecord {
	t.Helper()
	var out []ingest.StoredRecord
	for pages := 0; ; pages++ {
		rs, next, err := s.Records(context.Background(), q)
		if err != nil {
			t.Fatalf("Records(%+v): %v", q, err)
		}
		if q.Limit > 0 && len(rs) > q.Limit || pages > maxPages {
			t.Fatalf("Records(%+v): %d records, %d pages", q, len(rs), pages)
		}
		out = append(out, rs...)
		if next == "" {
			return out
		}
		q.After = next
	}
}

func all(t *testing.T, s ingest.Store, q ingest.Query) []ingest.StoredRecord {
	t.Helper()
	return All(t, s, q, 10_000)
}

func seqsOf(rs []ingest.StoredRecord) []uint64 {
	out := make([]uint64, len(rs))
	for i, r := range rs {
		out[i] = r.Seq
	}
	return out
}

func testExactlyOnce(t *testing.T, s ingest.Store, _ ingest.BlobStore) {
	ctx := context.Background()
	steps := []struct {
		batch      []ingest.Record
		stored     int
		dups       int
		conflicts  []uint64
		ackThrough uint64
	}{
		{recs(3, 4, 5), 3, 0, nil, 0},    // ahead of a hole
		{recs(1, 2), 2, 0, nil, 5},       // the hole fills: the watermark walks over 3..5
		{recs(2, 3), 0, 2, nil, 5},       // a repeated batch
		{recs(5, 4, 6, 6), 1, 3, nil, 6}, // reordered, and repeated within the batch
		{recs(8, 7), 2, 0, nil, 8},       // descending
		{[]ingest.Record{{Seq: 4, Time: t0, Payload: []byte("other bytes")}}, 0, 0, []uint64{4}, 8},
	}
	for i, st := range steps {
		res := put(t, s, keyA, st.batch)
		if res.Stored != st.stored || res.Duplicates != st.dups || !slices.Equal(res.Conflicts, st.conflicts) || res.AckedThrough != st.ackThrough {
			t.Fatalf("step %d: got stored %d dups %d conflicts %v acked %d, want %d %d %v %d",
				i, res.Stored, res.Duplicates, res.Conflicts, res.AckedThrough, st.stored, st.dups, st.conflicts, st.ackThrough)
		}
	}
	got := all(t, s, ingest.Query{PartIDs: []string{keyA.PartID}})
	if !slices.Equal(seqsOf(got), span(1, 8)) {
		t.Fatalf("stored seqs %v, want 1..8 once each", seqsOf(got))
	}
	for _, r := range got {
		want := rec(r.Seq)
		if !bytes.Equal(r.Payload, want.Payload) || !r.Time.Equal(want.Time) || r.StreamKey != keyA {
			t.Errorf("seq %d: got %s %q at %v, want the first copy %q at %v", r.Seq, r.StreamKey, r.Payload, r.Time, want.Payload, want.Time)
		}
	}
	c, err := s.Count(ctx, keyA.PartID, keyA.Stream)
	if err != nil {
		t.Fatal(err)
	}
	var bytesWant uint64
	for _, q := range span(1, 8) {
		bytesWant += uint64(len(rec(q).Payload))
	}
	if c != (ingest.Count{Records: 8, Bytes: bytesWant, Conflicts: 1}) {
		t.Errorf("Count = %+v, want 8 records, %d bytes, 1 conflict", c, bytesWant)
	}
	if w, err := s.AckedThrough(ctx, keyA); err != nil || w != 8 {
		t.Errorf("AckedThrough = %d, %v; want 8", w, err)
	}
}

func testWatermark(t *testing.T, s ingest.Store, _ ingest.BlobStore) {
	ctx := context.Background()
	if w, err := s.AckedThrough(ctx, keyA); err != nil || w != 0 {
		t.Fatalf("AckedThrough of an unknown stream = %d, %v; want 0", w, err)
	}
	type step struct {
		put         []uint64
		first, last uint64 // a lost range, when last > 0
		want        uint64
	}
	steps := []step{
		{put: span(1, 2), want: 2},
		{first: 3, last: 5, want: 5},    // the range is accounted for
		{put: []uint64{7}, want: 5},     // 6 is missing
		{first: 6, last: 6, want: 7},    // and now declared
		{first: 10, last: 12, want: 7},  // declared ahead of 8, 9
		{put: span(8, 9), want: 12},     // arrive: the watermark jumps over 10..12
		{first: 20, last: 30, want: 12}, // nested ranges ahead
		{first: 22, last: 23, want: 12},
		{put: span(13, 19), want: 30},
		{first: 1, last: 3, want: 30}, // a range behind the watermark changes nothing
		{put: []uint64{32}, want: 30},
		{first: 31, last: 31, want: 32},
		{put: []uint64{11}, want: 32}, // a record inside a lost range is still kept
	}
	for i, st := range steps {
		var got uint64
		if st.last > 0 {
			got = lost(t, s, keyA, st.first, st.last)
		} else {
			got = put(t, s, keyA, recs(st.put...)).AckedThrough
		}
		if got != st.want {
			t.Fatalf("step %d (%+v): watermark %d, want %d", i, st, got, st.want)
		}
	}
	if c, _ := s.Count(ctx, keyA.PartID, keyA.Stream); c.Records != 2+1+2+7+1+1 {
		t.Errorf("Count.Records = %d, want 14", c.Records)
	}
}

func testLostRanges(t *testing.T, s ingest.Store, _ ingest.BlobStore) {
	ctx := context.Background()
	lost(t, s, keyA, 5, 9)
	lost(t, s, keyA, 5, 9) // again: a no-op
	lost(t, s, keyA, 2, 9) // same end, wider: the union is kept
	lost(t, s, keyA, 12, 12)
	got, err := s.Lost(ctx, keyA)
	if err != nil {
		t.Fatal(err)
	}
	want := []ingest.LostRange{{First: 2, Last: 9, Reason: "evicted 2..9"}, {First: 12, Last: 12, Reason: "evicted 12..12"}}
	if !slices.Equal(got, want) {
		t.Fatalf("Lost = %+v, want %+v", got, want)
	}
	if w := put(t, s, keyA, recs(1, 10, 11)).AckedThrough; w != 12 {
		t.Fatalf("watermark %d, want 12", w)
	}
	for _, bad := range [][2]uint64{{0, 3}, {4, 3}} {
		if _, err := s.DeclareLost(ctx, keyA, bad[0], bad[1], ""); !errors.Is(err, ingest.ErrInvalid) {
			t.Errorf("DeclareLost(%d, %d) = %v, want ErrInvalid", bad[0], bad[1], err)
		}
	}
}

func testSeparation(t *testing.T, s ingest.Store, _ ingest.BlobStore) {
	ctx := context.Background()
	otherStore := keyA
	otherStore.StoreID = "store-2"
	otherPart := keyA
	otherPart.PartID = "part-b"
	otherStream := keyA
	otherStream.Stream = "captures"
	put(t, s, keyA, recs(1, 2, 3))
	lost(t, s, keyA, 4, 10)
	for _, k := range []ingest.StreamKey{otherStore, otherPart, otherStream} {
		if w := put(t, s, k, recs(2)).AckedThrough; w != 0 {
			t.Errorf("%s: watermark %d, want 0: seq 1 of another key must not count", k, w)
		}
		if w := put(t, s, k, recs(1)).AckedThrough; w != 2 {
			t.Errorf("%s: watermark %d, want 2", k, w)
		}
		if ls, _ := s.Lost(ctx, k); len(ls) != 0 {
			t.Errorf("%s: sees another key's lost ranges %v", k, ls)
		}
	}
	c, _ := s.Count(ctx, "part-a", "logs.info")
	if c.Records != 5 {
		t.Errorf("part-a logs.info over both stores: %d records, want 5", c.Records)
	}
	if got := all(t, s, ingest.Query{PartIDs: []string{"part-b"}}); len(got) != 2 || got[0].PartID != "part-b" {
		t.Errorf("part-b's records: %+v", got)
	}
	if w, _ := s.AckedThrough(ctx, keyA); w != 10 {
		t.Errorf("keyA watermark %d, want 10", w)
	}
}

func testLargeBatch(t *testing.T, s ingest.Store, _ ingest.BlobStore) {
	// 4,000 records of 1 KiB: more than one storage transaction's worth.
	const n = 4000
	batch := make([]ingest.Record, n)
	for i := range batch {
		batch[i] = ingest.Record{Seq: uint64(i + 1), Time: t0, Payload: bytes.Repeat([]byte{byte(i)}, 1024)}
	}
	if res := put(t, s, keyA, batch); res.Stored != n || res.AckedThrough != n {
		t.Fatalf("stored %d acked %d, want %d and %d", res.Stored, res.AckedThrough, n, n)
	}
	if res := put(t, s, keyA, batch); res.Stored != 0 || res.Duplicates != n || res.AckedThrough != n {
		t.Fatalf("again: stored %d dups %d acked %d", res.Stored, res.Duplicates, res.AckedThrough)
	}
	c, _ := s.Count(context.Background(), keyA.PartID, keyA.Stream)
	if c.Records != n || c.Bytes != n*1024 {
		t.Errorf("Count = %+v", c)
	}
}

func testConcurrent(t *testing.T, s ingest.Store, _ ingest.BlobStore) {
	// Eight uploaders send overlapping, shuffled batches of 1..400 at once.
	const n = 400
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			seqs := span(1, n)
			rng.Shuffle(len(seqs), func(i, j int) { seqs[i], seqs[j] = seqs[j], seqs[i] })
			for len(seqs) > 0 {
				k := min(len(seqs), 1+rng.IntN(50))
				if _, err := s.PutRecords(context.Background(), keyA, recs(seqs[:k]...)); err != nil {
					errs <- err
					return
				}
				seqs = seqs[k:]
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	c, _ := s.Count(context.Background(), keyA.PartID, keyA.Stream)
	if c.Records != n || c.Conflicts != 0 {
		t.Errorf("Count = %+v, want %d records", c, n)
	}
	if w, _ := s.AckedThrough(context.Background(), keyA); w != n {
		t.Errorf("watermark %d, want %d", w, n)
	}
	if got := all(t, s, ingest.Query{Limit: 7}); !slices.Equal(seqsOf(got), span(1, n)) {
		t.Errorf("records %v, want 1..%d once each", seqsOf(got), n)
	}
}

func testRecords(t *testing.T, s ingest.Store, _ ingest.BlobStore) {
	ctx := context.Background()
	keys := []ingest.StreamKey{
		{PartID: "p1", StoreID: "s1", Stream: "audit"},
		{PartID: "p1", StoreID: "s1", Stream: "logs.info"},
		{PartID: "p1", StoreID: "s2", Stream: "logs.info"},
		{PartID: "p2", StoreID: "s1", Stream: "logs.info"},
		{PartID: "p3", StoreID: "s1", Stream: "logs.info"},
	}
	for _, k := range keys {
		put(t, s, k, recs(span(1, 5)...))
	}
	count := func(q ingest.Query) int { return len(all(t, s, q)) }
	cases := []struct {
		name string
		q    ingest.Query
		want int
	}{
		{"all", ingest.Query{}, 25},
		{"all, small pages", ingest.Query{Limit: 2}, 25},
		{"one part", ingest.Query{PartIDs: []string{"p1"}, Limit: 3}, 15},
		{"two parts, repeated", ingest.Query{PartIDs: []string{"p3", "p1", "p3"}, Limit: 4}, 20},
		{"unknown part", ingest.Query{PartIDs: []string{"nobody"}}, 0},
		{"stream", ingest.Query{Stream: "logs.info", Limit: 3}, 20},
		{"stream of one part", ingest.Query{PartIDs: []string{"p1"}, Stream: "logs.info"}, 10},
		{"audit", ingest.Query{Stream: "audit", Limit: 1}, 5},
		{"time window", ingest.Query{From: t0.Add(2 * time.Second), To: t0.Add(4 * time.Second), Limit: 3}, 10},
		{"from", ingest.Query{PartIDs: []string{"p2"}, From: t0.Add(5 * time.Second)}, 1},
	}
	for _, tc := range cases {
		if got := count(tc.q); got != tc.want {
			t.Errorf("%s: %d records, want %d", tc.name, got, tc.want)
		}
	}
	// Exact pages: the last page says there is no next.
	rs, next, err := s.Records(ctx, ingest.Query{PartIDs: []string{"p2"}, Limit: 5})
	if err != nil || len(rs) != 5 || next != "" {
		t.Errorf("a full last page: %d records, next %q, err %v; want 5, \"\", nil", len(rs), next, err)
	}
	if _, _, err := s.Records(ctx, ingest.Query{After: "not a cursor"}); !errors.Is(err, ingest.ErrInvalid) {
		t.Errorf("a malformed cursor: %v, want ErrInvalid", err)
	}
}

func testInvalid(t *testing.T, s ingest.Store, _ ingest.BlobStore) {
	ctx := context.Background()
	bad := []ingest.StreamKey{
		{PartID: "", StoreID: "s", Stream: "audit"},
		{PartID: "p", StoreID: "", Stream: "audit"},
		{PartID: "p", StoreID: "s", Stream: ""},
		{PartID: "p\x00x", StoreID: "s", Stream: "audit"},
		{PartID: "p", StoreID: "s\nx", Stream: "audit"},
		{PartID: string(bytes.Repeat([]byte("x"), ingest.MaxIDLen+1)), StoreID: "s", Stream: "audit"},
	}
	for _, k := range bad {
		if _, err := s.PutRecords(ctx, k, recs(1)); !errors.Is(err, ingest.ErrInvalid) {
			t.Errorf("PutRecords(%q) = %v, want ErrInvalid", k, err)
		}
	}
	if _, err := s.PutRecords(ctx, keyA, recs(0)); !errors.Is(err, ingest.ErrInvalid) {
		t.Errorf("sequence 0: %v, want ErrInvalid", err)
	}
}

func blobOf(n int) ([]byte, []byte) {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	sum := sha256.Sum256(b)
	return b, sum[:]
}

func chunk(part, id string, data []byte, off, n int, size int, sum []byte) ingest.BlobChunk {
	return ingest.BlobChunk{PartID: part, BlobID: id, Offset: uint64(off), Data: data[off : off+n], Size: uint64(size), SHA256: sum, Name: "cam/" + id}
}

func readBlob(t *testing.T, b ingest.BlobStore, part, id string) []byte {
	t.Helper()
	rc, err := b.Open(context.Background(), ingest.BlobKey{PartID: part, BlobID: id})
	if err != nil {
		t.Fatalf("open blob %s/%s: %v", part, id, err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func testBlobResume(t *testing.T, s ingest.Store, b ingest.BlobStore) {
	ctx := context.Background()
	data, sum := blobOf(10000)
	steps := []struct {
		off, n   int
		received uint64
		complete bool
	}{
		{0, 3000, 3000, false},
		{0, 3000, 3000, false},    // a retried chunk: acknowledged, not stored again
		{6000, 1000, 3000, false}, // past what arrived: not stored, resume at 3000
		{2000, 3000, 5000, false}, // overlapping: only the new tail is kept
		{5000, 4999, 9999, false},
		{9999, 1, 10000, true},
		{9999, 1, 10000, true}, // the last chunk again, after completion
		{0, 10, 10000, true},
	}
	for i, st := range steps {
		p, err := s.PutBlobChunk(ctx, chunk("part-a", "blob-1", data, st.off, st.n, len(data), sum))
		if err != nil || p.Received != st.received || p.Complete != st.complete {
			t.Fatalf("step %d: %+v, %v; want received %d complete %v", i, p, err, st.received, st.complete)
		}
		if i == 0 {
			if _, err := b.Open(ctx, ingest.BlobKey{PartID: "part-a", BlobID: "blob-1"}); !errors.Is(err, ingest.ErrNotFound) {
				t.Fatalf("a partial blob is readable: %v", err)
			}
		}
	}
	if got := readBlob(t, b, "part-a", "blob-1"); !bytes.Equal(got, data) {
		t.Fatalf("blob read back: %d bytes, differs from the %d sent", len(got), len(data))
	}
	info, err := s.Blob(ctx, "part-a", "blob-1")
	if err != nil || !info.Complete || info.Size != 10000 || !bytes.Equal(info.SHA256, sum) || info.Name != "cam/blob-1" {
		t.Fatalf("Blob = %+v, %v", info, err)
	}
	// The same id for other contents, once complete, is refused.
	other, osum := blobOf(10)
	if _, err := s.PutBlobChunk(ctx, chunk("part-a", "blob-1", other, 0, 10, 10, osum)); !errors.Is(err, ingest.ErrBlobConflict) {
		t.Errorf("reusing a complete blob's id: %v, want ErrBlobConflict", err)
	}
	// Another part's blob of the same id is its own.
	if _, err := s.Blob(ctx, "part-b", "blob-1"); !errors.Is(err, ingest.ErrNotFound) {
		t.Errorf("part-b sees part-a's blob: %v", err)
	}
	if p, err := s.PutBlobChunk(ctx, chunk("part-b", "blob-1", other, 0, 10, 10, osum)); err != nil || !p.Complete {
		t.Errorf("part-b's blob-1: %+v, %v", p, err)
	}
	if got := readBlob(t, b, "part-a", "blob-1"); !bytes.Equal(got, data) {
		t.Error("part-b's blob overwrote part-a's")
	}
}

func testBlobMismatch(t *testing.T, s ingest.Store, b ingest.BlobStore) {
	ctx := context.Background()
	data, sum := blobOf(5000)
	bad := bytes.Clone(sum)
	bad[0] ^= 1
	if p, err := s.PutBlobChunk(ctx, chunk("part-a", "b", data, 0, 3000, 5000, bad)); err != nil || p.Received != 3000 {
		t.Fatalf("first chunk: %+v, %v", p, err)
	}
	if _, err := s.PutBlobChunk(ctx, chunk("part-a", "b", data, 3000, 2000, 5000, bad)); !errors.Is(err, ingest.ErrBlobMismatch) {
		t.Fatalf("last chunk with the wrong SHA-256: %v, want ErrBlobMismatch", err)
	}
	if _, err := s.Blob(ctx, "part-a", "b"); !errors.Is(err, ingest.ErrNotFound) {
		t.Fatalf("the mismatched blob is still held: %v", err)
	}
	if _, err := b.Open(ctx, ingest.BlobKey{PartID: "part-a", BlobID: "b"}); !errors.Is(err, ingest.ErrNotFound) {
		t.Fatalf("the mismatched blob is readable: %v", err)
	}
	// The part's resumed chunk finds nothing held and starts over.
	if p, err := s.PutBlobChunk(ctx, chunk("part-a", "b", data, 3000, 2000, 5000, sum)); err != nil || p.Received != 0 {
		t.Fatalf("resume after a discard: %+v, %v; want received 0", p, err)
	}
	for _, off := range []int{0, 2500} {
		if _, err := s.PutBlobChunk(ctx, chunk("part-a", "b", data, off, 2500, 5000, sum)); err != nil {
			t.Fatal(err)
		}
	}
	if got := readBlob(t, b, "part-a", "b"); !bytes.Equal(got, data) {
		t.Fatal("the re-sent blob differs")
	}
}

func testBlobEdges(t *testing.T, s ingest.Store, b ingest.BlobStore) {
	ctx := context.Background()
	empty := sha256.Sum256(nil)
	if p, err := s.PutBlobChunk(ctx, ingest.BlobChunk{PartID: "p", BlobID: "empty", Size: 0, SHA256: empty[:]}); err != nil || !p.Complete {
		t.Fatalf("an empty blob: %+v, %v", p, err)
	}
	if got := readBlob(t, b, "p", "empty"); len(got) != 0 {
		t.Fatalf("empty blob reads %d bytes", len(got))
	}
	data, sum := blobOf(100)
	// A part starting a blob over with other contents at offset 0 replaces it.
	if _, err := s.PutBlobChunk(ctx, chunk("p", "redo", data, 0, 50, 100, bytes.Repeat([]byte{1}, 32))); err != nil {
		t.Fatal(err)
	}
	if p, err := s.PutBlobChunk(ctx, chunk("p", "redo", data, 0, 100, 100, sum)); err != nil || !p.Complete {
		t.Fatalf("restarted blob: %+v, %v", p, err)
	}
	// ...but not in the middle.
	if _, err := s.PutBlobChunk(ctx, chunk("p", "mid", data, 0, 50, 100, sum)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutBlobChunk(ctx, chunk("p", "mid", data, 50, 50, 100, bytes.Repeat([]byte{1}, 32))); !errors.Is(err, ingest.ErrBlobConflict) {
		t.Errorf("a chunk declaring another SHA-256 mid-blob: %v, want ErrBlobConflict", err)
	}
	invalid := []ingest.BlobChunk{
		{PartID: "p", BlobID: "", Size: 1, SHA256: sum, Data: []byte{1}},
		{PartID: "p", BlobID: "../../etc/passwd", Size: 1, SHA256: sum[:5], Data: []byte{1}},
		{PartID: "p", BlobID: "x", Size: 1, SHA256: sum, Data: []byte{1, 2}},
		{PartID: "p", BlobID: "x", Offset: 2, Size: 1, SHA256: sum},
	}
	for i, c := range invalid {
		if _, err := s.PutBlobChunk(ctx, c); !errors.Is(err, ingest.ErrInvalid) {
			t.Errorf("invalid chunk %d: %v, want ErrInvalid", i, err)
		}
	}
}

func testStatus(t *testing.T, s ingest.Store, _ ingest.BlobStore) {
	ctx := context.Background()
	if _, err := s.Status(ctx, "part-a"); !errors.Is(err, ingest.ErrNotFound) {
		t.Fatalf("Status of a silent part: %v, want ErrNotFound", err)
	}
	for i, v := range []string{"1.0.0", "1.1.0"} {
		at := t0.Add(time.Duration(i) * time.Minute)
		if err := s.PutStatus(ctx, "part-a", &syncv1.PartStatus{Version: v, StoreBytes: 42}, at); err != nil {
			t.Fatal(err)
		}
		got, err := s.Status(ctx, "part-a")
		if err != nil || got.Status.GetVersion() != v || got.Status.GetStoreBytes() != 42 || !got.At.Equal(at) {
			t.Fatalf("Status = %+v, %v; want version %s at %v", got, err, v, at)
		}
	}
	if _, err := s.Status(ctx, "part-b"); !errors.Is(err, ingest.ErrNotFound) {
		t.Errorf("part-b sees part-a's status: %v", err)
	}
	// Many at once: the parts that reported, none for the others or for
	// IDs that are not IDs.
	if err := s.PutStatus(ctx, "part-c", &syncv1.PartStatus{Version: "2.0.0"}, t0); err != nil {
		t.Fatal(err)
	}
	all, err := s.Statuses(ctx, []string{"part-a", "part-b", "part-c", "", "a\x00b", "part-a"})
	if err != nil || len(all) != 2 || all["part-a"].Status.GetVersion() != "1.1.0" || all["part-c"].Status.GetVersion() != "2.0.0" || !all["part-c"].At.Equal(t0) {
		t.Errorf("Statuses = %v, %v", all, err)
	}
	if none, err := s.Statuses(ctx, nil); err != nil || len(none) != 0 {
		t.Errorf("Statuses of none = %v, %v", none, err)
	}
}

// testDelete erases records: reads and counts skip them, the watermark
// stays, and a part sending them again stores nothing.
func testDelete(t *testing.T, s ingest.Store, _ ingest.BlobStore) {
	ctx := context.Background()
	put(t, s, keyA, recs(span(1, 6)...))
	n, err := s.DeleteRecords(ctx, keyA, []uint64{2, 4, 4, 99})
	if err != nil || n != 2 {
		t.Fatalf("DeleteRecords: %d, %v; want 2 (a repeat and an unknown sequence are skipped)", n, err)
	}
	if got := seqsOf(all(t, s, ingest.Query{PartIDs: []string{keyA.PartID}})); !reflect.DeepEqual(got, []uint64{1, 3, 5, 6}) {
		t.Errorf("after deleting 2 and 4: %v", got)
	}
	c, err := s.Count(ctx, keyA.PartID, keyA.Stream)
	if err != nil || c.Records != 4 || c.Bytes != uint64(4*len("payload 1")) {
		t.Errorf("count %+v, %v", c, err)
	}
	res := put(t, s, keyA, recs(span(1, 7)...))
	if res.Stored != 1 || res.Duplicates != 6 || len(res.Conflicts) != 0 || res.AckedThrough != 7 {
		t.Errorf("sending deleted records again: %+v; want only 7 stored and no conflicts", res)
	}
	if got := seqsOf(all(t, s, ingest.Query{PartIDs: []string{keyA.PartID}})); !reflect.DeepEqual(got, []uint64{1, 3, 5, 6, 7}) {
		t.Errorf("deleted records came back: %v", got)
	}
	if n, err := s.DeleteRecords(ctx, keyA, []uint64{2}); err != nil || n != 0 {
		t.Errorf("deleting again: %d, %v", n, err)
	}
}

// testDeleteBlob erases a blob: it is gone, and chunks sent again are
// acknowledged as complete without being stored.
func testDeleteBlob(t *testing.T, s ingest.Store, b ingest.BlobStore) {
	ctx := context.Background()
	data, sum := blobOf(5000)
	if _, err := s.PutBlobChunk(ctx, chunk("part-a", "blob-1", data, 0, 5000, len(data), sum)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutBlobChunk(ctx, chunk("part-a", "blob-2", data, 0, 100, len(data), sum)); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"blob-1", "blob-2", "never-sent"} {
		if err := s.DeleteBlob(ctx, "part-a", id); err != nil {
			t.Fatalf("DeleteBlob(%s): %v", id, err)
		}
		if _, err := s.Blob(ctx, "part-a", id); !errors.Is(err, ingest.ErrNotFound) {
			t.Errorf("%s after delete: %v", id, err)
		}
		if _, err := b.Open(ctx, ingest.BlobKey{PartID: "part-a", BlobID: id}); !errors.Is(err, ingest.ErrNotFound) {
			t.Errorf("%s bytes after delete: %v", id, err)
		}
		p, err := s.PutBlobChunk(ctx, chunk("part-a", id, data, 0, 5000, len(data), sum))
		if err != nil || !p.Complete {
			t.Errorf("%s sent again: %+v, %v; want acknowledged as complete", id, p, err)
		}
		if _, err := b.Open(ctx, ingest.BlobKey{PartID: "part-a", BlobID: id}); !errors.Is(err, ingest.ErrNotFound) {
			t.Errorf("%s came back: %v", id, err)
		}
	}
	if err := s.DeleteBlob(ctx, "part-a", "blob-1"); err != nil {
		t.Errorf("deleting twice: %v", err)
	}
}

// testBatchWithLosses checks PutBatch: the losses a batch of gap records
// declares take effect with it, on the streams they name; thousands of
// them go in one call; a repeat changes nothing; a bad loss refuses the
// whole batch.
func testBatchWithLosses(t *testing.T, s ingest.Store, _ ingest.BlobStore) {
	ctx := context.Background()
	gaps := ingest.StreamKey{PartID: keyA.PartID, StoreID: keyA.StoreID, Stream: "gaps"}
	caps := ingest.StreamKey{PartID: keyA.PartID, StoreID: keyA.StoreID, Stream: "captures"}
	// Captures 1, 3, 5, ... 6001 are held; every even one was lost, each
	// declared by its own gap record, and logs.info lost 1..10.
	var held []uint64
	for seq := uint64(1); seq <= 6001; seq += 2 {
		held = append(held, seq)
	}
	if res := put(t, s, caps, recs(held...)); res.AckedThrough != 1 {
		t.Fatalf("captures before the gaps: watermark %d, want 1", res.AckedThrough)
	}
	var losses []ingest.Loss
	var gapRecs []ingest.Record
	for seq := uint64(2); seq <= 6000; seq += 2 {
		losses = append(losses, ingest.Loss{Stream: "captures", First: seq, Last: seq, Reason: "evicted"})
		gapRecs = append(gapRecs, rec(uint64(len(gapRecs)+1)))
	}
	losses = append(losses, ingest.Loss{Stream: keyA.Stream, First: 1, Last: 10, Reason: "evicted"})
	gapRecs = append(gapRecs, rec(uint64(len(gapRecs)+1)))
	res, err := s.PutBatch(ctx, gaps, gapRecs, losses)
	if err != nil {
		t.Fatalf("PutBatch: %v", err)
	}
	if res.Stored != len(gapRecs) || res.AckedThrough != uint64(len(gapRecs)) {
		t.Fatalf("PutBatch: %+v, want %d stored and acked", res, len(gapRecs))
	}
	for _, c := range []struct {
		key  ingest.StreamKey
		want uint64
	}{{caps, 6001}, {keyA, 10}, {gaps, uint64(len(gapRecs))}} {
		if w, err := s.AckedThrough(ctx, c.key); err != nil || w != c.want {
			t.Errorf("watermark of %s = %d, %v; want %d", c.key, w, err, c.want)
		}
	}
	// A repeat (the part did not see the answer) is answered the same.
	res, err = s.PutBatch(ctx, gaps, gapRecs, losses)
	if err != nil || res.Stored != 0 || res.Duplicates != len(gapRecs) || res.AckedThrough != uint64(len(gapRecs)) {
		t.Fatalf("repeated PutBatch: %+v, %v", res, err)
	}
	// A bad loss refuses the batch: none of its records is stored.
	for _, bad := range []ingest.Loss{
		{Stream: "captures", First: 0, Last: 3},
		{Stream: "captures", First: 9, Last: 8},
		{Stream: "", First: 1, Last: 1},
		{Stream: "bad\x00stream", First: 1, Last: 1},
	} {
		next := rec(uint64(len(gapRecs) + 1))
		if _, err := s.PutBatch(ctx, gaps, []ingest.Record{next}, []ingest.Loss{bad}); !errors.Is(err, ingest.ErrInvalid) {
			t.Errorf("PutBatch with loss %+v = %v, want ErrInvalid", bad, err)
		}
		if w, _ := s.AckedThrough(ctx, gaps); w != uint64(len(gapRecs)) {
			t.Errorf("after a refused batch the gaps watermark is %d, want %d", w, len(gapRecs))
		}
	}
	if got, err := s.Lost(ctx, keyA); err != nil || len(got) != 1 || got[0].First != 1 || got[0].Last != 10 {
		t.Errorf("Lost(%s) = %+v, %v", keyA, got, err)
	}
}

// OpenPartial returns a fresh, empty store whose incomplete blobs are
// bounded by quota declared bytes and maxCount blobs per part, and expire
// after ttl without a chunk on clk; the suite closes the store.
type OpenPartial func(t *testing.T, quota uint64, maxCount int, ttl time.Duration, clk clock.Clock) (ingest.Store, ingest.BlobStore)

// RunPartialBlobs checks the bounds on incomplete blobs (ingest.PartialBlobs)
// against stores from open.
func RunPartialBlobs(t *testing.T, open OpenPartial) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open OpenPartial)
	}{
		{"Quota", testPartialQuota},
		{"RestartOverQuota", testPartialRestartOverQuota},
		{"Expiry", testPartialExpiry},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open) })
	}
}

func openPartial(t *testing.T, open OpenPartial, quota uint64, maxCount int, ttl time.Duration, clk clock.Clock) (ingest.Store, ingest.PartialBlobs, ingest.BlobStore) {
	t.Helper()
	s, b := open(t, quota, maxCount, ttl, clk)
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	pb, ok := s.(ingest.PartialBlobs)
	if !ok {
		t.Fatalf("%T does not implement ingest.PartialBlobs", s)
	}
	return s, pb, b
}

// testPartialRestartOverQuota: a part that starts a blob over with other
// contents (offset 0, another size) past its quota is refused with
// ErrBlobQuota, and the blob it had begun is untouched: its progress still
// says what the store holds, and the next chunk of the old contents is
// taken where it left off.
func testPartialRestartOverQuota(t *testing.T, open OpenPartial) {
	ctx := context.Background()
	s, _, _ := openPartial(t, open, 1<<20, 3, 7*24*time.Hour, clock.NewFake(t0))
	old := bytes.Repeat([]byte("o"), 64<<10)
	oldSum := sha256.Sum256(old)
	p, err := s.PutBlobChunk(ctx, ingest.BlobChunk{PartID: "p1", BlobID: "b", Offset: 0, Data: old[:32<<10], Size: uint64(len(old)), SHA256: oldSum[:]})
	if err != nil || p.Received != 32<<10 {
		t.Fatalf("first half: %+v, %v", p, err)
	}
	bigSum := sha256.Sum256([]byte("too big"))
	_, err = s.PutBlobChunk(ctx, ingest.BlobChunk{PartID: "p1", BlobID: "b", Offset: 0, Data: []byte("x"), Size: 2 << 20, SHA256: bigSum[:]})
	if !errors.Is(err, ingest.ErrBlobQuota) {
		t.Fatalf("a restart declaring twice the quota: %v, want ErrBlobQuota", err)
	}
	p, err = s.PutBlobChunk(ctx, ingest.BlobChunk{PartID: "p1", BlobID: "b", Offset: 32 << 10, Data: old[32<<10:], Size: uint64(len(old)), SHA256: oldSum[:]})
	if err != nil || !p.Complete || p.Received != uint64(len(old)) {
		t.Fatalf("the old blob's second half after the refused restart: %+v, %v", p, err)
	}
}

// testPartialQuota: a part sends 8 MiB chunks of blobs declaring 64 GiB
// each; past the quota of declared bytes every new blob is refused with
// ErrBlobQuota, naming the quota, while the blobs already started go on
// and other parts are not affected. Finishing a blob frees its room, and
// so does the count bound.
func testPartialQuota(t *testing.T, open OpenPartial) {
	ctx := context.Background()
	const huge = 64 << 30
	s, pb, _ := openPartial(t, open, 2*huge, 3, 7*24*time.Hour, clock.NewFake(t0))
	chunk8 := make([]byte, 8<<20)
	sum := sha256.Sum256([]byte("never sent whole"))
	put := func(part, id string, off uint64, size uint64) error {
		_, err := s.PutBlobChunk(ctx, ingest.BlobChunk{PartID: part, BlobID: id, Offset: off, Data: chunk8, Size: size, SHA256: sum[:]})
		return err
	}
	for i := range 5 {
		err := put("part-a", fmt.Sprint("huge-", i), 0, huge)
		switch {
		case i < 2 && err != nil:
			t.Fatalf("blob %d of 64 GiB within a 128 GiB quota: %v", i, err)
		case i >= 2 && !errors.Is(err, ingest.ErrBlobQuota):
			t.Fatalf("blob %d of 64 GiB past a 128 GiB quota: %v, want ErrBlobQuota", i, err)
		case i >= 2 && !strings.Contains(err.Error(), "137438953472-byte quota"):
			t.Errorf("the refusal does not name the quota: %v", err)
		}
	}
	if n, declared, err := pb.PartialBlobUsage(ctx, "part-a"); err != nil || n != 2 || declared != 2*huge {
		t.Errorf("usage = %d blobs, %d bytes, %v; want 2 and 128 GiB", n, declared, err)
	}
	if err := put("part-a", "huge-0", 8<<20, huge); err != nil {
		t.Errorf("the next chunk of a started blob: %v", err)
	}
	if err := put("part-b", "huge-0", 0, huge); err != nil {
		t.Errorf("another part's blob: %v", err)
	}
	if _, err := s.PutBlobChunk(ctx, ingest.BlobChunk{PartID: "part-a", BlobID: "huge-0", Size: huge + 1, SHA256: sum[:], Data: chunk8}); !errors.Is(err, ingest.ErrBlobQuota) {
		t.Errorf("restarting a blob larger, past the quota: %v, want ErrBlobQuota", err)
	}

	// Deleting frees the room; the count bound holds too.
	if err := s.DeleteBlob(ctx, "part-a", "huge-1"); err != nil {
		t.Fatal(err)
	}
	data, small := blobOf(100)
	if p, err := s.PutBlobChunk(ctx, chunk("part-a", "small-done", data, 0, 100, 100, small)); err != nil || !p.Complete {
		t.Fatalf("a small whole blob: %+v, %v", p, err)
	}
	for i := range 2 {
		if _, err := s.PutBlobChunk(ctx, chunk("part-a", fmt.Sprint("small-", i), data, 0, 10, 100, small)); err != nil {
			t.Fatalf("small incomplete blob %d: %v", i, err)
		}
	}
	if _, err := s.PutBlobChunk(ctx, chunk("part-a", "small-2", data, 0, 10, 100, small)); !errors.Is(err, ingest.ErrBlobQuota) {
		t.Errorf("a fourth incomplete blob past a bound of 3: %v, want ErrBlobQuota", err)
	}
	if p, err := s.PutBlobChunk(ctx, chunk("part-a", "small-0", data, 10, 90, 100, small)); err != nil || !p.Complete {
		t.Fatalf("finishing a blob: %+v, %v", p, err)
	}
	if _, err := s.PutBlobChunk(ctx, chunk("part-a", "small-2", data, 0, 10, 100, small)); err != nil {
		t.Errorf("a new blob once another finished: %v", err)
	}
}

// testPartialExpiry: an incomplete blob that receives no chunk for the TTL
// is discarded, bytes and progress, and its room freed; one still
// receiving chunks, and complete blobs, stay.
func testPartialExpiry(t *testing.T, open OpenPartial) {
	ctx := context.Background()
	clk := clock.NewFake(t0)
	ttl := 7 * 24 * time.Hour
	s, pb, b := openPartial(t, open, 1<<20, 10, ttl, clk)
	data, sum := blobOf(1000)
	for _, id := range []string{"abandoned", "active", "done"} {
		n := 100
		if id == "done" {
			n = 1000
		}
		if _, err := s.PutBlobChunk(ctx, chunk("part-a", id, data, 0, n, 1000, sum)); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := pb.ExpirePartialBlobs(ctx); err != nil || n != 0 {
		t.Fatalf("ExpirePartialBlobs at once = %d, %v; want 0", n, err)
	}
	clk.Advance(ttl / 2)
	if _, err := s.PutBlobChunk(ctx, chunk("part-a", "active", data, 100, 100, 1000, sum)); err != nil {
		t.Fatal(err)
	}
	clk.Advance(ttl/2 + time.Second)
	if n, err := pb.ExpirePartialBlobs(ctx); err != nil || n != 1 {
		t.Fatalf("ExpirePartialBlobs after the TTL = %d, %v; want 1", n, err)
	}
	if _, err := s.Blob(ctx, "part-a", "abandoned"); !errors.Is(err, ingest.ErrNotFound) {
		t.Errorf("the abandoned blob after expiry: %v, want ErrNotFound", err)
	}
	// Its partial copy is gone: the blob store refuses to extend it.
	if err := b.WriteAt(ctx, ingest.BlobKey{PartID: "part-a", BlobID: "abandoned"}, 100, data[100:200]); !errors.Is(err, ingest.ErrInvalid) {
		t.Errorf("the abandoned blob's bytes after expiry: WriteAt past its old end = %v, want ErrInvalid (no partial copy)", err)
	}
	if info, err := s.Blob(ctx, "part-a", "active"); err != nil || info.Received != 200 {
		t.Errorf("the active blob: %+v, %v", info, err)
	}
	if info, err := s.Blob(ctx, "part-a", "done"); err != nil || !info.Complete {
		t.Errorf("the complete blob: %+v, %v", info, err)
	}
	if n, declared, err := pb.PartialBlobUsage(ctx, "part-a"); err != nil || n != 1 || declared != 1000 {
		t.Errorf("usage after expiry = %d, %d, %v; want only the active blob", n, declared, err)
	}
	// The part, back, sends the rest of the abandoned blob: told to start over.
	if p, err := s.PutBlobChunk(ctx, chunk("part-a", "abandoned", data, 100, 900, 1000, sum)); err != nil || p.Received != 0 {
		t.Errorf("a chunk of an expired blob: %+v, %v; want to resume at 0", p, err)
	}
}
