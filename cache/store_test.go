package cache

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/outpost-robotics/outpost/clock"
)

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func testOptions(t testing.TB) Options {
	return Options{Clock: clock.NewFake(t0), Logger: zap.NewNop(), GCInterval: -1}
}

func openTest(t testing.TB, dir string, opts Options) *Store {
	t.Helper()
	s, err := Open(context.Background(), dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func payload(i int) []byte { return []byte(fmt.Sprintf("record-%06d", i)) }

func TestAppendReadAckAcrossRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, st := range allStreams {
		t.Run(string(st), func(t *testing.T) {
			s := openTest(t, dir, testOptions(t))
			for i := 1; i <= 10; i++ {
				seq, err := s.Append(ctx, st, Record{Payload: payload(i), Priority: 3})
				if err != nil || seq != uint64(i) {
					t.Fatalf("Append %d = %d, %v", i, seq, err)
				}
			}
			if err := s.Ack(ctx, st, 4); err != nil {
				t.Fatalf("Ack: %v", err)
			}
			if err := s.Ack(ctx, st, 2); err != nil { // idempotent, lower
				t.Fatalf("Ack lower: %v", err)
			}
			if err := s.Ack(ctx, st, 11); !errors.Is(err, ErrAckBeyondHead) {
				t.Fatalf("Ack beyond head = %v, want ErrAckBeyondHead", err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openTest(t, dir, testOptions(t))
			got, err := s.Read(ctx, st, 0, 100, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 6 || got[0].Seq != 5 || got[5].Seq != 10 {
				t.Fatalf("Read after restart = %d entries, first %+v", len(got), got[0])
			}
			for _, e := range got {
				if !bytes.Equal(e.Payload, payload(int(e.Seq))) || !e.Time.Equal(t0) {
					t.Fatalf("entry %d = %q at %v", e.Seq, e.Payload, e.Time)
				}
			}
			// Sequence numbers are never reused, even after ack of everything and restart.
			if err := s.Ack(ctx, st, 10); err != nil {
				t.Fatal(err)
			}
			s.Close()
			s = openTest(t, dir, testOptions(t))
			seq, err := s.Append(ctx, st, Record{Payload: payload(11)})
			if err != nil || seq != 11 {
				t.Fatalf("Append after full ack and restart = %d, %v; want 11", seq, err)
			}
			stats, err := s.Stats(ctx, st)
			if err != nil {
				t.Fatal(err)
			}
			want := StreamStats{Stream: st, First: 11, Last: 11, AckedThrough: 10, Count: 1, Bytes: stats.Bytes}
			if stats != want || stats.Bytes == 0 {
				t.Fatalf("Stats = %+v, want %+v", stats, want)
			}
		})
	}
}

func TestReadLimits(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir(), testOptions(t))
	recs := make([]Record, 20)
	for i := range recs {
		recs[i] = Record{Payload: bytes.Repeat([]byte{'x'}, 100)}
	}
	first, err := s.AppendBatch(ctx, StreamAudit, recs)
	if err != nil || first != 1 {
		t.Fatalf("AppendBatch = %d, %v", first, err)
	}
	tests := []struct {
		name            string
		after           uint64
		limit, maxBytes int
		want            int
	}{
		{"count limit", 0, 5, 0, 5},
		{"byte limit", 0, 100, 250, 2},
		{"byte limit below one record still returns one", 3, 100, 10, 1},
		{"from cursor", 15, 100, 0, 5},
		{"past the end", 20, 100, 0, 0},
		{"zero limit", 0, 0, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Read(ctx, StreamAudit, tc.after, tc.limit, tc.maxBytes)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tc.want {
				t.Fatalf("got %d entries, want %d", len(got), tc.want)
			}
			if len(got) > 0 && got[0].Seq != tc.after+1 {
				t.Fatalf("first seq %d, want %d", got[0].Seq, tc.after+1)
			}
		})
	}
}

// TestReadPayloadsAreSeparate: Read copies the values of a batch into
// shared buffers, so each payload must be capped at its own length: a
// caller appending to one (as the sync package's encoders may) must never
// write into the next, whatever the sizes, limits and buffer boundaries.
func TestReadPayloadsAreSeparate(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir(), testOptions(t))
	sizes := []int{0, 1, 100, 511, 512, 4 << 10, 64 << 10, 300 << 10, 3, 1 << 20}
	var recs []Record
	for i, n := range sizes {
		recs = append(recs, Record{Payload: bytes.Repeat([]byte{byte('a' + i)}, n)})
	}
	first, err := s.AppendBatch(ctx, StreamCaptures, recs)
	must(t, err)
	tests := []struct {
		name            string
		limit, maxBytes int
	}{
		{"no byte limit", len(sizes), 0},
		{"byte limit", len(sizes), 70 << 10},
		{"one at a time", 1, 0},
		{"huge limit", math.MaxInt, math.MaxInt},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var all []Entry
			for after := first - 1; ; {
				es, err := s.Read(ctx, StreamCaptures, after, tc.limit, tc.maxBytes)
				must(t, err)
				if len(es) == 0 {
					break
				}
				all = append(all, es...)
				after = es[len(es)-1].Seq
			}
			if len(all) != len(sizes) {
				t.Fatalf("read %d records, want %d", len(all), len(sizes))
			}
			// Longer than a record's header, so it would reach the next
			// payload.
			suffix := bytes.Repeat([]byte("overwrite?"), 10)
			for i := range all {
				all[i].Payload = append(all[i].Payload, suffix...)
			}
			for i, e := range all {
				want := append(bytes.Repeat([]byte{byte('a' + i)}, sizes[i]), suffix...)
				if !bytes.Equal(e.Payload, want) {
					t.Fatalf("record %d (%d bytes) changed when the others were appended to", i, sizes[i])
				}
			}
		})
	}
}

