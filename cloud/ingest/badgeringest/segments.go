package badgeringest

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/sys/unix"

	"github.com/outpost-robotics/outpost/cloud/ingest"
)

// Record payloads live in segment files, not in the LSM tree (decision 48):
//
//	segments/NNNNNNNN.seg   append-only, rolled at segmentSize
//
// A put appends the payloads of its new records with one write to the
// active segment and fdatasyncs it before the Badger commit that points at
// them, so Badger copies a ~30-byte pointer through its memtables,
// flushes and compactions instead of the payload. An erased record's bytes
// are punched out of its segment (fallocate PUNCH_HOLE), and a segment with
// nothing live left is removed once it is no longer the active one.

// segmentSize is the size at which the active segment rolls: large enough
// that a put rarely straddles a roll, small enough that a segment whose
// records are mostly erased is soon wholly dead and removed.
const segmentSize = 64 << 20

// segmentDir is the folder, inside the store's, of the segment files.
const segmentDir = "segments"

// Bounds a pointer is checked against: no segment grows past maxSegOffset
// (a put larger than a segment starts a new one and is bounded by the
// sync API's request size), and a payload is shorter than maxPayload.
const (
	maxSegOffset = 1 << 40
	maxPayload   = 1 << 31
)

// errSegmentGone is a read of a segment removed since the pointer was
// read: every record in it was erased in between.
var errSegmentGone = errors.New("segment removed: its records were erased")

// errChecksum is a payload whose bytes do not match its pointer's checksum.
var errChecksum = errors.New("record payload does not match its checksum")

// castagnoli is CRC-32C, computed by the CPU's instruction where it has one.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// segPtr is where a record's payload is: segment, offset, length and the
// payload's CRC-32C.
type segPtr struct {
	seg uint32
	off uint64
	n   uint32
	sum uint32
}

// segFile is one open segment. Its lock is held for reading by each pread
// and hole punch and for writing by its removal, so a file is never closed
// under a read.
type segFile struct {
	id     uint32
	f      *os.File
	mu     sync.RWMutex
	closed bool
}

// segments is the store's set of segment files.
type segments struct {
	dir string
	max uint64 // the roll size
	// mu guards everything below; a put holds it only to reserve its
	// range (and to start a segment, syncing the folder), never across
	// its write or the segment's sync.
	mu     sync.Mutex
	files  map[uint32]*segFile
	active *segFile
	end    uint64 // the active segment's next offset
	// live counts the payload bytes of each segment that committed (or
	// in-flight) records point at; a segment at 0 that is not active is
	// removed.
	live map[uint32]int64
	bufs sync.Pool
}

func segName(id uint32) string { return fmt.Sprintf("%08d.seg", id) }

// openSegments opens every segment file in dir, creating dir if needed.
// The active segment and the live bytes are set by recover.
func openSegments(dir string, max uint64) (*segments, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open segments: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("open segments: %w", err)
	}
	ss := &segments{dir: dir, max: max, files: map[uint32]*segFile{}, live: map[uint32]int64{}}
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".seg")
		if !ok || e.IsDir() {
			continue
		}
		id, err := strconv.ParseUint(name, 10, 32)
		if err != nil || id == 0 {
			continue
		}
		f, err := os.OpenFile(filepath.Join(dir, e.Name()), os.O_RDWR, 0)
		if err != nil {
			ss.close()
			return nil, fmt.Errorf("open segment %s: %w", e.Name(), err)
		}
		ss.files[uint32(id)] = &segFile{id: uint32(id), f: f}
	}
	return ss, nil
}

// recover sets the segments up from what committed records point at:
// maxEnd is, per segment, the end of its last live payload, and live its
// live bytes. Bytes past maxEnd were written by puts that never committed
// (or belong to records erased since): each segment is truncated there,
// and the highest one stays active, appended to from its new end. A
// segment nothing points at is removed, unless it is the highest.
func (ss *segments) recover(maxEnd map[uint32]uint64, live map[uint32]int64) error {
	ids := slices.Sorted(func(yield func(uint32) bool) {
		for id := range ss.files {
			if !yield(id) {
				return
			}
		}
	})
	for i, id := range ids {
		sf := ss.files[id]
		highest := i == len(ids)-1
		if live[id] == 0 && !highest {
			if err := ss.remove(sf); err != nil {
				return err
			}
			continue
		}
		if err := sf.f.Truncate(int64(maxEnd[id])); err != nil {
			return fmt.Errorf("truncate segment %s: %w", segName(id), err)
		}
		if err := sf.f.Sync(); err != nil {
			return fmt.Errorf("truncate segment %s: %w", segName(id), err)
		}
		ss.live[id] = live[id]
		if highest {
			ss.active, ss.end = sf, maxEnd[id]
		}
	}
	if ss.active == nil {
		return ss.roll()
	}
	return nil
}

