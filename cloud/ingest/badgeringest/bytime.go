package badgeringest

import (
	"cmp"
	"container/heap"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/outpost-robotics/outpost/cloud/ingest"
)

// The time index. A put writes it as runs, a few keys per put rather than
// one per record, since a key per record was half of the LSM tree's
// entries and most of the cloud's CPU per ingested gigabyte of small
// readings:
//
//	T\0STREAM\0TIME PART\0STORE\0SEQ   a run of one stream key's records
//
// The key is the run's first position (its smallest time, then sequence);
// the value the others', each as the time's increase over the one before
// (uvarint nanoseconds) and the sequence's difference (varint). A run
// spans at most timeRunSpan and its value stays under maxRunBytes, under
// the value threshold, so runs live in the LSM tree and never in the value
// log (which this store does not collect). Because a run's key is its
// smallest position and no run spans more than timeRunSpan, a walk from
// time t seeks to t-timeRunSpan and meets every run holding a record at t
// or later.
//
// Stores written before runs hold one key per record, with no value:
//
//	t\0STREAM\0TIME PART\0STORE\0SEQ
//
// TIME is the Unix nanoseconds with the sign bit flipped, 8 bytes
// big-endian, so keys of a stream sort by time (before 1970 included),
// then part, store and sequence. RecordsByTime merges both kinds, two
// iterators per stream, and reads each record it keeps from its r key.
const (
	timeRunSpan = 10 * time.Second
	// maxRunBytes bounds a run's value as written; a value read may be
	// up to maxRunValue (an entry is at most 20 bytes), beyond which it
	// is refused as damaged.
	maxRunBytes = 900
	maxRunValue = maxRunBytes + 2*binary.MaxVarintLen64
)

// timeIndexDone marks a store whose records all have their time keys
// (Open builds them once for a store written before the index existed).
var timeIndexDone = []byte("x\x00time-index")

func timePrefix(kind byte, stream string) []byte { return append(join(kind, stream), 0) }

func timeBytes(b []byte, ns int64) []byte {
	return binary.BigEndian.AppendUint64(b, uint64(ns)^(1<<63))
}

func timeKey(kind byte, k ingest.StreamKey, ns int64, seq uint64) []byte {
	b := timeBytes(timePrefix(kind, k.Stream), ns)
	b = append(append(append(append(b, k.PartID...), 0), k.StoreID...), 0)
	return binary.BigEndian.AppendUint64(b, seq)
}

// parseTimeKey splits a time key of stream, whose prefix is plen bytes.
func parseTimeKey(k []byte, plen int, stream string) (ingest.TimeKey, bool) {
	if len(k) < plen+8+2+8 {
		return ingest.TimeKey{}, false
	}
	ns := int64(binary.BigEndian.Uint64(k[plen:]) ^ (1 << 63))
	rest := k[plen+8 : len(k)-8]
	if rest[len(rest)-1] != 0 {
		return ingest.TimeKey{}, false
	}
	part, store, ok := strings.Cut(string(rest[:len(rest)-1]), "\x00")
	if !ok || strings.IndexByte(store, 0) >= 0 {
		return ingest.TimeKey{}, false
	}
	return ingest.TimeKey{Time: time.Unix(0, ns).UTC(), StreamKey: ingest.StreamKey{PartID: part, StoreID: store, Stream: stream},
		Seq: binary.BigEndian.Uint64(k[len(k)-8:])}, true
}

// timeEntry is one record's place in a run: its time in Unix nanoseconds
// and its sequence.
type timeEntry struct {
	ns  int64
	seq uint64
}

func compareEntries(a, b timeEntry) int {
	return cmp.Or(cmp.Compare(a.ns, b.ns), cmp.Compare(a.seq, b.seq))
}

// writeTimeRuns sorts entries, records of stream key k, and calls set
// with each run's key and value.
func writeTimeRuns(k ingest.StreamKey, entries []timeEntry, set func(key, value []byte) error) error {
	slices.SortFunc(entries, compareEntries)
	entries = slices.CompactFunc(entries, func(a, b timeEntry) bool { return compareEntries(a, b) == 0 })
	for len(entries) > 0 {
		first, prev := entries[0], entries[0]
		var v []byte
		n := 1
		for ; n < len(entries); n++ {
			e := entries[n]
			// Sorted, so the difference is the unsigned distance even
			// where the signed one would overflow.
			if uint64(e.ns-first.ns) > uint64(timeRunSpan) {
				break
			}
			var tmp [2 * binary.MaxVarintLen64]byte
			b := binary.AppendUvarint(tmp[:0], uint64(e.ns-prev.ns))
			b = binary.AppendVarint(b, int64(e.seq-prev.seq))
			if len(v)+len(b) > maxRunBytes {
				break
			}
			v = append(v, b...)
			prev = e
		}
		if err := set(timeKey('T', k, first.ns, first.seq), v); err != nil {
			return err
		}
		entries = entries[n:]
	}
	return nil
}