func TestBadInput(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir(), testOptions(t))
	if _, err := s.Append(ctx, "nope", Record{}); !errors.Is(err, ErrUnknownStream) {
		t.Errorf("unknown stream: %v", err)
	}
	if _, err := s.Append(ctx, StreamAudit, Record{Payload: make([]byte, MaxRecordBytes+1)}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("huge record: %v", err)
	}
	if _, err := s.AppendBatch(ctx, StreamAudit, make([]Record, txnMaxEntries)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("huge batch: %v", err)
	}
	if _, err := s.AppendBatch(ctx, StreamAudit, nil); err == nil {
		t.Errorf("empty batch accepted")
	}
	s.Close()
	if _, err := s.Append(ctx, StreamAudit, Record{}); !errors.Is(err, ErrClosed) {
		t.Errorf("append after close: %v", err)
	}
	if _, err := s.Read(ctx, StreamAudit, 0, 1, 0); !errors.Is(err, ErrClosed) {
		t.Errorf("read after close: %v", err)
	}
}

func TestGroupCommitSharesSyncs(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir(), testOptions(t))
	const producers, each = 32, 50
	var wg sync.WaitGroup
	seqs := make(chan uint64, producers*each)
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				seq, err := s.Append(ctx, StreamLogsInfo, Record{Payload: make([]byte, 256)})
				if err != nil {
					t.Error(err)
					return
				}
				seqs <- seq
			}
		}()
	}
	wg.Wait()
	close(seqs)
	seen := map[uint64]bool{}
	for seq := range seqs {
		if seen[seq] {
			t.Fatalf("seq %d returned twice", seq)
		}
		seen[seq] = true
	}
	for i := uint64(1); i <= producers*each; i++ {
		if !seen[i] {
			t.Fatalf("seq %d missing", i)
		}
	}
	syncs := s.Usage().Syncs
	t.Logf("%d appends in %d group commits", producers*each, syncs)
	if syncs >= producers*each {
		t.Fatalf("%d syncs for %d appends: no group commit", syncs, producers*each)
	}
}

