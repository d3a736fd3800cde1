package badgerdb

import (
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
