package cache

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"go.uber.org/zap"
)

// Gap is the payload of a StreamGaps record: data the store lost or dropped,
// said out loud so the cloud knows: loss is never silent.
type Gap struct {
	// Stream is the stream that lost records; empty when the whole store was lost.
	Stream Stream `json:"stream,omitempty"`
	// From and Through bound the sequence numbers lost (inclusive). For
	// captures evicted by priority the range can hold survivors: Count says
	// how many were lost.
	From    uint64 `json:"from,omitempty"`
	Through uint64 `json:"through,omitempty"`
	Count   uint64 `json:"count,omitempty"`
	Bytes   uint64 `json:"bytes,omitempty"`
	// Priority is the capture priority evicted, for captures.
	Priority uint8     `json:"priority,omitempty"`
	Reason   string    `json:"reason"`
	At       time.Time `json:"at"`
}

// DecodeGap parses the payload of a StreamGaps record.
func DecodeGap(payload []byte) (Gap, error) {
	var g Gap
	if err := json.Unmarshal(payload, &g); err != nil {
		return Gap{}, fmt.Errorf("decode gap record: %w", err)
	}
	return g, nil
}

// evictRank orders what may evict what: a record may evict classes of a
// rank at or below its own. Never-evicted streams rank above everything.
func evictRank(st Stream) int {
	switch st {
	case StreamLogsDebug:
		return 0
	case StreamLogsInfo:
		return 1
	case StreamCaptures:
		return 2
	}
	return 3
}

func evictable(st Stream) bool { return evictRank(st) < 3 }

// AuditSharePercent is the share of Budget.MaxBytes the audit stream may
// take by evicting: an audit event that finds the store full evicts logs
// and captures only while the audit stream holds at most this percentage
// of the budget. Past it an audit event is stored only if it fits the
// budget as it is, and is refused with ErrOverBudget otherwise, so that
// calls refused on the part, however many, cannot push captures out.
const AuditSharePercent = 10

// admitLocked makes room for r within Budget.MaxBytes, evicting what r may
// evict. adding is what earlier requests of the same group will add.
func (s *Store) admitLocked(r *appendReq, adding int64) error {
	maxBytes := s.opts.Budget.MaxBytes
	if maxBytes <= 0 {
		return nil
	}
	over := s.totalLocked() + adding + r.bytes - maxBytes
	if over <= 0 {
		return nil
	}
	if r.stream == StreamAudit && int64(s.meta[StreamAudit].Bytes)+r.bytes > maxBytes*AuditSharePercent/100 {
		return fmt.Errorf("budget of %d bytes, of which audit events may take %d%% by evicting: %w", maxBytes, AuditSharePercent, ErrOverBudget)
	}
	// Evict a little more than needed (1/64 of the budget) so that a full
	// store writes a gap record per batch of evictions, not per append.
	if err := s.evictLocked(over+maxBytes/64, r.stream, r.maxPri); err != nil {
		s.log.Error("eviction failed", zap.Error(err))
	}
	if s.totalLocked()+adding+r.bytes > maxBytes && evictable(r.stream) {
		// No live figure in the message: callers log a failure when its
		// message changes (capture's poller), and a byte count that moves
		// with every write made that a never-evicted warn line per append.
		return fmt.Errorf("budget of %d bytes: %w", maxBytes, ErrOverBudget)
	}
	return nil
}

// evictLocked frees at least need bytes if it can, in the documented order,
// touching only classes that a record of stream st and priority prio may evict.
func (s *Store) evictLocked(need int64, st Stream, prio uint8) error {
	rank := evictRank(st)
	var freed int64
	for _, victim := range []Stream{StreamLogsDebug, StreamLogsInfo} {
		if freed >= need || evictRank(victim) > rank {
			return nil
		}
		n, err := s.evictHeadLocked(victim, need-freed)
		freed += n
		if err != nil {
			return err
		}
	}
	if rank < 2 {
		return nil
	}
	maxPrio := 255
	if st == StreamCaptures {
		maxPrio = int(prio)
	}
	for p := 0; p <= maxPrio && freed < need; p++ {
		n, err := s.evictCapturesLocked(uint8(p), need-freed)
		freed += n
		if err != nil {
			return err
		}
	}
	return nil
}

