package cache

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"go.uber.org/zap"

	"github.com/outpost-robotics/outpost/badgerdb"
	"github.com/outpost-robotics/outpost/clock"
)

// Errors callers can test with errors.Is.
var (
	// ErrInUse: another process (or another Store in this one) has the directory open.
	ErrInUse = errors.New("store directory is locked")
	// ErrClosed: the Store was closed.
	ErrClosed = errors.New("store is closed")
	// ErrNotFound: no such document, state key or blob.
	ErrNotFound = errors.New("not found")
	// ErrStaleVersion: a document older than the stored one was refused (rollback).
	ErrStaleVersion = errors.New("document version is lower than the stored one")
	// ErrAckBeyondHead: Ack named a sequence number that was never assigned.
	ErrAckBeyondHead = errors.New("ack beyond the head of the stream")
	// ErrDiskFull: free disk is below Budget.MinFreeBytes (or the disk is
	// really full). errors.Is(err, syscall.ENOSPC) is also true.
	ErrDiskFull = diskFullError{}
	// ErrOverBudget: an evictable append could not make room within Budget.MaxBytes.
	ErrOverBudget = errors.New("store is over its byte budget")
	// ErrUnknownStream: the stream is not one of the Stream constants.
	ErrUnknownStream = errors.New("unknown stream")
	// ErrTooLarge: a record, batch or chunk is larger than one commit can hold.
	ErrTooLarge = errors.New("too large for one write")
	// ErrBlobOffset: a blob chunk or upload offset does not continue the blob.
	ErrBlobOffset = errors.New("blob offset does not match the blob")
)

type diskFullError struct{}

func (diskFullError) Error() string        { return "not enough free disk (below the store's minimum)" }
func (diskFullError) Is(target error) bool { return target == syscall.ENOSPC }

// Budget bounds the store's size, so a full disk never stops the part: over
// it the store evicts in a fixed order and says so. Zero fields mean no limit.
type Budget struct {
	// MaxBytes bounds the live bytes of records and blobs.
	MaxBytes int64
	// MinFreeBytes is the free disk left alone; below it writes fail with ErrDiskFull.
	MinFreeBytes int64
}

// Options configures Open. Only Clock is required.
type Options struct {
	// Clock stamps records, documents and the corrupt-store rename, and runs
	// the GC schedule.
	Clock clock.Clock
	// Logger receives the store's and Badger's messages; nil discards them.
	Logger *zap.Logger
	// Budget is the byte budget.
	Budget Budget
	// DiskFree returns the bytes available to the store at path; nil means
	// statfs(2). Tests inject a function to simulate a full disk.
	DiskFree func(path string) (uint64, error)
	// GCInterval is how often value-log GC runs; 0 means 10 minutes, < 0 never.
	GCInterval time.Duration
	// GCAfterAckBytes starts a space reclaim after acks freed this many bytes;
	// 0 means 64 MB.
	GCAfterAckBytes int64
	// AfterSync, when set, is called after each synced commit. It is for
	// fault injection only: the reliability suite makes it wait to model a
	// slow disk's flush (an SD card's), since Badger has no file-system
	// hook. Nil in production.
	AfterSync func()
	// OnReclaim, when set, is called after each background space reclaim
	// (scheduled or after large acks) with its result: for metrics, and for
	// tests to wait on an event rather than on time.
	OnReclaim func(error)
}

