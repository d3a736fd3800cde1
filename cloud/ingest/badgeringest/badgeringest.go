// Package badgeringest is the embedded ingest.Store: Badger in the cloud's
// data folder, so outpost-cloud keeps what parts upload with nothing but its
// binary and a disk.
//
// It is one of the store packages, the only ones that may import badger
// (docs/ARCHITECTURE.md; deptest checks it). No badger type leaves it:
// callers see ingest.Store, so another engine passes the same storetest
// suite and nothing else changes.
//
// Layout (NUL separates key parts; ingest.ValidateID refuses control
// characters in ids, so a separator can never be part of one):
//
//	r\0PART\0STORE\0STREAM\0SEQ   a record (flags, time, payload or its pointer),
//	                              or a run of records ending at SEQ (recruns.go)
//	m\0PART\0STORE\0STREAM        the stream's meta: watermark and counters
//	l\0PART\0STORE\0STREAM\0LAST  a lost range, keyed by its last sequence
//	b\0PART\0BLOB                 a blob's progress (JSON)
//	p\0PART\0BLOB                 an incomplete blob: declared size, last chunk time
//	s\0PART                       a part's last status
//	T\0STREAM\0TIME PART\0STORE\0SEQ  a run of the time index (bytime.go)
//	t\0STREAM\0TIME PART\0STORE\0SEQ  the time index as stores before runs wrote it
//	h\0SEG OFF LEN                an erase intent (segments.go)
//	e\0SEG OFF                    a put's extent in a segment (segments.go)
//	v\0SEG NONCE                  a segment's live bytes (segments.go)
//
// A record's payload is in a segment file beside Badger's (segments.go):
// the record's value points at it, so the LSM tree holds a few dozen bytes
// per record and a deleted record's bytes are really erased. Records
// written before segment files hold their payloads inline and read as
// before.
//
// SEQ and LAST are 8-byte big-endian, so records sort by sequence.
//
// The watermark is kept in the meta and only ever advances: after a put it
// moves over each next sequence that is stored, and jumps to the end of a
// lost range that covers the next one. It stops at the first sequence that
// is neither, so a stream with a hole costs one lookup per put, and filling
// the hole walks past the records stored beyond it once.
//
// Writes to one stream are serialized by a striped lock (this is a single
// process store), so every existence check and its write see the same
// state; Badger's conflict detection is off. Every commit is synced before
// the put returns, so an acknowledged record is durable.
package badgeringest

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/maphash"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/badgerdb"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/cloud/ingest"
)

// Bounds of one Badger transaction: well under Badger's limit (15% of the
// 32 MB memtable, 4.8 MB), so every batch a part sends (1 MiB and 4,000
// records by default) commits once, and a larger one commits in a few
// pieces instead of failing with ErrTxnTooBig.
const (
	memTableSize  = 32 << 20
	txnMaxBytes   = 4 << 20
	txnMaxRecords = 20_000
	maxReasonLen  = 1 << 10
	lockStripes   = 256
)

// Options configures Open.
type Options struct {
	// Dir is the Badger folder; required.
	Dir string
	// Blobs receives blob bytes; required.
	Blobs ingest.BlobStore
	// Logger receives Badger's messages; nil discards them.
	Logger *zap.Logger
	// AfterSync, when set, is called after each synced commit of records
	// or losses: once per commit, after both the segment's sync and
	// Badger's, which a put does back to back. It is for fault injection
	// only: a test or the reliability suite makes it wait (or move a fake
	// clock) to model a slow disk's flush, since Badger has no file-system
	// hook. Nil in production.
	AfterSync func()
	// Clock dates blob chunks, for expiring abandoned incomplete blobs;
	// nil means the machine's clock.
	Clock clock.Clock
	// PartialBlobQuota bounds the declared bytes of one part's incomplete
	// blobs; 0 means ingest.DefaultPartialBlobQuota.
	PartialBlobQuota uint64
	// MaxPartialBlobs bounds how many incomplete blobs one part has; 0
	// means ingest.DefaultMaxPartialBlobs.
	MaxPartialBlobs int
	// PartialBlobTTL is how long an incomplete blob is kept without a
	// chunk; 0 means ingest.DefaultPartialBlobTTL.
	PartialBlobTTL time.Duration

	// segmentSize is the roll size of segment files; 0 means segmentSize.
	// Tests make it small to see segments roll and go.
	segmentSize uint64
}

// Store is the Badger implementation of ingest.Store.
type Store struct {
	db    *badger.DB
	blobs ingest.BlobStore
	seed  maphash.Seed
	// streams serializes writes per stream key and blobs per blob key;
	// striped, so memory stays fixed however many parts there are.
	streams [lockStripes]sync.Mutex
	blobMu  [lockStripes]sync.Mutex
	// commits counts synced commits of records and losses.
	commits   atomic.Uint64
	afterSync func()
	partial   *partialLimits
	segs      *segments
	// foldMu serializes the writes of segments' live-byte bases.
	foldMu sync.Mutex
	// recoveryReads counts the entries Open read to recover the
	// segments, for tests.
	recoveryReads atomic.Int64
}

var (
	_ ingest.Store        = (*Store)(nil)
	_ ingest.PartialBlobs = (*Store)(nil)
)

// Open opens (or creates) the store in opts.Dir.
func Open(opts Options) (*Store, error) {
	if opts.Dir == "" || opts.Blobs == nil {
		return nil, errors.New("open ingest store: Dir and Blobs are required")
	}
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	bo := badgerdb.Options(opts.Dir, log).
		WithDetectConflicts(false). // writes to a stream are serialized by Store.streams
		WithMemTableSize(memTableSize).
		WithNumLevelZeroTables(8).
		WithNumLevelZeroTablesStall(16).
		WithBaseTableSize(8 << 20).
		WithBaseLevelSize(64 << 20).
		WithBlockCacheSize(64 << 20)
	db, err := badgerdb.Open(bo, log)
	if err != nil {
		return nil, fmt.Errorf("open ingest store in %s: %w", opts.Dir, err)
	}
	segs, err := openSegments(filepath.Join(opts.Dir, segmentDir), cmp.Or(opts.segmentSize, segmentSize))
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open ingest store in %s: %w", opts.Dir, err)
	}
	s := &Store{db: db, blobs: opts.Blobs, seed: maphash.MakeSeed(), partial: newPartialLimits(opts), afterSync: opts.AfterSync, segs: segs}
	if err := s.recoverSegments(); err != nil {
		segs.close()
		db.Close()
		return nil, fmt.Errorf("open ingest store in %s: %w", opts.Dir, err)
	}
	if err := s.buildTimeIndex(); err != nil {
		segs.close()
		db.Close()
		return nil, err
	}
	return s, nil
}

// Commits returns how many synced commits of records and declared losses
// the store has made since Open: what a put costs the disk.
func (s *Store) Commits() uint64 { return s.commits.Load() }

// synced counts a synced commit and runs the fault-injection hook.
func (s *Store) synced() {
	s.commits.Add(1)
	if s.afterSync != nil {
		s.afterSync()
	}
}

