package badgeringest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/outpost-robotics/outpost/cloud/ingest"
)

// openSmall opens a store whose segments roll at segSize bytes.
func openSmall(t testing.TB, dir string, segSize uint64) *Store {
	t.Helper()
	blobs, err := ingest.NewFileBlobStore(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(Options{Dir: filepath.Join(dir, "db"), Blobs: blobs, segmentSize: segSize})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// markedPayload is a payload of n bytes that starts with a marker no other
// payload contains.
func markedPayload(marker string, n int) []byte {
	p := bytes.Repeat([]byte("."), n)
	copy(p, marker+"/")
	return p
}

// filesHolding lists the files under dir that contain marker.
func filesHolding(t testing.TB, dir string, markers ...string) map[string][]string {
	t.Helper()
	found := map[string][]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range markers {
			if bytes.Contains(b, []byte(m+"/")) {
				found[m] = append(found[m], path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

func segFiles(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "db", segmentDir, "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// allocated is what the files under dir occupy on disk, holes excluded.
func allocated(t testing.TB, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		n += fi.Sys().(*syscall.Stat_t).Blocks * 512
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestDeleteErasesThePayload checks what people deleting data expect: after
// DeleteRecords the payload's bytes are nowhere in the store's folder, not
// in a segment, Badger's log or its tables, while the records kept read as
// before, after a restart too, and segments with nothing live are gone.
func TestDeleteErasesThePayload(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openSmall(t, dir, 64<<10)
	key := ingest.StreamKey{PartID: "p", StoreID: "s", Stream: "captures"}
	var erase, keep []string
	var doomed []uint64
	seq := uint64(0)
	for batch := range 6 {
		var recs []ingest.Record
		for i := range 50 {
			seq++
			m := fmt.Sprintf("KEEP-%d", seq)
			// Every record of the first batches goes, and every tenth after.
			if batch < 3 || i%10 == 0 {
				m = fmt.Sprintf("ERASE-%d", seq)
				erase = append(erase, m)
				doomed = append(doomed, seq)
			} else {
				keep = append(keep, m)
			}
			recs = append(recs, ingest.Record{Seq: seq, Time: time.Unix(1_700_000_000+int64(seq), 0), Payload: markedPayload(m, 1000+int(seq))})
		}
		if _, err := s.PutRecords(ctx, key, recs); err != nil {
			t.Fatal(err)
		}
	}
	if got := filesHolding(t, dir, erase...); len(got) != len(erase) {
		t.Fatalf("before the delete, %d of %d markers found: the check sees nothing", len(got), len(erase))
	}
	before := len(segFiles(t, dir))
	n, err := s.DeleteRecords(ctx, key, doomed)
	if err != nil || n != len(doomed) {
		t.Fatalf("DeleteRecords = %d, %v; want %d", n, err, len(doomed))
	}
	for m, files := range filesHolding(t, dir, erase...) {
		t.Errorf("%s still in %v after DeleteRecords", m, files)
	}
	after := len(segFiles(t, dir))
	if after >= before {
		t.Errorf("%d segment files before the delete, %d after: those with nothing live should be gone", before, after)
	}
	for id, live := range s.segs.liveBytes() {
		if live <= 0 && s.segs.active.id != id {
			t.Errorf("segment %d kept with %d live bytes", id, live)
		}
	}
	check := func() {
		t.Helper()
		recs, _, err := s.Records(ctx, ingest.Query{Stream: key.Stream, Limit: ingest.MaxLimit})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range recs {
			m, _, _ := bytes.Cut(r.Payload, []byte("/"))
			got = append(got, string(m))
			if len(r.Payload) != 1000+int(r.Seq) {
				t.Errorf("seq %d: %d bytes, want %d", r.Seq, len(r.Payload), 1000+r.Seq)
			}
		}
		if !slices.Equal(got, keep) {
			t.Errorf("records kept: %v, want %v", got, keep)
		}
		c, err := s.Count(ctx, key.PartID, key.Stream)
		if err != nil || c.Records != uint64(len(keep)) {
			t.Errorf("Count = %+v, %v; want %d records", c, err, len(keep))
		}
	}
	check()
	live := s.segs.liveBytes()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openSmall(t, dir, 64<<10)
	defer s.Close()
	check()
	// Open sums each segment's extents, base and deltas to what the
	// running store counted.
	if got := s.segs.liveBytes(); !maps.Equal(got, live) {
		t.Errorf("live bytes after Open %v, before Close %v", got, live)
	}
	// A deleted record sent again stays deleted, and nothing of it is written.
	res, err := s.PutRecords(ctx, key, []ingest.Record{{Seq: doomed[0], Payload: markedPayload(erase[0], 1000+int(doomed[0]))}})
	if err != nil || res.Duplicates != 1 {
		t.Fatalf("repeat of a deleted record = %+v, %v", res, err)
	}
	for m, files := range filesHolding(t, dir, erase[0]) {
		t.Errorf("%s written again to %v", m, files)
	}
}

// TestSegmentSpaceComesBack checks that deleting records gives their disk
// space back: punched holes and removed segment files.
func TestSegmentSpaceComesBack(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openSmall(t, dir, 1<<20)
	defer s.Close()
	key := ingest.StreamKey{PartID: "p", StoreID: "s", Stream: "captures"}
	const batches, perBatch = 16, 256
	payload := bytes.Repeat([]byte("x"), 4096)
	var seqs []uint64
	for b := range batches {
		var recs []ingest.Record
		for i := range perBatch {
			seq := uint64(b*perBatch + i + 1)
			recs = append(recs, ingest.Record{Seq: seq, Payload: payload})
			seqs = append(seqs, seq)
		}
		if _, err := s.PutRecords(ctx, key, recs); err != nil {
			t.Fatal(err)
		}
	}
	segDir := filepath.Join(dir, "db", segmentDir)
	full := allocated(t, segDir)
	if _, err := s.DeleteRecords(ctx, key, seqs); err != nil {
		t.Fatal(err)
	}
	left := allocated(t, segDir)
	t.Logf("segments: %d KiB of 16 MiB of records allocated before the delete, %d KiB after, %d files", full>>10, left>>10, len(segFiles(t, dir)))
	if full < batches*perBatch*4096 || left > 64<<10 {
		t.Errorf("segments took %d bytes before deleting everything and %d after; want all back", full, left)
	}
}

// TestInlineRecordsStillRead opens a store written before segment files,
// whose records hold their payloads inline (built here with that format),
// and reads, repeats, times and deletes them.
func TestInlineRecordsStillRead(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openSmall(t, dir, 0)
	key := ingest.StreamKey{PartID: "p", StoreID: "s", Stream: "logs"}
	at := time.Unix(1_700_000_000, 0).UTC()
	old := []ingest.Record{{Seq: 1, Time: at, Payload: []byte("old one")}, {Seq: 2, Payload: markedPayload("OLD-2", 3000)}}
	// What the last version wrote: inline values (a value over 1 KiB goes
	// to Badger's value log), the meta, no time index yet.
	err := s.db.Update(func(txn *badger.Txn) error {
		for _, r := range old {
			if err := txn.Set(seqKey(streamPrefix('r', key), r.Seq), encodeRecord(r)); err != nil {
				return err
			}
		}
		if err := txn.Delete(timeIndexDone); err != nil {
			return err
		}
		return txn.Set(join('m', key.PartID, key.StoreID, key.Stream), meta{watermark: 2, records: 2, bytes: 3007}.encode())
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openSmall(t, dir, 0)
	defer s.Close()
	res, err := s.PutRecords(ctx, key, []ingest.Record{old[0], {Seq: 2, Payload: []byte("other")}, {Seq: 3, Payload: []byte("new one")}})
	if err != nil || res.Stored != 1 || res.Duplicates != 1 || !slices.Equal(res.Conflicts, []uint64{2}) || res.AckedThrough != 3 {
		t.Fatalf("put over inline records = %+v, %v", res, err)
	}
	recs, _, err := s.Records(ctx, ingest.Query{Stream: key.Stream})
	if err != nil || len(recs) != 3 || !bytes.Equal(recs[0].Payload, old[0].Payload) || !recs[0].Time.Equal(at) ||
		!bytes.Equal(recs[1].Payload, old[1].Payload) || string(recs[2].Payload) != "new one" {
		t.Fatalf("Records = %v, %v", recs, err)
	}
	byTime, _, err := s.RecordsByTime(ctx, ingest.TimeQuery{Streams: []string{key.Stream}})
	if err != nil || len(byTime) != 1 || byTime[0].Seq != 1 {
		t.Fatalf("RecordsByTime = %v, %v; want seq 1, indexed at Open", byTime, err)
	}
	if n, err := s.DeleteRecords(ctx, key, []uint64{1, 2}); err != nil || n != 2 {
		t.Fatalf("DeleteRecords = %d, %v", n, err)
	}
	if _, err := s.Record(ctx, key, 2); !errors.Is(err, ingest.ErrNotFound) {
		t.Fatalf("deleted inline record: %v", err)
	}
	if c, err := s.Count(ctx, key.PartID, key.Stream); err != nil || c.Records != 1 || c.Bytes != 7 {
		t.Fatalf("Count = %+v, %v", c, err)
	}
}

// TestTornTailIsCut checks that bytes a put appended without committing
// (a crash between the segment's sync and Badger's commit, or a torn
// write) are cut at Open, and appends go on from the committed end; and
// that those of a put that died while a later one committed are punched
// out.
func TestTornTailIsCut(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openSmall(t, dir, 0)
	key := ingest.StreamKey{PartID: "p", StoreID: "s", Stream: "captures"}
	if _, err := s.PutRecords(ctx, key, []ingest.Record{{Seq: 1, Payload: []byte("first")}}); err != nil {
		t.Fatal(err)
	}
	// A put that appended and never committed, then one that did.
	if _, err := s.segs.append([][]byte{markedPayload("ORPHAN", 9000)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutRecords(ctx, key, []ingest.Record{{Seq: 2, Payload: []byte("second")}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	seg := segFiles(t, dir)
	if len(seg) != 1 {
		t.Fatalf("segments %v", seg)
	}
	f, err := os.OpenFile(seg[0], os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("TORN/never-committed"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	s = openSmall(t, dir, 0)
	defer s.Close()
	want := int64(len("first") + 9000 + len("second"))
	if fi, err := os.Stat(seg[0]); err != nil || fi.Size() != want {
		t.Fatalf("segment after Open: %v, %v; want %d bytes", fi.Size(), err, want)
	}
	if got := filesHolding(t, dir, "ORPHAN", "TORN"); len(got) > 0 {
		t.Errorf("bytes of puts that never committed still in %v", got)
	}
	if _, err := s.PutRecords(ctx, key, []ingest.Record{{Seq: 3, Payload: []byte("third")}}); err != nil {
		t.Fatal(err)
	}
	for seq, want := range map[uint64]string{1: "first", 2: "second", 3: "third"} {
		if r, err := s.Record(ctx, key, seq); err != nil || string(r.Payload) != want {
			t.Errorf("seq %d = %q, %v; want %q", seq, r.Payload, err, want)
		}
	}
}

// TestChecksumMismatchIsAnError checks that a payload damaged on disk is
// reported as such by every read, never returned or panicked on.
func TestChecksumMismatchIsAnError(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openSmall(t, dir, 0)
	key := ingest.StreamKey{PartID: "p", StoreID: "s", Stream: "captures"}
	at := time.Unix(1_700_000_000, 0)
	if _, err := s.PutRecords(ctx, key, []ingest.Record{{Seq: 1, Time: at, Payload: []byte("payload")}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	seg := segFiles(t, dir)
	if err := os.WriteFile(seg[0], []byte("paYload"), 0o600); err != nil {
		t.Fatal(err)
	}
	s = openSmall(t, dir, 0)
	defer s.Close()
	if _, err := s.Record(ctx, key, 1); !errors.Is(err, errChecksum) {
		t.Errorf("Record of a damaged payload: %v", err)
	}
	if _, _, err := s.Records(ctx, ingest.Query{}); !errors.Is(err, errChecksum) {
		t.Errorf("Records over a damaged payload: %v", err)
	}
	if _, _, err := s.RecordsByTime(ctx, ingest.TimeQuery{Streams: []string{key.Stream}}); !errors.Is(err, errChecksum) {
		t.Errorf("RecordsByTime over a damaged payload: %v", err)
	}
	if _, err := s.PutRecords(ctx, key, []ingest.Record{{Seq: 1, Time: at, Payload: []byte("payload")}}); !errors.Is(err, errChecksum) {
		t.Errorf("a repeat compared with a damaged payload: %v", err)
	}
}

// FuzzDecodeRecord feeds record values as they could be on disk: decoding
// never panics, and a pointer it accepts encodes back to the same bytes.
func FuzzDecodeRecord(f *testing.F) {
	at := time.Unix(1_700_000_000, 5)
	f.Add(encodeRecord(ingest.Record{Time: at, Payload: []byte("inline")}))
	f.Add(encodeRecord(ingest.Record{}))
	f.Add(tombstone)
	f.Add(encodePointer(at, segPtr{seg: 3, off: 1 << 20, n: 1024, sum: 0xdeadbeef}))
	f.Add(encodePointer(time.Time{}, segPtr{seg: 1, off: maxSegOffset, n: maxPayload}))
	f.Add(intentKey(segPtr{seg: 2, off: 10, n: 20}))
	f.Fuzz(func(t *testing.T, v []byte) {
		rv, err := decodeRecord(v)
		if err == nil && rv.segment {
			if rv.ptr.seg == 0 || rv.ptr.off > maxSegOffset || rv.ptr.n > maxPayload {
				t.Fatalf("accepted pointer out of bounds: %+v", rv.ptr)
			}
			if again := encodePointer(rv.time, rv.ptr); v[0]&flagTime != 0 && !bytes.Equal(again, v) {
				t.Fatalf("pointer %x re-encodes as %x", v, again)
			}
		}
		if err == nil && !rv.segment && !rv.deleted && len(rv.inline) != len(v)-recordHeader {
			t.Fatalf("inline payload of %d bytes from a %d-byte value", len(rv.inline), len(v))
		}
		if p, ok := parseIntentKey(v); ok && !bytes.Equal(intentKey(p), v) {
			t.Fatalf("intent %x re-encodes as %x", v, intentKey(p))
		}
	})
}

// BenchmarkOpen measures Open (and Close) of a store holding N records of
// 100 bytes, put 1,000 at a time: ms per open.
func BenchmarkOpen(b *testing.B) {
	for _, n := range []int{100_000, 400_000, 1_600_000} {
		b.Run(fmt.Sprintf("records=%d", n), func(b *testing.B) {
			ctx := context.Background()
			dir := b.TempDir()
			s := openSmall(b, dir, 0)
			key := ingest.StreamKey{PartID: "p", StoreID: "s", Stream: "readings"}
			payload := bytes.Repeat([]byte("r"), 100)
			recs := make([]ingest.Record, 1000)
			for seq := 1; seq <= n; seq += len(recs) {
				for i := range recs {
					recs[i] = ingest.Record{Seq: uint64(seq + i), Payload: payload}
				}
				if _, err := s.PutRecords(ctx, key, recs); err != nil {
					b.Fatal(err)
				}
			}
			if err := s.Close(); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			start := time.Now()
			for b.Loop() {
				s := openSmall(b, dir, 0)
				if err := s.Close(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(time.Since(start).Milliseconds())/float64(b.N), "ms/open")
		})
	}
}

// extentSegments lists, per segment, how many extents Badger holds.
func extentSegments(t *testing.T, s *Store) map[uint32]int {
	t.Helper()
	out := map[uint32]int{}
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{'e', 0}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			out[binary.BigEndian.Uint32(it.Item().Key()[2:])]++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestOpenReadsNoRecords checks that Open recovers the segments from their
// extents and live bytes alone: a store of 20,000 records put 500 at a
// time opens reading a few dozen entries, and a record pointer Open would
// refuse to decode does not stop it, since it never reads one.
func TestOpenReadsNoRecords(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openSmall(t, dir, 1<<20)
	key := ingest.StreamKey{PartID: "p", StoreID: "s", Stream: "readings"}
	const puts, perPut = 40, 500
	payload := bytes.Repeat([]byte("r"), 100)
	for p := range puts {
		recs := make([]ingest.Record, perPut)
		for i := range recs {
			recs[i] = ingest.Record{Seq: uint64(p*perPut + i + 1), Payload: payload}
		}
		if _, err := s.PutRecords(ctx, key, recs); err != nil {
			t.Fatal(err)
		}
	}
	// Deletes in two segments write deltas of live bytes.
	for _, seqs := range [][]uint64{{1, 2, 3}, {15_000, 15_001}, {19_999}} {
		if _, err := s.DeleteRecords(ctx, key, seqs); err != nil {
			t.Fatal(err)
		}
	}
	live := s.segs.liveBytes()
	if len(live) < 2 {
		t.Fatalf("segments %v; want the records in several", live)
	}
	// Settled segments keep no extents: only the active one has them.
	if ext := extentSegments(t, s); len(ext) != 1 || ext[s.segs.active.id] == 0 {
		t.Errorf("extents by segment %v; want only the active segment %d's", ext, s.segs.active.id)
	}
	// A record key Open could not decode: the last run's.
	if err := s.db.Update(func(txn *badger.Txn) error {
		return txn.Set(seqKey(streamPrefix('r', key), 20_000), []byte{flagSegment})
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openSmall(t, dir, 1<<20)
	defer s.Close()
	reads := s.recoveryReads.Load()
	t.Logf("Open read %d entries for %d records in %d puts and %d segments", reads, puts*perPut, puts, len(live))
	if reads > puts {
		t.Errorf("Open read %d entries; want at most one per put (%d), not per record (%d)", reads, puts, puts*perPut)
	}
	if got := s.segs.liveBytes(); !maps.Equal(got, live) {
		t.Errorf("live bytes after Open %v, before Close %v", got, live)
	}
	for _, seq := range []uint64{4, 10_000, 15_002} {
		if r, err := s.Record(ctx, key, seq); err != nil || !bytes.Equal(r.Payload, payload) {
			t.Errorf("seq %d = %q, %v", seq, r.Payload, err)
		}
	}
	if _, err := s.Record(ctx, key, 20_000); err == nil {
		t.Errorf("the damaged key read without an error")
	}
}

// TestUncommittedBytesInAnOlderSegment checks that bytes a put appended
// without committing are punched out at Open even when later puts rolled
// through several segments meanwhile: the segment stays unsettled until
// then, whichever it is.
func TestUncommittedBytesInAnOlderSegment(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openSmall(t, dir, 64<<10)
	key := ingest.StreamKey{PartID: "p", StoreID: "s", Stream: "captures"}
	if _, err := s.PutRecords(ctx, key, []ingest.Record{{Seq: 1, Payload: []byte("first")}}); err != nil {
		t.Fatal(err)
	}
	// A put that appended and is still committing when the process dies.
	if _, err := s.segs.append([][]byte{markedPayload("ORPHAN", 9000)}); err != nil {
		t.Fatal(err)
	}
	for seq := uint64(2); seq <= 10; seq++ {
		if _, err := s.PutRecords(ctx, key, []ingest.Record{{Seq: seq, Payload: markedPayload(fmt.Sprintf("REC-%d", seq), 30_000)}}); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(segFiles(t, dir)); n < 4 {
		t.Fatalf("%d segments; want the puts to roll through several", n)
	}
	if ext := extentSegments(t, s); ext[1] == 0 {
		t.Errorf("extents by segment %v; want segment 1, with a put in flight, unsettled", ext)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openSmall(t, dir, 64<<10)
	defer s.Close()
	if got := filesHolding(t, dir, "ORPHAN"); len(got) > 0 {
		t.Errorf("bytes of a put that never committed still in %v", got)
	}
	if ext := extentSegments(t, s); len(ext) != 1 || ext[s.segs.active.id] == 0 {
		t.Errorf("extents by segment after Open %v; want only the active segment %d's", ext, s.segs.active.id)
	}
	if r, err := s.Record(ctx, key, 1); err != nil || string(r.Payload) != "first" {
		t.Errorf("seq 1 = %q, %v", r.Payload, err)
	}
	for seq := uint64(2); seq <= 10; seq++ {
		if r, err := s.Record(ctx, key, seq); err != nil || !bytes.Equal(r.Payload, markedPayload(fmt.Sprintf("REC-%d", seq), 30_000)) {
			t.Errorf("seq %d: %v", seq, err)
		}
	}
}

// FuzzSegmentEntries feeds extent and live-bytes entries as they could be
// on disk: parsing never panics, and what it accepts is within a segment's
// bounds and encodes back to the same bytes.
func FuzzSegmentEntries(f *testing.F) {
	f.Add(extentKey(1, 0), binary.BigEndian.AppendUint64(nil, 4096))
	f.Add(extentKey(7, maxSegOffset), binary.BigEndian.AppendUint64(nil, maxSegOffset))
	f.Add(liveKey(3, 0), encodeDelta(1<<20))
	f.Add(liveKey(3, 12345), encodeDelta(-4096))
	f.Add([]byte{'v', 0}, []byte{})
	f.Fuzz(func(t *testing.T, k, v []byte) {
		if seg, e, ok := parseExtent(k, v); ok {
			if seg == 0 || e.off > maxSegOffset || e.n > maxSegOffset {
				t.Fatalf("accepted extent out of bounds: %d %+v", seg, e)
			}
			if !bytes.Equal(extentKey(seg, e.off), k) || !bytes.Equal(binary.BigEndian.AppendUint64(nil, e.n), v) {
				t.Fatalf("extent %x=%x re-encodes differently", k, v)
			}
		}
		if seg, nonce, d, ok := parseLive(k, v); ok {
			if seg == 0 || d > maxSegOffset || d < -maxSegOffset {
				t.Fatalf("accepted live bytes out of bounds: %d %d", seg, d)
			}
			if !bytes.Equal(liveKey(seg, nonce), k) || !bytes.Equal(encodeDelta(d), v) {
				t.Fatalf("live bytes %x=%x re-encode differently", k, v)
			}
		}
	})
}

// TestSettleCutShortByACrash checks that a segment whose extents were
// being folded over several transactions when the process died keeps
// every record at Open: the extents left do not stand for all it holds,
// so nothing between them is punched out, and the fold is finished.
func TestSettleCutShortByACrash(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openSmall(t, dir, 64<<10)
	key := ingest.StreamKey{PartID: "p", StoreID: "s", Stream: "captures"}
	payload := func(seq uint64) []byte { return markedPayload(fmt.Sprintf("REC-%d", seq), 10_000) }
	for seq := uint64(1); seq <= 7; seq++ { // the seventh rolls to segment 2
		if _, err := s.PutRecords(ctx, key, []ingest.Record{{Seq: seq, Payload: payload(seq)}}); err != nil {
			t.Fatal(err)
		}
	}
	if ext := extentSegments(t, s); ext[1] != 0 {
		t.Fatalf("extents by segment %v; want segment 1 settled", ext)
	}
	// Segment 1 as a fold of its six extents in chunks of three leaves it
	// after the first chunk: three extents folded into the base, three
	// left, and the mark.
	if err := s.db.Update(func(txn *badger.Txn) error {
		for i := uint64(3); i < 6; i++ {
			if err := txn.Set(extentKey(1, i*10_000), binary.BigEndian.AppendUint64(nil, 10_000)); err != nil {
				return err
			}
		}
		if err := txn.Set(liveKey(1, 0), encodeDelta(30_000)); err != nil {
			return err
		}
		return txn.Set(liveKey(1, settlingNonce), encodeDelta(0))
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openSmall(t, dir, 64<<10)
	defer s.Close()
	for seq := uint64(1); seq <= 7; seq++ {
		if r, err := s.Record(ctx, key, seq); err != nil || !bytes.Equal(r.Payload, payload(seq)) {
			t.Errorf("seq %d after Open: %v", seq, err)
		}
	}
	if live := s.segs.liveBytes(); live[1] != 60_000 {
		t.Errorf("live bytes %v; want 60000 in segment 1", live)
	}
	if ext := extentSegments(t, s); ext[1] != 0 {
		t.Errorf("extents by segment after Open %v; want segment 1's folded", ext)
	}
	if err := s.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get(liveKey(1, settlingNonce))
		return err
	}); !errors.Is(err, badger.ErrKeyNotFound) {
		t.Errorf("the settling mark after Open: %v; want it gone", err)
	}
}
