package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"

	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/qemutest"
)

// capPayload is a capture payload naming blob id ("" for none), as the
// daemon's records do in their own encoding.
func capPayload(i int, blob string) []byte {
	return []byte(fmt.Sprintf("capture-%04d|blob=%s|", i, blob))
}

// blobOfPayload reads the blob id back out of capPayload's form.
func blobOfPayload(p []byte) string {
	_, rest, ok := bytes.Cut(p, []byte("|blob="))
	if !ok {
		return ""
	}
	id, _, _ := bytes.Cut(rest, []byte("|"))
	return string(id)
}

// checkCaptureIndex checks that the captures' eviction index and stream
// meta agree with the runs: one index key per run, with its priority and
// size, and the meta's count and bytes (checkRuns).
func checkCaptureIndex(t *testing.T, s *Store) {
	t.Helper()
	type rec struct {
		prio uint8
		size uint32
	}
	recs, index := map[uint64]rec{}, map[uint64]rec{}
	must(t, s.settle())
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: streamPrefix(StreamCaptures)})
		for it.Rewind(); it.Valid(); it.Next() {
			seq, size := seqSize(it.Item().Key())
			recs[seq] = rec{it.Item().UserMeta(), size}
		}
		it.Close()
		it = txn.NewIterator(badger.IteratorOptions{Prefix: []byte{nsPrio}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			seq, size := seqSize(it.Item().Key())
			index[seq] = rec{it.Item().Key()[1], size}
		}
		return nil
	})
	must(t, err)
	if !mapsEqual(recs, index) {
		t.Fatalf("eviction index %v does not match the records %v", index, recs)
	}
	checkRuns(t, s, StreamCaptures)
}

func mapsEqual[K comparable, V comparable](a, b map[K]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestEditCaptures(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir, testOptions(t))
	for i := 1; i <= 10; i++ {
		p := capPayload(i, "")
		if i == 7 {
			p = append(p, make([]byte, 3000)...) // in the value log
		}
		_, err := s.Append(ctx, StreamCaptures, Record{Payload: p, Priority: uint8(i % 3), Time: t0.Add(time.Duration(i) * time.Second)})
		must(t, err)
	}
	must(t, s.Ack(ctx, StreamCaptures, 2))
	before, _ := s.Read(ctx, StreamCaptures, 0, 100, 0)
	tag := func(_ uint64, p []byte) ([]byte, error) {
		if bytes.HasSuffix(p, []byte("tag=x|")) {
			return p, nil // already tagged: unchanged
		}
		return append(slices.Clone(p), "tag=x|"...), nil
	}

	res, err := s.EditCaptures(ctx, []uint64{5, 3, 7, 5, 99, 1, 0}, tag)
	must(t, err)
	if !slices.Equal(res.Changed, []uint64{3, 5, 7}) || !slices.Equal(res.Missing, []uint64{0, 1, 99}) {
		t.Fatalf("EditCaptures = %+v, want changed 3 5 7, missing 0 1 99", res)
	}
	checkCaptureIndex(t, s)
	// Again: the same edit changes nothing.
	res, err = s.EditCaptures(ctx, []uint64{3, 5, 7}, tag)
	if err != nil || len(res.Changed) != 0 || len(res.Missing) != 0 {
		t.Fatalf("repeated edit = %+v, %v; want nothing changed", res, err)
	}

	// Sequence, time and priority stay; only the payload changed; and a
	// restart finds the same.
	for round := range 2 {
		after, err := s.Read(ctx, StreamCaptures, 0, 100, 0)
		must(t, err)
		if len(after) != len(before) {
			t.Fatalf("round %d: %d records, want %d", round, len(after), len(before))
		}
		for i, e := range after {
			b := before[i]
			edited := e.Seq == 3 || e.Seq == 5 || e.Seq == 7
			if e.Seq != b.Seq || !e.Time.Equal(b.Time) || e.Priority != b.Priority ||
				bytes.HasSuffix(e.Payload, []byte("tag=x|")) != edited {
				t.Fatalf("round %d: record %d is %+v, was %+v", round, e.Seq, e.Record, b.Record)
			}
		}
		checkCaptureIndex(t, s)
		if round == 0 {
			must(t, s.Close())
			s = openTest(t, dir, testOptions(t))
		}
	}

	// An edit that fails writes nothing of its transaction.
	boom := errors.New("boom")
	res, err = s.EditCaptures(ctx, []uint64{4, 6}, func(seq uint64, p []byte) ([]byte, error) {
		if seq == 6 {
			return nil, boom
		}
		return []byte("changed"), nil
	})
	if !errors.Is(err, boom) || len(res.Changed) != 0 {
		t.Fatalf("failing edit = %+v, %v", res, err)
	}
	if es, _ := s.Read(ctx, StreamCaptures, 3, 1, 0); string(es[0].Payload) == "changed" {
		t.Fatal("capture 4 was changed by an edit that failed")
	}
	if _, err := s.EditCaptures(ctx, []uint64{4}, func(uint64, []byte) ([]byte, error) { return make([]byte, MaxRecordBytes+1), nil }); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("edit past MaxRecordBytes: %v", err)
	}

	// Eviction still finds edited captures by their new size, and the ack
	// deletes them.
	setBudget := func(n int64) {
		s.mu.Lock()
		s.opts.Budget.MaxBytes = n
		s.mu.Unlock()
	}
	setBudget(1)
	if _, err := s.Append(ctx, StreamLogsWarn, Record{Payload: []byte("warn")}); err != nil {
		t.Fatal(err)
	}
	setBudget(0)
	checkCaptureIndex(t, s)
	if st, _ := s.Stats(ctx, StreamCaptures); st.Count != 0 {
		t.Fatalf("%d captures left after evicting them all", st.Count)
	}
}

