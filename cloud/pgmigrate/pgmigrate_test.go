package pgmigrate_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outpost-robotics/outpost/cloud/pgmigrate"
	"github.com/outpost-robotics/outpost/cloud/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func pool(t *testing.T, url string) *pgxpool.Pool {
	t.Helper()
	p, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

var three = fstest.MapFS{
	"0001_things.sql":    {Data: []byte("CREATE TABLE things (id text PRIMARY KEY);")},
	"0002_names.sql":     {Data: []byte("ALTER TABLE things ADD COLUMN name text NOT NULL DEFAULT 'unnamed';")},
	"0003_more_rows.sql": {Data: []byte("CREATE INDEX things_name ON things (name); INSERT INTO things (id) VALUES ('from 3');")},
}

// TestStepByStep applies each version in turn over data written at the
// one before, as a database that lived through every release would be.
func TestStepByStep(t *testing.T) {
	ctx := context.Background()
	p := pool(t, pgtest.Database(t))
	set := pgmigrate.Set{Component: "test", FS: three}
	if err := pgmigrate.ApplyThrough(ctx, p, set, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Exec(ctx, "INSERT INTO things VALUES ('old')"); err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second time applies nothing
		if err := pgmigrate.Apply(ctx, p, set); err != nil {
			t.Fatal(err)
		}
	}
	var n int
	var name string
	if err := p.QueryRow(ctx, "SELECT count(*), min(name) FROM things").Scan(&n, &name); err != nil || n != 2 || name != "unnamed" {
		t.Fatalf("after migrating: %d rows, name %q, %v; want the old row and 3's", n, name, err)
	}
	if v, err := pgmigrate.Version(ctx, p, "test"); err != nil || v != 3 {
		t.Fatalf("Version = %d, %v; want 3", v, err)
	}
	if v, err := pgmigrate.Version(ctx, p, "other"); err != nil || v != 0 {
		t.Fatalf("Version of another component = %d, %v; want 0", v, err)
	}
	// A binary that knows only two versions refuses the database.
	older := pgmigrate.Set{Component: "test", FS: fstest.MapFS{"0001_things.sql": three["0001_things.sql"], "0002_names.sql": three["0002_names.sql"]}}
	if err := pgmigrate.Apply(ctx, p, older); !errors.Is(err, pgmigrate.ErrNewerSchema) {
		t.Fatalf("an older binary: %v, want ErrNewerSchema", err)
	}
}

// TestTogether: replicas opening at once on an empty database apply each
// migration once.
func TestTogether(t *testing.T) {
	ctx := context.Background()
	url := pgtest.Database(t)
	set := pgmigrate.Set{Component: "test", FS: three}
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for range 6 {
		p := pool(t, url)
		wg.Go(func() { errs <- pgmigrate.Apply(ctx, p, set) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var n int
	if err := pool(t, url).QueryRow(ctx, "SELECT count(*) FROM things").Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d rows from migration 3, %v; want it applied once", n, err)
	}
}

// TestFailedMigration leaves the database at the version before it.
func TestFailedMigration(t *testing.T) {
	ctx := context.Background()
	p := pool(t, pgtest.Database(t))
	bad := pgmigrate.Set{Component: "test", FS: fstest.MapFS{
		"0001_things.sql": three["0001_things.sql"],
		"0002_broken.sql": {Data: []byte("ALTER TABLE things ADD COLUMN x int; SELECT no_such_function();")},
	}}
	if err := pgmigrate.Apply(ctx, p, bad); err == nil {
		t.Fatal("a failing migration applied")
	}
	if v, err := pgmigrate.Version(ctx, p, "test"); err != nil || v != 1 {
		t.Fatalf("Version = %d, %v; want 1", v, err)
	}
	if _, err := p.Exec(ctx, "SELECT x FROM things"); err == nil {
		t.Fatal("half of the failed migration stayed")
	}
}

func TestBadSets(t *testing.T) {
	for name, fsys := range map[string]fstest.MapFS{
		"hole":     {"0001_a.sql": {}, "0003_c.sql": {}},
		"repeat":   {"0001_a.sql": {}, "0001_b.sql": {}},
		"bad name": {"0001_a.sql": {}, "2_b.sql": {}},
		"empty":    {},
	} {
		if _, err := (pgmigrate.Set{Component: "test", FS: fsys}).Migrations(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
