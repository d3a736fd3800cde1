package badgeringest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/outpost-robotics/outpost/cloud/ingest"
	"github.com/outpost-robotics/outpost/cloud/ingest/ingesttest"
)

// keysUnder counts the keys under prefix.
func keysUnder(t *testing.T, s *Store, prefix []byte) int {
	t.Helper()
	n := 0
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// recordKeys counts the r keys of a stream.
func recordKeys(t *testing.T, s *Store, key ingest.StreamKey) int {
	t.Helper()
	return keysUnder(t, s, streamPrefix('r', key))
}

// TestRecordRunsPerPut checks that a put's records share a few keys, that
// deleting some leaves the keys and the rest, and that a repeat of the
// whole put, deleted records included, stores nothing.
func TestRecordRunsPerPut(t *testing.T) {
	ctx := context.Background()
	s := openSmall(t, t.TempDir(), 0)
	defer s.Close()
	key := ingest.StreamKey{PartID: "p", StoreID: "s", Stream: "readings"}
	t0 := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	recs := make([]ingest.Record, 1000)
	for i := range recs {
		recs[i] = ingest.Record{Seq: uint64(i + 1), Time: t0.Add(time.Duration(i) * 10 * time.Millisecond), Payload: fmt.Appendf(nil, "reading %d", i+1)}
	}
	if res, err := s.PutRecords(ctx, key, recs); err != nil || res.Stored != 1000 {
		t.Fatalf("put = %+v, %v", res, err)
	}
	// An entry is about 13 bytes: some 65 records to a run.
	keys := recordKeys(t, s, key)
	if keys < 2 || keys > 40 {
		t.Errorf("a put of 1,000 records wrote %d record keys, want a few dozen at most", keys)
	}
	var gone []uint64
	for seq := uint64(1); seq <= 1000; seq += 3 {
		gone = append(gone, seq)
	}
	if n, err := s.DeleteRecords(ctx, key, gone); err != nil || n != len(gone) {
		t.Fatalf("delete = %d, %v", n, err)
	}
	if got := recordKeys(t, s, key); got != keys {
		t.Errorf("%d record keys after deleting, want the %d there were", got, keys)
	}
	left := ingesttest.All(t, s, ingest.Query{Stream: key.Stream, Limit: 17}, 1000)
	if len(left) != 1000-len(gone) {
		t.Fatalf("%d records left, want %d", len(left), 1000-len(gone))
	}
	for _, r := range left {
		if r.Seq%3 == 1 || string(r.Payload) != fmt.Sprintf("reading %d", r.Seq) || !r.Time.Equal(recs[r.Seq-1].Time) {
			t.Fatalf("left %d %q %v", r.Seq, r.Payload, r.Time)
		}
	}
	res, err := s.PutRecords(ctx, key, recs)
	if err != nil || res.Stored != 0 || res.Duplicates != 1000 || len(res.Conflicts) != 0 || res.AckedThrough != 1000 {
		t.Fatalf("repeat = %+v, %v; want 1,000 duplicates", res, err)
	}
}

// modelRec is a record as the model holds it.
type modelRec struct {
	payload string
	at      time.Time
	deleted bool
}

// TestRecordRunsAgainstAModel puts batches with gaps, in and out of order,
// filling holes inside runs, repeating and conflicting, with empty
// payloads and without times, through both write paths (payloads before
// the lock, and after it for batches with losses or too big for it);
// deletes; reopens; and checks every read against a model after each
// step: records by sequence in pages, by time, one by one, the counters
// and the watermark. Part of the store is written as stores before runs
// wrote it.
func TestRecordRunsAgainstAModel(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openSmall(t, dir, 1<<20)
	defer func() { s.Close() }()
	key := ingest.StreamKey{PartID: "p", StoreID: "s", Stream: "readings"}
	rng := rand.New(rand.NewPCG(7, 11))
	t0 := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	model := map[uint64]*modelRec{}
	var lost []ingest.LostRange
	var conflicts uint64
	var top uint64

	// Records 1..50 as stores before runs wrote them: a key each, inline
	// payloads.
	err := s.db.Update(func(txn *badger.Txn) error {
		var m meta
		for seq := uint64(1); seq <= 50; seq++ {
			r := ingest.Record{Seq: seq, Time: t0.Add(time.Duration(seq) * time.Second), Payload: fmt.Appendf(nil, "old %d", seq)}
			if err := txn.Set(seqKey(streamPrefix('r', key), seq), encodeRecord(r)); err != nil {
				return err
			}
			if err := txn.Set(timeKey('t', key, r.Time.UnixNano(), seq), nil); err != nil {
				return err
			}
			model[seq] = &modelRec{payload: string(r.Payload), at: r.Time}
			m.records++
			m.bytes += uint64(len(r.Payload))
		}
		m.watermark = 50
		return txn.Set(join('m', key.PartID, key.StoreID, key.Stream), m.encode())
	})
	if err != nil {
		t.Fatal(err)
	}
	top = 50

	record := func(seq uint64, variant int) ingest.Record {
		r := ingest.Record{Seq: seq, Time: t0.Add(time.Duration(seq)*time.Second + time.Duration(rng.IntN(5000))*time.Millisecond)}
		switch rng.IntN(12) {
		case 0:
			r.Time = time.Time{}
		case 1:
			r.Time = t0 // tied
		}
		if rng.IntN(15) != 0 {
			r.Payload = fmt.Appendf(nil, "rec %d v%d %s", seq, variant, bytes.Repeat([]byte("x"), rng.IntN(200)))
		}
		return r
	}
	check := func(step string, small bool) {
		t.Helper()
		// Small pages begin and end inside runs; large ones keep the test
		// quick.
		limit := func(n int) int {
			if small {
				return 1 + rng.IntN(n)
			}
			return ingest.MaxLimit
		}
		var live []uint64
		var bytesHeld uint64
		for seq, m := range model {
			if !m.deleted {
				live = append(live, seq)
				bytesHeld += uint64(len(m.payload))
			}
		}
		slices.Sort(live)
		got := ingesttest.All(t, s, ingest.Query{Stream: key.Stream, Limit: limit(40)}, 100_000)
		if len(got) != len(live) {
			t.Fatalf("%s: %d records, want %d", step, len(got), len(live))
		}
		for i, r := range got {
			m := model[live[i]]
			if r.Seq != live[i] || string(r.Payload) != m.payload || !r.Time.Equal(m.at) {
				t.Fatalf("%s: record %d is seq %d %q at %v; want seq %d %q at %v", step, i, r.Seq, r.Payload, r.Time, live[i], m.payload, m.at)
			}
		}
		var timed []ingest.TimeKey
		for _, seq := range live {
			if m := model[seq]; !m.at.IsZero() {
				timed = append(timed, ingest.TimeKey{Time: m.at, StreamKey: key, Seq: seq})
			}
		}
		slices.SortFunc(timed, func(a, b ingest.TimeKey) int { return a.Compare(b) })
		byTime := ingesttest.AllByTime(t, s, ingest.TimeQuery{Streams: []string{key.Stream}, Limit: limit(60)}, 100_000)
		if len(byTime) != len(timed) {
			t.Fatalf("%s: %d records by time, want %d", step, len(byTime), len(timed))
		}
		for i, r := range byTime {
			if r.Seq != timed[i].Seq || string(r.Payload) != model[r.Seq].payload {
				t.Fatalf("%s: by time, record %d is seq %d, want %d", step, i, r.Seq, timed[i].Seq)
			}
		}
		for range 30 {
			seq := 1 + uint64(rng.IntN(int(top)+10))
			r, err := s.Record(ctx, key, seq)
			m, ok := model[seq]
			switch {
			case ok && !m.deleted:
				if err != nil || string(r.Payload) != m.payload || !r.Time.Equal(m.at) {
					t.Fatalf("%s: Record(%d) = %q %v, %v; want %q", step, seq, r.Payload, r.Time, err, m.payload)
				}
			case !errors.Is(err, ingest.ErrNotFound):
				t.Fatalf("%s: Record(%d) of a record not held = %v", step, seq, err)
			}
		}
		c, err := s.Count(ctx, key.PartID, key.Stream)
		if err != nil || c.Records != uint64(len(live)) || c.Bytes != bytesHeld || c.Conflicts != conflicts {
			t.Fatalf("%s: Count = %+v, %v; want %d records, %d bytes, %d conflicts", step, c, err, len(live), bytesHeld, conflicts)
		}
		wm := uint64(0)
		for {
			if _, ok := model[wm+1]; ok {
				wm++
				continue
			}
			reach := wm
			for _, l := range lost {
				if l.First <= wm+1 && l.Last > reach {
					reach = l.Last
				}
			}
			if reach == wm {
				break
			}
			wm = reach
		}
		if got, err := s.AckedThrough(ctx, key); err != nil || got != wm {
			t.Fatalf("%s: watermark %d, %v; want %d", step, got, err, wm)
		}
	}
	check("records as stores before runs wrote them", true)

	for step := range 120 {
		name := fmt.Sprintf("step %d", step)
		switch op := rng.IntN(20); {
		case op < 12:
			// A batch: new records above the top with gaps, holes filled
			// below it, repeats and conflicts.
			var recs []ingest.Record
			n := 1 + rng.IntN(400)
			if rng.IntN(20) == 0 {
				n = preWriteMaxRecords + 100 // after the lock
			}
			seq := top
			if rng.IntN(3) == 0 && top > 100 {
				seq = top - uint64(rng.IntN(100)) // from inside what is held
			}
			for range n {
				seq += 1 + uint64(rng.IntN(4)/3)*uint64(rng.IntN(5)) // mostly consecutive
				variant := 0
				if _, ok := model[seq]; ok && rng.IntN(10) == 0 {
					variant = 1 // a conflict
				}
				r := record(seq, variant)
				if m, ok := model[seq]; ok && variant == 0 {
					r.Payload, r.Time = []byte(m.payload), m.at // a repeat
				}
				recs = append(recs, r)
			}
			if rng.IntN(4) == 0 {
				rng.Shuffle(len(recs), func(i, j int) { recs[i], recs[j] = recs[j], recs[i] })
			}
			var losses []ingest.Loss
			if rng.IntN(5) == 0 {
				first := top + uint64(n) + 10
				losses = []ingest.Loss{{Stream: key.Stream, First: first, Last: first + uint64(rng.IntN(20)), Reason: "evicted"}}
			}
			var want ingest.PutResult
			inBatch := map[uint64]string{}
			for _, r := range recs {
				p, mine := inBatch[r.Seq]
				m, held := model[r.Seq]
				switch {
				case mine && p == string(r.Payload), held && (m.deleted || m.payload == string(r.Payload)):
					want.Duplicates++
				case mine, held:
					want.Conflicts = append(want.Conflicts, r.Seq)
					conflicts++
				default:
					inBatch[r.Seq] = string(r.Payload)
					model[r.Seq] = &modelRec{payload: string(r.Payload), at: r.Time}
					want.Stored++
					top = max(top, r.Seq)
				}
			}
			for _, l := range losses {
				lost = append(lost, ingest.LostRange{First: l.First, Last: l.Last})
			}
			res, err := s.PutBatch(ctx, key, recs, losses)
			if err != nil || res.Stored != want.Stored || res.Duplicates != want.Duplicates || !slices.Equal(res.Conflicts, want.Conflicts) {
				t.Fatalf("%s: put of %d = %+v, %v; want %d stored, %d duplicates, conflicts %v", name, len(recs), res, err, want.Stored, want.Duplicates, want.Conflicts)
			}
		case op < 17:
			// Deletes: some held, some deleted already, some never held.
			var seqs []uint64
			for range 1 + rng.IntN(200) {
				seq := 1 + uint64(rng.IntN(int(top)+20))
				seqs = append(seqs, seq)
			}
			want := 0
			for _, seq := range seqs {
				if m, ok := model[seq]; ok && !m.deleted {
					m.deleted = true
					want++
				}
			}
			if n, err := s.DeleteRecords(ctx, key, seqs); err != nil || n != want {
				t.Fatalf("%s: delete = %d, %v; want %d", name, n, err, want)
			}
		default:
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openSmall(t, dir, 1<<20)
		}
		check(name, step%10 == 0)
	}
}

// TestHoleInsideARunSplitsIt checks a record put into a gap of a run: the
// run splits around it, and every read sees the three in order.
func TestHoleInsideARunSplitsIt(t *testing.T) {
	ctx := context.Background()
	s := openSmall(t, t.TempDir(), 0)
	defer s.Close()
	key := ingest.StreamKey{PartID: "p", StoreID: "s", Stream: "readings"}
	var recs []ingest.Record
	for _, seq := range []uint64{1, 2, 3, 5, 6, 8, 9} {
		recs = append(recs, ingest.Record{Seq: seq, Payload: fmt.Appendf(nil, "r%d", seq)})
	}
	if _, err := s.PutRecords(ctx, key, recs); err != nil {
		t.Fatal(err)
	}
	if n := recordKeys(t, s, key); n != 1 {
		t.Fatalf("%d record keys, want one run", n)
	}
	res, err := s.PutRecords(ctx, key, []ingest.Record{{Seq: 4, Payload: []byte("r4")}, {Seq: 7, Payload: []byte("r7")}})
	if err != nil || res.Stored != 2 || res.AckedThrough != 9 {
		t.Fatalf("filling the holes = %+v, %v", res, err)
	}
	// The run splits at 4 and at 7: 1-3, 4, 5-6, 7, 8-9.
	if n := recordKeys(t, s, key); n != 5 {
		t.Errorf("%d record keys after filling two holes, want 5", n)
	}
	got := ingesttest.All(t, s, ingest.Query{Stream: key.Stream, Limit: 2}, 100)
	var payloads []string
	for _, r := range got {
		payloads = append(payloads, string(r.Payload))
	}
	if want := []string{"r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9"}; !slices.Equal(payloads, want) {
		t.Fatalf("records %v, want %v", payloads, want)
	}
	res, err = s.PutRecords(ctx, key, []ingest.Record{{Seq: 4, Payload: []byte("r4")}, {Seq: 6, Payload: []byte("r6")}, {Seq: 7, Payload: []byte("other")}})
	if err != nil || res.Duplicates != 2 || !slices.Equal(res.Conflicts, []uint64{7}) {
		t.Fatalf("repeats after the split = %+v, %v", res, err)
	}
}

// FuzzDecodeRecordRun checks that a run value decodes into records in
// sequence order with pointers a segment can hold, or is refused, and that
// what decodes writes back to the same records.
func FuzzDecodeRecordRun(f *testing.F) {
	t0 := time.Unix(1_700_000_000, 5)
	var e runEncoder
	off := uint64(4096)
	for i := range 5 {
		rv := recordValue{time: t0.Add(time.Duration(i) * time.Millisecond), segment: true, ptr: segPtr{seg: 3, off: off, n: 100, sum: uint32(i)}}
		switch i {
		case 2:
			rv = recordValue{deleted: true}
		case 3:
			rv.segment, rv.ptr = false, segPtr{}
		}
		e.add(heldRec{seq: 10 + uint64(i*i), rv: rv})
		off += 100
	}
	f.Add(e.prev, e.value())
	f.Add(uint64(1), []byte{flagRun, 0, 0, 0, 0, entryDeleted})
	f.Add(uint64(1<<63), []byte{flagRun, 0, 1, 0, 0, entryTime, 2, 10, 0, 1, 2, 3, 4})
	f.Fuzz(func(t *testing.T, last uint64, v []byte) {
		recs, err := decodeRun(nil, last, v)
		if err != nil {
			return
		}
		if len(recs) == 0 || recs[len(recs)-1].seq != last {
			t.Fatalf("run to %d decodes to %+v", last, recs)
		}
		for i, r := range recs {
			if i > 0 && r.seq <= recs[i-1].seq {
				t.Fatalf("sequences out of order: %+v", recs)
			}
			if p := r.rv.ptr; r.rv.segment && (p.seg == 0 || p.off > maxSegOffset || p.n == 0 || p.n > maxPayload) {
				t.Fatalf("accepted pointer out of bounds: %+v", p)
			}
		}
		var again []heldRec
		err = setRuns([]byte("r\x00"), recs, func(k, v []byte) error {
			var err error
			again, err = decodeHeld(again, binary.BigEndian.Uint64(k[len(k)-8:]), v)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.EqualFunc(recs, again, func(a, b heldRec) bool {
			return a.seq == b.seq && a.rv.deleted == b.rv.deleted && a.rv.segment == b.rv.segment && a.rv.ptr == b.rv.ptr &&
				a.rv.time.Equal(b.rv.time) && len(a.rv.inline) == len(b.rv.inline)
		}) {
			t.Fatalf("%+v writes back as %+v", recs, again)
		}
	})
}