func TestDeleteCaptures(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir, testOptions(t))
	blobSize := map[string]int64{"b4": 3000, "b6": 5, "b8": 70}
	for id, n := range blobSize {
		must(t, s.PutBlobChunk(ctx, id, 0, make([]byte, n)))
		must(t, s.SealBlob(ctx, id))
	}
	var recBytes = map[uint64]uint64{}
	for i := 1; i <= 10; i++ {
		blob := ""
		if i == 4 || i == 6 || i == 8 {
			blob = "b" + strconv.Itoa(i)
		}
		p := capPayload(i, blob)
		_, err := s.Append(ctx, StreamCaptures, Record{Payload: p, Priority: 1})
		must(t, err)
		// Settled one by one, each record is a run of its own, whose
		// bytes the gap records count.
		must(t, s.settle())
		recBytes[uint64(i)] = uint64(len(recordKey(StreamCaptures, 0, 0)) + len(encodeRecord(Record{Payload: p, Time: t0})))
	}
	if _, err := s.DeleteCaptures(ctx, []uint64{1}, "", blobOfPayload); err == nil {
		t.Fatal("a delete without a reason was accepted")
	}
	res, err := s.DeleteCaptures(ctx, []uint64{9, 3, 2, 6, 4, 42}, "deleted on the part by apikey/k1", blobOfPayload)
	must(t, err)
	if !slices.Equal(res.Changed, []uint64{2, 3, 4, 6, 9}) || !slices.Equal(res.Missing, []uint64{42}) {
		t.Fatalf("DeleteCaptures = %+v", res)
	}
	// Deleting again finds nothing: a retry changes nothing.
	if res, err := s.DeleteCaptures(ctx, []uint64{2, 3}, "again", blobOfPayload); err != nil || len(res.Changed) != 0 || len(res.Missing) != 2 {
		t.Fatalf("second delete = %+v, %v", res, err)
	}

	for round := range 2 {
		es, err := s.Read(ctx, StreamCaptures, 0, 100, 0)
		must(t, err)
		var left []uint64
		for _, e := range es {
			left = append(left, e.Seq)
		}
		if !slices.Equal(left, []uint64{1, 5, 7, 8, 10}) {
			t.Fatalf("round %d: captures left %v", round, left)
		}
		gaps := readGaps(t, s)
		want := []Gap{
			{Stream: StreamCaptures, From: 2, Through: 4, Count: 3, Bytes: recBytes[2] + recBytes[3] + recBytes[4] + 3000},
			{Stream: StreamCaptures, From: 6, Through: 6, Count: 1, Bytes: recBytes[6] + 5},
			{Stream: StreamCaptures, From: 9, Through: 9, Count: 1, Bytes: recBytes[9]},
		}
		if len(gaps) != len(want) {
			t.Fatalf("round %d: gap records %+v, want %+v", round, gaps, want)
		}
		for i, g := range gaps {
			if g.Reason != "deleted on the part by apikey/k1" || g.At.IsZero() {
				t.Fatalf("gap %+v: wrong reason or no time", g)
			}
			g.Reason, g.At = "", time.Time{}
			if g != want[i] {
				t.Fatalf("round %d: gap %d is %+v, want %+v", round, i, g, want[i])
			}
		}
		// The deleted captures' blobs are gone, the kept one's stays.
		bs, err := s.Blobs(ctx)
		must(t, err)
		if len(bs) != 1 || bs[0].ID != "b8" || s.Usage().BlobBytes != 70 {
			t.Fatalf("round %d: blobs %+v (%d bytes), want only b8", round, bs, s.Usage().BlobBytes)
		}
		for _, id := range []string{"b4", "b6"} {
			if _, err := s.BlobInfo(ctx, id); !errors.Is(err, ErrNotFound) {
				t.Fatalf("blob %s of a deleted capture: %v", id, err)
			}
			if _, err := s.ReadBlob(ctx, id, 0, 10); !errors.Is(err, ErrNotFound) {
				t.Fatalf("read blob %s of a deleted capture: %v", id, err)
			}
		}
		checkCaptureIndex(t, s)
		if round == 0 {
			must(t, s.Close())
			s = openTest(t, dir, testOptions(t))
		}
	}
	// What an upload sends plus what the gaps declare covers 1..10 once.
	checkAccounted(t, s)
}