// Close closes the database and the segment files.
func (s *Store) Close() error {
	if err := errors.Join(s.db.Close(), s.segs.close()); err != nil {
		return fmt.Errorf("close ingest store: %w", err)
	}
	return nil
}

func (s *Store) lock(stripes *[lockStripes]sync.Mutex, parts ...string) func() {
	m := &stripes[s.stripe(parts...)]
	m.Lock()
	return m.Unlock
}

func (s *Store) stripe(parts ...string) uint64 {
	var h maphash.Hash
	h.SetSeed(s.seed)
	for _, p := range parts {
		h.WriteString(p)
		h.WriteByte(0)
	}
	return h.Sum64() % lockStripes
}

// lockStreams locks the stripes of several streams, each once and in
// stripe order, so two puts that share streams cannot deadlock.
func (s *Store) lockStreams(keys []ingest.StreamKey) func() {
	idx := make([]uint64, 0, len(keys))
	for _, k := range keys {
		idx = append(idx, s.stripe(k.PartID, k.StoreID, k.Stream))
	}
	slices.Sort(idx)
	idx = slices.Compact(idx)
	for _, i := range idx {
		s.streams[i].Lock()
	}
	return func() {
		for _, i := range slices.Backward(idx) {
			s.streams[i].Unlock()
		}
	}
}

// Keys.

func join(kind byte, parts ...string) []byte {
	n := 1
	for _, p := range parts {
		n += 1 + len(p)
	}
	b := make([]byte, 0, n+9)
	b = append(b, kind)
	for _, p := range parts {
		b = append(b, 0)
		b = append(b, p...)
	}
	return b
}

func streamPrefix(kind byte, k ingest.StreamKey) []byte {
	return append(join(kind, k.PartID, k.StoreID, k.Stream), 0)
}

func seqKey(prefix []byte, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(slices.Clip(prefix), seq)
}

// parseRecordKey splits r\0PART\0STORE\0STREAM\0SEQ.
func parseRecordKey(k []byte) (ingest.StreamKey, uint64, bool) {
	if len(k) < 2+8 || k[0] != 'r' || k[1] != 0 {
		return ingest.StreamKey{}, 0, false
	}
	seq := binary.BigEndian.Uint64(k[len(k)-8:])
	rest := k[2 : len(k)-8]
	if len(rest) == 0 || rest[len(rest)-1] != 0 {
		return ingest.StreamKey{}, 0, false
	}
	parts := strings.Split(string(rest[:len(rest)-1]), "\x00")
	if len(parts) != 3 {
		return ingest.StreamKey{}, 0, false
	}
	return ingest.StreamKey{PartID: parts[0], StoreID: parts[1], Stream: parts[2]}, seq, true
}

// Values.

type meta struct {
	watermark, records, bytes, conflicts uint64
}

func (m meta) encode() []byte {
	b := make([]byte, 0, 32)
	for _, v := range []uint64{m.watermark, m.records, m.bytes, m.conflicts} {
		b = binary.BigEndian.AppendUint64(b, v)
	}
	return b
}

func decodeMeta(b []byte) (meta, error) {
	if len(b) != 32 {
		return meta{}, fmt.Errorf("stream meta of %d bytes, want 32", len(b))
	}
	u := func(i int) uint64 { return binary.BigEndian.Uint64(b[i*8:]) }
	return meta{u(0), u(1), u(2), u(3)}, nil
}

// A record value is a flag byte, the time in Unix nanoseconds (flagTime
// says it is set), then either the payload itself (as every version before
// segment files wrote it, and still for an empty payload) or, with
// flagSegment, a pointer to it in a segment file: segment id (4 bytes),
// offset (8), length (4) and CRC-32C (4), big-endian. A deleted record's
// value is a tombstone of the flag byte and the time alone. A value whose
// flag byte has flagRun holds a run of records instead (recruns.go).
const (
	flagTime    = 1
	flagDeleted = 2
	flagSegment = 4
	flagsKnown  = flagTime | flagDeleted | flagSegment

	recordHeader = 9
	pointerLen   = recordHeader + 4 + 8 + 4 + 4
)

// recordValue is a decoded record value.
type recordValue struct {
	time    time.Time
	deleted bool
	// inline is the payload when it is in the value (not copied).
	inline []byte
	// ptr is where the payload is when segment is set.
	ptr     segPtr
	segment bool
}

// size is the payload's length.
func (r recordValue) size() int {
	if r.segment {
		return int(r.ptr.n)
	}
	return len(r.inline)
}

func recordFlags(t time.Time) []byte {
	b := make([]byte, recordHeader, pointerLen)
	if !t.IsZero() {
		b[0] = flagTime
		binary.BigEndian.PutUint64(b[1:], uint64(t.UnixNano()))
	}
	return b
}

// encodeRecord is a record value with the payload inline: how earlier
// versions wrote every record, and how an empty payload and BulkLoad's
// records are written.
func encodeRecord(r ingest.Record) []byte {
	return append(recordFlags(r.Time), r.Payload...)
}

// encodePointer is a record value whose payload is at p.
func encodePointer(t time.Time, p segPtr) []byte {
	b := recordFlags(t)
	b[0] |= flagSegment
	b = binary.BigEndian.AppendUint32(b, p.seg)
	b = binary.BigEndian.AppendUint64(b, p.off)
	b = binary.BigEndian.AppendUint32(b, p.n)
	return binary.BigEndian.AppendUint32(b, p.sum)
}

