// Package badgerdb is the one place Outpost configures Badger: the options
// its stores share, tuned for a part with 1–4 GB of memory
// (docs/PERFORMANCE.md), and the adapter that sends Badger's log lines to
// zap. The stores (cache, cloud/store/badgerstore,
// cloud/ingest/badgeringest) start from Options and adjust what is theirs.
package badgerdb

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"go.uber.org/zap"
)

// Options returns the options every store opens Badger in dir with:
//   - durable: every commit is synced before it returns (a store makes that
//     one sync per group of writes);
//   - small: two 8 MiB memtables, 8 MiB block and index caches, 2 MiB base
//     tables, 2 compactors and 2 goroutines, so a store costs tens of MiB;
//   - values over 1 KiB go to the value log (at most 15 % of the memtable
//     size, or Open fails), in 64 MiB files so GC never rewrites the
//     active one;
//   - no block compression: records are compressed already (images) or
//     tiny.
func Options(dir string, log *zap.Logger) badger.Options {
	return badger.DefaultOptions(dir).
		WithLogger(Logger(log)).
		WithSyncWrites(true).
		WithMemTableSize(8 << 20).
		WithNumMemtables(2).
		WithValueThreshold(1 << 10).
		WithBlockCacheSize(8 << 20).
		WithIndexCacheSize(8 << 20).
		WithValueLogFileSize(64 << 20).
		WithNumCompactors(2).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(8).
		WithBaseTableSize(2 << 20).
		WithCompression(options.None).
		WithNumGoroutines(2)
}

// Logger returns a badger.Logger writing to log (nil for none). Badger's
// Info is chatty (every compaction and flush), so it goes to Debug, and
// its Debug nowhere.
func Logger(log *zap.Logger) badger.Logger {
	if log == nil {
		log = zap.NewNop()
	}
	return logger{log.Named("badger").Sugar()}
}

type logger struct{ l *zap.SugaredLogger }

func (b logger) Errorf(f string, a ...any)   { b.l.Errorf(strings.TrimSpace(f), a...) }
func (b logger) Warningf(f string, a ...any) { b.l.Warnf(strings.TrimSpace(f), a...) }
func (b logger) Infof(f string, a ...any)    { b.l.Debugf(strings.TrimSpace(f), a...) }
func (b logger) Debugf(string, ...any)       {}

// Open opens Badger with o, first working around a crash Badger v4.9.6 does
// not recover from (dgraph-io/badger#2207): a value-log or memtable file it
// had created but not yet initialised when the process died makes Open fail
// with "Create a new file". Such a file is empty and holds no data, so it is
// removed first, under the directory's lock (the one Badger takes), so that
// no running Badger is creating it right now; and an Open that still fails
// that way, having initialised the file, is tried once more. Every store
// opens through here, so a part and a cloud killed at any moment start again.
// A directory another process holds fails with an error that wraps
// syscall.EWOULDBLOCK.
func Open(o badger.Options, log *zap.Logger) (*badger.DB, error) {
	if log == nil {
		log = zap.NewNop()
	}
	if !o.InMemory {
		if err := removeEmptyLogs(o.Dir, log); err != nil {
			return nil, err
		}
	}
	db, err := badger.Open(o)
	if err != nil && strings.Contains(err.Error(), "Create a new file") {
		db, err = badger.Open(o)
	}
	return db, err
}

func removeEmptyLogs(dir string, log *zap.Logger) error {
	d, err := os.Open(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil // Badger creates it
	}
	if err != nil {
		return fmt.Errorf("open badger in %s: %w", dir, err)
	}
	defer d.Close() // also releases the lock
	if err := syscall.Flock(int(d.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return fmt.Errorf("open badger in %s: lock: %w", dir, err)
	}
	vlogs, _ := filepath.Glob(filepath.Join(dir, "*.vlog"))
	mems, _ := filepath.Glob(filepath.Join(dir, "*.mem"))
	for _, f := range append(vlogs, mems...) {
		if st, err := os.Stat(f); err == nil && st.Size() == 0 {
			if err := os.Remove(f); err == nil {
				log.Warn("removed an empty log file left by a crash", zap.String("file", f))
			}
		}
	}
	return nil
}