// evictHeadLocked deletes the oldest records of a log stream.
func (s *Store) evictHeadLocked(st Stream, need int64) (int64, error) {
	var freed int64
	for freed < need && s.meta[st].Count > 0 {
		b := s.newBatch()
		g := Gap{Stream: st, Reason: fmt.Sprintf("over byte budget (%d bytes): evicted oldest %s", s.opts.Budget.MaxBytes, st)}
		// Everything through the ack cursor and through the last record
		// evicted here is deleted: seeking from 0 would walk their
		// tombstones on every eviction of a long-lived backlog.
		from := max(s.meta[st].AckedThrough, s.evictedHead[st]) + 1
		err := s.db.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: streamPrefix(st)})
			defer it.Close()
			var recs []runRec
			prevLast := from - 1
			for it.Seek(recordSeek(st, from)); it.Valid() && freed < need && !b.full(); it.Next() {
				item := it.Item()
				last, _ := seqSize(item.Key())
				var prio uint8
				var err error
				if recs, prio, err = runOf(item, last, recs); err != nil {
					return err
				}
				liveFrom := firstLive(recs, b.meta(st).AckedThrough, prevLast+1)
				count, n, err := b.removeRun(st, item.KeyCopy(nil), prio, recs, prevLast+1)
				if err != nil {
					return err
				}
				g.noteRange(liveFrom, last, count, n)
				freed += int64(n)
				prevLast = last
			}
			return nil
		})
		if err == nil && g.Count == 0 {
			b.discard()
			return freed, nil // meta said records exist but none were found
		}
		if err == nil {
			err = s.commitWithGap(b, g, true)
		}
		b.discard()
		if err != nil {
			return freed, fmt.Errorf("evict %s: %w", st, err)
		}
		s.evictedHead[st] = g.Through
	}
	return freed, nil
}

// evictCapturesLocked deletes the oldest captures of one priority.
func (s *Store) evictCapturesLocked(prio uint8, need int64) (int64, error) {
	var freed int64
	for freed < need {
		b := s.newBatch()
		g := Gap{Stream: StreamCaptures, Priority: prio,
			Reason: fmt.Sprintf("over byte budget (%d bytes): evicted oldest captures of priority %d", s.opts.Budget.MaxBytes, prio)}
		err := s.db.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: prioPrefix(prio)})
			defer it.Close()
			var recs []runRec
			for it.Rewind(); it.Valid() && freed < need && !b.full(); it.Next() {
				last, size := seqSize(it.Item().Key())
				key := recordKey(StreamCaptures, last, size)
				item, err := txn.Get(key)
				if errors.Is(err, badger.ErrKeyNotFound) {
					// An index key without its run holds nothing to free.
					if err := b.del(it.Item().KeyCopy(nil)); err != nil {
						return err
					}
					continue
				}
				if err != nil {
					return err
				}
				if recs, _, err = runOf(item, last, recs); err != nil {
					return err
				}
				liveFrom := firstLive(recs, b.meta(StreamCaptures).AckedThrough, last)
				count, n, err := b.removeRun(StreamCaptures, key, prio, recs, last)
				if err != nil {
					return err
				}
				g.noteRange(liveFrom, last, count, n)
				freed += int64(n)
			}
			return nil
		})
		if err == nil && g.Count == 0 {
			b.discard()
			return freed, nil
		}
		if err == nil {
			err = s.commitWithGap(b, g, true)
		}
		b.discard()
		if err != nil {
			return freed, fmt.Errorf("evict captures of priority %d: %w", prio, err)
		}
	}
	return freed, nil
}

// firstLive is the first sequence of recs after acked, or fallback when
// recs could not be decoded.
func firstLive(recs []runRec, acked, fallback uint64) uint64 {
	if recs == nil {
		return max(fallback, acked+1)
	}
	for _, r := range recs {
		if r.seq > acked {
			return r.seq
		}
	}
	return fallback
}

func (g *Gap) note(seq, bytes uint64) {
	if g.Count == 0 || seq < g.From {
		g.From = seq
	}
	g.Through = max(g.Through, seq)
	g.Count++
	g.Bytes += bytes
}

