package badgeringest

import (
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
	"github.com/outpost-robotics/outpost/durable"
)

// Record payloads live in segment files, not in the LSM tree (decision 48):
//
//	segments/NNNNNNNN.seg   append-only, rolled at segmentSize
//
// A put appends the payloads of its new records with one write to the
// active segment and fdatasyncs it before the Badger commit that points at
// them (a put that commits whole writes them before it takes its stream's
// lock, repeats included, and leaves the repeats' bytes out of its
// extents: decision 55), so Badger copies a ~30-byte pointer through its memtables,
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
	// inflight counts each segment's reservations whose commits have not
	// finished; dirty marks a segment one of them failed in (its extents
	// may miss bytes a commit that reported failure did write), which
	// only the next Open settles.
	inflight map[uint32]int
	dirty    map[uint32]bool
	// Chores for Store.housekeep: segments to settle (no longer active,
	// every reservation committed), segments removed (their Badger
	// entries to drop), and how many live-byte deltas deletes have
	// written since they were last folded.
	toSettle []uint32
	gone     []uint32
	deltas   int
	bufs     sync.Pool
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
	ss := &segments{dir: dir, max: max, files: map[uint32]*segFile{}, live: map[uint32]int64{},
		inflight: map[uint32]int{}, dirty: map[uint32]bool{}}
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

// segState is what Badger says of one segment at Open: the extents of
// the puts that committed into it since it was last settled, and its
// live bytes (those extents plus the deltas and base of its live entries).
type segState struct {
	extents []extent
	live    int64
	// known says some entry names the segment: one no entry names has
	// nothing committed in it.
	known bool
	// settling says a fold of its extents had begun: they covered it,
	// though some may be folded already.
	settling bool
}

// recover sets the segments up from what Badger says of them. A segment
// with extents is unsettled (a put may have been writing to it when the
// process died): the bytes past its last extent are cut (a torn tail, or
// puts that never committed) and those between its extents punched out
// (a put that died while a later one committed); a settled one is whole.
// A segment with nothing live is removed, unless it is the highest, which
// stays active, appended to from its end. Unsettled segments other than
// the active one are queued to be settled.
func (ss *segments) recover(states map[uint32]*segState) error {
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
		st := states[id]
		if st == nil {
			st = &segState{}
		}
		if st.live < 0 {
			return fmt.Errorf("segment %s: live bytes %d: its accounting is damaged", segName(id), st.live)
		}
		if st.live == 0 && !highest {
			if err := ss.remove(sf); err != nil {
				return err
			}
			continue
		}
		var end uint64
		if st.settling {
			ss.toSettle = append(ss.toSettle, id)
		}
		if !st.settling && (len(st.extents) > 0 || !st.known) {
			for _, e := range st.extents {
				end = max(end, e.off+e.n)
			}
			if err := ss.punchGaps(id, st.extents, end); err != nil {
				return err
			}
			if err := sf.f.Truncate(int64(end)); err != nil {
				return fmt.Errorf("truncate segment %s: %w", segName(id), err)
			}
			if err := sf.f.Sync(); err != nil {
				return fmt.Errorf("truncate segment %s: %w", segName(id), err)
			}
			if !highest && len(st.extents) > 0 {
				ss.toSettle = append(ss.toSettle, id)
			}
		} else {
			fi, err := sf.f.Stat()
			if err != nil {
				return fmt.Errorf("open segment %s: %w", segName(id), err)
			}
			end = uint64(fi.Size())
		}
		ss.live[id] = st.live
		if highest {
			ss.active, ss.end = sf, end
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
	if err := durable.SyncDir(ss.dir); err != nil {
		f.Close()
		return fmt.Errorf("start segment %s: %w", segName(id), err)
	}
	old := ss.active
	sf := &segFile{id: id, f: f}
	ss.files[id], ss.active, ss.end = sf, sf, 0
	if old == nil {
		return nil
	}
	if ss.live[old.id] <= 0 {
		return ss.remove(old)
	}
	ss.settleIfDone(old.id)
	return nil
}

// settleIfDone queues a segment to be settled once it is no longer active
// and every put that reserved bytes in it committed; ss.mu is held.
func (ss *segments) settleIfDone(id uint32) {
	_, ok := ss.files[id]
	if ok && (ss.active == nil || id != ss.active.id) && ss.inflight[id] == 0 && !ss.dirty[id] {
		ss.toSettle = append(ss.toSettle, id)
	}
}

// release ends the reservation of a put in segment id: committed says
// its Badger commit succeeded. A failure leaves the segment for the next
// Open to settle, since a commit that reports an error may still have
// written its entries.
func (ss *segments) release(id uint32, committed bool) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.inflight[id]--
	if ss.inflight[id] <= 0 {
		delete(ss.inflight, id)
	}
	if !committed {
		ss.dirty[id] = true
	}
	ss.settleIfDone(id)
}

