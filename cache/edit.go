package cache

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	badger "github.com/dgraph-io/badger/v4"
	"go.uber.org/zap"
)

// Captures wait on the part until the cloud acknowledges them, so a field
// tech can tag or delete the ones still here (data.edit). Only captures can
// be changed: log, audit, gap and proposal records are what the part says
// happened, and stay as written until the cloud has them.
//
// An edit rewrites the record in place: same sequence number, time and
// priority, new payload. The upload reads records as they are, so the
// edited payload is what reaches the cloud; nothing in the sync contract
// changes. A delete removes the record (and the blob it names) and, in the
// same synced transaction, writes a gap record for each run of consecutive
// sequences it removed, so the cloud's contiguous watermark still passes
// them and the loss is declared, never silent.
//
// An edit or delete that lands while an upload of the same record is in
// flight cannot recall what was sent: the cloud keeps the first copy of a
// sequence, so it holds the record as it was read for that upload.

// EditResult says what EditCaptures or DeleteCaptures did.
type EditResult struct {
	// Changed are the captures edited or deleted, in increasing order.
	Changed []uint64
	// Missing are the captures asked for that are not on the part: the
	// cloud acknowledged them, the byte budget evicted them, someone
	// deleted them, or the sequence was never assigned.
	Missing []uint64
}

// Bounds of one edit transaction. The payload bound keeps the memory of a
// large edit small: Badger holds a transaction's values until it commits.
const (
	editChunkBytes = 8 << 20
	gapCost        = 400 // a gap record's transaction cost, generously
)

// EditCaptures rewrites the payloads of the captures seqs that are still on
// the part. edit gets each one's payload (which it must not keep or change)
// and returns the new payload; returning bytes equal to the old leaves the
// capture unchanged. Each capture's rewrite is atomic and synced; a large
// call commits in several transactions, so an error (from edit, or the
// store) can leave earlier captures edited, which the result lists.
func (s *Store) EditCaptures(ctx context.Context, seqs []uint64, edit func(seq uint64, payload []byte) ([]byte, error)) (EditResult, error) {
	var res EditResult
	todo := sortedSeqs(seqs)
	for len(todo) > 0 {
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("edit captures: %w", err)
		}
		n, err := s.editChunk(todo, edit, &res)
		if err != nil {
			return res, fmt.Errorf("edit captures: %w", err)
		}
		todo = todo[n:]
	}
	return res, nil
}

func (s *Store) editChunk(seqs []uint64, edit func(uint64, []byte) ([]byte, error), res *EditResult) (int, error) {
	if err := s.lockSettled(); err != nil {
		return 0, err
	}
	defer s.mu.Unlock()
	if s.closed.Load() {
		return 0, ErrClosed
	}
	if err := s.checkDisk(); err != nil {
		return 0, err
	}
	b := s.newBatch()
	defer b.discard()
	var changed, missing []uint64
	done, written := 0, 0
	acked := s.meta[StreamCaptures].AckedThrough
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: streamPrefix(StreamCaptures)})
		defer it.Close()
		// The run being edited: several captures of one run are edited in
		// memory and the run rewritten once.
		var cur *heldRun
		flush := func() error {
			if cur == nil || !cur.dirty {
				return nil
			}
			return b.rewriteRun(StreamCaptures, cur.key, cur.prio, cur.old, cur.recs)
		}
		for done < len(seqs) && !b.full() && written < editChunkBytes {
			seq := seqs[done]
			done++
			if cur == nil || seq > cur.last {
				if err := flush(); err != nil {
					return err
				}
				var err error
				if cur, err = loadRun(it, seq); err != nil {
					return fmt.Errorf("read capture %d: %w", seq, err)
				}
			}
			i := cur.find(seq, acked)
			if i < 0 {
				missing = append(missing, seq)
				continue
			}
			np, err := edit(seq, cur.recs[i].payload)
			if err != nil {
				return fmt.Errorf("capture %d: %w", seq, err)
			}
			if bytes.Equal(np, cur.recs[i].payload) {
				continue
			}
			if len(np) > MaxRecordBytes {
				return fmt.Errorf("capture %d: edited to %d bytes, max %d: %w", seq, len(np), MaxRecordBytes, ErrTooLarge)
			}
			cur.recs[i].payload = np
			cur.dirty = true
			written += len(np)
			changed = append(changed, seq)
		}
		return flush()
	})
	if err != nil {
		return 0, err
	}
	if len(changed) > 0 {
		if err := b.commit(); err != nil {
			return 0, err
		}
		s.noteWritten(int64(written))
	}
	res.Changed = append(res.Changed, changed...)
	res.Missing = append(res.Missing, missing...)
	return done, nil
}

