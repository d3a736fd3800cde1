package badgerdb

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// TestOptionsOpenADurableStore opens Badger with the shared options: they
// must be valid together (the value threshold fits the memtable) and sync
// every write.
func TestOptionsOpenADurableStore(t *testing.T) {
	o := Options(t.TempDir(), nil)
	if !o.SyncWrites {
		t.Fatal("writes are not synced")
	}
	db, err := badger.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("k"), make([]byte, 4<<10)) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestLoggerLevels: errors and warnings keep their level, Badger's info
// lines become debug, its debug lines are dropped.
func TestLoggerLevels(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	l := Logger(zap.New(core))
	l.Errorf("e %d\n", 1)
	l.Warningf("w")
	l.Infof("i")
	l.Debugf("d")
	got := logs.All()
	want := []struct {
		level zap.AtomicLevel
		msg   string
	}{{zap.NewAtomicLevelAt(zap.ErrorLevel), "e 1"}, {zap.NewAtomicLevelAt(zap.WarnLevel), "w"}, {zap.NewAtomicLevelAt(zap.DebugLevel), "i"}}
	if len(got) != len(want) {
		t.Fatalf("%d lines, want %d: %v", len(got), len(want), got)
	}
	for i, w := range want {
		if got[i].Level != w.level.Level() || got[i].Message != w.msg || got[i].LoggerName != "badger" {
			t.Errorf("line %d: %v %q from %q, want %v %q from badger", i, got[i].Level, got[i].Message, got[i].LoggerName, w.level.Level(), w.msg)
		}
	}
}

// TestOpenAfterACrashLeftEmptyLogs: a process killed between creating a
// memtable or value-log file and initialising it leaves an empty file that
// badger.Open refuses; Open removes it and the data written before is there.
func TestOpenAfterACrashLeftEmptyLogs(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(Options(dir, nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("k"), []byte("v")) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"00099.mem", "000099.vlog"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	core, logs := observer.New(zap.WarnLevel)
	db, err = Open(Options(dir, nil), zap.New(core))
	if err != nil {
		t.Fatalf("open after a crash left empty logs: %v", err)
	}
	defer db.Close()
	if err := db.View(func(txn *badger.Txn) error { _, err := txn.Get([]byte("k")); return err }); err != nil {
		t.Fatalf("the record written before: %v", err)
	}
	if n := logs.FilterMessage("removed an empty log file left by a crash").Len(); n != 2 {
		t.Fatalf("%d removals logged, want 2", n)
	}

	// A second Open of the same folder is refused while the first holds it.
	if _, err := Open(Options(dir, nil), nil); !errors.Is(err, syscall.EWOULDBLOCK) {
		t.Fatalf("second open: %v, want an error wrapping EWOULDBLOCK", err)
	}
}
