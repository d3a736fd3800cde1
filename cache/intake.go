package cache

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"maps"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/outpost-robotics/outpost/durable"
)

// The intake is where small appends become durable (decision 57 in
// docs/ARCHITECTURE.md). Badger's synced commit costs two msyncs of files
// it grows, each a journal commit on ext4 as well as a device cache flush;
// an entry written over blocks that were written once before (the intake
// file is filled with zeros when it is made) costs one fdatasync and no
// journal commit. So the committer writes each group to the intake,
// releases its producers, and moves what the intake holds into Badger in
// one synced commit per many groups: when the intake is full, and before
// anything else reads or changes the streams (Store.lockSettled).
//
// The file holds entries from offset 0:
//
//	gen     uint64  (little-endian) the generation the entry belongs to
//	length  uint32  of the body
//	crc     uint32  CRC-32C (Castagnoli) of gen, length and body
//	body    uvarint count of appends, then for each: uvarint stream name
//	        length, the name, uvarint first sequence, uvarint count of
//	        records, and for each record: priority byte, varint Unix
//	        nanoseconds (0: none), uvarint payload length, payload
//
// A generation is a random number chosen each time the file starts again
// at offset 0, which happens only once everything in it is in Badger.
// Recovery reads entries while they carry the first entry's generation and
// a good checksum; what follows (a torn entry, or an older generation's
// entries) was never acknowledged or is in Badger already. Replaying only
// records whose sequence is after the stream's last in Badger makes even
// an older entry read by mistake harmless.
const (
	intakeFile       = "INTAKE"
	intakeFileBytes  = 4 << 20
	intakeMaxEntry   = 512 << 10
	intakeHeaderSize = 16
)

var intakeCRC = crc32.MakeTable(crc32.Castagnoli)

// intake is the open intake file; the Store's mu guards it.
type intake struct {
	f    *os.File
	size int64
	off  int64
	gen  uint64
	buf  []byte
}

// openIntake opens dir's intake file, creating it filled with zeros when
// it is missing or not of the expected size, and returns the appends the
// current generation holds, in the order they were written. A file of
// another size is read first, then made again. An entry that is whole but
// does not decode ends what is read, and is returned as damage, not as an
// error: the store opens with the appends before it.
func openIntake(dir string) (in *intake, held []*appendReq, damage, err error) {
	path := filepath.Join(dir, intakeFile)
	f, err := os.OpenFile(path, os.O_RDWR, 0o600)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, nil, nil, fmt.Errorf("open intake: %w", err)
	default:
		fi, err := f.Stat()
		if err == nil {
			held, err = decodeIntake(f, fi.Size())
		}
		if errors.Is(err, errBadIntake) {
			damage, err = err, nil
		}
		if err != nil {
			_ = f.Close()
			return nil, nil, nil, fmt.Errorf("read intake: %w", err)
		}
		if fi.Size() == intakeFileBytes {
			return &intake{f: f, size: intakeFileBytes}, held, damage, nil
		}
		_ = f.Close()
	}
	f, err = makeIntake(dir, path)
	if err != nil {
		return nil, nil, nil, err
	}
	return &intake{f: f, size: intakeFileBytes}, held, damage, nil
}

// makeIntake writes a zero-filled intake file under a temporary name,
// syncs it and renames it into place, so that a crash never leaves a short
// one.
func makeIntake(dir, path string) (*os.File, error) {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("make intake: %w", err)
	}
	zero := make([]byte, 256<<10)
	for off := int64(0); off < intakeFileBytes; off += int64(len(zero)) {
		if _, err := f.WriteAt(zero, off); err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("make intake: %w", err)
		}
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("make intake: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("make intake: %w", err)
	}
	if err := durable.SyncDir(dir); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("make intake: %w", err)
	}
	return f, nil
}

// restart begins a new generation at offset 0. The caller has moved
// everything the file held into Badger.
func (in *intake) restart() error {
	var g [8]byte
	if _, err := rand.Read(g[:]); err != nil {
		return fmt.Errorf("choose an intake generation: %w", err)
	}
	in.gen = binary.LittleEndian.Uint64(g[:])
	in.off = 0
	return nil
}

// intakeSize is an upper bound of the entry that would hold reqs.
func intakeSize(reqs []*appendReq) int {
	n := intakeHeaderSize + binary.MaxVarintLen64
	for _, r := range reqs {
		n += 1 + len(r.stream) + 2*binary.MaxVarintLen64
		for _, rec := range r.recs {
			n += 1 + 2*binary.MaxVarintLen64 + len(rec.Payload)
		}
	}
	return n
}