// DeleteCaptures deletes the captures seqs that are still on the part, and
// the blobs their payloads name (blobOf returns a payload's blob id, "" for
// none; nil means no capture has one). For each run of consecutive
// sequences deleted it writes a gap record saying reason, in the same
// synced transaction as the deletion: after a crash either both are there
// or neither is. The gap's byte count includes the deleted blobs' bytes.
// Like EditCaptures, a large call commits in several transactions.
func (s *Store) DeleteCaptures(ctx context.Context, seqs []uint64, reason string, blobOf func(payload []byte) string) (EditResult, error) {
	if reason == "" {
		return EditResult{}, errors.New("delete captures: a reason is required (it goes into the gap record)")
	}
	var res EditResult
	todo := sortedSeqs(seqs)
	var freed int64
	defer func() { s.noteFreed(freed) }()
	for len(todo) > 0 {
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("delete captures: %w", err)
		}
		n, f, err := s.deleteChunk(todo, reason, blobOf, &res)
		freed += f
		if err != nil {
			return res, fmt.Errorf("delete captures: %w", err)
		}
		todo = todo[n:]
	}
	return res, nil
}

func (s *Store) deleteChunk(seqs []uint64, reason string, blobOf func([]byte) string, res *EditResult) (int, int64, error) {
	if err := s.lockSettled(); err != nil {
		return 0, 0, err
	}
	defer s.mu.Unlock()
	if s.closed.Load() {
		return 0, 0, ErrClosed
	}
	b := s.newBatch()
	defer b.discard()
	var deleted, missing []uint64
	var gaps []Gap
	var blobs []string
	var freed int64
	done := 0
	acked := s.meta[StreamCaptures].AckedThrough
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: streamPrefix(StreamCaptures)})
		defer it.Close()
		// The run captures are being deleted from; it is rewritten once,
		// and what that frees beyond the deleted entries (its key and
		// header when it goes whole, or a few bytes either way of its
		// encoding) goes to the last gap record it touched.
		var cur *heldRun
		var shares uint64
		flush := func() error {
			if cur == nil || !cur.dirty {
				return nil
			}
			m := b.meta(StreamCaptures)
			before := m.Bytes
			if err := b.rewriteRun(StreamCaptures, cur.key, cur.prio, cur.old, cur.recs); err != nil {
				return err
			}
			var f uint64
			if m.Bytes < before {
				f = before - m.Bytes
			}
			freed += int64(f)
			if k := len(gaps) - 1; k >= 0 {
				gaps[k].Bytes = max(gaps[k].Bytes+f, shares) - shares
			}
			return nil
		}
		// Room is kept for the chunk's gap records (and the metas).
		for done < len(seqs) && b.entries+len(gaps)+8 < txnMaxEntries && b.cost+gapCost*int64(len(gaps)) < txnMaxBytes-4096 {
			seq := seqs[done]
			done++
			if cur == nil || seq > cur.last {
				if err := flush(); err != nil {
					return err
				}
				shares = 0
				var err error
				if cur, err = loadRun(it, seq); err != nil {
					// A run that cannot be read is left to Read, which
					// drops it with a gap record of its own.
					cur = nil
					missing = append(missing, seq)
					continue
				}
			}
			i := cur.find(seq, acked)
			if i < 0 {
				missing = append(missing, seq)
				continue
			}
			r := cur.recs[i]
			cur.recs = slices.Delete(cur.recs, i, i+1)
			cur.dirty = true
			n := uint64(r.share)
			shares += n
			var blobID string
			if blobOf != nil {
				blobID = blobOf(r.payload)
			}
			if blobID != "" && !slices.Contains(blobs, blobID) {
				size, err := b.markBlobDeleted(txn, blobID)
				if err != nil {
					return fmt.Errorf("capture %d: %w", seq, err)
				}
				if size >= 0 {
					blobs = append(blobs, blobID)
					n += uint64(size)
				}
			}
			if k := len(gaps) - 1; k >= 0 && gaps[k].Through+1 == seq {
				gaps[k].note(seq, n)
			} else {
				g := Gap{Stream: StreamCaptures, Reason: reason}
				g.note(seq, n)
				gaps = append(gaps, g)
			}
			deleted = append(deleted, seq)
		}
		return flush()
	})
	if err != nil {
		return 0, 0, err
	}
	if len(deleted) > 0 {
		now := s.clk.Now().UTC()
		for _, g := range gaps {
			g.At = now
			payload, err := json.Marshal(g)
			if err != nil {
				return 0, 0, err
			}
			if _, err := b.appendRecord(StreamGaps, 0, encodeRecord(Record{Payload: payload, Time: now})); err != nil {
				return 0, 0, err
			}
		}
		if err := b.commit(); err != nil {
			return 0, 0, err
		}
		for _, g := range gaps {
			s.log.Info("deleted captures on request; a gap record declares them", zap.Uint64("from", g.From),
				zap.Uint64("through", g.Through), zap.Uint64("count", g.Count), zap.Uint64("bytes", g.Bytes), zap.String("reason", g.Reason))
		}
		// The blobs are already invisible (their metas say deleted); their
		// chunks go now, or at the next Open after a crash.
		for _, id := range blobs {
			if err := s.purgeBlobLocked(id); err != nil {
				s.log.Warn("could not remove the chunks of a deleted blob; the next start retries", zap.String("blob", id), zap.Error(err))
			}
		}
	}
	res.Changed = append(res.Changed, deleted...)
	res.Missing = append(res.Missing, missing...)
	return done, freed, nil
}