// gapClass is what eviction gap records merge by: one stream and, for
// captures, one priority.
type gapClass struct {
	stream Stream
	prio   uint8
}

// openGap is an eviction gap record that later evictions of its class may
// still extend in place.
type openGap struct {
	seq  uint64 // its sequence in StreamGaps
	size uint32 // its value's length, part of its key
	gap  Gap
}

// commitWithGap adds the gap record to the eviction's own transaction, so
// the loss and its record are durable together or not at all.
//
// With merge (evictions over the budget) it extends the open gap record of
// the same class instead of appending another: its range grows to the
// union, and Count and Bytes add up. A part offline for weeks with a small
// budget evicts thousands of times; one record per stream and priority
// keeps both its store and the upload after reconnecting small, and the
// cloud's watermark only needs the union (for captures evicted by priority
// the range may hold survivors, as one eviction's already may: they are
// still sent, in sequence order, before the part deletes through the
// cloud's watermark). A gap record that may have been read for upload
// (gapsFrozen) is never rewritten: the cloud could already hold it with
// the shorter range, keep that first copy, and never learn of the rest.
// The open records are known only to this process, so a restart starts
// new ones. Without merge (records found damaged) the record stands alone.
func (s *Store) commitWithGap(b *batch, g Gap, merge bool) error {
	if g.Count == 0 {
		return nil
	}
	class := gapClass{g.Stream, g.Priority}
	open, ok := s.openGaps[class]
	extend := merge && ok && open.seq > s.gapsFrozen
	rec := g
	if extend {
		rec = open.gap
		rec.From, rec.Through = min(rec.From, g.From), max(rec.Through, g.Through)
		rec.Count += g.Count
		rec.Bytes += g.Bytes
	} else {
		rec.At = s.clk.Now().UTC()
	}
	payload, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	val := encodeRecord(Record{Payload: payload, Time: rec.At})
	seq := open.seq
	if extend {
		err = b.replaceRecord(StreamGaps, recordKey(StreamGaps, seq, open.size), 0, val)
	} else {
		seq, err = b.appendRecord(StreamGaps, 0, val)
	}
	if err != nil {
		return err
	}
	if err := b.commit(); err != nil {
		return err
	}
	if merge {
		s.openGaps[class] = openGap{seq: seq, size: uint32(len(val)), gap: rec}
	}
	s.evictedRecords.Add(g.Count)
	s.evictedBytes.Add(g.Bytes)
	fields := []zap.Field{zap.String("stream", string(g.Stream)), zap.Uint64("from", rec.From), zap.Uint64("through", rec.Through),
		zap.Uint64("count", rec.Count), zap.Uint64("bytes", rec.Bytes), zap.Uint8("priority", g.Priority)}
	if extend {
		// One warning per gap record, not per eviction: a long outage
		// must not fill the never-evicted warn stream with these lines.
		s.log.Debug("evicted more records over the byte budget; their gap record grew", fields...)
	} else {
		s.log.Warn("evicted records over the byte budget", fields...)
	}
	return nil
}

// freezeGaps marks every gap record held now as possibly read for upload,
// so none of them is extended any more (see commitWithGap).
func (s *Store) freezeGaps() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gapsFrozen = s.meta[StreamGaps].Last
}

// writeGaps appends gap records outside of an eviction (a corrupted store).
func (s *Store) writeGaps(gaps []Gap) error {
	if err := s.lockSettled(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	b := s.newBatch()
	defer b.discard()
	for _, g := range gaps {
		g.At = s.clk.Now().UTC()
		payload, err := json.Marshal(g)
		if err != nil {
			return err
		}
		if _, err := b.appendRecord(StreamGaps, 0, encodeRecord(Record{Payload: payload, Time: g.At})); err != nil {
			return err
		}
	}
	return b.commit()
}

// noteRange adds count records of bytes within [from, through] to g.
func (g *Gap) noteRange(from, through, count, bytes uint64) {
	if count == 0 {
		return
	}
	if g.Count == 0 || from < g.From {
		g.From = from
	}
	g.Through = max(g.Through, through)
	g.Count += count
	g.Bytes += bytes
}