// encodeLen is an extent's length.
func encodeLen(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

// tombstone is the value of a deleted record.
var tombstone = []byte{flagDeleted, 0, 0, 0, 0, 0, 0, 0, 0}

// decodeRecord decodes a record value read from disk, refusing unknown
// flags and pointers outside what a segment can hold.
func decodeRecord(v []byte) (recordValue, error) {
	if len(v) < recordHeader {
		return recordValue{}, fmt.Errorf("record value of %d bytes, want at least %d", len(v), recordHeader)
	}
	f := v[0]
	if f&^flagsKnown != 0 {
		return recordValue{}, fmt.Errorf("record value with unknown flags %#x", f)
	}
	var r recordValue
	if f&flagTime != 0 {
		r.time = time.Unix(0, int64(binary.BigEndian.Uint64(v[1:]))).UTC()
	}
	switch {
	case f&flagDeleted != 0:
		if f&flagSegment != 0 || len(v) != recordHeader {
			return recordValue{}, fmt.Errorf("tombstone of %d bytes with flags %#x", len(v), f)
		}
		r.deleted = true
	case f&flagSegment != 0:
		if len(v) != pointerLen {
			return recordValue{}, fmt.Errorf("record pointer of %d bytes, want %d", len(v), pointerLen)
		}
		p := v[recordHeader:]
		r.segment = true
		r.ptr = segPtr{seg: binary.BigEndian.Uint32(p), off: binary.BigEndian.Uint64(p[4:]),
			n: binary.BigEndian.Uint32(p[12:]), sum: binary.BigEndian.Uint32(p[16:])}
		if r.ptr.seg == 0 || r.ptr.off > maxSegOffset || r.ptr.n > maxPayload {
			return recordValue{}, fmt.Errorf("record pointer to %d bytes at %d of segment %d: out of bounds", r.ptr.n, r.ptr.off, r.ptr.seg)
		}
	default:
		r.inline = v[recordHeader:]
	}
	return r, nil
}

// Records.

// PutRecords stores the records not held yet and advances the watermark.
func (s *Store) PutRecords(ctx context.Context, key ingest.StreamKey, recs []ingest.Record) (ingest.PutResult, error) {
	return s.PutBatch(ctx, key, recs, nil)
}

// PutBatch declares the losses, stores the records not held yet and
// advances the watermarks, in one synced commit when the batch fits in a
// transaction (see txnMaxBytes); see ingest.Store.
func (s *Store) PutBatch(ctx context.Context, key ingest.StreamKey, recs []ingest.Record, losses []ingest.Loss) (ingest.PutResult, error) {
	if err := key.Validate(); err != nil {
		return ingest.PutResult{}, fmt.Errorf("put records: %w", err)
	}
	for _, r := range recs {
		if r.Seq == 0 {
			return ingest.PutResult{}, fmt.Errorf("put records of %s: sequence 0: %w", key, ingest.ErrInvalid)
		}
	}
	keys := []ingest.StreamKey{key}
	for _, l := range losses {
		lk := ingest.StreamKey{PartID: key.PartID, StoreID: key.StoreID, Stream: l.Stream}
		if err := checkLoss(lk, l.First, l.Last); err != nil {
			return ingest.PutResult{}, err
		}
		keys = append(keys, lk)
	}
	// A batch that commits whole has its payloads written and synced
	// before it takes the stream's lock, so the next batch of the stream
	// writes its segment bytes while this one commits.
	var pre *preWrite
	if len(losses) == 0 && len(recs) <= preWriteMaxRecords {
		var err error
		if pre, err = s.preWrite(key, recs); err != nil {
			return ingest.PutResult{}, fmt.Errorf("put records of %s: %w", key, err)
		}
	}
	defer s.lockStreams(keys)()

	w := s.newWriter()
	w.recKey = key
	w.pre = pre
	defer w.discard()
	defer w.dropPreWrite()
	// Losses first: they commit no later than the records they come with.
	for _, l := range losses {
		lk := ingest.StreamKey{PartID: key.PartID, StoreID: key.StoreID, Stream: l.Stream}
		if err := w.declare(lk, l.First, l.Last, l.Reason); err != nil {
			return ingest.PutResult{}, fmt.Errorf("put records of %s: declare %d..%d of %s lost: %w", key, l.First, l.Last, l.Stream, err)
		}
		if w.full() {
			// Thousands of long reasons outgrow txnMaxBytes; the losses
			// still commit no later than the records they come with.
			if err := w.commit(); err != nil {
				return ingest.PutResult{}, fmt.Errorf("put records of %s: %w", key, err)
			}
		}
	}
	m, err := w.meta(key)
	if err != nil {
		return ingest.PutResult{}, fmt.Errorf("put records of %s: %w", key, err)
	}
	var res ingest.PutResult
	rp := streamPrefix('r', key)
	// A sequence above every one held and every one this put has written
	// cannot be a repeat, so it needs no lookup: a part's batch is
	// increasing and usually new, and the lookups that miss (memtables,
	// then every level's bloom filter) were a tenth of the cloud's CPU per
	// ingested gigabyte of 1 KiB readings.
	top, err := w.highestHeld(rp)
	if err != nil {
		return ingest.PutResult{}, fmt.Errorf("put records of %s: %w", key, err)
	}
	for i, r := range recs {
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("put records of %s: %w", key, err)
		}
		var held heldRec
		found := false
		mine, isMine := w.written[r.Seq]
		switch {
		case isMine:
			found = true
		case r.Seq <= top:
			var err error
			if held, found, err = w.committed(rp, r.Seq); err != nil {
				return res, fmt.Errorf("put records of %s: look up seq %d: %w", key, r.Seq, err)
			}
		default:
			top = r.Seq
		}
		if found {
			same := isMine && bytes.Equal(mine, r.Payload)
			if !isMine {
				var err error
				if same, err = s.sameRecord(held.rv, r.Payload); err != nil {
					return res, fmt.Errorf("put records of %s: read seq %d: %w", key, r.Seq, err)
				}
			}
			if same {
				res.Duplicates++
			} else {
				res.Conflicts = append(res.Conflicts, r.Seq)
				m.conflicts++
				w.dirty[key] = true
			}
			continue
		}
		w.written[r.Seq] = r.Payload
		w.queue(r, i)
		if !r.Time.IsZero() {
			w.times = append(w.times, timeEntry{r.Time.UnixNano(), r.Seq})
			w.cost += 16
		}
		m.records++
		m.bytes += uint64(len(r.Payload))
		w.dirty[key] = true
		res.Stored++
		if w.full() {
			// The counters commit with their records, so they never drift.
			if err := w.commit(); err != nil {
				return res, fmt.Errorf("put records of %s: %w", key, err)
			}
		}
	}
	w.touch(key)
	if err := w.commit(); err != nil {
		return res, fmt.Errorf("put records of %s: %w", key, err)
	}
	res.AckedThrough = m.watermark
	return res, nil
}

// sameRecord says whether the held record rv has payload, or is deleted
// (a deleted record stays deleted: its repeat is a no-op).
func (s *Store) sameRecord(rv recordValue, payload []byte) (bool, error) {
	if rv.deleted || !rv.segment {
		return rv.deleted || bytes.Equal(rv.inline, payload), nil
	}
	if int(rv.ptr.n) != len(payload) || crc32.Checksum(payload, castagnoli) != rv.ptr.sum {
		return false, nil
	}
	held, err := s.segs.read(rv.ptr)
	if err != nil {
		return false, err
	}
	return bytes.Equal(held, payload), nil
}

// checkLoss validates a declared-lost range.
func checkLoss(key ingest.StreamKey, first, last uint64) error {
	if err := key.Validate(); err != nil {
		return fmt.Errorf("declare lost: %w", err)
	}
	if first == 0 || first > last {
		return fmt.Errorf("declare %d..%d of %s lost: want 0 < first <= last: %w", first, last, key, ingest.ErrInvalid)
	}
	return nil
}

// writer is one put's read-write transaction with working copies of the
// stream metas it changes; a meta is written with the records it counts,
// and a commit that would write nothing is skipped, so a repeated batch
// costs no sync.
//
// Watermarks advance once per stream at each commit, not after each loss,
// and never through an iterator of the read-write transaction: Badger sorts
// all of a transaction's pending writes for every iterator it opens on it,
// which would make a batch of n gap records cost O(n² log n), seconds of
// CPU for the thousands a part back from an outage sends. The ranges a
// transaction declares are kept here instead, and those committed before
// it are read through a read-only transaction.
type writer struct {
	s       *Store
	txn     *badger.Txn
	metas   map[ingest.StreamKey]*meta
	dirty   map[ingest.StreamKey]bool
	pending int // entries set since the last commit
	cost    int // their bytes
	// lost holds the ranges declared in txn, by stream.
	lost map[ingest.StreamKey][]ingest.LostRange
	// touched lists the streams whose watermarks the next commit advances.
	touched map[ingest.StreamKey]bool
	// view reads what was committed before txn began (the streams are
	// locked, so nothing else changes them); opened on first use.
	view *badger.Txn
	// segRecs are the new records whose payloads the next commit appends
	// to a segment before it sets their pointers.
	segRecs []segRec
	// pre holds the payloads the put wrote before it took the stream's
	// lock; nil when it did not.
	pre *preWrite
	// recKey is the stream whose records the put writes, and written
	// their payloads by sequence, committed or not: with what was
	// committed before the put (the view), all the stream holds.
	recKey  ingest.StreamKey
	written map[uint64][]byte
	// times are the positions of the records of recKey the next commit
	// writes, for its time runs.
	times []timeEntry
	// cursors find committed records, one per record prefix, in view.
	cursors map[string]*heldCursor
}