// Store is the daemon's durable store. It is safe for concurrent use.
type Store struct {
	db   *badger.DB
	dir  string
	clk  clock.Clock
	log  *zap.Logger
	opts Options
	// movedAside is where Open moved a corrupted store ("" if none).
	movedAside string

	reqs    chan *appendReq
	quit    chan struct{} // closed by Close
	done    sync.WaitGroup
	closed  atomic.Bool
	closeMu sync.RWMutex // see AppendBatch and Close
	gcKick  chan struct{}
	syncs   atomic.Uint64 // group commits (each one sync round)
	// evictedHead is, per log stream, the last sequence head eviction
	// deleted (guarded by mu); evictedRecords and evictedBytes count what
	// eviction removed since Open, for metrics.
	evictedHead                  map[Stream]uint64
	evictedRecords, evictedBytes atomic.Uint64
	// openGaps are the gap records of evictions that later evictions of the
	// same class extend in place, and gapsFrozen the last gap record that
	// may have been read for upload, which is never rewritten (both
	// guarded by mu; see mergeGap).
	openGaps   map[gapClass]openGap
	gapsFrozen uint64
	written    atomic.Int64 // bytes written since the last releaseMappedPages
	// reclaimMu makes reclaims one at a time.
	reclaimMu sync.Mutex
	freedMu   sync.Mutex
	freed     int64 // bytes acked since the last reclaim

	// mu serialises every write to Badger: the committer, Ack, eviction,
	// documents, state and blobs. Holding it is also what lets reclaim call
	// DropPrefix, which refuses concurrent writes.
	mu   sync.Mutex
	meta map[Stream]*streamMeta
	// acked is each stream's ack cursor, published after the commit that
	// moved it, for Read (which does not take mu) to skip records a run
	// acked in part still holds. The map is filled by Open and only read.
	acked map[Stream]*atomic.Uint64
	blobs int64    // bytes of blob chunks present
	purge []string // deleted blobs found by load, removed by Open

	// intake holds appends made durable there and not yet in Badger:
	// pending, in order, with their accounted bytes and each stream's last
	// sequence among them (all guarded by mu; see intake.go). pendingN is
	// len(pending), for readers that do not take mu.
	intake       *intake
	pending      []*appendReq
	pendingBytes int64
	pendingLast  map[Stream]uint64
	pendingN     atomic.Int64
	settleErr    string // the last settle failure logged (guarded by mu)
}

