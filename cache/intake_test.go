package cache

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// intakeReqs are two appends as the committer hands them to the intake.
func intakeReqs() []*appendReq {
	return []*appendReq{
		{stream: StreamLogsInfo, first: 7, recs: []Record{{Payload: []byte("a"), Time: t0}, {Payload: []byte("bb")}}},
		{stream: StreamCaptures, first: 3, recs: []Record{{Payload: bytes.Repeat([]byte{'c'}, 300), Priority: 9, Time: t0}}},
	}
}

// entryWithBody is an entry of generation gen whose checksum covers body,
// whatever body holds.
func entryWithBody(gen uint64, body []byte) []byte {
	b := make([]byte, intakeHeaderSize, intakeHeaderSize+len(body))
	binary.LittleEndian.PutUint64(b[0:8], gen)
	binary.LittleEndian.PutUint32(b[8:12], uint32(len(body)))
	b = append(b, body...)
	binary.LittleEndian.PutUint32(b[12:16], crc32.Update(crc32.Checksum(b[0:12], intakeCRC), intakeCRC, body))
	return b
}

func TestDecodeIntake(t *testing.T) {
	reqs := intakeReqs()
	one := appendIntakeEntry(nil, 5, reqs[:1])
	two := appendIntakeEntry(nil, 5, reqs[1:])
	both := append(append([]byte(nil), one...), two...)
	zeros := make([]byte, 4096)
	flipped := append([]byte(nil), both...)
	flipped[len(flipped)-1] ^= 1
	hugeLen := append([]byte(nil), one...)
	binary.LittleEndian.PutUint32(hugeLen[8:12], 0xffffffff)
	unknown := binary.AppendUvarint(nil, 1)
	unknown = binary.AppendUvarint(unknown, 4)
	unknown = append(unknown, "nope"...)
	unknown = append(unknown, 1, 1, 0, 0, 0)
	manyRecs := binary.AppendUvarint(nil, 1)
	manyRecs = binary.AppendUvarint(manyRecs, uint64(len(StreamLogsInfo)))
	manyRecs = append(manyRecs, StreamLogsInfo...)
	manyRecs = binary.AppendUvarint(manyRecs, 1)
	manyRecs = binary.AppendUvarint(manyRecs, 1<<60)
	longField := binary.AppendUvarint(nil, 1)
	longField = binary.AppendUvarint(longField, 1<<40)
	tests := []struct {
		name    string
		data    []byte
		want    int // appends returned
		wantErr error
	}{
		{"two entries", both, 2, nil},
		{"then zeros", append(append([]byte(nil), both...), zeros...), 2, nil},
		{"only zeros", zeros, 0, nil},
		{"empty", nil, 0, nil},
		{"torn second entry", both[:len(both)-3], 1, nil},
		{"torn header", both[:len(one)+5], 1, nil},
		{"damaged second entry", flipped, 1, nil},
		{"an older generation after", append(append([]byte(nil), one...), appendIntakeEntry(nil, 4, reqs[1:])...), 1, nil},
		{"first entry torn, a whole one after", append(append([]byte(nil), one[:len(one)-1]...), two...), 0, nil},
		{"length past the end", hugeLen, 0, nil},
		{"unknown stream", entryWithBody(1, unknown), 0, errBadIntake},
		{"a good entry, then one that does not decode", append(append([]byte(nil), one...), entryWithBody(5, unknown)...), 1, errBadIntake},
		{"more records than bytes", entryWithBody(1, manyRecs), 0, errBadIntake},
		{"field longer than a record", entryWithBody(1, longField), 0, errBadIntake},
		{"bytes after the last append", entryWithBody(1, append(binary.AppendUvarint(nil, 0), 1)), 0, errBadIntake},
		{"sequence zero", entryWithBody(1, appendIntakeEntry(nil, 1, []*appendReq{{stream: StreamAudit, recs: []Record{{}}}})[intakeHeaderSize:]), 0, errBadIntake},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeIntake(bytes.NewReader(tt.data), int64(len(tt.data)))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error %v, want %v", err, tt.wantErr)
			}
			if len(got) != tt.want {
				t.Fatalf("%d appends, want %d", len(got), tt.want)
			}
			for i, r := range got {
				w := reqs[i]
				if r.stream != w.stream || r.first != w.first || !r.durable || len(r.recs) != len(w.recs) {
					t.Fatalf("append %d: %+v, want %+v", i, r, w)
				}
				for j, rec := range r.recs {
					if !bytes.Equal(rec.Payload, w.recs[j].Payload) || rec.Priority != w.recs[j].Priority || !rec.Time.Equal(w.recs[j].Time) {
						t.Fatalf("append %d record %d: %+v, want %+v", i, j, rec, w.recs[j])
					}
				}
			}
		})
	}
}