// segRec is a new record waiting for its payload's segment append.
type segRec struct {
	seq     uint64
	time    time.Time
	payload []byte
	// i is the record's index in the put.
	i int
}

func (s *Store) newWriter() *writer {
	return &writer{s: s, txn: s.db.NewTransaction(true), metas: map[ingest.StreamKey]*meta{}, dirty: map[ingest.StreamKey]bool{},
		lost: map[ingest.StreamKey][]ingest.LostRange{}, touched: map[ingest.StreamKey]bool{}, written: map[uint64][]byte{},
		cursors: map[string]*heldCursor{}}
}

// committed returns the record seq under the record prefix rp that was
// committed before the view began, deleted ones included.
func (w *writer) committed(rp []byte, seq uint64) (heldRec, bool, error) {
	return w.cursor(rp).find(seq)
}

// cursor returns the view's cursor of the records under prefix rp.
func (w *writer) cursor(rp []byte) *heldCursor {
	c, ok := w.cursors[string(rp)]
	if !ok {
		c = newHeldCursor(w.viewTxn(), rp)
		w.cursors[string(rp)] = c
	}
	return c
}

// queue has the next commit store r of recKey, its payload in a segment.
func (w *writer) queue(r ingest.Record, i int) {
	w.segRecs = append(w.segRecs, segRec{seq: r.Seq, time: r.Time, payload: r.Payload, i: i})
	w.pending++
	w.cost += pointerLen + 64
}

// flushSegments appends the queued payloads to the active segment, synced,
// and sets their pointers and the extent they fill in txn: the bytes are
// durable before the commit that makes them records. It returns the
// segment reserved in, 0 for none; the caller releases it after the
// commit.
func (w *writer) flushSegments() (uint32, error) {
	// In sequence order: the payloads of a run are appended in order, and
	// writeRuns takes the records so.
	slices.SortFunc(w.segRecs, func(a, b segRec) int { return cmp.Compare(a.seq, b.seq) })
	if w.pre != nil {
		return w.pre.seg, w.setPreWritten()
	}
	if len(w.segRecs) == 0 {
		return 0, nil
	}
	payloads := make([][]byte, 0, len(w.segRecs))
	total := uint64(0)
	for _, r := range w.segRecs {
		if len(r.payload) > 0 {
			payloads = append(payloads, r.payload)
			total += uint64(len(r.payload))
		}
	}
	var ptrs []segPtr
	seg := uint32(0)
	if len(payloads) > 0 {
		var err error
		if ptrs, err = w.s.segs.append(payloads); err != nil {
			return 0, err
		}
		seg = ptrs[0].seg
		if err := w.txn.Set(extentKey(seg, ptrs[0].off), encodeLen(total)); err != nil {
			return seg, err
		}
	}
	return seg, w.setRecords(func(r segRec) segPtr {
		if len(r.payload) == 0 {
			return segPtr{}
		}
		p := ptrs[0]
		ptrs = ptrs[1:]
		return p
	})
}

// setRecords sets the queued records (in sequence order) in txn, as runs
// where they can be (writeRuns), each with its payload at the pointer ptr
// gives, called in sequence order (zero for an empty payload).
func (w *writer) setRecords(ptr func(segRec) segPtr) error {
	recs := make([]heldRec, len(w.segRecs))
	for i, r := range w.segRecs {
		p := ptr(r)
		recs[i] = heldRec{seq: r.seq, rv: recordValue{time: r.time, ptr: p, segment: p.seg != 0}}
	}
	w.segRecs = w.segRecs[:0]
	if len(recs) == 0 {
		return nil
	}
	rp := streamPrefix('r', w.recKey)
	return writeRuns(rp, recs, w.cursor(rp), w.txn.Set)
}

// viewTxn returns the read-only transaction of what was committed before
// txn began, opening it on first use.
func (w *writer) viewTxn() *badger.Txn {
	if w.view == nil {
		w.view = w.s.db.NewTransaction(false)
	}
	return w.view
}

// highestHeld returns the highest sequence committed under the record
// prefix rp, deleted ones included; 0 when there is none. A run is keyed
// by its last sequence, so the last key names it.
func (w *writer) highestHeld(rp []byte) (uint64, error) {
	it := w.viewTxn().NewIterator(badger.IteratorOptions{Prefix: rp, Reverse: true})
	defer it.Close()
	it.Seek(append(slices.Clip(rp), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff))
	if !it.ValidForPrefix(rp) {
		return 0, nil
	}
	k := it.Item().Key()
	if len(k) != len(rp)+8 {
		return 0, fmt.Errorf("malformed record key %q", k)
	}
	return binary.BigEndian.Uint64(k[len(rp):]), nil
}

// discard ends the writer's transactions; what was not committed is dropped.
func (w *writer) discard() {
	w.txn.Discard()
	for rp, c := range w.cursors {
		c.close()
		delete(w.cursors, rp)
	}
	if w.view != nil {
		w.view.Discard()
		w.view = nil
	}
}

// touch has the next commit advance key's watermark.
func (w *writer) touch(key ingest.StreamKey) { w.touched[key] = true }

func (w *writer) meta(key ingest.StreamKey) (*meta, error) {
	if m, ok := w.metas[key]; ok {
		return m, nil
	}
	v, err := readMeta(w.txn, key)
	if err != nil {
		return nil, err
	}
	m := &v
	w.metas[key] = m
	return m, nil
}

func (w *writer) set(k, v []byte) error {
	w.pending++
	w.cost += len(k) + len(v)
	return w.txn.Set(k, v)
}

func (w *writer) full() bool { return w.cost >= txnMaxBytes || w.pending >= txnMaxRecords }