// noteDeltas counts live-byte deltas written by deletes.
func (ss *segments) noteDeltas(n int) {
	ss.mu.Lock()
	ss.deltas += n
	ss.mu.Unlock()
}

// chores takes the queued housekeeping: segments to settle, segments
// removed, and whether the deletes' deltas are due to be folded.
func (ss *segments) chores() (settle, gone []uint32, fold bool) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	settle, gone = ss.toSettle, ss.gone
	ss.toSettle, ss.gone = nil, nil
	if ss.deltas >= foldDeltasEvery {
		fold, ss.deltas = true, 0
	}
	return settle, gone, fold
}

// append writes payloads one after another with one write to the active
// segment and syncs it, returning their pointers; they are one extent,
// from the first pointer's offset. Their bytes count as live from here
// on: a put that fails before its commit leaves them counted (and on
// disk) until the next Open, which goes by the extents committed. Unless
// it fails, the caller releases the reservation once its commit is done.
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
	ss.inflight[sf.id]++
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
		ss.release(sf.id, false)
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
// after the commit that made the records tombstones and wrote the
// segments' live-byte deltas; a punch lost to a crash is redone at Open
// from the erase intents that commit wrote.
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
	delete(ss.dirty, sf.id)
	ss.gone = append(ss.gone, sf.id)
	sf.mu.Lock()
	sf.closed = true
	err := sf.f.Close()
	sf.mu.Unlock()
	if rerr := os.Remove(filepath.Join(ss.dir, segName(sf.id))); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		err = errors.Join(err, rerr)
	} else if rerr == nil {
		// Gone for good before its entries are dropped: a file back after
		// a crash would have entries no longer saying what it holds.
		err = errors.Join(err, durable.SyncDir(ss.dir))
	}
	if err != nil {
		return fmt.Errorf("remove segment %s: %w", segName(sf.id), err)
	}
	return nil
}

// extent is a range of a segment one put appended and committed.
type extent struct{ off, n uint64 }

// punchGaps punches out the bytes of segment id between its extents, up
// to end (recover truncates what is past it).
func (ss *segments) punchGaps(id uint32, exts []extent, end uint64) error {
	slices.SortFunc(exts, func(a, b extent) int { return cmp.Compare(a.off, b.off) })
	at := uint64(0)
	for _, e := range append(exts, extent{off: end}) {
		if e.off > at {
			if err := ss.punchRange(id, at, e.off-at); err != nil {
				return err
			}
		}
		at = max(at, e.off+e.n)
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
	return s.housekeep()
}

// Each segment's state is kept in Badger in entries written with the
// commits that change it, one per put and per delete, never per record:
//
//	e\0SEG OFF     → LEN    an extent a put appended and committed in its
//	                        own commit (4, 8 and 8 bytes big-endian)
//	v\0SEG NONCE   → DELTA  live bytes: NONCE 0 is the segment's base,
//	                        any other a delete's delta (8 bytes each, the
//	                        delta two's complement)
//
// A segment's live bytes are the sum of its extents' lengths, its base and
// its deltas. Once a segment is no longer active and every put that
// reserved bytes in it committed, it is settled: its extents and deltas
// are folded into its base, so Open reads one entry for it. A delete's
// delta is keyed by the offset (plus one) of the lowest payload it erased
// in the segment: each payload is erased once, so no two collide. The
// deltas of all segments are folded into their bases every
// foldDeltasEvery deltas, and at Open.
const foldDeltasEvery = 4096

// foldChunk bounds the entries one folding transaction deletes, well
// under Badger's transaction limit.
const foldChunk = 4096

// settlingNonce marks a segment whose extents are being folded over
// several transactions: Open must not take the extents left for all
// its committed ranges. No delete's nonce (an offset plus one) reaches it.
const settlingNonce = ^uint64(0)

func extentKey(seg uint32, off uint64) []byte {
	b := append(make([]byte, 0, 2+12), 'e', 0)
	b = binary.BigEndian.AppendUint32(b, seg)
	return binary.BigEndian.AppendUint64(b, off)
}

func segEntryPrefix(kind byte, seg uint32) []byte {
	return binary.BigEndian.AppendUint32([]byte{kind, 0}, seg)
}

// parseExtent reads an extent entry from disk: the range must fit a
// segment.
func parseExtent(k, v []byte) (uint32, extent, bool) {
	if len(k) != 2+12 || k[0] != 'e' || k[1] != 0 || len(v) != 8 {
		return 0, extent{}, false
	}
	seg := binary.BigEndian.Uint32(k[2:])
	e := extent{off: binary.BigEndian.Uint64(k[6:]), n: binary.BigEndian.Uint64(v)}
	if seg == 0 || e.off > maxSegOffset || e.n > maxSegOffset {
		return 0, extent{}, false
	}
	return seg, e, true
}

func liveKey(seg uint32, nonce uint64) []byte {
	return binary.BigEndian.AppendUint64(segEntryPrefix('v', seg), nonce)
}

func encodeDelta(d int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(d)) }