// errIntakeFull says that an entry does not fit after the ones the file
// holds.
var errIntakeFull = errors.New("intake full")

// write appends reqs (their sequences assigned) as one entry and syncs it.
func (in *intake) write(reqs []*appendReq) error {
	b := appendIntakeEntry(in.buf[:0], in.gen, reqs)
	in.buf = b
	if in.off+int64(len(b)) > in.size {
		return errIntakeFull
	}
	if _, err := in.f.WriteAt(b, in.off); err != nil {
		return fmt.Errorf("write intake: %w", err)
	}
	if err := datasync(in.f); err != nil {
		return fmt.Errorf("sync intake: %w", err)
	}
	in.off += int64(len(b))
	if cap(in.buf) > intakeMaxEntry {
		in.buf = nil
	}
	return nil
}

// appendIntakeEntry appends the entry of generation gen holding reqs to dst.
func appendIntakeEntry(dst []byte, gen uint64, reqs []*appendReq) []byte {
	start := len(dst)
	b := append(dst, make([]byte, intakeHeaderSize)...)
	b = binary.AppendUvarint(b, uint64(len(reqs)))
	for _, r := range reqs {
		b = binary.AppendUvarint(b, uint64(len(r.stream)))
		b = append(b, r.stream...)
		b = binary.AppendUvarint(b, r.first)
		b = binary.AppendUvarint(b, uint64(len(r.recs)))
		for _, rec := range r.recs {
			b = append(b, rec.Priority)
			b = binary.AppendVarint(b, recNanos(rec.Time))
			b = binary.AppendUvarint(b, uint64(len(rec.Payload)))
			b = append(b, rec.Payload...)
		}
	}
	h := b[start : start+intakeHeaderSize]
	binary.LittleEndian.PutUint64(h[0:8], gen)
	binary.LittleEndian.PutUint32(h[8:12], uint32(len(b)-start-intakeHeaderSize))
	crc := crc32.Update(crc32.Checksum(h[0:12], intakeCRC), intakeCRC, b[start+intakeHeaderSize:])
	binary.LittleEndian.PutUint32(h[12:16], crc)
	return b
}

// clear overwrites the first entry's header, so that the next Open reads
// nothing; the caller has moved everything the file held into Badger.
func (in *intake) clear() error {
	if _, err := in.f.WriteAt(make([]byte, intakeHeaderSize), 0); err != nil {
		return fmt.Errorf("clear intake: %w", err)
	}
	if err := datasync(in.f); err != nil {
		return fmt.Errorf("clear intake: %w", err)
	}
	return nil
}

func (in *intake) close() error { return in.f.Close() }

// decodeIntake returns the appends of the first generation in the size
// bytes of r, up to the first entry that is torn, of another generation,
// or past the end. An entry whose checksum holds but whose body does not
// decode is damage: decodeIntake returns the appends before it with an
// error wrapping errBadIntake.
func decodeIntake(r io.ReaderAt, size int64) ([]*appendReq, error) {
	var out []*appendReq
	var gen uint64
	h := make([]byte, intakeHeaderSize)
	for off := int64(0); size-off >= intakeHeaderSize; {
		if _, err := r.ReadAt(h, off); err != nil {
			return nil, fmt.Errorf("intake entry at offset %d: %w", off, err)
		}
		g := binary.LittleEndian.Uint64(h[0:8])
		n := int64(binary.LittleEndian.Uint32(h[8:12]))
		if n == 0 || n > size-off-intakeHeaderSize || (off > 0 && g != gen) {
			break
		}
		body := make([]byte, n)
		if _, err := r.ReadAt(body, off+intakeHeaderSize); err != nil {
			return nil, fmt.Errorf("intake entry at offset %d: %w", off, err)
		}
		if crc32.Update(crc32.Checksum(h[0:12], intakeCRC), intakeCRC, body) != binary.LittleEndian.Uint32(h[12:16]) {
			break
		}
		gen = g
		reqs, err := decodeIntakeBody(body)
		if err != nil {
			return out, fmt.Errorf("intake entry at offset %d: %w", off, err)
		}
		out = append(out, reqs...)
		off += intakeHeaderSize + n
	}
	return out, nil
}