// advance moves key's watermark over what is now held or declared lost:
// records the put wrote (a map), records committed before it (an iterator
// of the view, stepping over consecutive ones), ranges it declared from
// w.lost, ranges committed before it through the view.
func (w *writer) advance(key ingest.StreamKey) error {
	m, err := w.meta(key)
	if err != nil {
		return err
	}
	// Ranges declared here, by first sequence: as the watermark moves up,
	// reach is the furthest any range starting at or before it ends.
	mine := slices.SortedFunc(slices.Values(w.lost[key]), func(a, b ingest.LostRange) int { return cmp.Compare(a.First, b.First) })
	i, reach := 0, uint64(0)
	committed := newCoverer(w.viewTxn(), streamPrefix('l', key))
	defer committed.close()
	rp := streamPrefix('r', key)
	wm := m.watermark
	for wm < ^uint64(0) {
		next := wm + 1
		if _, ok := w.written[next]; ok && key == w.recKey {
			wm = next
			continue
		}
		if _, ok, err := w.committed(rp, next); err != nil {
			return fmt.Errorf("advance watermark of %s at %d: %w", key, next, err)
		} else if ok {
			wm = next
			continue
		}
		for ; i < len(mine) && mine[i].First <= next; i++ {
			reach = max(reach, mine[i].Last)
		}
		if reach >= next {
			wm = reach
			continue
		}
		last, ok, err := committed.covering(next)
		if err != nil {
			return fmt.Errorf("advance watermark of %s at %d: %w", key, next, err)
		}
		if !ok {
			break
		}
		wm = last
	}
	if wm != m.watermark {
		m.watermark = wm
		w.dirty[key] = true
	}
	return nil
}

// declare keeps first..last of key as lost and advances its watermark.
func (w *writer) declare(key ingest.StreamKey, first, last uint64, reason string) error {
	if len(reason) > maxReasonLen {
		reason = reason[:maxReasonLen]
	}
	lk := seqKey(streamPrefix('l', key), last)
	item, err := w.txn.Get(lk)
	switch {
	case err == nil:
		// Two ranges ending together: keep their union.
		held := first
		if err := item.Value(func(v []byte) error {
			if len(v) >= 8 {
				held = binary.BigEndian.Uint64(v)
				if reason == "" {
					reason = string(v[8:])
				}
			}
			return nil
		}); err != nil {
			return err
		}
		if held <= first {
			w.touch(key) // declared already: nothing to write
			return nil
		}
	case !errors.Is(err, badger.ErrKeyNotFound):
		return err
	}
	if err := w.set(lk, append(binary.BigEndian.AppendUint64(nil, first), reason...)); err != nil {
		return err
	}
	if _, err := w.meta(key); err != nil {
		return err
	}
	w.lost[key] = append(w.lost[key], ingest.LostRange{First: first, Last: last})
	w.dirty[key] = true
	w.touch(key)
	return nil
}

// commit advances the touched streams' watermarks, writes the changed
// metas and commits, synced, then starts the next transaction; it writes
// nothing when nothing changed.
func (w *writer) commit() error {
	seg, err := w.flushSegments()
	if err == nil {
		err = w.commitTxn()
	}
	if pre := w.pre; pre != nil {
		w.pre = nil
		if err == nil {
			// Bytes of repeats were written but nothing points at them:
			// no longer live, and punched when the segment settles.
			w.s.segs.unlive(pre.seg, pre.dead())
		}
	}
	if seg != 0 {
		w.s.segs.release(seg, err == nil)
		// The put is durable; housekeeping that fails is redone at Open.
		_ = w.s.housekeep()
	}
	return err
}

// commitTxn advances the watermarks, writes the metas and commits txn.
func (w *writer) commitTxn() error {
	for key := range w.touched {
		if err := w.advance(key); err != nil {
			return err
		}
	}
	clear(w.touched)
	if w.pending == 0 && len(w.dirty) == 0 {
		return nil
	}
	if err := writeTimeRuns(w.recKey, w.times, w.txn.Set); err != nil {
		return err
	}
	w.times = w.times[:0]
	for key := range w.dirty {
		if err := w.txn.Set(join('m', key.PartID, key.StoreID, key.Stream), w.metas[key].encode()); err != nil {
			return err
		}
	}
	if err := w.txn.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	w.s.synced()
	w.discard()
	w.txn = w.s.db.NewTransaction(true)
	w.pending, w.cost = 0, 0
	clear(w.dirty)
	clear(w.lost)
	return nil
}

// DeleteRecords marks records deleted, in their runs or as tombstones, and
// erases their payloads; see ingest.Store.
func (s *Store) DeleteRecords(ctx context.Context, key ingest.StreamKey, seqs []uint64) (int, error) {
	if err := key.Validate(); err != nil {
		return 0, fmt.Errorf("delete records: %w", err)
	}
	defer s.lock(&s.streams, key.PartID, key.StoreID, key.Stream)()
	m, err := s.meta(key)
	if err != nil {
		return 0, err
	}
	rp := streamPrefix('r', key)
	mk := join('m', key.PartID, key.StoreID, key.Stream)
	// What was committed before is read through view; the keys this call
	// rewrote are kept in changed, the newest state of each.
	view := s.db.NewTransaction(false)
	defer view.Discard()
	held := newHeldCursor(view, rp)
	defer held.close()
	type changedKey struct {
		recs  []heldRec
		dirty bool
	}
	changed := map[string]*changedKey{}
	txn := s.db.NewTransaction(true)
	defer func() { txn.Discard() }()
	n, pending := 0, 0
	// erased are the payloads in segments of the records txn erases:
	// punched out once it commits, with an intent committed in it so
	// that a punch lost to a crash is redone at Open.
	var erased []segPtr
	var gone []timeEntry
	commit := func() error {
		for k, c := range changed {
			if !c.dirty {
				continue
			}
			c.dirty = false
			// A run only shrinks when its records are marked deleted; the
			// same key keeps its last one, so the ranges stay apart.
			if err := setRuns(rp, c.recs, txn.Set); err != nil {
				return fmt.Errorf("rewrite %q: %w", k, err)
			}
		}
		if err := dropTimes(txn, key, gone); err != nil {
			return fmt.Errorf("drop times: %w", err)
		}
		gone = gone[:0]
		if err := txn.Set(mk, m.encode()); err != nil {
			return err
		}
		deltas := liveDeltas(erased)
		for k, d := range deltas {
			if err := txn.Set([]byte(k), encodeDelta(d)); err != nil {
				return err
			}
		}
		if err := txn.Commit(); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
		s.segs.noteDeltas(len(deltas))
		err := s.eraseSegments(erased)
		erased = erased[:0]
		return err
	}
	for _, seq := range seqs {
		if err := ctx.Err(); err != nil {
			return n, fmt.Errorf("delete records of %s: %w", key, err)
		}
		if _, ok, err := held.find(seq); err != nil {
			return n, fmt.Errorf("delete records of %s: look up seq %d: %w", key, seq, err)
		} else if !ok {
			continue
		}
		c, ok := changed[string(held.key)]
		if !ok {
			c = &changedKey{recs: slices.Clone(held.rec)}
			changed[string(held.key)] = c
		}
		i, ok := heldIndex(c.recs, seq)
		if !ok || c.recs[i].rv.deleted {
			continue
		}
		rv := c.recs[i].rv
		c.recs[i].rv = recordValue{deleted: true}
		c.dirty = true
		if rv.segment {
			if err := txn.Set(intentKey(rv.ptr), nil); err != nil {
				return n, fmt.Errorf("delete records of %s: seq %d: %w", key, seq, err)
			}
			erased = append(erased, rv.ptr)
		}
		if !rv.time.IsZero() {
			gone = append(gone, timeEntry{rv.time.UnixNano(), seq})
		}
		m.records--
		m.bytes -= uint64(rv.size())
		n++
		if pending++; pending >= txnMaxRecords/2 {
			// The counters commit with their tombstones, so they never drift.
			if err := commit(); err != nil {
				return n, fmt.Errorf("delete records of %s: %w", key, err)
			}
			txn, pending = s.db.NewTransaction(true), 0
		}
	}
	if err := commit(); err != nil {
		return n, fmt.Errorf("delete records of %s: %w", key, err)
	}
	return n, nil
}