// parseLive reads a live-bytes entry from disk: the delta must be within
// what a segment holds.
func parseLive(k, v []byte) (seg uint32, nonce uint64, delta int64, ok bool) {
	if len(k) != 2+12 || k[0] != 'v' || k[1] != 0 || len(v) != 8 {
		return 0, 0, 0, false
	}
	seg, nonce = binary.BigEndian.Uint32(k[2:]), binary.BigEndian.Uint64(k[6:])
	delta = int64(binary.BigEndian.Uint64(v))
	if seg == 0 || delta > maxSegOffset || delta < -maxSegOffset {
		return 0, 0, 0, false
	}
	return seg, nonce, delta, true
}

// segEntry is one extent or live-bytes entry, as folding sees it.
type segEntry struct {
	key   []byte
	delta int64
}

// readSegEntries reads the extents and live-bytes entries under prefix
// (all segments', or one's): per segment, its state and the entries a
// fold would replace (everything but the base).
func (s *Store) readSegEntries(txn *badger.Txn, kind byte, prefix []byte, states map[uint32]*segState, entries map[uint32][]segEntry) error {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true, PrefetchSize: 100})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		s.recoveryReads.Add(1)
		item := it.Item()
		v, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		var seg uint32
		var d int64
		base := false
		if kind == 'e' {
			var e extent
			var ok bool
			if seg, e, ok = parseExtent(item.Key(), v); !ok {
				return fmt.Errorf("malformed extent %x", item.Key())
			}
			d = int64(e.n)
			stateOf(states, seg).extents = append(stateOf(states, seg).extents, e)
		} else {
			var nonce uint64
			var ok bool
			if seg, nonce, d, ok = parseLive(item.Key(), v); !ok {
				return fmt.Errorf("malformed live bytes %x", item.Key())
			}
			base = nonce == 0 || nonce == settlingNonce
			if nonce == settlingNonce {
				stateOf(states, seg).settling = true
			}
		}
		st := stateOf(states, seg)
		st.live += d
		st.known = true
		if !base {
			entries[seg] = append(entries[seg], segEntry{key: item.KeyCopy(nil), delta: d})
		}
	}
	return nil
}

func stateOf(states map[uint32]*segState, seg uint32) *segState {
	st, ok := states[seg]
	if !ok {
		st = &segState{}
		states[seg] = st
	}
	return st
}

