package badgeringest

import (
	"github.com/outpost-robotics/outpost/cloud/ingest"
)

// preWriteMaxRecords bounds the puts whose payloads are written before the
// stream's lock: well under what one transaction takes (txnMaxRecords), so
// such a put commits whole, as its extents assume. A part's batch is at
// most 4,000 records.
const preWriteMaxRecords = txnMaxRecords / 4

// preWrite is a put's payloads written and synced to a segment before it
// took its stream's lock. The put then points at the bytes of the records
// it stores; the bytes of the records it finds held already (repeats, or
// conflicts) are written but dead: no extent covers them, so the segment's
// settling punches them out, and they leave the live count at the commit.
type preWrite struct {
	seg uint32
	// ptrs are the payloads' pointers by the record's index in the put;
	// an empty payload's is zero.
	ptrs  []segPtr
	total uint64 // bytes written
	kept  uint64 // of them, the bytes the commit points at
}

// dead is the bytes written that no record points at.
func (p *preWrite) dead() uint64 { return p.total - p.kept }

// preWrite writes recs' payloads to the active segment, synced, unless the
// put looks like a repeat (its first sequence is at or below the stream's
// watermark, read without the lock: only a guess, which costs a write of
// bytes that turn out dead when wrong) or has no payloads; nil then.
func (s *Store) preWrite(key ingest.StreamKey, recs []ingest.Record) (*preWrite, error) {
	if len(recs) == 0 {
		return nil, nil
	}
	if m, err := s.meta(key); err != nil || m.watermark >= recs[0].Seq {
		return nil, nil
	}
	payloads := make([][]byte, 0, len(recs))
	idx := make([]int, 0, len(recs))
	for i, r := range recs {
		if len(r.Payload) > 0 {
			payloads = append(payloads, r.Payload)
			idx = append(idx, i)
		}
	}
	if len(payloads) == 0 {
		return nil, nil
	}
	ptrs, err := s.segs.append(payloads)
	if err != nil {
		return nil, err
	}
	p := &preWrite{seg: ptrs[0].seg, ptrs: make([]segPtr, len(recs))}
	for j, i := range idx {
		p.ptrs[i] = ptrs[j]
		p.total += uint64(ptrs[j].n)
	}
	return p, nil
}

// setPreWritten sets the pointers of the queued records to their
// pre-written payloads, and an extent for each stretch of payloads they
// keep, in txn.
func (w *writer) setPreWritten() error {
	p := w.pre
	kept := make([]bool, len(p.ptrs))
	err := w.setRecords(func(r segRec) segPtr {
		ptr := p.ptrs[r.i]
		kept[r.i] = true
		p.kept += uint64(ptr.n)
		return ptr
	})
	if err != nil {
		return err
	}
	var start, end uint64
	open := false
	flush := func() error {
		if !open {
			return nil
		}
		open = false
		return w.txn.Set(extentKey(p.seg, start), encodeLen(end-start))
	}
	for i, ptr := range p.ptrs {
		if ptr.n == 0 {
			continue
		}
		if !kept[i] {
			if err := flush(); err != nil {
				return err
			}
			continue
		}
		if !open {
			start, open = ptr.off, true
		}
		end = ptr.off + uint64(ptr.n)
	}
	return flush()
}

// dropPreWrite ends a pre-write the put did not commit (it failed or
// returned first): nothing points at the bytes it wrote.
func (w *writer) dropPreWrite() {
	if p := w.pre; p != nil {
		w.pre = nil
		w.s.segs.unlive(p.seg, p.total)
		w.s.segs.release(p.seg, true)
	}
}

// unlive takes n bytes a put wrote to segment id and nothing points at out
// of its live count.
func (ss *segments) unlive(id uint32, n uint64) {
	if n == 0 {
		return
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if _, ok := ss.files[id]; ok {
		ss.live[id] -= int64(n)
	}
}