// coverer finds committed lost ranges of one stream through one iterator
// of a read-only transaction, opened on first use and reused for every
// sequence one advance asks about.
type coverer struct {
	txn *badger.Txn
	lp  []byte
	it  *badger.Iterator
}

func newCoverer(txn *badger.Txn, lp []byte) *coverer { return &coverer{txn: txn, lp: lp} }

func (c *coverer) close() {
	if c.it != nil {
		c.it.Close()
	}
}

// covering finds a lost range holding seq: ranges are keyed by their last
// sequence, so only those ending at or after seq are looked at, and the
// watermark has passed all but the few declared ahead of it.
func (c *coverer) covering(seq uint64) (last uint64, ok bool, err error) {
	if c.it == nil {
		c.it = c.txn.NewIterator(badger.IteratorOptions{Prefix: c.lp})
	}
	it, lp := c.it, c.lp
	for it.Seek(seqKey(lp, seq)); it.ValidForPrefix(lp); it.Next() {
		item := it.Item()
		var first uint64
		if err := item.Value(func(v []byte) error {
			if len(v) < 8 {
				return fmt.Errorf("lost range value of %d bytes", len(v))
			}
			first = binary.BigEndian.Uint64(v)
			return nil
		}); err != nil {
			return 0, false, fmt.Errorf("read lost range: %w", err)
		}
		if first <= seq {
			k := item.Key()
			return binary.BigEndian.Uint64(k[len(k)-8:]), true, nil
		}
	}
	return 0, false, nil
}

func (s *Store) meta(key ingest.StreamKey) (meta, error) {
	var m meta
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		m, err = readMeta(txn, key)
		return err
	})
	return m, err
}

// readMeta reads key's meta in txn; a stream never written has a zero one.
func readMeta(txn *badger.Txn, key ingest.StreamKey) (meta, error) {
	var m meta
	item, err := txn.Get(join('m', key.PartID, key.StoreID, key.Stream))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return m, nil
	}
	if err == nil {
		err = item.Value(func(v []byte) error {
			m, err = decodeMeta(v)
			return err
		})
	}
	if err != nil {
		return meta{}, fmt.Errorf("read meta of %s: %w", key, err)
	}
	return m, nil
}

// DeclareLost keeps a lost range and advances the watermark over it.
func (s *Store) DeclareLost(ctx context.Context, key ingest.StreamKey, first, last uint64, reason string) (uint64, error) {
	if err := checkLoss(key, first, last); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("declare lost of %s: %w", key, err)
	}
	defer s.lockStreams([]ingest.StreamKey{key})()
	w := s.newWriter()
	defer w.discard()
	if err := w.declare(key, first, last, reason); err != nil {
		return 0, fmt.Errorf("declare %d..%d of %s lost: %w", first, last, key, err)
	}
	if err := w.commit(); err != nil {
		return 0, fmt.Errorf("declare %d..%d of %s lost: %w", first, last, key, err)
	}
	return w.metas[key].watermark, nil
}

// AckedThrough returns the stream's watermark.
func (s *Store) AckedThrough(_ context.Context, key ingest.StreamKey) (uint64, error) {
	if err := key.Validate(); err != nil {
		return 0, fmt.Errorf("read watermark: %w", err)
	}
	m, err := s.meta(key)
	return m.watermark, err
}

// Lost returns the stream's lost ranges.
func (s *Store) Lost(_ context.Context, key ingest.StreamKey) ([]ingest.LostRange, error) {
	if err := key.Validate(); err != nil {
		return nil, fmt.Errorf("read lost ranges: %w", err)
	}
	var out []ingest.LostRange
	lp := streamPrefix('l', key)
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: lp, PrefetchValues: true, PrefetchSize: 16})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			err := it.Item().Value(func(v []byte) error {
				if len(v) < 8 {
					return fmt.Errorf("lost range value of %d bytes", len(v))
				}
				out = append(out, ingest.LostRange{First: binary.BigEndian.Uint64(v), Last: binary.BigEndian.Uint64(k[len(k)-8:]), Reason: string(v[8:])})
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read lost ranges of %s: %w", key, err)
	}
	return out, nil
}