func FuzzDecodeIntake(f *testing.F) {
	reqs := intakeReqs()
	f.Add(appendIntakeEntry(appendIntakeEntry(nil, 5, reqs[:1]), 5, reqs[1:]))
	f.Add(appendIntakeEntry(nil, 1, reqs[1:])[:30])
	f.Add(entryWithBody(1, []byte{1, 9, 'l', 'o', 'g', 's', '.', 'i', 'n', 'f', 'o', 1, 1, 0, 0, 0}))
	f.Add(make([]byte, 64))
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := decodeIntake(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		// Whatever decodes encodes again to an entry that decodes the same.
		enc := appendIntakeEntry(nil, 1, got)
		again, err := decodeIntake(bytes.NewReader(enc), int64(len(enc)))
		if err != nil || len(again) != len(got) {
			t.Fatalf("round trip: %d appends -> %d, %v", len(got), len(again), err)
		}
		for i := range got {
			if again[i].stream != got[i].stream || again[i].first != got[i].first || len(again[i].recs) != len(got[i].recs) {
				t.Fatalf("round trip of append %d: %+v -> %+v", i, got[i], again[i])
			}
			for j, rec := range got[i].recs {
				a := again[i].recs[j]
				if !bytes.Equal(a.Payload, rec.Payload) || a.Priority != rec.Priority || !a.Time.Equal(rec.Time) {
					t.Fatalf("round trip of append %d record %d", i, j)
				}
			}
		}
	})
}

// snapshot copies the files of a store that is open, as a SIGKILL would
// leave them: every write that returned is in the page cache the copy
// reads.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	to := filepath.Join(t.TempDir(), "snapshot")
	must(t, os.MkdirAll(to, 0o700))
	names, err := os.ReadDir(dir)
	must(t, err)
	for _, n := range names {
		if !n.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, n.Name()))
		must(t, err)
		must(t, os.WriteFile(filepath.Join(to, n.Name()), b, 0o600))
	}
	return to
}

// TestIntakeRecovery reopens copies of a live store taken at each stage of
// the intake's cycle: appends only in the intake, some settled with newer
// ones in a new generation, and all settled with the older generation's
// entries still in the file. Every acknowledged append is there once.
func TestIntakeRecovery(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir, testOptions(t))
	appendN := func(from, n int) {
		for i := from; i < from+n; i++ {
			seq, err := s.Append(ctx, StreamLogsInfo, Record{Payload: fmt.Appendf(nil, "record %d", i)})
			must(t, err)
			if seq != uint64(i) {
				t.Fatalf("append %d got sequence %d", i, seq)
			}
		}
	}
	check := func(stage string, want int) {
		t.Helper()
		c := openTest(t, snapshot(t, dir), testOptions(t))
		es, err := c.Read(ctx, StreamLogsInfo, 0, 1000, 0)
		must(t, err)
		if len(es) != want {
			t.Fatalf("%s: %d records after the crash, want %d", stage, len(es), want)
		}
		for i, e := range es {
			if e.Seq != uint64(i+1) || string(e.Payload) != fmt.Sprintf("record %d", i+1) {
				t.Fatalf("%s: record %d is %d %q", stage, i, e.Seq, e.Payload)
			}
		}
		st, err := c.Stats(ctx, StreamLogsInfo)
		must(t, err)
		if st.Last != uint64(want) || st.Count != uint64(want) {
			t.Fatalf("%s: stats %+v", stage, st)
		}
		// The copy goes on from where the crash left it.
		if seq, err := c.Append(ctx, StreamLogsInfo, Record{Payload: []byte("after")}); err != nil || seq != uint64(want+1) {
			t.Fatalf("%s: append after the crash got %d, %v", stage, seq, err)
		}
	}
	appendN(1, 5)
	if s.pendingN.Load() != 5 {
		t.Fatalf("%d appends in the intake, want 5", s.pendingN.Load())
	}
	check("only in the intake", 5)
	must(t, s.settle())
	appendN(6, 3)
	check("settled, newer ones in a new generation", 8)
	must(t, s.settle())
	check("all settled", 8)
}

