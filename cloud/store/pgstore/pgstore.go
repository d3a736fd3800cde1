// Package pgstore is the fleet cloud's store on PostgreSQL, for clouds that
// outgrow one process: any number of stateless replicas share one database.
//
// It is one of the PostgreSQL packages, the only ones that may import the
// driver, pgx (docs/ARCHITECTURE.md; deptest checks it). No pgx type leaves
// it: callers see store.Store, and it passes the same storetest suite as
// the embedded badgerstore.
//
// Layout: a table per record type (migrations/), each row the record's
// JSON beside the columns its lookups, lists and unique values need.
//
// Transactions: Update runs at SERIALIZABLE and retries on serialization
// failures and deadlocks, up to maxAttempts, then answers store.ErrConflict.
// SERIALIZABLE rather than explicit row locks because the invariants
// callers check are arbitrary reads followed by writes, some over rows that
// do not exist (a location has no children before it is deleted, no other
// user holds an email): PostgreSQL's serializable snapshot isolation
// detects those conflicts the way Badger's optimistic transactions do, so
// callers keep the contract's "an invariant checked in a transaction holds
// when it commits" without naming locks. View is a read-only REPEATABLE
// READ transaction: one snapshot, as Badger's View.
//
// PostgreSQL text holds neither NUL nor invalid UTF-8. IDs and the other
// key columns are checked before they reach the database: a record whose
// key holds one is refused with a clear error, and a lookup of one finds
// nothing, as no such record can exist. Other strings live in the JSON,
// which escapes them, so they round-trip as they do in badgerstore.
package pgstore

import (
	"cmp"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outpost-robotics/outpost/cloud/pgmigrate"
	"github.com/outpost-robotics/outpost/cloud/store"
)

// maxAttempts bounds Update's attempts when transactions conflict.
const maxAttempts = 20

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations are the store's schema versions, applied by Open.
func Migrations() pgmigrate.Set {
	return pgmigrate.Embedded("store", migrationFiles, "migrations")
}

// Store is the PostgreSQL implementation of store.Store.
type Store struct {
	pool *pgxpool.Pool
}

var _ store.Store = (*Store)(nil)

// Open connects to the database at url (a postgres:// URL or a libpq
// connection string), applies the migrations it lacks and returns the
// store. Replicas may open the same database at once.
func Open(ctx context.Context, url string) (*Store, error) {
	pool, err := pgmigrate.Connect(ctx, url, Migrations())
	if err != nil {
		return nil, fmt.Errorf("open cloud store: %w", err)
	}
	return &Store{pool: pool}, nil
}

// Close closes the store's connections.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// View runs fn in a read-only snapshot.
func (s *Store) View(ctx context.Context, fn func(store.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var err error
	for range maxAttempts {
		err = pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly},
			func(ptx pgx.Tx) error { return fn(&tx{tx: ptx}) })
		if !pgconn.SafeToRetry(err) || ctx.Err() != nil {
			return err
		}
	}
	return err
}

// Update runs fn in a serializable transaction, retrying on conflicts.
func (s *Store) Update(ctx context.Context, fn func(store.Tx) error) error {
	for range maxAttempts {
		if err := ctx.Err(); err != nil {
			return err
		}
		err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.Serializable}, func(ptx pgx.Tx) error {
			t := &tx{tx: ptx}
			if err := fn(t); err != nil {
				return err
			}
			if t.hierarchyChanged {
				if _, err := ptx.Exec(ctx, "UPDATE generation SET value = value + 1"); err != nil {
					return fmt.Errorf("bump generation: %w", err)
				}
			}
			return nil
		})
		if retryable(err) {
			continue
		}
		return err
	}
	return fmt.Errorf("update cloud store: %d attempts: %w", maxAttempts, store.ErrConflict)
}

// retryable reports a transaction PostgreSQL aborted for a concurrent
// one (a serialization failure or a deadlock), or one that failed on a
// pooled connection the server had closed (it restarted, or ended the
// backend) before anything was sent on it. Running it again is safe.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01") || pgconn.SafeToRetry(err)
}

// Generation returns the hierarchy generation.
func (s *Store) Generation(ctx context.Context) (uint64, error) {
	var g int64
	if err := s.pool.QueryRow(ctx, "SELECT value FROM generation").Scan(&g); err != nil {
		return 0, fmt.Errorf("read generation: %w", err)
	}
	return uint64(g), nil
}

type tx struct {
	tx               pgx.Tx
	hierarchyChanged bool
}

// MaxKeyLen bounds, in bytes, each identifier and other key value (an
// email, a scope): PostgreSQL's indexes hold entries of at most 2,704
// bytes, and an index of three such values stays under that. The cloud's
// IDs are 32 characters and its emails at most 254.
const MaxKeyLen = 512

// storable reports whether PostgreSQL text can hold s.
func storable(s string) bool { return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 }