func TestDocuments(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir, testOptions(t))
	if _, err := s.GetDocument(ctx, KindConfig); !errors.Is(err, ErrNotFound) {
		t.Fatalf("empty store: %v", err)
	}
	tests := []struct {
		kind    Kind
		version uint64
		wantErr error
	}{
		{KindConfig, 5, nil},
		{KindConfig, 7, nil},
		{KindConfig, 6, ErrStaleVersion},
		{KindConfig, 7, nil}, // same version again is not a rollback
		{KindGrants, 1, nil},
		{KindGrants, 0, ErrStaleVersion},
	}
	for i, tc := range tests {
		doc := Document{Raw: []byte(fmt.Sprintf("%s-v%d-%d", tc.kind, tc.version, i)), Version: tc.version, FetchedAt: t0.Add(time.Duration(i) * time.Minute)}
		err := s.PutDocument(ctx, tc.kind, doc)
		if !errors.Is(err, tc.wantErr) {
			t.Fatalf("%d: PutDocument(%s v%d) = %v, want %v", i, tc.kind, tc.version, err, tc.wantErr)
		}
	}
	if err := s.PutDocument(ctx, "other", Document{}); err == nil {
		t.Fatal("unknown kind accepted")
	}
	s.Close()
	s = openTest(t, dir, testOptions(t))
	got, err := s.GetDocument(ctx, KindConfig)
	if err != nil {
		t.Fatal(err)
	}
	want := Document{Raw: []byte("config-v7-3"), Version: 7, FetchedAt: t0.Add(3 * time.Minute)}
	if !bytes.Equal(got.Raw, want.Raw) || got.Version != want.Version || !got.FetchedAt.Equal(want.FetchedAt) {
		t.Fatalf("GetDocument = %+v, want %+v", got, want)
	}
	g, err := s.GetDocument(ctx, KindGrants)
	if err != nil || g.Version != 1 {
		t.Fatalf("grants = %+v, %v", g, err)
	}
}

func TestState(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir, testOptions(t))
	if c, err := s.Cursor(ctx, "logs"); err != nil || c != 0 {
		t.Fatalf("unset cursor = %d, %v", c, err)
	}
	if _, err := s.GetState(ctx, StateControlCert); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unset state: %v", err)
	}
	oc := OfflineClock{LastCloudTime: t0, UptimeSince: 36 * time.Hour, PartWallAtContact: t0.Add(365 * 24 * time.Hour)}
	must(t, s.SetCursor(ctx, "logs", 42))
	must(t, s.PutState(ctx, StateControlCert, []byte("pem")))
	must(t, s.PutOfflineClock(ctx, oc))
	if err := s.PutState(ctx, "big", make([]byte, MaxStateBytes+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("big state: %v", err)
	}
	s.Close()
	s = openTest(t, dir, testOptions(t))
	if c, err := s.Cursor(ctx, "logs"); err != nil || c != 42 {
		t.Fatalf("cursor = %d, %v", c, err)
	}
	if v, err := s.GetState(ctx, StateControlCert); err != nil || string(v) != "pem" {
		t.Fatalf("state = %q, %v", v, err)
	}
	got, err := s.GetOfflineClock(ctx)
	if err != nil || !got.LastCloudTime.Equal(oc.LastCloudTime) || got.UptimeSince != oc.UptimeSince || !got.PartWallAtContact.Equal(oc.PartWallAtContact) {
		t.Fatalf("offline clock = %+v, %v", got, err)
	}
	// A store written before the part's wall reading was kept has two
	// fields; it reads back with that reading unknown.
	old := binary.AppendVarint(binary.AppendVarint([]byte{encVersion1}, t0.UnixNano()), int64(time.Hour))
	must(t, s.PutState(ctx, stateOfflineClock, old))
	if got, err := s.GetOfflineClock(ctx); err != nil || !got.LastCloudTime.Equal(t0) || got.UptimeSince != time.Hour || !got.PartWallAtContact.IsZero() {
		t.Fatalf("two-field offline clock = %+v, %v", got, err)
	}
	must(t, s.PutState(ctx, stateOfflineClock, append(old, 0x80)))
	if _, err := s.GetOfflineClock(ctx); !errors.Is(err, ErrCorruptRecord) {
		t.Fatalf("a truncated third field: %v, want ErrCorruptRecord", err)
	}
}