func readGaps(t *testing.T, s *Store) []Gap {
	t.Helper()
	es, err := s.Read(context.Background(), StreamGaps, 0, 1<<20, 0)
	must(t, err)
	var out []Gap
	for _, e := range es {
		g, err := DecodeGap(e.Payload)
		must(t, err)
		out = append(out, g)
	}
	return out
}

// checkAccounted is the cloud's view of the captures stream (exactly once,
// and no silent loss): every sequence from 1 to the last is acknowledged,
// still to be uploaded, or declared lost by a gap record, exactly one of
// the last two when it is past the acknowledged ones; no sequence is
// declared twice. Gap records here are never acknowledged.
func checkAccounted(t *testing.T, s *Store) (present, declared map[uint64]bool) {
	t.Helper()
	ctx := context.Background()
	st, err := s.Stats(ctx, StreamCaptures)
	must(t, err)
	es, err := s.Read(ctx, StreamCaptures, 0, 1<<30, 0)
	must(t, err)
	present, declared = map[uint64]bool{}, map[uint64]bool{}
	for _, e := range es {
		present[e.Seq] = true
	}
	for _, g := range readGaps(t, s) {
		if g.Stream != StreamCaptures {
			continue
		}
		if g.Count != g.Through-g.From+1 {
			t.Fatalf("gap %+v covers survivors", g)
		}
		for seq := g.From; seq <= g.Through; seq++ {
			if declared[seq] {
				t.Fatalf("capture %d is declared lost twice", seq)
			}
			declared[seq] = true
		}
	}
	for seq := uint64(1); seq <= st.Last; seq++ {
		switch {
		case seq <= st.AckedThrough && present[seq]:
			t.Fatalf("capture %d is acknowledged and still present", seq)
		case seq <= st.AckedThrough:
		case present[seq] && declared[seq]:
			t.Fatalf("capture %d would be uploaded and is declared lost: a duplicate", seq)
		case !present[seq] && !declared[seq]:
			t.Fatalf("capture %d is gone without a gap record: a silent loss", seq)
		}
	}
	return present, declared
}

