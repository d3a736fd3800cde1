// Package pgmigrate applies the PostgreSQL stores' schemas: each store
// embeds its migrations, numbered SQL files, and applies the ones a
// database lacks when it opens. Replicas opening together are safe: one
// applies them under an advisory lock while the others wait, then find
// nothing left to do. The schema_migrations table records, per component,
// each version applied and when.
//
// A migration is never edited once released: a change is a new file with
// the next number. Each runs in its own transaction with its record, so a
// migration that fails leaves the database at the version before it.
package pgmigrate

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// lockClass and lockID name the advisory lock migrations hold: the
// two-number form, so no single-number lock a store takes can collide.
const (
	lockClass = 0x6f7574 // "out"
	lockID    = 1
)

// ErrNewerSchema says the database holds migrations this binary does not
// know: a newer version of the cloud migrated it.
var ErrNewerSchema = errors.New("the database schema is newer than this binary")

// Set is one component's migrations: files named NNNN_what.sql at the
// root of FS, numbered from 1 without holes.
type Set struct {
	// Component names the migrations in schema_migrations, such as "store".
	Component string
	FS        fs.FS
}

// Embedded is the Set of component's migrations in the folder dir of an
// embedded file system (a package's //go:embed of its migrations).
func Embedded(component string, fsys fs.FS, dir string) Set {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		panic(err) // dir is a constant of the caller's: a bad one is a programming error
	}
	return Set{Component: component, FS: sub}
}

// Migration is one numbered SQL file.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

var fileName = regexp.MustCompile(`^([0-9]{4})_[a-z0-9_]+\.sql$`)

// Migrations reads the set's migrations, in order.
func (s Set) Migrations() ([]Migration, error) {
	entries, err := fs.ReadDir(s.FS, ".")
	if err != nil {
		return nil, fmt.Errorf("read the %s migrations: %w", s.Component, err)
	}
	var out []Migration
	for _, e := range entries {
		m := fileName.FindStringSubmatch(e.Name())
		if m == nil || e.IsDir() {
			return nil, fmt.Errorf("%s migration %q: want a file named NNNN_what.sql", s.Component, e.Name())
		}
		v, _ := strconv.Atoi(m[1])
		b, err := fs.ReadFile(s.FS, path.Join(".", e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read %s migration %s: %w", s.Component, e.Name(), err)
		}
		out = append(out, Migration{Version: v, Name: e.Name(), SQL: string(b)})
	}
	slices.SortFunc(out, func(a, b Migration) int { return a.Version - b.Version })
	for i, m := range out {
		if m.Version != i+1 {
			return nil, fmt.Errorf("%s migration %s: want version %d (numbered from 1, no holes, no repeats)", s.Component, m.Name, i+1)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s has no migrations", s.Component)
	}
	return out, nil
}

// Apply applies every migration of s the database lacks.
func Apply(ctx context.Context, pool *pgxpool.Pool, s Set) error {
	return ApplyThrough(ctx, pool, s, 0)
}

// ApplyThrough applies the migrations of s the database lacks up to
// version through (0 for all): a test steps through versions with it.
func ApplyThrough(ctx context.Context, pool *pgxpool.Pool, s Set, through int) (err error) {
	ms, err := s.Migrations()
	if err != nil {
		return err
	}
	if through > 0 && through < len(ms) {
		ms = ms[:through]
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrate %s: connect: %w", s.Component, err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1, $2)", lockClass, lockID); err != nil {
		return fmt.Errorf("migrate %s: take the migration lock: %w", s.Component, err)
	}
	defer func() {
		// Unlock even when ctx ended; a connection that cannot is closed,
		// which releases the lock with its session.
		if _, uerr := conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1, $2)", lockClass, lockID); uerr != nil {
			_ = conn.Conn().Close(context.WithoutCancel(ctx))
			if err == nil {
				err = fmt.Errorf("migrate %s: release the migration lock: %w", s.Component, uerr)
			}
		}
	}()
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		component  text COLLATE "C" NOT NULL,
		version    integer NOT NULL,
		name       text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now(),
		PRIMARY KEY (component, version))`); err != nil {
		return fmt.Errorf("migrate %s: create schema_migrations: %w", s.Component, err)
	}
	applied, err := appliedVersions(ctx, conn.Conn(), s.Component)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", s.Component, err)
	}
	all, _ := s.Migrations()
	for i, v := range applied {
		if v != i+1 {
			return fmt.Errorf("migrate %s: schema_migrations holds versions %v, not 1 to %d", s.Component, applied, len(applied))
		}
	}
	if len(applied) > len(all) {
		return fmt.Errorf("migrate %s: the database is at version %d and this binary knows %d: run a newer outpost-cloud: %w",
			s.Component, len(applied), len(all), ErrNewerSchema)
	}
	for _, m := range ms[min(len(applied), len(ms)):] {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO schema_migrations (component, version, name) VALUES ($1, $2, $3)", s.Component, m.Version, m.Name)
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate %s: apply %s: %w", s.Component, m.Name, err)
		}
	}
	return nil
}

// Version returns the component's latest applied version, 0 for none.
func Version(ctx context.Context, pool *pgxpool.Pool, component string) (int, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return 0, fmt.Errorf("read the %s schema version: %w", component, err)
	}
	defer conn.Release()
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass('schema_migrations') IS NOT NULL").Scan(&exists); err != nil || !exists {
		return 0, err
	}
	vs, err := appliedVersions(ctx, conn.Conn(), component)
	if err != nil {
		return 0, fmt.Errorf("read the %s schema version: %w", component, err)
	}
	return len(vs), nil
}

func appliedVersions(ctx context.Context, conn *pgx.Conn, component string) ([]int, error) {
	rows, _ := conn.Query(ctx, "SELECT version FROM schema_migrations WHERE component = $1 ORDER BY version", component)
	vs, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	return vs, nil
}

// Connect opens a pool on the database at url (a postgres:// URL or a
// libpq connection string) and applies what set lacks, so a store is
// never handed a database its code does not match.
func Connect(ctx context.Context, url string, set Set) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// The URL may hold a password: say what is wrong, not what it is.
		return nil, errors.New("the database URL does not parse")
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := Apply(ctx, pool, set); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}