// fold adds entries' deltas to segment seg's base and deletes them, a
// chunk per transaction: each is atomic, so the sum of the segment's
// entries never changes. When it settles the segment over several
// transactions, the first marks it settling and the last unmarks it, so
// a crash in between never leaves Open some of its extents to take for
// all of them. s.foldMu is held, so no other fold writes the base.
func (s *Store) fold(seg uint32, entries []segEntry, settling bool) error {
	mark := settling && len(entries) > foldChunk
	if settling && len(entries) == 0 {
		// A settle resumed at Open whose last fold had committed.
		if err := s.db.Update(func(txn *badger.Txn) error { return txn.Delete(liveKey(seg, settlingNonce)) }); err != nil {
			return fmt.Errorf("settle segment %s: %w", segName(seg), err)
		}
		return nil
	}
	n := 0
	for chunk := range slices.Chunk(entries, foldChunk) {
		first, last := n == 0, n+len(chunk) == len(entries)
		n += len(chunk)
		err := s.db.Update(func(txn *badger.Txn) error {
			var err error
			switch {
			case mark && first:
				err = txn.Set(liveKey(seg, settlingNonce), encodeDelta(0))
			case settling && last:
				err = txn.Delete(liveKey(seg, settlingNonce))
			}
			if err != nil {
				return err
			}
			base := int64(0)
			item, err := txn.Get(liveKey(seg, 0))
			switch {
			case err == nil:
				v, err := item.ValueCopy(nil)
				if err != nil {
					return err
				}
				_, _, d, ok := parseLive(item.Key(), v)
				if !ok {
					return fmt.Errorf("malformed live bytes %x", item.Key())
				}
				base = d
			case !errors.Is(err, badger.ErrKeyNotFound):
				return err
			}
			for _, e := range chunk {
				base += e.delta
				if err := txn.Delete(e.key); err != nil {
					return err
				}
			}
			return txn.Set(liveKey(seg, 0), encodeDelta(base))
		})
		if err != nil {
			return fmt.Errorf("fold the live bytes of segment %s: %w", segName(seg), err)
		}
	}
	return nil
}

// settle folds a segment's extents and deltas into its base: it is no
// longer active and every put into it committed, so its extents cover it
// and Open need not read them.
func (s *Store) settle(seg uint32) error {
	s.foldMu.Lock()
	defer s.foldMu.Unlock()
	if _, ok := s.segs.file(seg); !ok {
		return nil // removed: its entries are dropped
	}
	states, entries := map[uint32]*segState{}, map[uint32][]segEntry{}
	err := s.db.View(func(txn *badger.Txn) error {
		if err := s.readSegEntries(txn, 'e', segEntryPrefix('e', seg), states, entries); err != nil {
			return err
		}
		return s.readSegEntries(txn, 'v', segEntryPrefix('v', seg), states, entries)
	})
	if err != nil {
		return fmt.Errorf("settle segment %s: %w", segName(seg), err)
	}
	return s.fold(seg, entries[seg], true)
}

// foldDeltas folds every segment's deltas into its base.
func (s *Store) foldDeltas() error {
	s.foldMu.Lock()
	defer s.foldMu.Unlock()
	states, entries := map[uint32]*segState{}, map[uint32][]segEntry{}
	if err := s.db.View(func(txn *badger.Txn) error {
		return s.readSegEntries(txn, 'v', []byte{'v', 0}, states, entries)
	}); err != nil {
		return fmt.Errorf("fold the segments' live bytes: %w", err)
	}
	for seg, es := range entries {
		if _, ok := s.segs.file(seg); !ok {
			continue // removed: its entries are dropped
		}
		if err := s.fold(seg, es, false); err != nil {
			return err
		}
	}
	return nil
}

// dropSegEntries deletes the entries of a removed segment. Losing this to
// a crash is harmless: Open drops the entries of segments with no file.
func (s *Store) dropSegEntries(seg uint32) error {
	s.foldMu.Lock()
	defer s.foldMu.Unlock()
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	err := s.db.View(func(txn *badger.Txn) error {
		for _, kind := range []byte{'e', 'v'} {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: segEntryPrefix(kind, seg)})
			for it.Rewind(); it.Valid(); it.Next() {
				if err := wb.Delete(it.Item().KeyCopy(nil)); err != nil {
					it.Close()
					return err
				}
			}
			it.Close()
		}
		return nil
	})
	if err == nil {
		err = wb.Flush()
	}
	if err != nil {
		return fmt.Errorf("drop the entries of removed segment %s: %w", segName(seg), err)
	}
	return nil
}