// lookBack is where a walk of runs that must meet every record at ns or
// later begins: timeRunSpan earlier, or the start of time.
func lookBack(ns int64) int64 {
	if ns < math.MinInt64+int64(timeRunSpan) {
		return math.MinInt64
	}
	return ns - int64(timeRunSpan)
}

// decodeTimeRun decodes the value v of the run whose key names first,
// refusing a value no writer makes: too long, truncated, out of order or
// spanning more than timeRunSpan.
func decodeTimeRun(first timeEntry, v []byte) ([]timeEntry, error) {
	if len(v) > maxRunValue {
		return nil, fmt.Errorf("time run of %d bytes, want at most %d", len(v), maxRunValue)
	}
	out := []timeEntry{first}
	prev := first
	for len(v) > 0 {
		dt, n := binary.Uvarint(v)
		if n <= 0 {
			return nil, errors.New("time run: bad time")
		}
		v = v[n:]
		ds, n := binary.Varint(v)
		if n <= 0 {
			return nil, errors.New("time run: bad sequence")
		}
		v = v[n:]
		if dt > uint64(timeRunSpan) {
			return nil, fmt.Errorf("time run: a step of %d ns, want at most %d", dt, timeRunSpan)
		}
		e := timeEntry{ns: prev.ns + int64(dt), seq: prev.seq + uint64(ds)}
		if compareEntries(e, prev) <= 0 || uint64(e.ns-first.ns) > uint64(timeRunSpan) {
			return nil, errors.New("time run: entries out of order or spanning too long")
		}
		out = append(out, e)
		prev = e
	}
	return out, nil
}

// dropTimes takes the records gone (of stream key k) out of their runs in
// txn, rewriting each run they were in; legacy per-record keys are
// deleted where they exist.
func dropTimes(txn *badger.Txn, k ingest.StreamKey, gone []timeEntry) error {
	if len(gone) == 0 {
		return nil
	}
	slices.SortFunc(gone, compareEntries)
	for _, e := range gone {
		lk := timeKey('t', k, e.ns, e.seq)
		if _, err := txn.Get(lk); err == nil {
			if err := txn.Delete(lk); err != nil {
				return err
			}
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
	}
	type rewrite struct {
		key  []byte
		keep []timeEntry
	}
	var rewrites []rewrite
	p := timePrefix('T', k.Stream)
	lo, hi := lookBack(gone[0].ns), gone[len(gone)-1].ns
	it := txn.NewIterator(badger.IteratorOptions{Prefix: p})
	for it.Seek(timeBytes(slices.Clip(p), lo)); it.Valid(); it.Next() {
		tk, ok := parseTimeKey(it.Item().Key(), len(p), k.Stream)
		if !ok {
			it.Close()
			return fmt.Errorf("malformed time key %q", it.Item().Key())
		}
		if tk.Time.UnixNano() > hi {
			break
		}
		if tk.PartID != k.PartID || tk.StoreID != k.StoreID {
			continue
		}
		var es []timeEntry
		err := it.Item().Value(func(v []byte) error {
			var err error
			es, err = decodeTimeRun(timeEntry{tk.Time.UnixNano(), tk.Seq}, v)
			return err
		})
		if err != nil {
			it.Close()
			return fmt.Errorf("read time run %q: %w", it.Item().Key(), err)
		}
		keep := slices.DeleteFunc(slices.Clone(es), func(e timeEntry) bool {
			_, found := slices.BinarySearchFunc(gone, e, compareEntries)
			return found
		})
		if len(keep) != len(es) {
			rewrites = append(rewrites, rewrite{it.Item().KeyCopy(nil), keep})
		}
	}
	it.Close()
	for _, r := range rewrites {
		if err := txn.Delete(r.key); err != nil {
			return err
		}
		if err := writeTimeRuns(k, r.keep, txn.Set); err != nil {
			return err
		}
	}
	return nil
}

// buildTimeIndex writes the time keys of every record once, for a store
// written before the index existed.
func (s *Store) buildTimeIndex() error {
	err := s.db.View(func(txn *badger.Txn) error {
		_, err := txn.Get(timeIndexDone)
		return err
	})
	if err == nil {
		return nil
	}
	if !errors.Is(err, badger.ErrKeyNotFound) {
		return fmt.Errorf("build the time index: %w", err)
	}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	err = s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{'r', 0}, PrefetchValues: true, PrefetchSize: 100})
		defer it.Close()
		var recs []heldRec
		for it.Rewind(); it.Valid(); it.Next() {
			key, last, ok := parseRecordKey(it.Item().Key())
			if !ok {
				continue
			}
			var err error
			if recs, err = decodeItem(recs[:0], it.Item(), last); err != nil {
				return err
			}
			for _, h := range recs {
				if t := h.rv.time; !h.rv.deleted && !t.IsZero() {
					if err := wb.Set(timeKey('t', key, t.UnixNano(), h.seq), nil); err != nil {
						return err
					}
				}
			}
		}
		return nil
	})
	if err == nil {
		err = wb.Set(timeIndexDone, nil)
	}
	if err == nil {
		err = wb.Flush()
	}
	if err != nil {
		return fmt.Errorf("build the time index: %w", err)
	}
	return nil
}