func decodeIntakeBody(b []byte) ([]*appendReq, error) {
	d := intakeDecoder{b: b}
	n := d.uvarint()
	var out []*appendReq
	for i := uint64(0); i < n && d.err == nil; i++ {
		name := d.bytes()
		st := Stream(name)
		if d.err == nil && !st.Valid() {
			return nil, fmt.Errorf("unknown stream %.40q: %w", name, errBadIntake)
		}
		first := d.uvarint()
		count := d.uvarint()
		// Each record takes at least three bytes.
		if d.err == nil && (first == 0 || count == 0 || count > uint64(len(d.b))/3) {
			return nil, fmt.Errorf("append of %d records from sequence %d in %d bytes: %w", count, first, len(d.b), errBadIntake)
		}
		r := &appendReq{stream: st, first: first, durable: true}
		for j := uint64(0); j < count && d.err == nil; j++ {
			prio := d.byte()
			ns := d.varint()
			payload := d.bytes()
			rec := Record{Payload: payload, Priority: prio}
			if ns != 0 {
				rec.Time = time.Unix(0, ns).UTC()
			}
			r.recs = append(r.recs, rec)
		}
		out = append(out, r)
	}
	if d.err != nil {
		return nil, d.err
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%d bytes after the last append: %w", len(d.b), errBadIntake)
	}
	return out, nil
}

var errBadIntake = errors.New("malformed intake entry")

// intakeDecoder reads the fields of an entry's body; the first error
// sticks and every later read returns zero.
type intakeDecoder struct {
	b   []byte
	err error
}