// housekeep does the segments' queued chores: drops the entries of
// removed segments, settles segments no longer written to, and folds the
// deletes' deltas when they are due. Each is an optimisation of Open, and
// one lost to an error or a crash is redone there.
func (s *Store) housekeep() error {
	settle, gone, fold := s.segs.chores()
	var errs []error
	for _, seg := range gone {
		errs = append(errs, s.dropSegEntries(seg))
	}
	for _, seg := range settle {
		errs = append(errs, s.settle(seg))
	}
	if fold {
		errs = append(errs, s.foldDeltas())
	}
	return errors.Join(errs...)
}

// recoverSegments redoes the erase intents a crash left, then reads each
// segment's state from its entries (its extents and live bytes: one
// entry per put into the active segment and into any a crash left
// unsettled, a few per other segment; never the records) and hands them
// to segments.recover, which cuts and punches out what puts that never
// committed appended and removes segments with nothing live. It then
// drops the entries of segments with no file, settles those recover
// queued and folds the deltas.
func (s *Store) recoverSegments() error {
	var intents [][]byte
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{'h', 0}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			s.recoveryReads.Add(1)
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
	states, entries := map[uint32]*segState{}, map[uint32][]segEntry{}
	err = s.db.View(func(txn *badger.Txn) error {
		if err := s.readSegEntries(txn, 'e', []byte{'e', 0}, states, entries); err != nil {
			return err
		}
		return s.readSegEntries(txn, 'v', []byte{'v', 0}, states, entries)
	})
	if err != nil {
		return fmt.Errorf("read the segments' extents and live bytes: %w", err)
	}
	if err := s.segs.recover(states); err != nil {
		return err
	}
	for seg := range states {
		if _, ok := s.segs.file(seg); !ok {
			s.segs.gone = append(s.segs.gone, seg)
		}
	}
	if err := s.housekeep(); err != nil {
		return fmt.Errorf("open segments: %w", err)
	}
	for _, es := range entries {
		if slices.ContainsFunc(es, func(e segEntry) bool { return e.key[0] == 'v' }) {
			return s.foldDeltas()
		}
	}
	return nil
}

// storedRecord reads the held record h of stream key, its payload from its
// segment if it is there; a deleted record is not ok. A payload whose
// segment was removed, or whose bytes were punched out, after the caller's
// transaction began is a record erased since: not ok either, but only if a
// fresh read finds it deleted; otherwise the error stands.
func (s *Store) storedRecord(key ingest.StreamKey, h heldRec) (ingest.StoredRecord, bool, error) {
	rv := h.rv
	if rv.deleted {
		return ingest.StoredRecord{}, false, nil
	}
	payload := rv.inline
	if rv.segment {
		var err error
		payload, err = s.segs.read(rv.ptr)
		if err != nil {
			if s.erasedSince(key, h.seq) {
				return ingest.StoredRecord{}, false, nil
			}
			return ingest.StoredRecord{}, false, fmt.Errorf("read record %s/%d: %w", key, h.seq, err)
		}
	}
	return ingest.StoredRecord{StreamKey: key, Record: ingest.Record{Seq: h.seq, Time: rv.time, Payload: payload}}, true, nil
}

// erasedSince says whether the record is deleted now.
func (s *Store) erasedSince(key ingest.StreamKey, seq uint64) bool {
	gone := false
	_ = s.db.View(func(txn *badger.Txn) error {
		held := newHeldCursor(txn, streamPrefix('r', key))
		defer held.close()
		h, ok, err := held.find(seq)
		gone = ok && h.rv.deleted
		return err
	})
	return gone
}

// liveDeltas are the live-byte deltas, keyed by their entries' keys, of
// erasing payloads in one commit: one per segment.
func liveDeltas(erased []segPtr) map[string]int64 {
	if len(erased) == 0 {
		return nil
	}
	lowest := map[uint32]uint64{}
	sum := map[uint32]int64{}
	for _, p := range erased {
		if o, ok := lowest[p.seg]; !ok || p.off < o {
			lowest[p.seg] = p.off
		}
		sum[p.seg] -= int64(p.n)
	}
	out := make(map[string]int64, len(sum))
	for seg, d := range sum {
		out[string(liveKey(seg, lowest[seg]+1))] = d
	}
	return out
}