// TestIntakeFillsAndSettles appends more than the intake file holds without
// reading in between: the committer settles when an entry no longer fits
// and goes on at the file's start.
func TestIntakeFillsAndSettles(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir(), testOptions(t))
	const batches, per = 200, 100
	syncs0 := s.Usage().Syncs
	for i := range batches {
		recs := make([]Record, per)
		for j := range recs {
			recs[j] = Record{Payload: bytes.Repeat([]byte{byte(i)}, 250)}
		}
		first, err := s.AppendBatch(ctx, StreamLogsDebug, recs)
		must(t, err)
		if first != uint64(i*per+1) {
			t.Fatalf("batch %d starts at %d", i, first)
		}
	}
	if s.pendingN.Load() >= batches {
		t.Fatalf("%d appends pending: the intake never settled", s.pendingN.Load())
	}
	if n := s.Usage().Syncs - syncs0; n < batches {
		t.Fatalf("%d syncs for %d batches", n, batches)
	}
	es := readAll(t, s, StreamLogsDebug, 0)
	if len(es) != batches*per {
		t.Fatalf("read %d records, want %d", len(es), batches*per)
	}
	for i, e := range es {
		if e.Seq != uint64(i+1) || e.Payload[0] != byte(i/per) {
			t.Fatalf("record %d: seq %d, payload of batch %d", i, e.Seq, e.Payload[0])
		}
	}
	checkRuns(t, s, StreamLogsDebug)
}

// TestSettleTransactions settles what the intake holds, in shapes that make
// few runs and many: a settle's transactions are packed by the runs they
// write, so many small appends to a stream settle in one synced commit,
// while records that each make a run of their own still fit Badger's
// limits (Badger refuses a transaction that does not: the settle would
// fail).
func TestSettleTransactions(t *testing.T) {
	for _, tc := range []struct {
		name     string
		appends  int
		record   func(i int) (Stream, Record)
		maxSyncs uint64
	}{
		{"small appends to one stream", 10000, func(i int) (Stream, Record) {
			return StreamLogsInfo, Record{Payload: bytes.Repeat([]byte{byte(i)}, 256)}
		}, 1},
		{"captures whose priority alternates", 5000, func(i int) (Stream, Record) {
			return StreamCaptures, Record{Payload: bytes.Repeat([]byte{byte(i)}, 100), Priority: uint8(1 + 8*(i%2))}
		}, 20},
		{"every stream in turn", 7000, func(i int) (Stream, Record) {
			st := allStreams[i%len(allStreams)]
			return st, Record{Payload: bytes.Repeat([]byte{byte(i)}, 1+i%600), Priority: uint8(i % 3)}
		}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			s := openTest(t, t.TempDir(), testOptions(t))
			want := map[Stream][]Record{}
			for i := range tc.appends {
				st, rec := tc.record(i)
				if _, err := s.Append(ctx, st, rec); err != nil {
					t.Fatalf("append %d: %v", i, err)
				}
				if st != StreamCaptures {
					rec.Priority = 0
				}
				want[st] = append(want[st], rec)
			}
			if n := s.pendingN.Load(); n != int64(tc.appends) {
				t.Fatalf("%d appends in the intake, want all %d", n, tc.appends)
			}
			syncs0 := s.Usage().Syncs
			must(t, s.settle())
			if n := s.Usage().Syncs - syncs0; n < 1 || n > tc.maxSyncs {
				t.Errorf("the settle took %d synced commits, want 1 to %d", n, tc.maxSyncs)
			}
			for st, recs := range want {
				es := readAll(t, s, st, 0)
				if len(es) != len(recs) {
					t.Fatalf("%s: read %d records, want %d", st, len(es), len(recs))
				}
				for i, e := range es {
					if e.Seq != uint64(i+1) || !bytes.Equal(e.Payload, recs[i].Payload) || e.Priority != recs[i].Priority {
						t.Fatalf("%s record %d: seq %d, %d bytes, priority %d", st, i, e.Seq, len(e.Payload), e.Priority)
					}
				}
				checkRuns(t, s, st)
			}
		})
	}
}

// TestIntakeFailureFallsBack breaks the intake's file under the store: the
// append still succeeds, through Badger's synced commit, and so do later
// ones.
func TestIntakeFailureFallsBack(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir, testOptions(t))
	_, err := s.Append(ctx, StreamLogsWarn, Record{Payload: []byte("one")})
	must(t, err)
	s.mu.Lock()
	must(t, s.intake.f.Close())
	s.mu.Unlock()
	for i, p := range []string{"two", "three"} {
		seq, err := s.Append(ctx, StreamLogsWarn, Record{Payload: []byte(p)})
		if err != nil || seq != uint64(i+2) {
			t.Fatalf("append %q after the intake broke: %d, %v", p, seq, err)
		}
	}
	s.mu.Lock()
	broken := s.intake != nil
	s.mu.Unlock()
	if broken {
		t.Fatal("the store still uses the broken intake")
	}
	es := readAll(t, s, StreamLogsWarn, 0)
	if len(es) != 3 || string(es[0].Payload) != "one" || string(es[2].Payload) != "three" {
		t.Fatalf("read %+v", es)
	}
	// The next Open makes the intake work again.
	must(t, s.Close())
	s = openTest(t, dir, testOptions(t))
	if seq, err := s.Append(ctx, StreamLogsWarn, Record{Payload: []byte("four")}); err != nil || seq != 4 || s.pendingN.Load() != 1 {
		t.Fatalf("append after reopening: %d, %v, %d pending", seq, err, s.pendingN.Load())
	}
}