func TestBlobs(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir, testOptions(t))
	data := make([]byte, 3000)
	for i := range data {
		data[i] = byte(i)
	}
	must(t, s.PutBlobChunk(ctx, "cam/1.jpg", 0, data[:1000]))
	must(t, s.PutBlobChunk(ctx, "cam/1.jpg", 1000, data[1000:2000]))
	// A writer resuming from an earlier offset: the known part is ignored.
	must(t, s.PutBlobChunk(ctx, "cam/1.jpg", 500, data[500:2500]))
	must(t, s.PutBlobChunk(ctx, "cam/1.jpg", 2500, data[2500:]))
	if err := s.PutBlobChunk(ctx, "cam/1.jpg", 4000, data[:10]); !errors.Is(err, ErrBlobOffset) {
		t.Fatalf("chunk past the end: %v", err)
	}
	must(t, s.SealBlob(ctx, "cam/1.jpg"))
	if err := s.PutBlobChunk(ctx, "cam/1.jpg", 3000, data[:10]); !errors.Is(err, ErrBlobOffset) {
		t.Fatalf("chunk after seal: %v", err)
	}
	must(t, s.SetBlobUploaded(ctx, "cam/1.jpg", 1200))
	if err := s.SetBlobUploaded(ctx, "cam/1.jpg", 3001); !errors.Is(err, ErrBlobOffset) {
		t.Fatalf("upload offset past size: %v", err)
	}
	s.Close()
	s = openTest(t, dir, testOptions(t))
	bi, err := s.BlobInfo(ctx, "cam/1.jpg")
	if err != nil || bi.Size != 3000 || bi.Uploaded != 1200 || !bi.Sealed || !bi.Created.Equal(t0) {
		t.Fatalf("BlobInfo = %+v, %v", bi, err)
	}
	if u := s.Usage(); u.BlobBytes != 3000 {
		t.Fatalf("blob bytes = %d", u.BlobBytes)
	}
	for _, tc := range []struct {
		off   int64
		limit int
	}{{0, 3000}, {1200, 700}, {999, 2}, {2999, 10}, {3000, 10}, {0, 0}} {
		got, err := s.ReadBlob(ctx, "cam/1.jpg", tc.off, tc.limit)
		if err != nil {
			t.Fatal(err)
		}
		want := data[tc.off:min(int64(len(data)), tc.off+int64(tc.limit))]
		if !bytes.Equal(got, want) {
			t.Fatalf("ReadBlob(%d, %d) = %d bytes, want %d", tc.off, tc.limit, len(got), len(want))
		}
	}
	list, err := s.Blobs(ctx)
	if err != nil || len(list) != 1 || list[0].ID != "cam/1.jpg" {
		t.Fatalf("Blobs = %+v, %v", list, err)
	}
	must(t, s.DeleteBlob(ctx, "cam/1.jpg"))
	must(t, s.DeleteBlob(ctx, "cam/1.jpg"))
	if _, err := s.BlobInfo(ctx, "cam/1.jpg"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
	if u := s.Usage(); u.BlobBytes != 0 {
		t.Fatalf("blob bytes after delete = %d", u.BlobBytes)
	}
	if err := s.PutBlobChunk(ctx, "", 0, nil); err == nil {
		t.Fatal("empty blob id accepted")
	}
}

func TestSecondOpenIsInUse(t *testing.T) {
	dir := t.TempDir()
	openTest(t, dir, testOptions(t))
	_, err := Open(context.Background(), dir, testOptions(t))
	if !errors.Is(err, ErrInUse) {
		t.Fatalf("second Open = %v, want ErrInUse", err)
	}
	t.Log(err)
}

func TestGCRunsOnSchedule(t *testing.T) {
	fake := clock.NewFake(t0)
	reclaimed := make(chan error, 1)
	opts := Options{Clock: fake, GCInterval: time.Minute, OnReclaim: func(err error) { signal(reclaimed, err) }}
	openTest(t, t.TempDir(), opts)
	if err := fake.BlockUntil(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-reclaimed:
		t.Fatalf("reclaim before the GC interval passed: %v", err)
	default:
	}
	fake.Advance(time.Minute)
	if err := <-reclaimed; err != nil {
		t.Fatalf("scheduled reclaim: %v", err)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestCloseWhileAppending(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(ctx, dir, testOptions(t))
	must(t, err)
	var wg sync.WaitGroup
	var ok atomic.Int64
	for p := 0; p < 16; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				_, err := s.Append(ctx, StreamAudit, Record{Payload: []byte("x")})
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				ok.Add(1)
			}
		}()
	}
	for ok.Load() < 100 {
		runtime.Gosched()
	}
	must(t, s.Close())
	wg.Wait() // no append is left hanging
	s = openTest(t, dir, testOptions(t))
	st, err := s.Stats(ctx, StreamAudit)
	must(t, err)
	if int64(st.Count) < ok.Load() {
		t.Fatalf("%d appends returned nil, %d records present", ok.Load(), st.Count)
	}
}