const editCrashEnv = "OUTPOST_CACHE_EDIT_CRASH_CHILD"

// editCrashChild appends captures (some with blobs), then tags, deletes and
// acknowledges them at random until it is killed, reporting on stdout every
// call that returned: "tag SEQ MARK" and "del SEQ...".
func editCrashChild(dir string, run int) {
	ctx := context.Background()
	s, err := Open(ctx, dir, Options{Clock: clock.NewReal(), GCInterval: -1})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(3)
	}
	rng := rand.New(rand.NewPCG(uint64(run), 7))
	for i := range 40 {
		blob := ""
		if i%4 == 0 {
			blob = fmt.Sprintf("r%d-%d", run, i)
			for off := 0; off < 3; off++ {
				if err := s.PutBlobChunk(ctx, blob, int64(off*2000), make([]byte, 2000)); err != nil {
					fmt.Fprintln(os.Stderr, "child blob:", err)
					os.Exit(4)
				}
			}
			if err := s.SealBlob(ctx, blob); err != nil {
				os.Exit(4)
			}
		}
		if _, err := s.Append(ctx, StreamCaptures, Record{Payload: capPayload(i, blob), Priority: uint8(i % 4)}); err != nil {
			fmt.Fprintln(os.Stderr, "child append:", err)
			os.Exit(4)
		}
	}
	os.Stdout.WriteString("ready\n")
	for op := 0; ; op++ {
		st, err := s.Stats(ctx, StreamCaptures)
		if err != nil {
			os.Exit(5)
		}
		lo := st.AckedThrough + 1
		pick := func() []uint64 {
			var out []uint64
			for range 1 + rng.IntN(6) {
				out = append(out, lo+uint64(rng.IntN(int(st.Last-lo+1))))
			}
			return out
		}
		switch r := rng.IntN(10); {
		case st.Last < lo:
			os.Stdout.WriteString("idle\n")
			select {}
		case r < 4:
			mark := fmt.Sprintf("t%d.%d;", run, op)
			res, err := s.EditCaptures(ctx, pick(), func(_ uint64, p []byte) ([]byte, error) { return append(slices.Clone(p), mark...), nil })
			if err != nil {
				fmt.Fprintln(os.Stderr, "child edit:", err)
				os.Exit(6)
			}
			for _, seq := range res.Changed {
				fmt.Fprintf(os.Stdout, "tag %d %s\n", seq, mark)
			}
		case r < 8:
			res, err := s.DeleteCaptures(ctx, pick(), "deleted on the part by local/0", blobOfPayload)
			if err != nil {
				fmt.Fprintln(os.Stderr, "child delete:", err)
				os.Exit(6)
			}
			if len(res.Changed) > 0 {
				fmt.Fprintf(os.Stdout, "del %s\n", strings.Trim(fmt.Sprint(res.Changed), "[]"))
			}
		default:
			// The uploader: the cloud holds a prefix and acknowledges it.
			if err := s.Ack(ctx, StreamCaptures, lo+uint64(rng.IntN(3))-1); err != nil && !errors.Is(err, ErrAckBeyondHead) {
				fmt.Fprintln(os.Stderr, "child ack:", err)
				os.Exit(6)
			}
			os.Stdout.WriteString("ack\n")
		}
	}
}