// timeCursor is an iterator over one stream's time keys of one kind: runs
// (T) or, in a store written before runs, one key per record (t).
type timeCursor struct {
	it     *badger.Iterator
	plen   int
	stream string
	runs   bool
	// key is the first position of the key the iterator is at: the
	// smallest any key not taken yet holds.
	key ingest.TimeKey
	ok  bool
}

// peek reads the key the iterator is at.
func (c *timeCursor) peek() error {
	if !c.it.Valid() {
		c.ok = false
		return nil
	}
	k, ok := parseTimeKey(c.it.Item().Key(), c.plen, c.stream)
	if !ok {
		return fmt.Errorf("malformed time key %q", c.it.Item().Key())
	}
	c.key, c.ok = k, true
	return nil
}

// take appends the positions of the key the cursor is at to dst and
// moves to the next key.
func (c *timeCursor) take(dst []ingest.TimeKey) ([]ingest.TimeKey, error) {
	dst = append(dst, c.key)
	if c.runs {
		err := c.it.Item().Value(func(v []byte) error {
			es, err := decodeTimeRun(timeEntry{c.key.Time.UnixNano(), c.key.Seq}, v)
			for _, e := range es[min(1, len(es)):] {
				dst = append(dst, ingest.TimeKey{Time: time.Unix(0, e.ns).UTC(), StreamKey: c.key.StreamKey, Seq: e.seq})
			}
			return err
		})
		if err != nil {
			return dst, fmt.Errorf("read time run %q: %w", c.it.Item().Key(), err)
		}
	}
	c.it.Next()
	return dst, c.peek()
}

// timeHeap is the positions taken from runs and not answered yet, the
// smallest first.
type timeHeap []ingest.TimeKey