// TestIntakeCopiesPayloads reuses a payload's buffer once Append returned,
// as a log writer does: the record the intake holds keeps what was
// appended.
func TestIntakeCopiesPayloads(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir(), testOptions(t))
	buf := []byte("first")
	_, err := s.Append(ctx, StreamLogsInfo, Record{Payload: buf})
	must(t, err)
	copy(buf, "XXXXX")
	_, err = s.AppendBatch(ctx, StreamLogsInfo, []Record{{Payload: buf[:2]}, {Payload: buf[2:]}})
	must(t, err)
	copy(buf, "YYYYY")
	es := readAll(t, s, StreamLogsInfo, 0)
	if len(es) != 3 || string(es[0].Payload) != "first" || string(es[1].Payload) != "XX" || string(es[2].Payload) != "XXX" {
		t.Fatalf("read %q", [][]byte{es[0].Payload, es[1].Payload, es[2].Payload})
	}
}

// TestReadGoesOnWhenSettleFails makes Badger refuse the intake's appends
// (the store's next sequence no longer matches them): reads, stats and
// acks go on with what Badger holds, so that an upload that would free
// space is not stalled, while a writer of gap records waits for the
// settle and says why.
func TestReadGoesOnWhenSettleFails(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir(), testOptions(t))
	_, err := s.Append(ctx, StreamCaptures, Record{Payload: []byte("settled")})
	must(t, err)
	must(t, s.settle())
	_, err = s.Append(ctx, StreamCaptures, Record{Payload: []byte("held")})
	must(t, err)
	s.mu.Lock()
	s.meta[StreamCaptures].Last = 5
	s.mu.Unlock()
	es, err := s.Read(ctx, StreamCaptures, 0, 10, 0)
	if err != nil || len(es) != 1 || string(es[0].Payload) != "settled" {
		t.Fatalf("read while the settle fails: %+v, %v", es, err)
	}
	if _, err := s.Stats(ctx, StreamCaptures); err != nil {
		t.Fatalf("stats while the settle fails: %v", err)
	}
	must(t, s.Ack(ctx, StreamCaptures, 1))
	if _, err := s.DeleteCaptures(ctx, []uint64{1}, "by a test", nil); err == nil {
		t.Fatal("a delete, which writes a gap record, went on past a failed settle")
	}
	if err := s.settle(); err == nil || !strings.Contains(err.Error(), "intake") {
		t.Fatalf("settle: %v", err)
	}
}

// TestDamagedIntakeOpens damages the second of two entries in a way its
// checksum does not catch: the store opens, with the first entry's append.
func TestDamagedIntakeOpens(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir, testOptions(t))
	for _, p := range []string{"kept", "lost"} {
		_, err := s.Append(ctx, StreamLogsWarn, Record{Payload: []byte(p)})
		must(t, err)
	}
	snap := snapshot(t, dir)
	path := filepath.Join(snap, intakeFile)
	data, err := os.ReadFile(path)
	must(t, err)
	first := intakeHeaderSize + int(binary.LittleEndian.Uint32(data[8:12]))
	n := int(binary.LittleEndian.Uint32(data[first+8 : first+12]))
	body := data[first+intakeHeaderSize : first+intakeHeaderSize+n]
	i := bytes.Index(body, []byte(StreamLogsWarn))
	copy(body[i:], "nope.warn")
	copy(data[first:], entryWithBody(binary.LittleEndian.Uint64(data[first:first+8]), body))
	must(t, os.WriteFile(path, data, 0o600))

	c := openTest(t, snap, testOptions(t))
	es := readAll(t, c, StreamLogsWarn, 0)
	if len(es) != 1 || string(es[0].Payload) != "kept" {
		t.Fatalf("read %+v after the damage", es)
	}
	gaps := readGaps(t, c)
	if len(gaps) != 1 || !strings.Contains(gaps[0].Reason, "intake file was damaged") {
		t.Fatalf("gap records %+v", gaps)
	}
}
