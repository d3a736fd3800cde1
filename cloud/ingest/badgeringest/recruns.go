package badgeringest

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/outpost-robotics/outpost/cloud/ingest"
)

// Record runs.
//
// A put's new records are kept a few dozen to an r key, not one each: a
// key per record cost a Badger memtable insert, a write-ahead log entry, a
// flush and a compaction apiece, a third of the cloud's CPU per ingested
// gigabyte of 1 KiB readings. A run is keyed like a record, by its LAST
// sequence, and its value starts with flagRun:
//
//	flagRun, last minus first sequence (uvarint), segment (uvarint),
//	offset of its first payload (uvarint), then for each record, in
//	sequence order:
//	  sequence step from the previous one (uvarint; 0 for the first),
//	  flags (entryTime, entryDeleted), and unless deleted:
//	  time step from the previous timed record's (zigzag varint; when
//	  entryTime), payload length (uvarint), and when it is not empty:
//	  the bytes between the previous payload's end and this one's
//	  (uvarint) and the payload's CRC-32C (4 bytes, big-endian).
//
// The payloads of a run are in one segment, in sequence order: a put
// appends them so. A run's value stays under maxRunBytes, so it lives in
// the LSM tree, never in Badger's value log (which this store does not
// collect), and a delete rewrites at most that much.
//
// The invariant every lookup rests on: the sequence ranges of a stream's
// r keys (a run's first..last, a single record's own) never overlap. So
// the first key at or after a sequence, one forward seek, is the only one
// that can hold it, and a record that key does not span is in the gap
// before it. A put builds a run only of records in one gap, and writes a
// record that falls inside a run's range under a key of its own, splitting
// the run around it. A single record's key, as stores before runs wrote
// every record, is its first and last sequence at once.
//
// A deleted record stays in its run as a marker, so its repeat is a no-op
// as a tombstone's is; its bytes are erased as before.
const (
	flagRun = 8

	entryTime    = 1
	entryDeleted = 2
	entryKnown   = entryTime | entryDeleted

	// maxRunEntry is the longest one record's entry can be.
	maxRunEntry = 3*binary.MaxVarintLen64 + 1 + binary.MaxVarintLen32 + 4
	// runHeader is the longest a run's header can be.
	runHeader = 1 + 2*binary.MaxVarintLen64 + binary.MaxVarintLen32
	// maxRecordRunValue is the longest run value read as sound.
	maxRecordRunValue = runHeader + maxRunBytes + maxRunEntry
)

// heldRec is one record as an r key holds it: the key's own, or one of a
// run's.
type heldRec struct {
	seq uint64
	rv  recordValue
}

// isRun says whether an r key's value is a run.
func isRun(v []byte) bool { return len(v) > 0 && v[0]&flagRun != 0 }

// decodeHeld appends to dst the records the r key of sequence seq holds
// in its value v: one, or a run's whose last is seq. An inline payload is
// copied, so the result outlives v.
func decodeHeld(dst []heldRec, seq uint64, v []byte) ([]heldRec, error) {
	if isRun(v) {
		return decodeRun(dst, seq, v)
	}
	rv, err := decodeRecord(v)
	if err != nil {
		return dst, err
	}
	rv.inline = bytes.Clone(rv.inline)
	return append(dst, heldRec{seq: seq, rv: rv}), nil
}

// decodeItem appends to dst the records the r key item holds, whose
// sequence is last (decodeHeld).
func decodeItem(dst []heldRec, item *badger.Item, last uint64) ([]heldRec, error) {
	err := item.Value(func(v []byte) error {
		var err error
		dst, err = decodeHeld(dst, last, v)
		return err
	})
	return dst, err
}

// runEncoder builds one run's value record by record.
type runEncoder struct {
	entries  []byte
	seg      uint32
	off, pos uint64 // the first payload's offset; the last one's end
	payload  bool   // a payload has set seg and off
	first    uint64
	prev     uint64 // the last record's sequence
	prevTime int64  // the last timed record's time
	n        int
}

func (e *runEncoder) reset() {
	*e = runEncoder{entries: e.entries[:0]}
}

