// Package badgerdb is the one place Outpost configures Badger: the options
// its stores share, tuned for a part with 1–4 GB of memory
// (docs/PERFORMANCE.md), and the adapter that sends Badger's log lines to
// zap. The stores (cache, cloud/store/badgerstore,
// cloud/ingest/badgeringest) start from Options and adjust what is theirs.
package badgerdb

import (
	"strings"

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