// checkKey refuses a key value the database cannot hold or index.
func checkKey(what string, v any) error {
	switch x := v.(type) {
	case string:
		if len(x) > MaxKeyLen {
			return fmt.Errorf("%s of %d bytes: at most %d", what, len(x), MaxKeyLen)
		}
		if !storable(x) {
			return fmt.Errorf("%s %s: holds NUL or is not UTF-8, which PostgreSQL text cannot hold", what, short(x))
		}
	case []byte:
		if len(x) > MaxKeyLen {
			return fmt.Errorf("%s of %d bytes: at most %d", what, len(x), MaxKeyLen)
		}
	}
	return nil
}

// short quotes s for an error, cut to a readable length.
func short(s string) string {
	if len(s) > 64 {
		return fmt.Sprintf("%q...", s[:64])
	}
	return fmt.Sprintf("%q", s)
}

// table describes one record type's table.
type table[T any] struct {
	name string
	// key names the primary key's columns and cols the other columns
	// kept beside the JSON; vals returns their values, key first.
	key, cols []string
	vals      func(T) []any
	// order is the ORDER BY of lists.
	order string
	// hierarchy says writes change the Generation.
	hierarchy bool
}

func (tb table[T]) where(first int) string {
	var b strings.Builder
	for i, k := range tb.key {
		if i > 0 {
			b.WriteString(" AND ")
		}
		fmt.Fprintf(&b, "%s = $%d", k, first+i)
	}
	return b.String()
}

func keyString(key []any) string {
	parts := make([]string, len(key))
	for i, k := range key {
		parts[i] = fmt.Sprint(k)
	}
	return short(strings.Join(parts, "/"))
}

func get[T any](ctx context.Context, t *tx, tb table[T], key ...any) (T, error) {
	var v T
	for _, k := range key {
		if checkKey("key", k) != nil {
			return v, fmt.Errorf("get %s %s: %w", tb.name, keyString(key), store.ErrNotFound)
		}
	}
	var doc []byte
	err := t.tx.QueryRow(ctx, "SELECT doc FROM "+tb.name+" WHERE "+tb.where(1), key...).Scan(&doc)
	if errors.Is(err, pgx.ErrNoRows) {
		return v, fmt.Errorf("get %s %s: %w", tb.name, keyString(key), store.ErrNotFound)
	}
	if err != nil {
		return v, fmt.Errorf("get %s %s: %w", tb.name, keyString(key), err)
	}
	if err := json.Unmarshal(doc, &v); err != nil {
		return v, fmt.Errorf("decode %s %s: %w", tb.name, keyString(key), err)
	}
	return v, nil
}

// put creates or replaces v; with onlyNew, an existing row is ErrExists.
func put[T any](ctx context.Context, t *tx, tb table[T], v T, onlyNew bool) error {
	vals := tb.vals(v)
	key := vals[:len(tb.key)]
	if s, ok := key[len(key)-1].(string); ok && s == "" {
		return fmt.Errorf("put %s: empty ID", tb.name)
	}
	for i, x := range vals {
		if err := checkKey(append(tb.key, tb.cols...)[i], x); err != nil {
			return fmt.Errorf("put %s: %w", tb.name, err)
		}
	}
	doc, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s %s: %w", tb.name, keyString(key), err)
	}
	cols := append(append(append([]string{}, tb.key...), tb.cols...), "doc")
	params := make([]string, len(cols))
	for i := range cols {
		params[i] = fmt.Sprintf("$%d", i+1)
	}
	sql := "INSERT INTO " + tb.name + " (" + strings.Join(cols, ", ") + ") VALUES (" + strings.Join(params, ", ") +
		") ON CONFLICT (" + strings.Join(tb.key, ", ") + ") DO "
	if onlyNew {
		sql += "NOTHING"
	} else {
		var set []string
		for _, c := range cols[len(tb.key):] {
			set = append(set, c+" = excluded."+c)
		}
		sql += "UPDATE SET " + strings.Join(set, ", ")
	}
	tag, err := t.tx.Exec(ctx, sql, append(vals, doc)...)
	if err != nil {
		return fmt.Errorf("put %s %s: %w", tb.name, keyString(key), err)
	}
	if onlyNew && tag.RowsAffected() == 0 {
		return fmt.Errorf("put %s %s: %w", tb.name, keyString(key), store.ErrExists)
	}
	if tb.hierarchy {
		t.hierarchyChanged = true
	}
	return nil
}