// add appends r if it fits: after the run's last sequence, its payload in
// the run's segment after the previous one, the value under maxRunBytes.
// It leaves the run as it was and says false otherwise.
func (e *runEncoder) add(r heldRec) bool {
	rv := r.rv
	if e.n > 0 && r.seq <= e.prev {
		return false
	}
	if rv.segment && e.payload && (rv.ptr.seg != e.seg || rv.ptr.off < e.pos) {
		return false
	}
	saved := *e
	step := uint64(0)
	if e.n > 0 {
		step = r.seq - e.prev
	} else {
		e.first = r.seq
	}
	b := binary.AppendUvarint(e.entries, step)
	switch {
	case rv.deleted:
		b = append(b, entryDeleted)
	default:
		f := byte(0)
		if !rv.time.IsZero() {
			f |= entryTime
		}
		b = append(b, f)
		if !rv.time.IsZero() {
			ns := rv.time.UnixNano()
			b = binary.AppendVarint(b, ns-e.prevTime)
			e.prevTime = ns
		}
		n := uint64(0)
		if rv.segment {
			n = uint64(rv.ptr.n)
		}
		b = binary.AppendUvarint(b, n)
		if n > 0 {
			if !e.payload {
				e.seg, e.off, e.pos, e.payload = rv.ptr.seg, rv.ptr.off, rv.ptr.off, true
			}
			b = binary.AppendUvarint(b, rv.ptr.off-e.pos)
			b = binary.BigEndian.AppendUint32(b, rv.ptr.sum)
			e.pos = rv.ptr.off + n
		}
	}
	e.entries = b
	if len(b)+runHeader > maxRunBytes && e.n > 0 {
		*e = saved
		e.entries = b[:len(saved.entries)]
		return false
	}
	e.prev = r.seq
	e.n++
	return true
}

// value is the run's value; its key is its last sequence, e.prev.
func (e *runEncoder) value() []byte {
	v := make([]byte, 0, runHeader+len(e.entries))
	v = append(v, flagRun)
	v = binary.AppendUvarint(v, e.prev-e.first)
	v = binary.AppendUvarint(v, uint64(e.seg))
	v = binary.AppendUvarint(v, e.off)
	return append(v, e.entries...)
}

// decodeRun appends the records of the run keyed by sequence last, with
// value v, to dst; it refuses a value no writer makes: too long,
// truncated, out of order, not ending at last, or pointing outside what a
// segment holds.
func decodeRun(dst []heldRec, last uint64, v []byte) ([]heldRec, error) {
	if len(v) > maxRecordRunValue {
		return dst, fmt.Errorf("record run of %d bytes, want at most %d", len(v), maxRecordRunValue)
	}
	if len(v) == 0 || v[0] != flagRun {
		return dst, errors.New("record run: bad flags")
	}
	v = v[1:]
	uv := func(what string) (uint64, error) {
		x, n := binary.Uvarint(v)
		if n <= 0 {
			return 0, fmt.Errorf("record run: bad %s", what)
		}
		v = v[n:]
		return x, nil
	}
	span, err := uv("span")
	if err != nil {
		return dst, err
	}
	if span > last {
		return dst, fmt.Errorf("record run to %d spanning %d", last, span)
	}
	first := last - span
	// A record's entry is about 13 bytes; growing once up front saves the
	// doublings, most of a single record's lookup.
	dst = slices.Grow(dst, len(v)/12+1)
	seg, err := uv("segment")
	if err != nil {
		return dst, err
	}
	pos, err := uv("offset")
	if err != nil {
		return dst, err
	}
	if seg > 1<<32-1 || pos > maxSegOffset {
		return dst, fmt.Errorf("record run in segment %d at %d: out of bounds", seg, pos)
	}
	start := len(dst)
	seq, prevTime := first, int64(0)
	for len(v) > 0 {
		step, err := uv("sequence")
		if err != nil {
			return dst, err
		}
		if (len(dst) == start) != (step == 0) || seq+step < seq {
			return dst, fmt.Errorf("record run from %d: a sequence step of %d", first, step)
		}
		seq += step
		if len(v) == 0 {
			return dst, errors.New("record run: truncated")
		}
		f := v[0]
		v = v[1:]
		if f&^entryKnown != 0 || f&entryDeleted != 0 && f != entryDeleted {
			return dst, fmt.Errorf("record run: record %d with flags %#x", seq, f)
		}
		r := heldRec{seq: seq}
		if f&entryDeleted != 0 {
			r.rv.deleted = true
			dst = append(dst, r)
			continue
		}
		if f&entryTime != 0 {
			dt, n := binary.Varint(v)
			if n <= 0 {
				return dst, errors.New("record run: bad time")
			}
			v = v[n:]
			prevTime += dt
			r.rv.time = time.Unix(0, prevTime).UTC()
		}
		n, err := uv("length")
		if err != nil {
			return dst, err
		}
		if n > 0 {
			gap, err := uv("gap")
			if err != nil {
				return dst, err
			}
			if len(v) < 4 {
				return dst, errors.New("record run: truncated checksum")
			}
			if seg == 0 || n > maxPayload || gap > maxSegOffset || pos+gap > maxSegOffset {
				return dst, fmt.Errorf("record run: record %d of %d bytes in segment %d: out of bounds", seq, n, seg)
			}
			r.rv.segment = true
			r.rv.ptr = segPtr{seg: uint32(seg), off: pos + gap, n: uint32(n), sum: binary.BigEndian.Uint32(v)}
			v = v[4:]
			pos += gap + n
		}
		dst = append(dst, r)
	}
	if len(dst) == start || seq != last {
		return dst, fmt.Errorf("record run from %d ends at %d, not at its key's %d", first, seq, last)
	}
	return dst, nil
}