func (d *intakeDecoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = fmt.Errorf("bad uvarint: %w", errBadIntake)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *intakeDecoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = fmt.Errorf("bad varint: %w", errBadIntake)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *intakeDecoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.err = fmt.Errorf("truncated: %w", errBadIntake)
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *intakeDecoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) || n > MaxRecordBytes {
		d.err = fmt.Errorf("field of %d bytes, %d left: %w", n, len(d.b), errBadIntake)
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

// intakeLocked makes group durable in the intake and answers its
// producers, or returns false when the group must take the synced Badger
// commit instead: the store has no intake, the group is too large for an
// entry, the budget would need an eviction, or the intake failed (it is
// then closed until the next Open, and the error logged).
func (s *Store) intakeLocked(group []*appendReq) bool {
	if s.intake == nil || intakeSize(group) > intakeMaxEntry {
		return false
	}
	var adding int64
	size := 0
	for _, r := range group {
		adding += r.bytes
		for _, rec := range r.recs {
			size += len(rec.Payload)
		}
	}
	if limit := s.opts.Budget.MaxBytes; limit > 0 && s.totalLocked()+adding > limit {
		return false
	}
	// The group's sequences follow what the intake and Badger hold;
	// pendingLast learns them once the group is in the intake.
	lasts := make(map[Stream]uint64, 2)
	for _, r := range group {
		last, ok := lasts[r.stream]
		if !ok {
			last, ok = s.pendingLast[r.stream]
		}
		if !ok {
			last = s.meta[r.stream].Last
		}
		r.first = last + 1
		lasts[r.stream] = last + uint64(len(r.recs))
	}
	err := s.intake.write(group)
	if errors.Is(err, errIntakeFull) {
		// A settle moves what comes before the group, so the group's
		// sequences still follow. If Badger fails it, the caller settles
		// again and answers the group with that error.
		if serr := s.settleLocked(); serr != nil {
			return false
		}
		err = s.intake.write(group)
	}
	if err != nil {
		s.log.Error("the intake failed; appends take Badger's synced commit until the store is opened again", zap.Error(err))
		_ = s.intake.close()
		s.intake = nil
		return false
	}
	maps.Copy(s.pendingLast, lasts)
	s.syncs.Add(1)
	s.synced()
	// The payloads are the callers', who may reuse them once Append
	// returns: what waits to be settled is a copy.
	slab := make([]byte, 0, size)
	for _, r := range group {
		for i, rec := range r.recs {
			slab = append(slab, rec.Payload...)
			r.recs[i].Payload = slab[len(slab)-len(rec.Payload) : len(slab) : len(slab)]
		}
	}
	s.pending = append(s.pending, group...)
	s.pendingBytes += adding
	s.pendingN.Add(int64(len(group)))
	for _, r := range group {
		r.durable = true
		r.finish(nil)
	}
	return true
}

// settleLocked moves every append the intake holds into Badger, in synced
// transactions, and starts the intake again.
func (s *Store) settleLocked() error {
	if len(s.pending) == 0 {
		return nil
	}
	n, err := s.commitBatches(s.pending)
	for _, r := range s.pending[:n] {
		s.pendingBytes -= r.bytes
	}
	// The moved appends' payloads must not stay reachable from the
	// slice's spare capacity.
	rest := copy(s.pending, s.pending[n:])
	clear(s.pending[rest:])
	s.pending = s.pending[:rest]
	s.pendingN.Add(-int64(n))
	if err != nil {
		return fmt.Errorf("move appends from the intake into the store: %w", err)
	}
	clear(s.pendingLast)
	s.pendingBytes = 0
	if s.intake != nil {
		return s.intake.restart()
	}
	return nil
}

// lockSettled takes mu once every append the intake holds is in Badger, so
// that whoever reads or changes a stream sees all of it.
func (s *Store) lockSettled() error {
	s.mu.Lock()
	if err := s.settleLocked(); err != nil {
		s.mu.Unlock()
		return err
	}
	return nil
}

// settle moves what the intake holds into Badger; it costs nothing when
// the intake holds no append.
func (s *Store) settle() error {
	if s.pendingN.Load() == 0 {
		return nil
	}
	if err := s.lockSettled(); err != nil {
		return err
	}
	s.mu.Unlock()
	return nil
}

// lockTrySettled takes mu and moves what the intake holds into Badger if
// it can. Readers and acks call it: they see or change only what is in
// Badger, so they go on without the intake's appends when Badger refuses
// them (a full disk), rather than stall the upload that would free space.
// A failure is logged once until it changes.
func (s *Store) lockTrySettled() {
	s.mu.Lock()
	err := s.settleLocked()
	switch {
	case err == nil:
		s.settleErr = ""
	case err.Error() != s.settleErr:
		s.settleErr = err.Error()
		s.log.Warn("appends stay in the intake: Badger refused them", zap.Error(err))
	}
}

// trySettle is lockTrySettled for readers that do not otherwise take mu.
func (s *Store) trySettle() {
	if s.pendingN.Load() == 0 {
		return
	}
	s.lockTrySettled()
	s.mu.Unlock()
}

// recoverIntake opens the intake and moves the appends it holds that are
// not in Badger yet (a crash came before they were settled) into Badger.
func (s *Store) recoverIntake() error {
	in, held, damage, err := openIntake(s.dir)
	if err != nil {
		return err
	}

	var todo []*appendReq
	next := map[Stream]uint64{}
	for _, r := range held {
		if _, ok := next[r.stream]; !ok {
			next[r.stream] = s.meta[r.stream].Last + 1
		}
		// Records at or before the stream's last are in Badger already.
		skip := min(uint64(len(r.recs)), next[r.stream]-min(r.first, next[r.stream]))
		if skip == uint64(len(r.recs)) {
			continue
		}
		if r.first+skip != next[r.stream] {
			s.log.Error("the intake holds records after a hole; they get the next sequences",
				zap.String("stream", string(r.stream)), zap.Uint64("intake_first", r.first+skip), zap.Uint64("next", next[r.stream]))
		}
		r.recs = r.recs[skip:]
		r.first = next[r.stream]
		next[r.stream] += uint64(len(r.recs))
		keyLen := recordKeyLen(r.stream)
		for _, rec := range r.recs {
			r.account(rec, keyLen)
		}
		todo = append(todo, r)
	}
	if len(todo) > 0 {
		if _, err := s.commitBatches(todo); err != nil {
			_ = in.close()
			return fmt.Errorf("move %d appends from the intake into the store: %w", len(todo), err)
		}
		s.log.Info("moved appends a stop left in the intake into the store", zap.Int("appends", len(todo)))
	}
	if damage != nil {
		// Which streams and sequences the damaged entries held is not
		// known; the gap record says that appends were lost, and when.
		s.log.Error("the intake is damaged; the appends it held after the damage are lost", zap.Error(damage))
		if err := s.writeGaps([]Gap{{Reason: "appends lost: the store's intake file was damaged (" + damage.Error() + ")"}}); err != nil {
			_ = in.close()
			return fmt.Errorf("record the intake's damage: %w", err)
		}
	}
	if err := in.restart(); err != nil {
		_ = in.close()
		return err
	}
	s.intake = in
	return nil
}