// Records pages through stored records in key order.
func (s *Store) Records(ctx context.Context, q ingest.Query) ([]ingest.StoredRecord, string, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = ingest.DefaultLimit
	}
	limit = min(limit, ingest.MaxLimit)
	var after []byte
	if q.After != "" {
		b, err := base64.RawURLEncoding.DecodeString(q.After)
		if _, _, ok := parseRecordKey(b); err != nil || !ok {
			return nil, "", fmt.Errorf("read records: malformed cursor: %w", ingest.ErrInvalid)
		}
		after = b
	}
	prefixes := [][]byte{{'r', 0}}
	if len(q.PartIDs) > 0 {
		parts := slices.Clone(q.PartIDs)
		slices.Sort(parts)
		parts = slices.Compact(parts)
		prefixes = prefixes[:0]
		for _, p := range parts {
			if err := ingest.ValidateID("part id", p); err != nil {
				return nil, "", fmt.Errorf("read records: %w", err)
			}
			prefixes = append(prefixes, append(join('r', p), 0))
		}
	}
	var out []ingest.StoredRecord
	var lastKey []byte
	more := false
	err := s.db.View(func(txn *badger.Txn) error {
		var recs []heldRec
		for _, pp := range prefixes {
			if after != nil && bytes.Compare(pp, after) < 0 && !bytes.HasPrefix(after, pp) {
				continue // wholly before the cursor
			}
			it := txn.NewIterator(badger.IteratorOptions{Prefix: pp, PrefetchValues: true, PrefetchSize: min(limit, 100)})
			err := func() error {
				defer it.Close()
				start := pp
				if after != nil && bytes.Compare(after, pp) > 0 {
					// The cursor names a record, which may be inside a
					// run: the run is the first key at or after it (runs
					// are keyed by their last sequence), and what it holds
					// up to the cursor is skipped.
					start = after
				}
				for it.Seek(start); it.ValidForPrefix(pp); {
					if err := ctx.Err(); err != nil {
						return err
					}
					item := it.Item()
					k := item.KeyCopy(nil)
					key, last, ok := parseRecordKey(k)
					if !ok {
						return fmt.Errorf("malformed record key %q", k)
					}
					if q.Stream != "" && key.Stream != q.Stream {
						// Skip to the wanted stream of this store, or past the store.
						if key.Stream < q.Stream {
							it.Seek(streamPrefix('r', ingest.StreamKey{PartID: key.PartID, StoreID: key.StoreID, Stream: q.Stream}))
						} else {
							it.Seek(append(join('r', key.PartID, key.StoreID), 1))
						}
						continue
					}
					var err error
					if recs, err = decodeItem(recs[:0], item, last); err != nil {
						return fmt.Errorf("read record key %q: %w", k, err)
					}
					it.Next()
					rp := k[:len(k)-8]
					for _, h := range recs {
						rk := seqKey(rp, h.seq)
						if after != nil && bytes.Compare(rk, after) <= 0 {
							continue
						}
						if h.rv.deleted || (!q.From.IsZero() && h.rv.time.Before(q.From)) || (!q.To.IsZero() && !h.rv.time.Before(q.To)) {
							continue
						}
						rec, ok, err := s.storedRecord(key, h)
						if err != nil {
							return err
						}
						if !ok {
							continue
						}
						if len(out) == limit {
							more = true
							return nil
						}
						out = append(out, rec)
						lastKey = rk
					}
				}
				return nil
			}()
			if err != nil || more {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("read records: %w", err)
	}
	next := ""
	if more {
		next = base64.RawURLEncoding.EncodeToString(lastKey)
	}
	return out, next, nil
}

// Count sums the stream's counters over the part's stores.
func (s *Store) Count(_ context.Context, partID, stream string) (ingest.Count, error) {
	if err := ingest.ValidateID("part id", partID); err != nil {
		return ingest.Count{}, fmt.Errorf("count records: %w", err)
	}
	var c ingest.Count
	pp := append(join('m', partID), 0)
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: pp, PrefetchValues: true, PrefetchSize: 16})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			_, st, ok := strings.Cut(string(k[len(pp):]), "\x00")
			if !ok || st != stream {
				continue
			}
			if err := it.Item().Value(func(v []byte) error {
				m, err := decodeMeta(v)
				c.Records += m.records
				c.Bytes += m.bytes
				c.Conflicts += m.conflicts
				return err
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return ingest.Count{}, fmt.Errorf("count records of %s/%s: %w", partID, stream, err)
	}
	return c, nil
}

// Blobs.

// blobMeta is a blob's progress. HashState is the SHA-256 state over the
// bytes received, so completing a blob never reads it back.
type blobMeta struct {
	Size      uint64 `json:"size"`
	SHA256    []byte `json:"sha256"`
	Name      string `json:"name,omitempty"`
	Meta      []byte `json:"meta,omitempty"`
	Received  uint64 `json:"received"`
	Complete  bool   `json:"complete,omitempty"`
	HashState []byte `json:"hash_state,omitempty"`
	// Deleted says people deleted the blob: its bytes are gone, and chunks
	// sent for it again are acknowledged and dropped.
	Deleted bool `json:"deleted,omitempty"`
}

func (s *Store) loadBlob(key ingest.BlobKey) (blobMeta, bool, error) {
	var m blobMeta
	found := false
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(join('b', key.PartID, key.BlobID))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		return item.Value(func(v []byte) error { return json.Unmarshal(v, &m) })
	})
	if err != nil {
		return blobMeta{}, false, fmt.Errorf("read blob %s/%s: %w", key.PartID, key.BlobID, err)
	}
	return m, found, nil
}

// saveBlob saves a blob's progress and, in the same transaction, its entry
// among the part's incomplete blobs (dated now) or its removal from them.
func (s *Store) saveBlob(key ingest.BlobKey, m blobMeta) error {
	v, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode blob %s/%s: %w", key.PartID, key.BlobID, err)
	}
	err = s.db.Update(func(txn *badger.Txn) error {
		if err := txn.Set(join('b', key.PartID, key.BlobID), v); err != nil {
			return err
		}
		if m.Complete || m.Deleted {
			return txn.Delete(join('p', key.PartID, key.BlobID))
		}
		return txn.Set(join('p', key.PartID, key.BlobID), encodePartial(m.Size, s.partial.clock.Now()))
	})
	if err != nil {
		return fmt.Errorf("save blob %s/%s: %w", key.PartID, key.BlobID, err)
	}
	return nil
}

func (s *Store) dropBlob(key ingest.BlobKey) error {
	err := s.db.Update(func(txn *badger.Txn) error {
		if err := txn.Delete(join('b', key.PartID, key.BlobID)); err != nil {
			return err
		}
		return txn.Delete(join('p', key.PartID, key.BlobID))
	})
	if err != nil {
		return fmt.Errorf("drop blob %s/%s: %w", key.PartID, key.BlobID, err)
	}
	return nil
}

// PutBlobChunk stores one chunk; see ingest.Store.
func (s *Store) PutBlobChunk(ctx context.Context, c ingest.BlobChunk) (ingest.BlobProgress, error) {
	key := ingest.BlobKey{PartID: c.PartID, BlobID: c.BlobID}
	if err := ingest.ValidateID("part id", c.PartID); err != nil {
		return ingest.BlobProgress{}, fmt.Errorf("put blob chunk: %w", err)
	}
	if err := ingest.ValidateID("blob id", c.BlobID); err != nil {
		return ingest.BlobProgress{}, fmt.Errorf("put blob chunk: %w", err)
	}
	if len(c.SHA256) != sha256.Size {
		return ingest.BlobProgress{}, fmt.Errorf("put blob %s/%s: SHA-256 of %d bytes, want 32: %w", c.PartID, c.BlobID, len(c.SHA256), ingest.ErrInvalid)
	}
	if c.Offset > c.Size || uint64(len(c.Data)) > c.Size-c.Offset {
		return ingest.BlobProgress{}, fmt.Errorf("put blob %s/%s: chunk at %d of %d bytes ends past the blob's %d bytes: %w", c.PartID, c.BlobID, c.Offset, len(c.Data), c.Size, ingest.ErrInvalid)
	}
	if err := ctx.Err(); err != nil {
		return ingest.BlobProgress{}, fmt.Errorf("put blob %s/%s: %w", c.PartID, c.BlobID, err)
	}
	defer s.lock(&s.blobMu, c.PartID, c.BlobID)()

	m, found, err := s.loadBlob(key)
	if err != nil {
		return ingest.BlobProgress{}, err
	}
	if found && m.Deleted {
		// Deleted data never comes back: the part may forget the blob.
		return ingest.BlobProgress{Received: c.Size, Complete: true}, nil
	}
	reserved := false
	if found && (m.Size != c.Size || !bytes.Equal(m.SHA256, c.SHA256)) {
		if m.Complete || c.Offset != 0 {
			return ingest.BlobProgress{Received: m.Received, Complete: m.Complete}, fmt.Errorf("put blob %s/%s: size or SHA-256 differ from the blob's earlier chunks: %w", c.PartID, c.BlobID, ingest.ErrBlobConflict)
		}
		// The part started the blob over with other contents. The new size
		// is admitted before the old bytes go, so a refusal leaves the blob
		// as its progress says.
		if err := s.reservePartial(key, c.Size); err != nil {
			return ingest.BlobProgress{}, err
		}
		if err := s.blobs.Discard(ctx, key); err != nil {
			return ingest.BlobProgress{}, err
		}
		found, reserved = false, true
	}
	if !found {
		if !reserved {
			if err := s.reservePartial(key, c.Size); err != nil {
				return ingest.BlobProgress{}, err
			}
		}
		st, err := ingest.EmptyHashState()
		if err != nil {
			return ingest.BlobProgress{}, fmt.Errorf("put blob %s/%s: %w", c.PartID, c.BlobID, err)
		}
		m = blobMeta{Size: c.Size, SHA256: bytes.Clone(c.SHA256), Name: c.Name, Meta: c.Meta, HashState: st}
	}
	progress := func() ingest.BlobProgress { return ingest.BlobProgress{Received: m.Received, Complete: m.Complete} }
	if m.Complete {
		return progress(), nil
	}
	if m.Received < m.Size {
		data, next, sum, err := ingest.NextChunk(c, m.Received, m.HashState)
		if err != nil {
			return ingest.BlobProgress{}, fmt.Errorf("put blob %s/%s: %w", c.PartID, c.BlobID, err)
		}
		if data == nil {
			// A gap, or bytes received before: store nothing; the answer
			// says where to resume.
			return progress(), nil
		}
		if err := s.blobs.WriteAt(ctx, key, m.Received, data); err != nil {
			return progress(), err
		}
		m.HashState = next
		m.Received += uint64(len(data))
		if m.Received == m.Size && !bytes.Equal(sum, m.SHA256) {
			// Keep nothing of it: the part sends the whole blob again.
			if err := s.blobs.Discard(ctx, key); err != nil {
				return ingest.BlobProgress{}, err
			}
			if err := s.dropBlob(key); err != nil {
				return ingest.BlobProgress{}, err
			}
			return ingest.BlobProgress{}, fmt.Errorf("put blob %s/%s: %w; discarded, send it again from the start", c.PartID, c.BlobID, ingest.ErrBlobMismatch)
		}
	} else if m.Size == 0 {
		// An empty blob: nothing to write, but a file to commit.
		if !bytes.Equal(sha256.New().Sum(nil), m.SHA256) {
			return ingest.BlobProgress{}, fmt.Errorf("put blob %s/%s: %w", c.PartID, c.BlobID, ingest.ErrBlobMismatch)
		}
		if err := s.blobs.WriteAt(ctx, key, 0, nil); err != nil {
			return progress(), err
		}
	}
	// Received == Size is saved before the commit, so a retry after a
	// crash in between finishes the commit instead of writing again.
	if err := s.saveBlob(key, m); err != nil {
		return ingest.BlobProgress{}, err
	}
	if m.Received == m.Size {
		if err := s.blobs.Commit(ctx, key); err != nil {
			return ingest.BlobProgress{Received: m.Received}, err
		}
		m.Complete, m.HashState = true, nil
		if err := s.saveBlob(key, m); err != nil {
			return ingest.BlobProgress{}, err
		}
	}
	return progress(), nil
}