// heldIndex returns where the record seq is among recs, sorted by
// sequence.
func heldIndex(recs []heldRec, seq uint64) (int, bool) {
	return slices.BinarySearchFunc(recs, seq, func(r heldRec, s uint64) int { return cmp.Compare(r.seq, s) })
}

// findHeld returns the record seq among recs, sorted by sequence.
func findHeld(recs []heldRec, seq uint64) (heldRec, bool) {
	i, ok := heldIndex(recs, seq)
	if !ok {
		return heldRec{}, false
	}
	return recs[i], true
}

// heldCursor finds the records of one stream through one forward
// iterator of a read-only transaction: the first r key at or after a
// sequence is the only one that can hold it. It keeps that key's records,
// and the gap before them, so the sequences after the one it was asked
// last, as a put's and an advance's are, cost a step at most.
type heldCursor struct {
	it *badger.Iterator
	rp []byte
	// The cursor knows the sequences from lo through the key's last: those
	// before the key's first are held by no key. At the end of the stream
	// (end), it knows those from lo on: none held.
	lo  uint64
	key []byte
	rec []heldRec
	end bool
	ok  bool // lo, key, rec and end are set
}

func newHeldCursor(txn *badger.Txn, rp []byte) *heldCursor {
	return &heldCursor{it: txn.NewIterator(badger.IteratorOptions{Prefix: rp}), rp: rp}
}

func (c *heldCursor) close() { c.it.Close() }

// knows says whether the cursor's key (or the end) settles seq.
func (c *heldCursor) knows(seq uint64) bool {
	return c.ok && c.lo <= seq && (c.end || seq <= c.rec[len(c.rec)-1].seq)
}

// locate settles seq: the first key at or after it, read.
func (c *heldCursor) locate(seq uint64) error {
	if c.knows(seq) {
		return nil
	}
	if c.ok && !c.end && seq > c.rec[len(c.rec)-1].seq {
		// A few steps on before a seek: the next key is most often it.
		for range 4 {
			c.lo = c.rec[len(c.rec)-1].seq + 1
			c.it.Next()
			if err := c.read(); err != nil {
				return err
			}
			if c.knows(seq) {
				return nil
			}
		}
	}
	c.lo = seq
	c.it.Seek(seqKey(c.rp, seq))
	return c.read()
}

// read reads the iterator's key into the cursor.
func (c *heldCursor) read() error {
	c.ok, c.key, c.rec, c.end = false, c.key[:0], c.rec[:0], false
	if !c.it.ValidForPrefix(c.rp) {
		c.ok, c.end = true, true
		return nil
	}
	item := c.it.Item()
	k := item.Key()
	if len(k) != len(c.rp)+8 {
		return fmt.Errorf("malformed record key %q", k)
	}
	last := binary.BigEndian.Uint64(k[len(c.rp):])
	var err error
	if c.rec, err = decodeItem(c.rec, item, last); err != nil {
		c.rec = c.rec[:0]
		return fmt.Errorf("read record key %q: %w", k, err)
	}
	c.key = append(c.key, k...)
	c.ok = true
	return nil
}

// find returns the record seq, deleted ones included.
func (c *heldCursor) find(seq uint64) (heldRec, bool, error) {
	if err := c.locate(seq); err != nil {
		return heldRec{}, false, err
	}
	if c.end {
		return heldRec{}, false, nil
	}
	r, ok := findHeld(c.rec, seq)
	return r, ok, nil
}

// spans says whether the key the cursor read last spans seq (settled by
// locate): seq is held by it, or in a gap of its run.
func (c *heldCursor) spans(seq uint64) bool {
	return c.ok && !c.end && c.rec[0].seq <= seq && seq <= c.rec[len(c.rec)-1].seq
}