func TestLargeAckStartsReclaim(t *testing.T) {
	ctx := context.Background()
	reclaimed := make(chan error, 1)
	opts := testOptions(t)
	opts.GCAfterAckBytes = 1 << 20
	opts.OnReclaim = func(err error) { signal(reclaimed, err) }
	s := openTest(t, t.TempDir(), opts)
	batch := make([]Record, 16)
	for i := range batch {
		batch[i] = Record{Payload: make([]byte, 64<<10)}
	}
	first, err := s.AppendBatch(ctx, StreamCaptures, batch)
	must(t, err)
	must(t, s.Ack(ctx, StreamCaptures, first+15))
	if err := <-reclaimed; err != nil {
		t.Fatalf("reclaim after acking more than GCAfterAckBytes: %v", err)
	}
}

// signal delivers err without blocking the store's GC loop: only the first
// reclaim matters to a test, and a blocked loop would hang Close.
func signal(ch chan error, err error) {
	select {
	case ch <- err:
	default:
	}
}

// TestQueue queues appends from several producers without waiting: each
// producer's records get increasing sequences in the order it queued them,
// Wait says the same every time, and every record answered nil is there
// after a reopen, once; a Queue refused queues nothing.
func TestQueue(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir, testOptions(t))
	const producers, each = 8, 300
	var wg sync.WaitGroup
	got := make([][]uint64, producers)
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			queued := make([]Pending, 0, each)
			for i := range each {
				q, err := s.Queue(ctx, StreamLogsInfo, Record{Payload: []byte(fmt.Sprintf("p%d-%04d", p, i))})
				if err != nil {
					t.Error(err)
					return
				}
				queued = append(queued, q)
			}
			for _, q := range queued {
				<-q.Done()
				seq, err := q.Wait()
				if again, err2 := q.Wait(); err != nil || err2 != nil || again != seq {
					t.Errorf("Wait: %d, %v; again %d, %v", seq, err, again, err2)
					return
				}
				got[p] = append(got[p], seq)
			}
		}()
	}
	wg.Wait()
	bySeq := map[uint64]string{}
	for p, seqs := range got {
		for i, seq := range seqs {
			if i > 0 && seq <= seqs[i-1] {
				t.Fatalf("producer %d: record %d got seq %d after %d", p, i, seq, seqs[i-1])
			}
			bySeq[seq] = fmt.Sprintf("p%d-%04d", p, i)
		}
	}
	must(t, s.Close())
	s = openTest(t, dir, testOptions(t))
	es := readAll(t, s, StreamLogsInfo, 0)
	if len(es) != producers*each || len(bySeq) != producers*each {
		t.Fatalf("%d records after reopen, %d distinct sequences answered; want %d", len(es), len(bySeq), producers*each)
	}
	for _, e := range es {
		if string(e.Payload) != bySeq[e.Seq] {
			t.Fatalf("seq %d holds %q, was answered for %q", e.Seq, e.Payload, bySeq[e.Seq])
		}
	}

	for _, tc := range []struct {
		name string
		st   Stream
		recs []Record
		want error
	}{
		{"unknown stream", "captures\x00", []Record{{}}, ErrUnknownStream},
		{"huge record", StreamCaptures, []Record{{Payload: make([]byte, MaxRecordBytes+1)}}, ErrTooLarge},
		{"huge batch", StreamAudit, make([]Record, txnMaxEntries), ErrTooLarge},
	} {
		if q, err := s.QueueBatch(ctx, tc.st, tc.recs); !errors.Is(err, tc.want) || q != (Pending{}) {
			t.Errorf("%s: %v, %v; want %v and nothing queued", tc.name, q, err, tc.want)
		}
	}
	must(t, s.Close())
	if _, err := s.Queue(ctx, StreamAudit, Record{}); !errors.Is(err, ErrClosed) {
		t.Errorf("queue after close: %v", err)
	}
}