func (h timeHeap) Len() int           { return len(h) }
func (h timeHeap) Less(i, j int) bool { return h[i].Compare(h[j]) < 0 }
func (h timeHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *timeHeap) Push(x any)        { *h = append(*h, x.(ingest.TimeKey)) }
func (h *timeHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// RecordsByTime merges the time index of each stream; see ingest.Store.
// Positions come out in order because one is answered only when it is
// below every cursor's next key, the least any run not taken yet holds.
func (s *Store) RecordsByTime(ctx context.Context, q ingest.TimeQuery) ([]ingest.StoredRecord, string, error) {
	limit, after, err := ingest.CheckTimeQuery(q)
	if err != nil {
		return nil, "", err
	}
	var parts map[string]bool
	if len(q.PartIDs) > 0 {
		parts = make(map[string]bool, len(q.PartIDs))
		for _, p := range q.PartIDs {
			parts[p] = true
		}
	}
	streams := slices.Clone(q.Streams)
	slices.Sort(streams)
	streams = slices.Compact(streams)
	// wanted says whether a position taken from a run (which may begin
	// before the query) is one the query asks for.
	wanted := func(k ingest.TimeKey) bool {
		return (q.From.IsZero() || !k.Time.Before(q.From)) && (after == nil || k.Compare(*after) > 0)
	}
	var out []ingest.StoredRecord
	var last *ingest.TimeKey
	more := false
	err = s.db.View(func(txn *badger.Txn) error {
		finder := newRecordFinder(txn)
		defer finder.close()
		var curs []*timeCursor
		defer func() {
			for _, c := range curs {
				c.it.Close()
			}
		}()
		start := q.From
		if after != nil && (start.IsZero() || after.Time.After(start)) {
			start = after.Time
		}
		for _, st := range streams {
			for _, kind := range []byte{'T', 't'} {
				p := timePrefix(kind, st)
				c := &timeCursor{it: txn.NewIterator(badger.IteratorOptions{Prefix: p}), plen: len(p), stream: st, runs: kind == 'T'}
				curs = append(curs, c)
				switch {
				case start.IsZero():
					c.it.Rewind()
				case c.runs:
					c.it.Seek(timeBytes(slices.Clip(p), lookBack(start.UnixNano())))
				default:
					c.it.Seek(timeBytes(slices.Clip(p), start.UnixNano()))
				}
				if err := c.peek(); err != nil {
					return err
				}
			}
		}
		var pending timeHeap
		var taken []ingest.TimeKey
		for scanned := 0; ; {
			var next *timeCursor
			for _, c := range curs {
				if c.ok && (next == nil || c.key.Compare(next.key) < 0) {
					next = c
				}
			}
			if next != nil && (len(pending) == 0 || next.key.Compare(pending[0]) < 0) {
				if !q.To.IsZero() && !next.key.Time.Before(q.To) {
					return nil
				}
				var err error
				if taken, err = next.take(taken[:0]); err != nil {
					return err
				}
				for _, k := range taken {
					if wanted(k) {
						heap.Push(&pending, k)
					}
				}
				continue
			}
			if len(pending) == 0 {
				return nil
			}
			k := pending[0]
			if !q.To.IsZero() && !k.Time.Before(q.To) {
				return nil
			}
			if scanned == ingest.MaxTimeScan {
				more = true
				return nil
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			if parts == nil || parts[k.PartID] {
				rec, ok, err := s.readRecord(finder, k)
				if err != nil {
					return err
				}
				if ok {
					if len(out) == limit {
						more = true
						return nil
					}
					out = append(out, rec)
				}
			}
			heap.Pop(&pending)
			scanned++
			last = &k
		}
	})
	if err != nil {
		return nil, "", fmt.Errorf("read records by time: %w", err)
	}
	if !more || last == nil {
		return out, "", nil
	}
	return out, ingest.EncodeTimeCursor(*last), nil
}

// readRecord reads the record a time key names through f; a deleted one
// is not ok.
func (s *Store) readRecord(f *recordFinder, k ingest.TimeKey) (ingest.StoredRecord, bool, error) {
	h, ok, err := f.cursor(streamPrefix('r', k.StreamKey)).find(k.Seq)
	if err != nil {
		return ingest.StoredRecord{}, false, fmt.Errorf("read record %s/%d: %w", k.StreamKey, k.Seq, err)
	}
	if !ok {
		return ingest.StoredRecord{}, false, nil
	}
	return s.storedRecord(k.StreamKey, h)
}

// Record reads one record; see ingest.Store.
func (s *Store) Record(_ context.Context, key ingest.StreamKey, seq uint64) (ingest.StoredRecord, error) {
	if err := key.Validate(); err != nil {
		return ingest.StoredRecord{}, fmt.Errorf("read record: %w", err)
	}
	var rec ingest.StoredRecord
	var ok bool
	err := s.db.View(func(txn *badger.Txn) error {
		f := newRecordFinder(txn)
		defer f.close()
		var err error
		rec, ok, err = s.readRecord(f, ingest.TimeKey{StreamKey: key, Seq: seq})
		return err
	})
	if err != nil {
		return rec, err
	}
	if !ok {
		return rec, fmt.Errorf("read record %s/%d: %w", key, seq, ingest.ErrNotFound)
	}
	return rec, nil
}

// BulkLoad writes fresh streams whole through Badger's write batches, for
// loading a benchmark's or a demo's millions of records in seconds: no
// lookups, no per-put sync. Each stream must be new and its records in
// sequence order from 1; nothing checks it, so it is never for what a part
// sends.
func (s *Store) BulkLoad(ctx context.Context, streams []ingest.Bulk) error {
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	for _, b := range streams {
		if err := b.Key.Validate(); err != nil {
			return fmt.Errorf("bulk load: %w", err)
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("bulk load: %w", err)
		}
		rp := streamPrefix('r', b.Key)
		var m meta
		var times []timeEntry
		for _, r := range b.Records {
			if err := wb.Set(seqKey(rp, r.Seq), encodeRecord(r)); err != nil {
				return fmt.Errorf("bulk load %s: %w", b.Key, err)
			}
			if !r.Time.IsZero() {
				times = append(times, timeEntry{r.Time.UnixNano(), r.Seq})
			}
			m.records++
			m.bytes += uint64(len(r.Payload))
			m.watermark = r.Seq
		}
		if err := writeTimeRuns(b.Key, times, wb.Set); err != nil {
			return fmt.Errorf("bulk load %s: %w", b.Key, err)
		}
		if err := wb.Set(join('m', b.Key.PartID, b.Key.StoreID, b.Key.Stream), m.encode()); err != nil {
			return fmt.Errorf("bulk load %s: %w", b.Key, err)
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("bulk load: %w", err)
	}
	return nil
}