// roll starts the next segment; ss.mu is held (or the store is opening).
// The folder is synced so the new file's name is durable before any
// commit points into it.
func (ss *segments) roll() error {
	id := uint32(1)
	if ss.active != nil {
		id = ss.active.id + 1
	}
	f, err := os.OpenFile(filepath.Join(ss.dir, segName(id)), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("start segment %s: %w", segName(id), err)
	}
	if err := syncDir(ss.dir); err != nil {
		f.Close()
		return fmt.Errorf("start segment %s: %w", segName(id), err)
	}
	old := ss.active
	sf := &segFile{id: id, f: f}
	ss.files[id], ss.active, ss.end = sf, sf, 0
	if old != nil && ss.live[old.id] <= 0 {
		return ss.remove(old)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// append writes payloads one after another with one write to the active
// segment and syncs it, returning their pointers. Their bytes count as
// live from here on: a put that fails before its commit leaves them
// counted (and on disk) until the next Open, which goes by the pointers
// committed.
func (ss *segments) append(payloads [][]byte) ([]segPtr, error) {
	total := uint64(0)
	for _, p := range payloads {
		total += uint64(len(p))
	}
	ss.mu.Lock()
	if ss.end > 0 && ss.end+total > ss.max {
		if err := ss.roll(); err != nil {
			ss.mu.Unlock()
			return nil, err
		}
	}
	sf, base := ss.active, ss.end
	ss.end += total
	ss.live[sf.id] += int64(total)
	ss.mu.Unlock()

	bp, _ := ss.bufs.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	buf := (*bp)[:0]
	ptrs := make([]segPtr, len(payloads))
	off := base
	for i, p := range payloads {
		buf = append(buf, p...)
		ptrs[i] = segPtr{seg: sf.id, off: off, n: uint32(len(p)), sum: crc32.Checksum(p, castagnoli)}
		off += uint64(len(p))
	}
	// The segment is not removed under this write: the reserved bytes
	// count as live from the reservation on.
	sf.mu.RLock()
	_, err := sf.f.WriteAt(buf, int64(base))
	if err == nil {
		err = fdatasync(sf.f)
	}
	sf.mu.RUnlock()
	*bp = buf[:0]
	if cap(buf) <= 4<<20 {
		ss.bufs.Put(bp)
	}
	if err != nil {
		return nil, fmt.Errorf("append to segment %s: %w", segName(sf.id), err)
	}
	return ptrs, nil
}

func fdatasync(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.Fdatasync(int(fd)) }); err != nil {
		return err
	}
	return serr
}

func (ss *segments) file(id uint32) (*segFile, bool) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	sf, ok := ss.files[id]
	return sf, ok
}

// read returns the payload p points at, checked against its checksum.
func (ss *segments) read(p segPtr) ([]byte, error) {
	sf, ok := ss.file(p.seg)
	if !ok {
		return nil, fmt.Errorf("read segment %s: %w", segName(p.seg), errSegmentGone)
	}
	b := make([]byte, p.n)
	sf.mu.RLock()
	var err error
	if sf.closed {
		err = errSegmentGone
	} else {
		_, err = sf.f.ReadAt(b, int64(p.off))
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
	}
	sf.mu.RUnlock()
	if err != nil {
		return nil, fmt.Errorf("read %d bytes at %d of segment %s: %w", p.n, p.off, segName(p.seg), err)
	}
	if crc32.Checksum(b, castagnoli) != p.sum {
		return nil, fmt.Errorf("read %d bytes at %d of segment %s: %w", p.n, p.off, segName(p.seg), errChecksum)
	}
	return b, nil
}