func del[T any](ctx context.Context, t *tx, tb table[T], key ...any) error {
	for _, k := range key {
		if checkKey("key", k) != nil {
			return fmt.Errorf("delete %s %s: %w", tb.name, keyString(key), store.ErrNotFound)
		}
	}
	tag, err := t.tx.Exec(ctx, "DELETE FROM "+tb.name+" WHERE "+tb.where(1), key...)
	if err != nil {
		return fmt.Errorf("delete %s %s: %w", tb.name, keyString(key), err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("delete %s %s: %w", tb.name, keyString(key), store.ErrNotFound)
	}
	if tb.hierarchy {
		t.hierarchyChanged = true
	}
	return nil
}

// list returns the rows whose column col is value, or every row for an
// empty col, in the table's order.
func list[T any](ctx context.Context, t *tx, tb table[T], col string, value any) ([]T, error) {
	sql := "SELECT doc FROM " + tb.name
	var args []any
	if col != "" {
		if checkKey(col, value) != nil {
			return nil, nil
		}
		sql += " WHERE " + col + " = $1"
		args = append(args, value)
	}
	return query[T](ctx, t, tb.name, sql+" ORDER BY "+tb.order, args...)
}

func query[T any](ctx context.Context, t *tx, what, sql string, args ...any) ([]T, error) {
	rows, _ := t.tx.Query(ctx, sql, args...)
	docs, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", what, err)
	}
	var out []T
	for _, d := range docs {
		var v T
		if err := json.Unmarshal(d, &v); err != nil {
			return nil, fmt.Errorf("decode %s: %w", what, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// revision converts a revision number for the database, whose integers
// are signed: numbers past 2^63-1 (never issued) are refused.
func revision(what string, rev uint64) (int64, error) {
	if rev == 0 || rev > math.MaxInt64 {
		return 0, fmt.Errorf("%s: revision %d: want 1 to %d", what, rev, int64(math.MaxInt64))
	}
	return int64(rev), nil
}

var (
	orgs = table[store.Org]{name: "orgs", key: []string{"id"}, order: "id",
		vals: func(o store.Org) []any { return []any{o.ID} }, hierarchy: true}
	locations = table[store.Location]{name: "locations", key: []string{"id"}, cols: []string{"org_id", "parent_id"}, order: "id",
		vals: func(l store.Location) []any { return []any{l.ID, l.OrgID, l.ParentID} }, hierarchy: true}
	machines = table[store.Machine]{name: "machines", key: []string{"id"}, cols: []string{"location_id", "name"}, order: "id",
		vals: func(m store.Machine) []any { return []any{m.ID, m.LocationID, m.Name} }, hierarchy: true}
	parts = table[store.Part]{name: "parts", key: []string{"id"}, cols: []string{"machine_id"}, order: "id",
		vals: func(p store.Part) []any { return []any{p.ID, p.MachineID} }, hierarchy: true}
	users = table[store.User]{name: "users", key: []string{"id"}, cols: []string{"email"}, order: "id",
		vals: func(u store.User) []any { return []any{u.ID, u.Email} }}
	apikeys = table[store.APIKey]{name: "api_keys", key: []string{"id"}, cols: []string{"org_id"}, order: "id",
		vals: func(k store.APIKey) []any { return []any{k.ID, k.OrgID} }}
	invites = table[store.Invite]{name: "invites", key: []string{"id"}, cols: []string{"code_hash"}, order: "id",
		vals: func(i store.Invite) []any { return []any{i.ID, i.CodeHash} }}
	grants = table[store.Grant]{name: "grants", key: []string{"subject", "scope"}, cols: []string{"org_id"}, order: "subject, scope",
		vals: func(g store.Grant) []any { return []any{g.Subject, g.Scope, g.OrgID} }}
	audits = table[store.AuditEvent]{name: "audit_events", key: []string{"id"}, cols: []string{"org_id"}, order: "id",
		vals: func(e store.AuditEvent) []any { return []any{e.ID, e.OrgID} }}
	configRevs = table[store.ConfigRevision]{name: "config_revisions", key: []string{"machine_id", "revision"}, order: "machine_id, revision",
		vals: func(r store.ConfigRevision) []any { return []any{r.MachineID, int64(r.Revision)} }}
	fragments = table[store.Fragment]{name: "fragments", key: []string{"id"}, cols: []string{"org_id"}, order: "id",
		vals: func(f store.Fragment) []any { return []any{f.ID, f.OrgID} }}
	fragmentRevs = table[store.FragmentRevision]{name: "fragment_revisions", key: []string{"fragment_id", "revision"}, order: "fragment_id, revision",
		vals: func(r store.FragmentRevision) []any { return []any{r.FragmentID, int64(r.Revision)} }}
	partDocs = table[store.PartDocuments]{name: "part_documents", key: []string{"part_id"}, order: "part_id",
		vals: func(d store.PartDocuments) []any { return []any{d.PartID} }}
	captureTags = table[store.CaptureTags]{name: "capture_tags", key: []string{"id"}, order: "id",
		vals: func(c store.CaptureTags) []any { return []any{c.ID} }}
	proposals = table[store.Proposal]{name: "proposals", key: []string{"id"}, cols: []string{"machine_id"}, order: "id",
		vals: func(p store.Proposal) []any { return []any{p.ID, p.MachineID} }}
	datasets = table[store.Dataset]{name: "datasets", key: []string{"id"}, cols: []string{"org_id"}, order: "id",
		vals: func(d store.Dataset) []any { return []any{d.ID, d.OrgID} }}
	datasetCaptures = table[store.DatasetCapture]{name: "dataset_captures", key: []string{"dataset_id", "capture_id"}, order: "dataset_id, capture_id",
		vals: func(c store.DatasetCapture) []any { return []any{c.DatasetID, c.CaptureID} }}
)

func (t *tx) GetOrg(ctx context.Context, id string) (store.Org, error) { return get(ctx, t, orgs, id) }
func (t *tx) PutOrg(ctx context.Context, o store.Org) error            { return put(ctx, t, orgs, o, false) }
func (t *tx) DeleteOrg(ctx context.Context, id string) error           { return del(ctx, t, orgs, id) }
func (t *tx) ListOrgs(ctx context.Context) ([]store.Org, error)        { return list(ctx, t, orgs, "", nil) }

func (t *tx) GetLocation(ctx context.Context, id string) (store.Location, error) {
	return get(ctx, t, locations, id)
}
func (t *tx) PutLocation(ctx context.Context, l store.Location) error {
	return put(ctx, t, locations, l, false)
}
func (t *tx) DeleteLocation(ctx context.Context, id string) error { return del(ctx, t, locations, id) }
func (t *tx) ListLocations(ctx context.Context, orgID string) ([]store.Location, error) {
	if orgID == "" {
		return list(ctx, t, locations, "", nil)
	}
	return list(ctx, t, locations, "org_id", orgID)
}
func (t *tx) ListChildLocations(ctx context.Context, parentID string) ([]store.Location, error) {
	return list(ctx, t, locations, "parent_id", parentID)
}

func (t *tx) GetMachine(ctx context.Context, id string) (store.Machine, error) {
	return get(ctx, t, machines, id)
}
func (t *tx) PutMachine(ctx context.Context, m store.Machine) error {
	return put(ctx, t, machines, m, false)
}
func (t *tx) DeleteMachine(ctx context.Context, id string) error { return del(ctx, t, machines, id) }
func (t *tx) ListMachines(ctx context.Context, locationID string) ([]store.Machine, error) {
	if locationID == "" {
		return list(ctx, t, machines, "", nil)
	}
	return list(ctx, t, machines, "location_id", locationID)
}

// PageMachines walks the machines_name index from the cursor. lower() under
// the "C" collation folds ASCII only, as store.FoldName does; strpos rather
// than LIKE so the search needs no escaping.
func (t *tx) PageMachines(ctx context.Context, q store.MachineQuery) ([]store.Machine, bool, error) {
	if q.Limit < 1 || q.Limit > store.MaxMachinePage {
		return nil, false, fmt.Errorf("page machines: limit %d is not from 1 to %d", q.Limit, store.MaxMachinePage)
	}
	keep := func(ids []string) []string {
		out := make([]string, 0, len(ids))
		for _, id := range ids {
			if checkKey("id", id) == nil {
				out = append(out, id)
			}
		}
		return out
	}
	locs, ids := keep(q.LocationIDs), keep(q.MachineIDs)
	if len(locs) == 0 && len(ids) == 0 || checkKey("cursor", q.AfterName) != nil || checkKey("cursor", q.AfterID) != nil || !storable(q.Search) {
		return nil, false, nil // nothing can match what PostgreSQL text cannot hold
	}
	page, err := query[store.Machine](ctx, t, "machines", `SELECT doc FROM machines
		WHERE (location_id = ANY($1) OR id = ANY($2)) AND (name, id) > ($3, $4) AND ($5 = '' OR strpos(lower(name), $5) > 0)
		ORDER BY name, id LIMIT $6`, locs, ids, q.AfterName, q.AfterID, store.FoldName(q.Search), q.Limit+1)
	if err != nil {
		return nil, false, err
	}
	if len(page) > q.Limit {
		return page[:q.Limit], true, nil
	}
	return page, false, nil
}

func (t *tx) GetPart(ctx context.Context, id string) (store.Part, error) {
	return get(ctx, t, parts, id)
}
func (t *tx) PutPart(ctx context.Context, p store.Part) error { return put(ctx, t, parts, p, false) }
func (t *tx) DeletePart(ctx context.Context, id string) error { return del(ctx, t, parts, id) }
func (t *tx) ListParts(ctx context.Context, machineID string) ([]store.Part, error) {
	if machineID == "" {
		return list(ctx, t, parts, "", nil)
	}
	return list(ctx, t, parts, "machine_id", machineID)
}

func (t *tx) GetUser(ctx context.Context, id string) (store.User, error) {
	return get(ctx, t, users, id)
}
func (t *tx) GetUserByEmail(ctx context.Context, email string) (store.User, error) {
	out, err := t.usersWhere(ctx, "email = $1", email)
	if err != nil {
		return store.User{}, fmt.Errorf("get user by email: %w", err)
	}
	if len(out) == 0 {
		return store.User{}, fmt.Errorf("get user by email: %w", store.ErrNotFound)
	}
	return out[0], nil
}

func (t *tx) usersWhere(ctx context.Context, where string, args ...any) ([]store.User, error) {
	for _, a := range args {
		if checkKey("email", a) != nil {
			return nil, nil
		}
	}
	return query[store.User](ctx, t, "users", "SELECT doc FROM users WHERE "+where, args...)
}

// PutUser checks the email is free before writing, so a taken one is
// ErrExists and the transaction goes on (a unique violation would abort it).
func (t *tx) PutUser(ctx context.Context, u store.User) error {
	others, err := t.usersWhere(ctx, "email = $1 AND id <> $2", u.Email, u.ID)
	if err != nil {
		return fmt.Errorf("put user %q: %w", u.ID, err)
	}
	if len(others) > 0 {
		return fmt.Errorf("put user %q: email: %w", u.ID, store.ErrExists)
	}
	return put(ctx, t, users, u, false)
}
func (t *tx) DeleteUser(ctx context.Context, id string) error { return del(ctx, t, users, id) }
func (t *tx) ListUsers(ctx context.Context) ([]store.User, error) {
	return list(ctx, t, users, "", nil)
}

func (t *tx) GetAPIKey(ctx context.Context, id string) (store.APIKey, error) {
	return get(ctx, t, apikeys, id)
}
func (t *tx) PutAPIKey(ctx context.Context, k store.APIKey) error {
	return put(ctx, t, apikeys, k, false)
}
func (t *tx) DeleteAPIKey(ctx context.Context, id string) error { return del(ctx, t, apikeys, id) }
func (t *tx) ListAPIKeys(ctx context.Context, orgID string) ([]store.APIKey, error) {
	return list(ctx, t, apikeys, "org_id", orgID)
}

func (t *tx) GetGrant(ctx context.Context, subject, scope string) (store.Grant, error) {
	return get(ctx, t, grants, subject, scope)
}
func (t *tx) PutGrant(ctx context.Context, g store.Grant) error {
	if g.Subject == "" || g.Scope == "" {
		return fmt.Errorf("put grant %q on %q: subject and scope are required", g.Subject, g.Scope)
	}
	return put(ctx, t, grants, g, false)
}
func (t *tx) DeleteGrant(ctx context.Context, subject, scope string) error {
	return del(ctx, t, grants, subject, scope)
}
func (t *tx) ListGrantsBySubject(ctx context.Context, subject string) ([]store.Grant, error) {
	return list(ctx, t, grants, "subject", subject)
}
func (t *tx) ListGrantsByScope(ctx context.Context, scope string) ([]store.Grant, error) {
	if checkKey("scope", scope) != nil {
		return nil, nil
	}
	return query[store.Grant](ctx, t, "grants", "SELECT doc FROM grants WHERE scope = $1 ORDER BY subject", scope)
}
func (t *tx) ListGrantsByOrg(ctx context.Context, orgID string) ([]store.Grant, error) {
	return list(ctx, t, grants, "org_id", orgID)
}

func (t *tx) GetInvite(ctx context.Context, id string) (store.Invite, error) {
	return get(ctx, t, invites, id)
}
func (t *tx) GetInviteByCode(ctx context.Context, codeHash []byte) (store.Invite, error) {
	out, err := query[store.Invite](ctx, t, "invites", "SELECT doc FROM invites WHERE code_hash = $1", codeHash)
	if err != nil {
		return store.Invite{}, fmt.Errorf("get invite by code: %w", err)
	}
	if len(out) == 0 || len(codeHash) == 0 {
		return store.Invite{}, fmt.Errorf("get invite by code: %w", store.ErrNotFound)
	}
	return out[0], nil
}

// PutInvite checks the code is free before writing, as PutUser the email.
func (t *tx) PutInvite(ctx context.Context, inv store.Invite) error {
	if len(inv.CodeHash) == 0 {
		return fmt.Errorf("put invite %q: a code hash is required", inv.ID)
	}
	var n int
	if err := t.tx.QueryRow(ctx, "SELECT count(*) FROM invites WHERE code_hash = $1 AND id <> $2", inv.CodeHash, inv.ID).Scan(&n); err != nil {
		return fmt.Errorf("put invite %q: %w", inv.ID, err)
	}
	if n > 0 {
		return fmt.Errorf("put invite %q: code: %w", inv.ID, store.ErrExists)
	}
	return put(ctx, t, invites, inv, false)
}
func (t *tx) DeleteInvite(ctx context.Context, id string) error { return del(ctx, t, invites, id) }
func (t *tx) ListInvites(ctx context.Context) ([]store.Invite, error) {
	return list(ctx, t, invites, "", nil)
}

func (t *tx) AppendAudit(ctx context.Context, e store.AuditEvent) error {
	return put(ctx, t, audits, e, true)
}

func (t *tx) ListAudit(ctx context.Context, orgID, before string, limit int) ([]store.AuditEvent, error) {
	if checkKey("org", orgID) != nil || limit <= 0 {
		return nil, nil
	}
	if err := checkKey("before", before); err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	return query[store.AuditEvent](ctx, t, "audit events",
		"SELECT doc FROM audit_events WHERE org_id = $1 AND ($2 = '' OR id < $2) ORDER BY id DESC LIMIT $3", orgID, before, limit)
}

func (t *tx) GetConfigRevision(ctx context.Context, machineID string, rev uint64) (store.ConfigRevision, error) {
	if _, err := revision("", rev); err != nil {
		return store.ConfigRevision{}, fmt.Errorf("get config revision %d of %q: %w", rev, machineID, store.ErrNotFound)
	}
	return get(ctx, t, configRevs, machineID, int64(rev))
}
func (t *tx) PutConfigRevision(ctx context.Context, r store.ConfigRevision) error {
	if _, err := revision("put config revision", r.Revision); err != nil || r.MachineID == "" {
		return fmt.Errorf("put config revision %q %d: machine and a revision from 1 are required", r.MachineID, r.Revision)
	}
	return put(ctx, t, configRevs, r, true)
}
func (t *tx) ListConfigRevisions(ctx context.Context, machineID string) ([]store.ConfigRevision, error) {
	return list(ctx, t, configRevs, "machine_id", machineID)
}

func (t *tx) GetFragment(ctx context.Context, id string) (store.Fragment, error) {
	return get(ctx, t, fragments, id)
}
func (t *tx) PutFragment(ctx context.Context, f store.Fragment) error {
	return put(ctx, t, fragments, f, false)
}
func (t *tx) DeleteFragment(ctx context.Context, id string) error { return del(ctx, t, fragments, id) }
func (t *tx) ListFragments(ctx context.Context, orgID string) ([]store.Fragment, error) {
	return list(ctx, t, fragments, "org_id", orgID)
}
func (t *tx) GetFragmentRevision(ctx context.Context, fragmentID string, rev uint64) (store.FragmentRevision, error) {
	if _, err := revision("", rev); err != nil {
		return store.FragmentRevision{}, fmt.Errorf("get fragment revision %d of %q: %w", rev, fragmentID, store.ErrNotFound)
	}
	return get(ctx, t, fragmentRevs, fragmentID, int64(rev))
}
func (t *tx) PutFragmentRevision(ctx context.Context, r store.FragmentRevision) error {
	if _, err := revision("", r.Revision); err != nil || r.FragmentID == "" {
		return fmt.Errorf("put fragment revision %q %d: fragment and a revision from 1 are required", r.FragmentID, r.Revision)
	}
	return put(ctx, t, fragmentRevs, r, true)
}

func (t *tx) GetPartDocuments(ctx context.Context, partID string) (store.PartDocuments, error) {
	return get(ctx, t, partDocs, partID)
}
func (t *tx) PutPartDocuments(ctx context.Context, d store.PartDocuments) error {
	return put(ctx, t, partDocs, d, false)
}

func (t *tx) GetCaptureTags(ctx context.Context, id string) (store.CaptureTags, error) {
	return get(ctx, t, captureTags, id)
}
func (t *tx) PutCaptureTags(ctx context.Context, c store.CaptureTags) error {
	return put(ctx, t, captureTags, c, false)
}

func (t *tx) GetDataset(ctx context.Context, id string) (store.Dataset, error) {
	return get(ctx, t, datasets, id)
}
func (t *tx) PutDataset(ctx context.Context, d store.Dataset) error {
	return put(ctx, t, datasets, d, false)
}

// DeleteDataset deletes the dataset; its entries go with it (ON DELETE
// CASCADE).
func (t *tx) DeleteDataset(ctx context.Context, id string) error { return del(ctx, t, datasets, id) }
func (t *tx) ListDatasets(ctx context.Context, orgID string) ([]store.Dataset, error) {
	return list(ctx, t, datasets, "org_id", orgID)
}
func (t *tx) PutDatasetCapture(ctx context.Context, c store.DatasetCapture) error {
	return put(ctx, t, datasetCaptures, c, false)
}
func (t *tx) DeleteDatasetCapture(ctx context.Context, datasetID, captureID string) error {
	return del(ctx, t, datasetCaptures, datasetID, captureID)
}
func (t *tx) ListDatasetCaptures(ctx context.Context, datasetID string) ([]store.DatasetCapture, error) {
	return list(ctx, t, datasetCaptures, "dataset_id", datasetID)
}

func (t *tx) GetProposal(ctx context.Context, id string) (store.Proposal, error) {
	return get(ctx, t, proposals, id)
}
func (t *tx) PutProposal(ctx context.Context, p store.Proposal) error {
	return put(ctx, t, proposals, p, false)
}
func (t *tx) ListProposals(ctx context.Context, machineID string) ([]store.Proposal, error) {
	return list(ctx, t, proposals, "machine_id", machineID)
}

func (t *tx) GetMeta(ctx context.Context, k string) ([]byte, error) {
	if checkKey("meta key", k) != nil {
		return nil, fmt.Errorf("get meta %q: %w", k, store.ErrNotFound)
	}
	var v []byte
	err := t.tx.QueryRow(ctx, "SELECT value FROM meta WHERE key = $1", k).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("get meta %q: %w", k, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get meta %q: %w", k, err)
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

func (t *tx) PutMeta(ctx context.Context, k string, v []byte) error {
	if err := checkKey("meta key", k); err != nil {
		return fmt.Errorf("put meta: %w", err)
	}
	if k == "" {
		return errors.New("put meta: empty key")
	}
	if v == nil {
		v = []byte{}
	}
	if _, err := t.tx.Exec(ctx, "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value", k, v); err != nil {
		return fmt.Errorf("put meta %q: %w", k, err)
	}
	return nil
}

// A package version's rows are keyed by "ORG|NAME" (package_key), so a
// package's versions are one indexed range; organization ids and package
// names never hold '|'.
var (
	packages = table[store.Package]{name: "packages", key: []string{"org_id", "name"}, order: "org_id, name",
		vals: func(p store.Package) []any { return []any{p.OrgID, p.Name} }}
	packageVersions = table[store.PackageVersion]{name: "package_versions", key: []string{"package_key", "version", "platform"},
		order: "package_key, version, platform",
		vals:  func(v store.PackageVersion) []any { return []any{v.OrgID + "|" + v.Name, v.Version, v.Platform} }}
)

// checkBars refuses key parts holding the '|' that joins them.
func checkBars(what string, parts ...string) error {
	for _, p := range parts {
		if p == "" || strings.Contains(p, "|") {
			return fmt.Errorf("%s: %s: want a non-empty value without '|'", what, short(p))
		}
	}
	return nil
}

func (t *tx) GetPackage(ctx context.Context, orgID, name string) (store.Package, error) {
	return get(ctx, t, packages, orgID, name)
}

func (t *tx) PutPackage(ctx context.Context, p store.Package) error {
	if err := checkBars("put package", p.OrgID, p.Name); err != nil {
		return err
	}
	return put(ctx, t, packages, p, false)
}

func (t *tx) DeletePackage(ctx context.Context, orgID, name string) error {
	return del(ctx, t, packages, orgID, name)
}

func (t *tx) ListPackages(ctx context.Context, orgID string) ([]store.Package, error) {
	return list(ctx, t, packages, "org_id", orgID)
}

func (t *tx) PutPackageVersion(ctx context.Context, v store.PackageVersion) error {
	if err := checkBars("put package version", v.OrgID, v.Name, v.Version, v.Platform); err != nil {
		return err
	}
	return put(ctx, t, packageVersions, v, true)
}

func (t *tx) DeletePackageVersion(ctx context.Context, orgID, name, version, platform string) error {
	return del(ctx, t, packageVersions, orgID+"|"+name, version, platform)
}

func (t *tx) ListPackageVersions(ctx context.Context, orgID, name string) ([]store.PackageVersion, error) {
	vs, err := list(ctx, t, packageVersions, "package_key", orgID+"|"+name)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(vs, func(a, b store.PackageVersion) int { return cmp.Compare(a.Seq, b.Seq) })
	return vs, nil
}

func (t *tx) PutPackageChunk(ctx context.Context, orgID string, sum, data []byte) error {
	if len(sum) != 32 {
		return fmt.Errorf("put package chunk: hash of %d bytes, want 32", len(sum))
	}
	if err := checkKey("organization", orgID); err != nil {
		return fmt.Errorf("put package chunk: %w", err)
	}
	if _, err := t.tx.Exec(ctx, "INSERT INTO package_chunks (org_id, sha256, data) VALUES ($1, $2, $3) ON CONFLICT (org_id, sha256) DO NOTHING", orgID, sum, data); err != nil {
		return fmt.Errorf("put package chunk %x: %w", sum, err)
	}
	return nil
}

func (t *tx) GetPackageChunk(ctx context.Context, orgID string, sum []byte) ([]byte, error) {
	if checkKey("organization", orgID) != nil {
		return nil, fmt.Errorf("get package chunk: %w", store.ErrNotFound)
	}
	var data []byte
	err := t.tx.QueryRow(ctx, "SELECT data FROM package_chunks WHERE org_id = $1 AND sha256 = $2", orgID, sum).Scan(&data)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("get package chunk %x: %w", sum, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get package chunk %x: %w", sum, err)
	}
	return data, nil
}

func (t *tx) HasPackageChunk(ctx context.Context, orgID string, sum []byte) (bool, error) {
	if checkKey("organization", orgID) != nil {
		return false, nil
	}
	var one int
	err := t.tx.QueryRow(ctx, "SELECT 1 FROM package_chunks WHERE org_id = $1 AND sha256 = $2", orgID, sum).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read package chunk %x: %w", sum, err)
	}
	return true, nil
}

func (t *tx) DeletePackageChunk(ctx context.Context, orgID string, sum []byte) error {
	if checkKey("organization", orgID) != nil {
		return nil
	}
	if _, err := t.tx.Exec(ctx, "DELETE FROM package_chunks WHERE org_id = $1 AND sha256 = $2", orgID, sum); err != nil {
		return fmt.Errorf("delete package chunk %x: %w", sum, err)
	}
	return nil
}

func (t *tx) PutPendingChunk(ctx context.Context, c store.PendingChunk) error {
	if len(c.SHA256) != 32 {
		return fmt.Errorf("put pending chunk: hash of %d bytes, want 32", len(c.SHA256))
	}
	if err := checkKey("organization", c.OrgID); err != nil {
		return fmt.Errorf("put pending chunk: %w", err)
	}
	if _, err := t.tx.Exec(ctx, `INSERT INTO package_pending_chunks (org_id, sha256, size, uploaded_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (org_id, sha256) DO UPDATE SET size = EXCLUDED.size, uploaded_at = EXCLUDED.uploaded_at`, c.OrgID, c.SHA256, c.Size, c.UploadedAt); err != nil {
		return fmt.Errorf("put pending chunk %x: %w", c.SHA256, err)
	}
	return nil
}

func (t *tx) DeletePendingChunk(ctx context.Context, orgID string, sum []byte) error {
	if checkKey("organization", orgID) != nil {
		return nil
	}
	if _, err := t.tx.Exec(ctx, "DELETE FROM package_pending_chunks WHERE org_id = $1 AND sha256 = $2", orgID, sum); err != nil {
		return fmt.Errorf("delete pending chunk %x: %w", sum, err)
	}
	return nil
}

func (t *tx) PendingChunkUsage(ctx context.Context, orgID string) (store.PendingUsage, error) {
	var u store.PendingUsage
	if checkKey("organization", orgID) != nil {
		return u, nil
	}
	if err := t.tx.QueryRow(ctx, "SELECT count(*), coalesce(sum(size), 0) FROM package_pending_chunks WHERE org_id = $1", orgID).Scan(&u.Chunks, &u.Bytes); err != nil {
		return u, fmt.Errorf("count pending chunks: %w", err)
	}
	return u, nil
}

func (t *tx) ListPendingChunks(ctx context.Context, orgID string, before time.Time, limit int) ([]store.PendingChunk, error) {
	if checkKey("organization", orgID) != nil || limit <= 0 {
		return nil, nil
	}
	rows, err := t.tx.Query(ctx, `SELECT sha256, size, uploaded_at FROM package_pending_chunks WHERE org_id = $1 AND uploaded_at < $2
		ORDER BY uploaded_at, sha256 LIMIT $3`, orgID, before, limit)
	if err != nil {
		return nil, fmt.Errorf("list pending chunks: %w", err)
	}
	defer rows.Close()
	var out []store.PendingChunk
	for rows.Next() {
		c := store.PendingChunk{OrgID: orgID}
		if err := rows.Scan(&c.SHA256, &c.Size, &c.UploadedAt); err != nil {
			return nil, fmt.Errorf("list pending chunks: %w", err)
		}
		c.UploadedAt = c.UploadedAt.UTC()
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list pending chunks: %w", err)
	}
	return out, nil
}

var (
	alertRules = table[store.AlertRule]{name: "alert_rules", key: []string{"id"}, cols: []string{"org_id"}, order: "id",
		vals: func(r store.AlertRule) []any { return []any{r.ID, r.OrgID} }}
	alertStates = table[store.AlertState]{name: "alert_states", key: []string{"rule_id", "part_id"}, order: "rule_id, part_id",
		vals: func(s store.AlertState) []any { return []any{s.RuleID, s.PartID} }}
	alertEvents = table[store.AlertEvent]{name: "alert_events", key: []string{"id"}, cols: []string{"rule_id"}, order: "id",
		vals: func(e store.AlertEvent) []any { return []any{e.ID, e.RuleID} }}
)

func (t *tx) GetAlertRule(ctx context.Context, id string) (store.AlertRule, error) {
	return get(ctx, t, alertRules, id)
}
func (t *tx) PutAlertRule(ctx context.Context, r store.AlertRule) error {
	return put(ctx, t, alertRules, r, false)
}
func (t *tx) DeleteAlertRule(ctx context.Context, id string) error {
	return del(ctx, t, alertRules, id)
}
func (t *tx) ListAlertRules(ctx context.Context, orgID string) ([]store.AlertRule, error) {
	if orgID == "" {
		return list(ctx, t, alertRules, "", nil)
	}
	return list(ctx, t, alertRules, "org_id", orgID)
}

func (t *tx) GetAlertState(ctx context.Context, ruleID, partID string) (store.AlertState, error) {
	return get(ctx, t, alertStates, ruleID, partID)
}
func (t *tx) PutAlertState(ctx context.Context, s store.AlertState) error {
	if s.RuleID == "" || s.PartID == "" {
		return fmt.Errorf("put alert state %q %q: a rule ID and a part ID are required", s.RuleID, s.PartID)
	}
	return put(ctx, t, alertStates, s, false)
}
func (t *tx) DeleteAlertState(ctx context.Context, ruleID, partID string) error {
	return del(ctx, t, alertStates, ruleID, partID)
}
func (t *tx) ListAlertStates(ctx context.Context, ruleID string) ([]store.AlertState, error) {
	if ruleID == "" {
		return list(ctx, t, alertStates, "", nil)
	}
	if checkKey("rule", ruleID) != nil {
		return nil, nil
	}
	return query[store.AlertState](ctx, t, "alert states", "SELECT doc FROM alert_states WHERE rule_id = $1 ORDER BY part_id", ruleID)
}

func (t *tx) GetAlertEvent(ctx context.Context, id string) (store.AlertEvent, error) {
	return get(ctx, t, alertEvents, id)
}
func (t *tx) PutAlertEvent(ctx context.Context, e store.AlertEvent) error {
	if e.RuleID == "" {
		return fmt.Errorf("put alert event %q: a rule ID is required", e.ID)
	}
	return put(ctx, t, alertEvents, e, false)
}
func (t *tx) DeleteAlertEvent(ctx context.Context, id string) error {
	return del(ctx, t, alertEvents, id)
}
func (t *tx) ListAlertEvents(ctx context.Context, ruleID, before string, limit int) ([]store.AlertEvent, error) {
	if ruleID == "" || checkKey("rule", ruleID) != nil || checkKey("before", before) != nil || limit <= 0 {
		return nil, nil
	}
	return query[store.AlertEvent](ctx, t, "alert events",
		"SELECT doc FROM alert_events WHERE rule_id = $1 AND ($2 = '' OR id < $2) ORDER BY id DESC LIMIT $3", ruleID, before, limit)
}