// gap names the gap before the cursor's key, where a sequence it settled
// and does not span is: the key's last sequence, or none at the end.
func (c *heldCursor) gap() (uint64, bool) {
	if c.end {
		return 0, false
	}
	return c.rec[len(c.rec)-1].seq, true
}

// recordFinder finds records of any stream in one read-only transaction,
// a heldCursor per stream.
type recordFinder struct {
	txn  *badger.Txn
	curs map[string]*heldCursor
}

func newRecordFinder(txn *badger.Txn) *recordFinder {
	return &recordFinder{txn: txn, curs: map[string]*heldCursor{}}
}

func (f *recordFinder) cursor(rp []byte) *heldCursor {
	c, ok := f.curs[string(rp)]
	if !ok {
		c = newHeldCursor(f.txn, rp)
		f.curs[string(rp)] = c
	}
	return c
}

func (f *recordFinder) close() {
	for k, c := range f.curs {
		c.close()
		delete(f.curs, k)
	}
}

// writeRuns sets the records recs (sorted by sequence, new to the stream
// with record prefix rp) through set: a record inside the range of a run
// held (in its gap) under a key of its own, splitting that run around it;
// the others as runs of the records in one gap between held keys. held
// finds what the stream held before.
func writeRuns(rp []byte, recs []heldRec, held *heldCursor, set func(k, v []byte) error) error {
	// The records of held runs that new ones fall in, by the run's key,
	// and where they are cut.
	var runs map[string][]heldRec
	var cuts map[string][]uint64
	start := 0
	var startGap uint64
	var startBounded bool
	for i := 0; i <= len(recs); i++ {
		var g uint64
		var bounded bool
		inside := false
		if i < len(recs) {
			r := recs[i]
			if err := held.locate(r.seq); err != nil {
				return err
			}
			g, bounded = held.gap()
			inside = held.spans(r.seq)
		}
		// The records from start on are in one gap until this one.
		if i > start && (i == len(recs) || inside || g != startGap || bounded != startBounded) {
			if err := setRuns(rp, recs[start:i], set); err != nil {
				return err
			}
			start = i
		}
		if i == len(recs) {
			break
		}
		if inside {
			if runs == nil {
				runs, cuts = map[string][]heldRec{}, map[string][]uint64{}
			}
			k := string(held.key)
			if _, ok := runs[k]; !ok {
				runs[k] = slices.Clone(held.rec)
			}
			cuts[k] = append(cuts[k], recs[i].seq)
			if err := setSingle(rp, recs[i], set); err != nil {
				return err
			}
			start = i + 1
			continue
		}
		if i == start {
			startGap, startBounded = g, bounded
		}
	}
	for k, rs := range runs {
		for _, part := range splitRun(rs, cuts[k]) {
			if err := setRuns(rp, part, set); err != nil {
				return err
			}
		}
	}
	return nil
}

// setRuns sets recs (in sequence order, their range holding no other r
// key's records) as few runs as fit, a lone record under a key of its own.
func setRuns(rp []byte, recs []heldRec, set func(k, v []byte) error) error {
	var e runEncoder
	start := 0
	flush := func(end int) error {
		switch end - start {
		case 0:
			return nil
		case 1:
			return setSingle(rp, recs[start], set)
		}
		return set(seqKey(rp, e.prev), e.value())
	}
	for i, r := range recs {
		if !e.add(r) {
			if err := flush(i); err != nil {
				return err
			}
			e.reset()
			start = i
			e.add(r)
		}
	}
	return flush(len(recs))
}

// splitRun cuts recs (a run's records, in sequence order) at each
// sequence of cuts, none of which it holds.
func splitRun(recs []heldRec, cuts []uint64) [][]heldRec {
	slices.Sort(cuts)
	var out [][]heldRec
	for _, c := range cuts {
		i := 0
		for i < len(recs) && recs[i].seq < c {
			i++
		}
		if i > 0 {
			out = append(out, recs[:i])
		}
		recs = recs[i:]
	}
	if len(recs) > 0 {
		out = append(out, recs)
	}
	return out
}

// setSingle sets r under a key of its own, as records were before runs.
func setSingle(rp []byte, r heldRec, set func(k, v []byte) error) error {
	k := seqKey(rp, r.seq)
	switch {
	case r.rv.deleted:
		return set(k, tombstone)
	case r.rv.segment:
		return set(k, encodePointer(r.rv.time, r.rv.ptr))
	}
	return set(k, encodeRecord(ingest.Record{Seq: r.seq, Time: r.rv.time, Payload: r.rv.inline}))
}
