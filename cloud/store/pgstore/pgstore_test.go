package pgstore_test

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outpost-robotics/outpost/cloud/pgmigrate"
	"github.com/outpost-robotics/outpost/cloud/pgtest"
	"github.com/outpost-robotics/outpost/cloud/store"
	"github.com/outpost-robotics/outpost/cloud/store/pgstore"
	"github.com/outpost-robotics/outpost/cloud/store/storetest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func open(t *testing.T, url string) *pgstore.Store {
	t.Helper()
	s, err := pgstore.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return open(t, pgtest.Database(t)) })
}

// TestMigrations applies every version in order, on an empty database and
// over the rows testdata/seed_NNNN.sql writes at each version, then reads
// the seeded records back through the store: a database that lived
// through every release opens and reads as a new one.
func TestMigrations(t *testing.T) {
	ctx := context.Background()
	set := pgstore.Migrations()
	ms, err := set.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	for _, seeded := range []bool{false, true} {
		t.Run(fmt.Sprint("seeded=", seeded), func(t *testing.T) {
			url := pgtest.Database(t)
			pool, err := pgxpool.New(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			defer pool.Close()
			for _, m := range ms {
				if err := pgmigrate.ApplyThrough(ctx, pool, set, m.Version); err != nil {
					t.Fatal(err)
				}
				if !seeded {
					continue
				}
				seed, err := testdata.ReadFile(fmt.Sprintf("testdata/seed_%04d.sql", m.Version))
				if err != nil {
					continue // this version changed nothing a seed shows
				}
				if _, err := pool.Exec(ctx, string(seed)); err != nil {
					t.Fatalf("seed at version %d: %v", m.Version, err)
				}
			}
			if v, err := pgmigrate.Version(ctx, pool, "store"); err != nil || v != len(ms) {
				t.Fatalf("version %d, %v; want %d", v, err, len(ms))
			}
			s := open(t, url)
			if !seeded {
				return
			}
			err = s.View(ctx, func(tx store.Tx) error {
				o, err := tx.GetOrg(ctx, "seed-org")
				if err != nil || o.Name != "Seeded" || o.BundleTTL != time.Hour {
					return fmt.Errorf("seeded org: %+v, %v", o, err)
				}
				u, err := tx.GetUserByEmail(ctx, "seed@example.com")
				if err != nil || u.ID != "seed-user" || len(u.RevokedTokens) != 1 {
					return fmt.Errorf("seeded user: %+v, %v", u, err)
				}
				ls, err := tx.ListChildLocations(ctx, "")
				if err != nil || len(ls) != 1 || ls[0].SharedWith[0] != "other" {
					return fmt.Errorf("seeded locations: %+v, %v", ls, err)
				}
				// A machine from before the name index is found by its name.
				ms, _, err := tx.PageMachines(ctx, store.MachineQuery{LocationIDs: []string{"seed-loc"}, Search: "rov", Limit: 10})
				if err != nil || len(ms) != 1 || ms[0].ID != "seed-machine" {
					return fmt.Errorf("seeded machine by name: %+v, %v", ms, err)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if g, err := s.Generation(ctx); err != nil || g != 7 {
				t.Fatalf("seeded generation %d, %v; want 7", g, err)
			}
		})
	}
}

// TestOpenTogether: replicas opening an empty database at once all open it.
func TestOpenTogether(t *testing.T) {
	url := pgtest.Database(t)
	var wg sync.WaitGroup
	stores := make([]*pgstore.Store, 4)
	errs := make([]error, len(stores))
	for i := range stores {
		wg.Go(func() { stores[i], errs[i] = pgstore.Open(context.Background(), url) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
		stores[i].Close()
	}
}

// TestHostileValues: quotes, SQL, NUL, invalid UTF-8 and very long
// strings. Keys PostgreSQL text cannot hold are refused with a clear error
// and found nowhere; other fields round-trip whatever they hold.
func TestHostileValues(t *testing.T) {
	ctx := context.Background()
	s := open(t, pgtest.Database(t))
	longest := strings.Repeat("é", pgstore.MaxKeyLen/2)
	for _, id := range []string{`o'1`, `"; DROP TABLE orgs; --`, `\x00`, "%_*", longest} {
		name := "name with \x00 NUL and '\"quotes\" and \xff" + strings.Repeat("long", 1<<18)
		err := s.Update(ctx, func(tx store.Tx) error { return tx.PutOrg(ctx, store.Org{ID: id, Name: name}) })
		if err != nil {
			t.Fatalf("put org %.20q: %v", id, err)
		}
		err = s.View(ctx, func(tx store.Tx) error {
			o, err := tx.GetOrg(ctx, id)
			if err != nil {
				return err
			}
			if o.ID != id || o.Name != strings.ToValidUTF8(name, "\uFFFD") {
				return fmt.Errorf("org %.20q reads back as %.20q named %.40q", id, o.ID, o.Name)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"o\x00", "\xff\xfe", strings.Repeat("x", pgstore.MaxKeyLen+1)} {
		err := s.Update(ctx, func(tx store.Tx) error { return tx.PutOrg(ctx, store.Org{ID: id, Name: "x"}) })
		if err == nil || !strings.Contains(err.Error(), "NUL or is not UTF-8") && !strings.Contains(err.Error(), "at most") {
			t.Errorf("put org %.20q: %.200v, want a refusal naming NUL, UTF-8 or the length", id, err)
		}
		err = s.Update(ctx, func(tx store.Tx) error {
			// Every lookup of such a key finds nothing, and the
			// transaction goes on.
			if _, err := tx.GetOrg(ctx, id); !errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("get: %w", err)
			}
			if err := tx.DeleteOrg(ctx, id); !errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("delete: %w", err)
			}
			if _, err := tx.GetUserByEmail(ctx, id); !errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("by email: %w", err)
			}
			if _, err := tx.GetMeta(ctx, id); !errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("meta: %w", err)
			}
			if gs, err := tx.ListGrantsBySubject(ctx, id); err != nil || len(gs) != 0 {
				return fmt.Errorf("grants: %v, %w", gs, err)
			}
			return tx.PutOrg(ctx, store.Org{ID: "after", Name: "x"})
		})
		if err != nil {
			t.Errorf("lookups of %.20q: %.200v", id, err)
		}
	}
	// A taken email and a repeated audit ID leave the transaction usable.
	err := s.Update(ctx, func(tx store.Tx) error {
		if err := tx.PutUser(ctx, store.User{ID: "u1", Email: "a@x"}); err != nil {
			return err
		}
		if err := tx.PutUser(ctx, store.User{ID: "u2", Email: "a@x"}); !errors.Is(err, store.ErrExists) {
			return fmt.Errorf("taken email: %v", err)
		}
		if err := tx.AppendAudit(ctx, store.AuditEvent{ID: "e"}); err != nil {
			return err
		}
		if err := tx.AppendAudit(ctx, store.AuditEvent{ID: "e"}); !errors.Is(err, store.ErrExists) {
			return fmt.Errorf("repeated audit: %v", err)
		}
		return tx.PutUser(ctx, store.User{ID: "u2", Email: "b@x"})
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Update(ctx, func(tx store.Tx) error {
		return tx.PutConfigRevision(ctx, store.ConfigRevision{MachineID: "m", Revision: 1 << 63})
	})
	if err == nil {
		t.Error("a revision past 2^63-1 was stored")
	}
}

// TestConflictsRetry: transactions that keep conflicting end in
// ErrConflict instead of retrying for ever, and Update runs the function
// again after a conflict.
func TestConflictsRetry(t *testing.T) {
	ctx := context.Background()
	s := open(t, pgtest.Database(t))
	runs := 0
	err := s.Update(ctx, func(tx store.Tx) error {
		runs++
		if _, err := tx.GetOrg(ctx, "o"); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if runs == 1 {
			// A concurrent transaction writes what this one read.
			if err := s.Update(ctx, func(tx store.Tx) error { return tx.PutOrg(ctx, store.Org{ID: "o", Name: "other"}) }); err != nil {
				return err
			}
		}
		return tx.PutOrg(ctx, store.Org{ID: "o", Name: fmt.Sprint("run ", runs)})
	})
	if err != nil || runs != 2 {
		t.Fatalf("Update = %v after %d runs; want a retry that succeeds", err, runs)
	}
	runs = 0
	err = s.Update(ctx, func(tx store.Tx) error {
		runs++
		if _, err := tx.GetOrg(ctx, "o"); err != nil {
			return err
		}
		if err := s.Update(ctx, func(tx store.Tx) error { return tx.PutOrg(ctx, store.Org{ID: "o", Name: "again"}) }); err != nil {
			return err
		}
		return tx.PutOrg(ctx, store.Org{ID: "o", Name: "mine"})
	})
	if !errors.Is(err, store.ErrConflict) || runs < 2 {
		t.Fatalf("always conflicting: %v after %d runs; want ErrConflict", err, runs)
	}
}

//go:embed testdata/*.sql
var testdata embed.FS