// erase punches the payloads out of their segments and removes each
// segment left with nothing live that is not the active one. It runs
// after the commit that made the records tombstones; a punch lost to a
// crash is redone at Open from the erase intents that commit wrote.
func (ss *segments) erase(ptrs []segPtr) error {
	var errs []error
	for _, p := range ptrs {
		if err := ss.punch(p); err != nil {
			errs = append(errs, err)
		}
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for _, p := range ptrs {
		if _, ok := ss.files[p.seg]; ok {
			ss.live[p.seg] -= int64(p.n)
		}
	}
	for _, p := range ptrs {
		sf, ok := ss.files[p.seg]
		if ok && sf != ss.active && ss.live[p.seg] <= 0 {
			if err := ss.remove(sf); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// punch deallocates p's bytes (reads of them return zeros); a segment
// already removed has nothing to punch.
func (ss *segments) punch(p segPtr) error { return ss.punchRange(p.seg, p.off, uint64(p.n)) }

func (ss *segments) punchRange(id uint32, off, n uint64) error {
	sf, ok := ss.file(id)
	if !ok || n == 0 {
		return nil
	}
	sf.mu.RLock()
	defer sf.mu.RUnlock()
	if sf.closed {
		return nil
	}
	if err := unix.Fallocate(int(sf.f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, int64(off), int64(n)); err != nil {
		return fmt.Errorf("erase %d bytes at %d of segment %s: %w", n, off, segName(id), err)
	}
	return nil
}

// remove closes and deletes a segment; ss.mu is held (or the store is
// opening). It waits for reads of it in progress.
func (ss *segments) remove(sf *segFile) error {
	delete(ss.files, sf.id)
	delete(ss.live, sf.id)
	sf.mu.Lock()
	sf.closed = true
	err := sf.f.Close()
	sf.mu.Unlock()
	if rerr := os.Remove(filepath.Join(ss.dir, segName(sf.id))); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		err = errors.Join(err, rerr)
	}
	if err != nil {
		return fmt.Errorf("remove segment %s: %w", segName(sf.id), err)
	}
	return nil
}

// highest is the highest segment id on disk; 0 for none.
func (ss *segments) highest() uint32 {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	h := uint32(0)
	for id := range ss.files {
		h = max(h, id)
	}
	return h
}

// punchGaps punches out the bytes of segment id between its live ranges,
// up to end (recover truncates what is past it).
func (ss *segments) punchGaps(id uint32, live []segPtr, end uint64) error {
	slices.SortFunc(live, func(a, b segPtr) int { return cmp.Compare(a.off, b.off) })
	at := uint64(0)
	for _, p := range append(live, segPtr{seg: id, off: end}) {
		if p.off > at {
			if err := ss.punchRange(id, at, p.off-at); err != nil {
				return err
			}
		}
		at = max(at, p.off+uint64(p.n))
	}
	return nil
}

// liveBytes returns the live bytes of each segment file, for tests.
func (ss *segments) liveBytes() map[uint32]int64 {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	out := make(map[uint32]int64, len(ss.files))
	for id := range ss.files {
		out[id] = ss.live[id]
	}
	return out
}

func (ss *segments) close() error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	var errs []error
	for _, sf := range ss.files {
		sf.mu.Lock()
		if !sf.closed {
			sf.closed = true
			errs = append(errs, sf.f.Close())
		}
		sf.mu.Unlock()
	}
	return errors.Join(errs...)
}

// intentKey is the erase intent of p's bytes,
//
//	h\0SEG OFF LEN   (4, 8 and 4 bytes big-endian; no value)
//
// committed with the tombstone that erases the record and deleted once the
// bytes are punched out; Open punches every intent it finds again.
func intentKey(p segPtr) []byte {
	b := append(make([]byte, 0, 2+16), 'h', 0)
	b = binary.BigEndian.AppendUint32(b, p.seg)
	b = binary.BigEndian.AppendUint64(b, p.off)
	return binary.BigEndian.AppendUint32(b, p.n)
}

// parseIntentKey reads an erase intent's key; the length must fit a
// segment, since the key is read from disk.
func parseIntentKey(k []byte) (segPtr, bool) {
	if len(k) != 2+16 || k[0] != 'h' || k[1] != 0 {
		return segPtr{}, false
	}
	p := segPtr{seg: binary.BigEndian.Uint32(k[2:]), off: binary.BigEndian.Uint64(k[6:]), n: binary.BigEndian.Uint32(k[14:])}
	if p.seg == 0 || p.off > maxSegOffset || p.n > maxPayload {
		return segPtr{}, false
	}
	return p, true
}

// eraseSegments punches out the payloads of records whose tombstones just
// committed, removes segments left with nothing live, then deletes the
// erase intents. The intents' delete need not survive a crash: punching
// again is harmless, and Open does it before any new byte is appended.
func (s *Store) eraseSegments(ptrs []segPtr) error {
	if len(ptrs) == 0 {
		return nil
	}
	if err := s.segs.erase(ptrs); err != nil {
		return err
	}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	for _, p := range ptrs {
		if err := wb.Delete(intentKey(p)); err != nil {
			return fmt.Errorf("drop erase intents: %w", err)
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("drop erase intents: %w", err)
	}
	return nil
}

// recoverSegments redoes the erase intents a crash left, then finds each
// segment's live bytes and end from the committed pointers (one walk over
// the record keys, reading only the values Badger's user meta marks as
// pointers) and hands them to segments.recover, which cuts what puts that
// never committed appended and removes segments with nothing live.
func (s *Store) recoverSegments() error {
	var intents [][]byte
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{'h', 0}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().KeyCopy(nil)
			p, ok := parseIntentKey(k)
			if ok {
				if err := s.segs.punch(p); err != nil {
					return err
				}
			}
			intents = append(intents, k)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redo erase intents: %w", err)
	}
	if len(intents) > 0 {
		// Durable before anything is appended, so no intent outlives the
		// bytes it named and punches bytes appended after them.
		wb := s.db.NewWriteBatch()
		defer wb.Cancel()
		for _, k := range intents {
			if err := wb.Delete(k); err != nil {
				return fmt.Errorf("drop erase intents: %w", err)
			}
		}
		if err := wb.Flush(); err != nil {
			return fmt.Errorf("drop erase intents: %w", err)
		}
	}
	maxEnd := map[uint32]uint64{}
	live := map[uint32]int64{}
	// The live ranges of the two highest segments, those a put can have
	// been writing to when the process died (a put reserves its range in
	// the active one, which may roll before it writes), so the bytes of
	// puts that never committed are punched out of them.
	recent := s.segs.highest()
	ranges := map[uint32][]segPtr{}
	err = s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{'r', 0}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			if item.UserMeta()&metaSegment == 0 {
				continue
			}
			var rv recordValue
			if err := item.Value(func(v []byte) error {
				var err error
				rv, err = decodeRecord(v)
				return err
			}); err != nil {
				return fmt.Errorf("record %q: %w", item.Key(), err)
			}
			if !rv.segment {
				continue
			}
			live[rv.ptr.seg] += int64(rv.ptr.n)
			maxEnd[rv.ptr.seg] = max(maxEnd[rv.ptr.seg], rv.ptr.off+uint64(rv.ptr.n))
			if rv.ptr.seg+1 >= recent {
				ranges[rv.ptr.seg] = append(ranges[rv.ptr.seg], rv.ptr)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("find the segments' live records: %w", err)
	}
	for id, rs := range ranges {
		if err := s.segs.punchGaps(id, rs, maxEnd[id]); err != nil {
			return err
		}
	}
	return s.segs.recover(maxEnd, live)
}

// storedRecord reads the record item holds, its payload from its segment
// if it is there; a deleted record is not ok. A payload whose segment was
// removed, or whose bytes were punched out, after the caller's transaction
// began is a record erased since: not ok either, but only if a fresh read
// finds its tombstone; otherwise the error stands.
func (s *Store) storedRecord(item *badger.Item, key ingest.StreamKey, seq uint64) (ingest.StoredRecord, bool, error) {
	var rv recordValue
	var payload []byte
	err := item.Value(func(v []byte) error {
		var err error
		rv, err = decodeRecord(v)
		payload = bytes.Clone(rv.inline)
		return err
	})
	if err != nil {
		return ingest.StoredRecord{}, false, fmt.Errorf("read record %s/%d: %w", key, seq, err)
	}
	if rv.deleted {
		return ingest.StoredRecord{}, false, nil
	}
	if rv.segment {
		payload, err = s.segs.read(rv.ptr)
		if err != nil {
			if s.erasedSince(key, seq) {
				return ingest.StoredRecord{}, false, nil
			}
			return ingest.StoredRecord{}, false, fmt.Errorf("read record %s/%d: %w", key, seq, err)
		}
	}
	return ingest.StoredRecord{StreamKey: key, Record: ingest.Record{Seq: seq, Time: rv.time, Payload: payload}}, true, nil
}

// erasedSince says whether the record is a tombstone now.
func (s *Store) erasedSince(key ingest.StreamKey, seq uint64) bool {
	gone := false
	_ = s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(seqKey(streamPrefix('r', key), seq))
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			gone = deleted(v)
			return nil
		})
	})
	return gone
}