// Open opens (or creates) the store in dir. A directory held by another
// process gives ErrInUse. A store Badger cannot open even after its own
// repair is moved to dir.corrupt-<time> and a fresh one is started; the gap
// stream records that.
func Open(ctx context.Context, dir string, opts Options) (*Store, error) {
	if opts.Clock == nil {
		return nil, errors.New("open store: Options.Clock is required")
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.DiskFree == nil {
		opts.DiskFree = statfsFree
	}
	if opts.GCInterval == 0 {
		opts.GCInterval = 10 * time.Minute
	}
	if opts.GCAfterAckBytes == 0 {
		opts.GCAfterAckBytes = 64 << 20
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	log := opts.Logger.With(zap.String("store", dir))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	db, err := openBadger(dir, log)
	var movedTo string
	if err != nil {
		if isLockError(err) {
			return nil, inUseError(dir)
		}
		if !looksCorrupt(err) {
			return nil, fmt.Errorf("open store %s: %w", dir, err)
		}
		movedTo = dir + ".corrupt-" + opts.Clock.Now().UTC().Format("20060102T150405.000000000Z")
		log.Error("store is corrupted beyond Badger's repair; moving it aside and starting a fresh one",
			zap.String("moved_to", movedTo), zap.Error(err))
		if rerr := os.Rename(dir, movedTo); rerr != nil {
			return nil, fmt.Errorf("open store %s: corrupted (%v) and could not move it aside: %w", dir, err, rerr)
		}
		if merr := os.MkdirAll(dir, 0o700); merr != nil {
			return nil, fmt.Errorf("open store %s: %w", dir, merr)
		}
		db, err = openBadger(dir, log)
		if err != nil {
			return nil, fmt.Errorf("open fresh store %s after moving the corrupted one aside: %w", dir, err)
		}
	}
	s := &Store{
		db: db, dir: dir, clk: opts.Clock, log: log, opts: opts, movedAside: movedTo,
		reqs:   make(chan *appendReq, 1024),
		quit:   make(chan struct{}),
		gcKick: make(chan struct{}, 1),
		meta:   make(map[Stream]*streamMeta),
		acked:  make(map[Stream]*atomic.Uint64),

		evictedHead: make(map[Stream]uint64),
		openGaps:    make(map[gapClass]openGap),
		pendingLast: make(map[Stream]uint64),
	}
	if err := s.load(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	if err := s.recoverIntake(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	// Blobs of captures deleted just before a crash lost their chunks
	// only in part; the chunks go now.
	for _, id := range s.purge {
		// A failure leaves the blob invisible and counted; the next Open
		// tries again. It is no reason to stay down.
		if err := s.purgeBlobLocked(id); err != nil {
			log.Warn("could not remove the chunks of a deleted blob", zap.String("blob", id), zap.Error(err))
			continue
		}
		log.Info("removed the rest of a blob deleted before a restart", zap.String("blob", id))
	}
	s.purge = nil
	if movedTo != "" {
		if err := s.writeGaps([]Gap{{
			Reason: "store corrupted; moved aside to " + movedTo,
		}}); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("open store %s: record the corruption gap: %w", dir, err)
		}
	}
	s.done.Add(2)
	go s.committer()
	go s.gcLoop()
	return s, nil
}

// MovedAside returns where Open moved a store corrupted beyond repair
// before starting a fresh one, or "" when it opened the store it found. The
// loss is declared in a gap record either way; the daemon also logs it once
// its log streams exist, so it reaches the cloud's logs.
func (s *Store) MovedAside() string { return s.movedAside }

// Close stops the store; appends waiting to be committed fail with ErrClosed.
// It is safe to call more than once.
func (s *Store) Close() error {
	s.closeMu.Lock()
	if s.closed.Load() {
		s.closeMu.Unlock()
		return nil
	}
	s.closed.Store(true)
	s.closeMu.Unlock()
	close(s.quit)
	s.done.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	// What the intake holds would be moved by the next Open anyway; a
	// cleared one spares that Open reading the entries it moved.
	serr := s.settleLocked()
	if s.intake != nil {
		if serr == nil {
			serr = s.intake.clear()
		}
		_ = s.intake.close()
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close store %s: %w", s.dir, err)
	}
	if serr != nil {
		return fmt.Errorf("close store %s: %w", s.dir, serr)
	}
	return nil
}

// Dir returns the store's directory.
func (s *Store) Dir() string { return s.dir }

// badgerOptions are the shared ones (package badgerdb), whose synced
// commits the committer groups (see package doc), with conflict detection
// off: every write is serialised by Store.mu, and a lower value threshold.
func badgerOptions(dir string, log *zap.Logger) badger.Options {
	return badgerdb.Options(dir, log).WithDetectConflicts(false).WithValueThreshold(valueThreshold)
}

// valueThreshold sends every value of 512 B or more, such as a capture of
// sensor readings (~1 KiB), to the value log: it is written once, and the
// LSM tree keeps its key and a pointer, so neither memtable flushes nor the
// compactions that acknowledged records' deletions cause copy it again
// (they were a quarter of the part's CPU per drained gigabyte of ~1 KiB
// readings, docs/PERFORMANCE.md). Short log lines and audit events stay in
// the write-ahead log: a Badger commit of those then dirties one file, not
// two, and its sync round is shorter. The space acknowledged records held
// comes back through value-log GC (TestSpaceComesBack covers both sizes).
const valueThreshold = 512

func openBadger(dir string, log *zap.Logger) (db *badger.DB, err error) {
	// Badger panics on some corruptions instead of returning an error.
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("badger panicked while opening: %v", r)
		}
	}()
	return badgerdb.Open(badgerOptions(dir, log), log)
}

func isLockError(err error) bool {
	return strings.Contains(err.Error(), "Cannot acquire directory lock") ||
		errors.Is(err, syscall.EWOULDBLOCK)
}

func inUseError(dir string) error {
	pid := "unknown pid"
	if b, err := os.ReadFile(filepath.Join(dir, "LOCK")); err == nil {
		pid = "pid " + strings.TrimSpace(string(b))
	}
	return fmt.Errorf("store %s is already in use by another process (%s): %w", dir, pid, ErrInUse)
}

// looksCorrupt says whether an Open failure is about the data rather than
// the environment: permissions, a read-only or full disk are not fixed by
// starting over, so those stores are left where they are.
func looksCorrupt(err error) bool {
	switch {
	case errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.EROFS),
		errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EIO),
		errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENOMEM):
		return false
	}
	return true
}

