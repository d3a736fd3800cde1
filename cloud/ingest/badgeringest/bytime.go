package badgeringest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/outpost-robotics/outpost/cloud/ingest"
)

// The time index: one key per record that has a time, with no value,
//
//	t\0STREAM\0TIME PART\0STORE\0SEQ
//
// TIME is the Unix nanoseconds with the sign bit flipped, 8 bytes
// big-endian, so keys of a stream sort by time (before 1970 included),
// then part, store and sequence. RecordsByTime walks it, one iterator per
// stream, and reads each record it keeps from its r key.

// timeIndexDone marks a store whose records all have their time keys
// (Open builds them once for a store written before the index existed).
var timeIndexDone = []byte("x\x00time-index")

func timePrefix(stream string) []byte { return append(join('t', stream), 0) }

func timeBytes(b []byte, t time.Time) []byte {
	return binary.BigEndian.AppendUint64(b, uint64(t.UnixNano())^(1<<63))
}

func timeKey(k ingest.StreamKey, t time.Time, seq uint64) []byte {
	b := timeBytes(timePrefix(k.Stream), t)
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
		for it.Rewind(); it.Valid(); it.Next() {
			key, seq, ok := parseRecordKey(it.Item().Key())
			if !ok {
				continue
			}
			var rv recordValue
			if err := it.Item().Value(func(v []byte) error {
				var err error
				rv, err = decodeRecord(v)
				return err
			}); err != nil {
				return err
			}
			t := rv.time
			if !rv.deleted && !t.IsZero() {
				if err := wb.Set(timeKey(key, t, seq), nil); err != nil {
					return err
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

// timeCursor is one stream's iterator over the time index.
type timeCursor struct {
	it     *badger.Iterator
	plen   int
	stream string
	key    ingest.TimeKey
	ok     bool
}

// next moves to the first key after 'after' (if set), or reports the end.
func (c *timeCursor) next(after *ingest.TimeKey) error {
	for ; c.it.Valid(); c.it.Next() {
		k, ok := parseTimeKey(c.it.Item().Key(), c.plen, c.stream)
		if !ok {
			return fmt.Errorf("malformed time key %q", c.it.Item().Key())
		}
		if after != nil && k.Compare(*after) <= 0 {
			continue
		}
		c.key, c.ok = k, true
		c.it.Next()
		return nil
	}
	c.ok = false
	return nil
}

// RecordsByTime merges the time index of each stream; see ingest.Store.
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
	var out []ingest.StoredRecord
	var last *ingest.TimeKey
	more := false
	err = s.db.View(func(txn *badger.Txn) error {
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
			p := timePrefix(st)
			c := &timeCursor{it: txn.NewIterator(badger.IteratorOptions{Prefix: p}), plen: len(p), stream: st}
			curs = append(curs, c)
			if start.IsZero() {
				c.it.Rewind()
			} else {
				c.it.Seek(timeBytes(slices.Clip(p), start))
			}
			if err := c.next(after); err != nil {
				return err
			}
		}
		for scanned := 0; ; scanned++ {
			var min *timeCursor
			for _, c := range curs {
				if c.ok && (min == nil || c.key.Compare(min.key) < 0) {
					min = c
				}
			}
			if min == nil || !q.To.IsZero() && !min.key.Time.Before(q.To) {
				return nil
			}
			if scanned == ingest.MaxTimeScan {
				more = true
				return nil
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			k := min.key
			if parts == nil || parts[k.PartID] {
				rec, ok, err := s.readRecord(txn, k)
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
			last = &k
			if err := min.next(nil); err != nil {
				return err
			}
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

// readRecord reads the record a time key names; a deleted one is not ok.
func (s *Store) readRecord(txn *badger.Txn, k ingest.TimeKey) (ingest.StoredRecord, bool, error) {
	item, err := txn.Get(seqKey(streamPrefix('r', k.StreamKey), k.Seq))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return ingest.StoredRecord{}, false, nil
	}
	if err != nil {
		return ingest.StoredRecord{}, false, fmt.Errorf("read record %s/%d: %w", k.StreamKey, k.Seq, err)
	}
	return s.storedRecord(item, k.StreamKey, k.Seq)
}

// Record reads one record; see ingest.Store.
func (s *Store) Record(_ context.Context, key ingest.StreamKey, seq uint64) (ingest.StoredRecord, error) {
	if err := key.Validate(); err != nil {
		return ingest.StoredRecord{}, fmt.Errorf("read record: %w", err)
	}
	var rec ingest.StoredRecord
	var ok bool
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		rec, ok, err = s.readRecord(txn, ingest.TimeKey{StreamKey: key, Seq: seq})
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
		for _, r := range b.Records {
			if err := wb.Set(seqKey(rp, r.Seq), encodeRecord(r)); err != nil {
				return fmt.Errorf("bulk load %s: %w", b.Key, err)
			}
			if !r.Time.IsZero() {
				if err := wb.Set(timeKey(b.Key, r.Time, r.Seq), nil); err != nil {
					return fmt.Errorf("bulk load %s: %w", b.Key, err)
				}
			}
			m.records++
			m.bytes += uint64(len(r.Payload))
			m.watermark = r.Seq
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