// TestCrashDuringEdits kills a process that tags, deletes and acknowledges
// captures at random moments, and checks after each kill that nothing
// acknowledged is lost and nothing is counted twice: every capture is
// acknowledged, still to be uploaded, or declared lost by exactly one gap
// record; every delete that returned holds; every tag that returned is on
// its capture; the blobs of deleted captures are gone.
func TestCrashDuringEdits(t *testing.T) {
	if dir := os.Getenv(editCrashEnv); dir != "" {
		run, _ := strconv.Atoi(os.Getenv(editCrashEnv + "_RUN"))
		editCrashChild(dir, run)
		return
	}
	if testing.Short() {
		t.Skip("spawns 20 processes")
	}
	const kills = 20
	dir := t.TempDir() + "/store"
	rng := rand.New(rand.NewPCG(20261122, 9))
	deleted := map[uint64]bool{}
	tags := map[uint64][]string{}
	for k := range kills {
		child := qemutest.StartChild(t, "TestCrashDuringEdits", editCrashEnv+"="+dir, editCrashEnv+"_RUN="+strconv.Itoa(k))
		// Kill after a random number of reported operations: the child
		// goes on meanwhile, so the kill lands anywhere in what follows.
		wait := rng.IntN(30)
		var lines []string
		for n := -1; n < wait; n++ {
			l, ok := child.Next()
			if !ok {
				break
			}
			lines = append(lines, l)
			if l == "idle" {
				break // everything is acknowledged or deleted
			}
		}
		lines = append(lines, child.Kill(t)...)
		for _, l := range lines {
			f := strings.Fields(l)
			switch {
			case len(f) == 3 && f[0] == "tag":
				seq, _ := strconv.ParseUint(f[1], 10, 64)
				tags[seq] = append(tags[seq], f[2])
			case len(f) > 1 && f[0] == "del":
				for _, x := range f[1:] {
					seq, _ := strconv.ParseUint(x, 10, 64)
					deleted[seq] = true
				}
			}
		}
		verifyEditCrash(t, dir, k, deleted, tags)
	}
	if len(deleted) == 0 || len(tags) == 0 {
		t.Fatalf("the children reported %d deletes and %d tags; the test exercised nothing", len(deleted), len(tags))
	}
	t.Logf("%d kills; %d captures deleted and %d tagged by calls that returned, all held", kills, len(deleted), len(tags))
}

func verifyEditCrash(t *testing.T, dir string, k int, deleted map[uint64]bool, tags map[uint64][]string) {
	t.Helper()
	ctx := context.Background()
	opts := testOptions(t)
	opts.Logger = zaptest.NewLogger(t, zaptest.Level(zapcore.WarnLevel))
	s, err := Open(ctx, dir, opts)
	if err != nil {
		t.Fatalf("kill %d: reopen: %v", k, err)
	}
	defer s.Close()
	present, _ := checkAccounted(t, s)
	for seq := range deleted {
		if present[seq] {
			t.Fatalf("kill %d: capture %d was deleted (the call returned) and is back", k, seq)
		}
	}
	es, err := s.Read(ctx, StreamCaptures, 0, 1<<30, 0)
	must(t, err)
	blobs, err := s.Blobs(ctx)
	must(t, err)
	var live []string
	var size int64
	for _, b := range blobs {
		live = append(live, b.ID)
		size += b.Size
	}
	for _, e := range es {
		for _, mark := range tags[e.Seq] {
			if !bytes.Contains(e.Payload, []byte(mark)) {
				t.Fatalf("kill %d: capture %d lost tag %s, which returned", k, e.Seq, mark)
			}
		}
		if b := blobOfPayload(e.Payload); b != "" && !slices.Contains(live, b) {
			t.Fatalf("kill %d: capture %d names blob %s, which is gone", k, e.Seq, b)
		}
	}
	// Only kept captures' blobs remain (or those of acknowledged ones,
	// which the uploader deletes once the cloud has them), and nothing
	// of a deleted blob is left or counted.
	if u := s.Usage(); u.BlobBytes != size {
		t.Fatalf("kill %d: the store counts %d blob bytes, its blobs hold %d", k, u.BlobBytes, size)
	}
	err = s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{nsChunk}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			key := it.Item().Key()
			if id := string(key[1 : len(key)-9]); !slices.Contains(live, id) {
				t.Errorf("kill %d: a chunk of deleted blob %s is left", k, id)
			}
		}
		return nil
	})
	must(t, err)
	checkCaptureIndex(t, s)
}