func statfsFree(path string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, err
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// load reads the stream metas and blob totals, and makes sure no sequence
// number can be reused even if a meta were behind its records.
func (s *Store) load() error {
	return s.db.View(func(txn *badger.Txn) error {
		for _, st := range allStreams {
			m := &streamMeta{}
			item, err := txn.Get(metaKey(st))
			switch {
			case errors.Is(err, badger.ErrKeyNotFound):
			case err != nil:
				return fmt.Errorf("read meta of %s: %w", st, err)
			default:
				if err := item.Value(func(v []byte) error {
					var derr error
					*m, derr = decodeMeta(v)
					return derr
				}); err != nil {
					return fmt.Errorf("read meta of %s: %w", st, err)
				}
			}
			// Defensive: the highest key present bounds Last from below.
			it := txn.NewIterator(badger.IteratorOptions{Reverse: true, Prefix: streamPrefix(st)})
			it.Seek(recordKey(st, ^uint64(0), ^uint32(0)))
			if it.Valid() {
				if seq, _ := seqSize(it.Item().Key()); seq > m.Last {
					s.log.Warn("stream meta behind its records; advancing", zap.String("stream", string(st)),
						zap.Uint64("meta_last", m.Last), zap.Uint64("key_last", seq))
					m.Last = seq
				}
			}
			it.Close()
			s.meta[st] = m
			s.acked[st] = &atomic.Uint64{}
			s.acked[st].Store(m.AckedThrough)
		}
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, Prefix: []byte{nsBlobMeta}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			err := it.Item().Value(func(v []byte) error {
				bi, err := decodeBlobMeta(string(it.Item().Key()[1:]), v)
				s.blobs += bi.Size
				if bi.deleted {
					s.purge = append(s.purge, bi.ID)
				}
				return err
			})
			if err != nil {
				return fmt.Errorf("read blob meta: %w", err)
			}
		}
		return nil
	})
}

// totalLocked is the live bytes the budget counts.
func (s *Store) totalLocked() int64 {
	t := s.blobs + s.pendingBytes
	for _, m := range s.meta {
		t += int64(m.Bytes)
	}
	return t
}

// checkDiskLocked returns ErrDiskFull when free disk is below the minimum.
func (s *Store) checkDisk() error {
	if s.opts.Budget.MinFreeBytes <= 0 {
		return nil
	}
	free, err := s.opts.DiskFree(s.dir)
	if err != nil {
		return fmt.Errorf("check free disk: %w", err)
	}
	if int64(free) < s.opts.Budget.MinFreeBytes {
		return fmt.Errorf("%d bytes free, minimum %d: %w", free, s.opts.Budget.MinFreeBytes, ErrDiskFull)
	}
	return nil
}

// mapWriteErr turns a real ENOSPC from Badger into ErrDiskFull.
func mapWriteErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, syscall.ENOSPC) || strings.Contains(err.Error(), "no space left on device") {
		return fmt.Errorf("%w: %v", ErrDiskFull, err)
	}
	return err
}

// update runs fn in one synced read-write transaction.
func (s *Store) update(fn func(txn *badger.Txn) error) error {
	if err := mapWriteErr(s.db.Update(fn)); err != nil {
		return err
	}
	s.synced()
	return nil
}

// synced runs the fault-injection hook after a synced commit.
func (s *Store) synced() {
	if s.opts.AfterSync != nil {
		s.opts.AfterSync()
	}
}
