package badgerstore

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"go.uber.org/zap/zaptest"

	"github.com/outpost-robotics/outpost/cloud/store"
	"github.com/outpost-robotics/outpost/cloud/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := Open(t.TempDir(), zaptest.NewLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Error(err)
			}
		})
		return s
	})
}

// TestNameIndexBuiltAtOpen: a store written before the machine name index
// existed (no index keys, no marker) gets the index when it opens.
func TestNameIndexBuiltAtOpen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(dir, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	err = s.Update(ctx, func(tx store.Tx) error {
		return tx.PutMachine(ctx, store.Machine{ID: "m1", LocationID: "l1", Name: "rover"})
	})
	if err != nil {
		t.Fatal(err)
	}
	// Take the store back to before the index.
	err = s.db.Update(func(txn *badger.Txn) error {
		ik, _ := key(machineNameIndex, "rover", "m1")
		mk, _ := key("meta", machineNamesIndexed)
		return errors.Join(txn.Delete(ik), txn.Delete(mk))
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = Open(dir, zaptest.NewLogger(t)); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.View(ctx, func(tx store.Tx) error {
		ms, _, err := tx.PageMachines(ctx, store.MachineQuery{LocationIDs: []string{"l1"}, Limit: 5})
		if err == nil && (len(ms) != 1 || ms[0].ID != "m1") {
			err = fmt.Errorf("got %+v", ms)
		}
		return err
	})
	if err != nil {
		t.Fatalf("after reopening: %v", err)
	}
}