// DeleteBlob erases a blob and keeps its id as deleted; see ingest.Store.
func (s *Store) DeleteBlob(ctx context.Context, partID, blobID string) error {
	key := ingest.BlobKey{PartID: partID, BlobID: blobID}
	if err := ingest.ValidateID("part id", partID); err != nil {
		return fmt.Errorf("delete blob: %w", err)
	}
	if err := ingest.ValidateID("blob id", blobID); err != nil {
		return fmt.Errorf("delete blob: %w", err)
	}
	defer s.lock(&s.blobMu, partID, blobID)()
	// The mark is saved first: a crash before the bytes are gone leaves a
	// deleted blob whose files the next delete removes, never a readable one.
	if err := s.saveBlob(key, blobMeta{Deleted: true}); err != nil {
		return err
	}
	return s.blobs.Delete(ctx, key)
}

// Blob returns a blob's progress.
func (s *Store) Blob(_ context.Context, partID, blobID string) (ingest.BlobInfo, error) {
	key := ingest.BlobKey{PartID: partID, BlobID: blobID}
	if err := ingest.ValidateID("part id", partID); err != nil {
		return ingest.BlobInfo{}, fmt.Errorf("read blob: %w", err)
	}
	if err := ingest.ValidateID("blob id", blobID); err != nil {
		return ingest.BlobInfo{}, fmt.Errorf("read blob: %w", err)
	}
	m, found, err := s.loadBlob(key)
	if err != nil {
		return ingest.BlobInfo{}, err
	}
	if !found || m.Deleted {
		return ingest.BlobInfo{}, fmt.Errorf("read blob %s/%s: %w", partID, blobID, ingest.ErrNotFound)
	}
	return ingest.BlobInfo{
		BlobKey: key, BlobProgress: ingest.BlobProgress{Received: m.Received, Complete: m.Complete},
		Size: m.Size, SHA256: m.SHA256, Name: m.Name, Meta: m.Meta,
	}, nil
}

// Status.

// PutStatus keeps the part's status: the receive time, then the protobuf.
func (s *Store) PutStatus(_ context.Context, partID string, st *syncv1.PartStatus, at time.Time) error {
	if err := ingest.ValidateID("part id", partID); err != nil {
		return fmt.Errorf("put status: %w", err)
	}
	raw, err := proto.Marshal(st)
	if err != nil {
		return fmt.Errorf("put status of %s: encode: %w", partID, err)
	}
	v := append(binary.BigEndian.AppendUint64(nil, uint64(at.UnixNano())), raw...)
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(join('s', partID), v) }); err != nil {
		return fmt.Errorf("put status of %s: %w", partID, err)
	}
	return nil
}

// Status returns the part's last status.
// Statuses reads every status asked for in one transaction.
func (s *Store) Statuses(_ context.Context, partIDs []string) (map[string]ingest.PartStatus, error) {
	out := make(map[string]ingest.PartStatus, len(partIDs))
	err := s.db.View(func(txn *badger.Txn) error {
		for _, id := range partIDs {
			if ingest.ValidateID("part id", id) != nil {
				continue
			}
			item, err := txn.Get(join('s', id))
			if errors.Is(err, badger.ErrKeyNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			err = item.Value(func(v []byte) error {
				if len(v) < 8 {
					return fmt.Errorf("status value of %d bytes", len(v))
				}
				st := &syncv1.PartStatus{}
				if err := proto.Unmarshal(v[8:], st); err != nil {
					return err
				}
				out[id] = ingest.PartStatus{Status: st, At: time.Unix(0, int64(binary.BigEndian.Uint64(v))).UTC()}
				return nil
			})
			if err != nil {
				return fmt.Errorf("status of %s: %w", id, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read statuses: %w", err)
	}
	return out, nil
}

func (s *Store) Status(_ context.Context, partID string) (ingest.PartStatus, error) {
	if err := ingest.ValidateID("part id", partID); err != nil {
		return ingest.PartStatus{}, fmt.Errorf("read status: %w", err)
	}
	var out ingest.PartStatus
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(join('s', partID))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return ingest.ErrNotFound
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			if len(v) < 8 {
				return fmt.Errorf("status value of %d bytes", len(v))
			}
			st := &syncv1.PartStatus{}
			if err := proto.Unmarshal(v[8:], st); err != nil {
				return err
			}
			out = ingest.PartStatus{Status: st, At: time.Unix(0, int64(binary.BigEndian.Uint64(v))).UTC()}
			return nil
		})
	})
	if err != nil {
		return ingest.PartStatus{}, fmt.Errorf("read status of %s: %w", partID, err)
	}
	return out, nil
}