// heldRun is a run of captures read for an edit or a delete: its records
// as stored (old) and as they are being changed (recs).
type heldRun struct {
	key   []byte
	last  uint64
	prio  uint8
	old   []runRec
	recs  []runRec
	dirty bool
}

// loadRun reads the run that would hold seq: the first whose last sequence
// is seq or after. It returns an empty run when there is none.
func loadRun(it *badger.Iterator, seq uint64) (*heldRun, error) {
	it.Seek(recordSeek(StreamCaptures, seq))
	if !it.Valid() {
		return &heldRun{last: ^uint64(0)}, nil
	}
	item := it.Item()
	last, _ := seqSize(item.Key())
	v, err := item.ValueCopy(nil)
	if err != nil {
		return nil, err
	}
	old, prio, err := decodeRun(last, v, nil)
	if err != nil {
		return nil, err
	}
	return &heldRun{key: item.KeyCopy(nil), last: last, prio: prio, old: old, recs: slices.Clone(old)}, nil
}

// find returns the index of seq among the run's records, or -1 when the
// run does not hold it (or holds it acknowledged, so no longer on the part).
func (h *heldRun) find(seq, acked uint64) int {
	if seq <= acked {
		return -1
	}
	i, ok := slices.BinarySearchFunc(h.recs, seq, func(r runRec, seq uint64) int {
		switch {
		case r.seq < seq:
			return -1
		case r.seq > seq:
			return 1
		}
		return 0
	})
	if !ok {
		return -1
	}
	return i
}

// replaceRecord puts val in place of the record at key (its size, part of
// the key, may change), keeping the eviction index and the meta right.
func (b *batch) replaceRecord(st Stream, key []byte, prio uint8, val []byte) error {
	seq, _ := seqSize(key)
	nk := recordKey(st, seq, uint32(len(val)))
	if !bytes.Equal(nk, key) {
		if _, err := b.deleteRecord(st, key, prio); err != nil {
			return err
		}
		return b.putValue(st, prio, seq, 1, val)
	}
	return b.set(nk, val, prio)
}

// markBlobDeleted marks blob id deleted in b and returns its size, or -1
// when the store holds no such blob (the cloud already has all of it).
func (b *batch) markBlobDeleted(txn *badger.Txn, id string) (int64, error) {
	v, err := getValue(txn, blobMetaKey(id))
	if errors.Is(err, ErrNotFound) {
		return -1, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read blob %s: %w", id, err)
	}
	bi, err := decodeBlobMeta(id, v)
	if err != nil {
		return 0, fmt.Errorf("read blob %s: %w", id, err)
	}
	if bi.deleted {
		return -1, nil
	}
	bi.deleted = true
	if err := b.set(blobMetaKey(id), encodeBlobMeta(bi), 0); err != nil {
		return 0, err
	}
	return bi.Size, nil
}

func sortedSeqs(seqs []uint64) []uint64 {
	out := slices.Clone(seqs)
	slices.Sort(out)
	return slices.Compact(out)
}
