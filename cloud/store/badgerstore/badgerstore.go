// Package badgerstore is the fleet cloud's embedded store: Badger in the
// cloud's data folder, so outpost-cloud runs with nothing but its binary.
//
// It is one of the store packages, the only ones that may import badger
// (docs/ARCHITECTURE.md; deptest checks it). Every badger type stays inside
// it: callers see only store.Store, so another engine passes the same
// storetest suite and nothing else changes.
//
// Layout: each record is JSON under "<table>\x00<id>"; secondary indexes are
// "<index>\x00<value>\x00<id>" keys whose value is the record's ID. NUL
// separators are safe because the store refuses strings containing NUL.
// Package chunks are raw bytes, not JSON, under "pchunk\x00<org>\x00<hex
// SHA-256>"; the chunks no version names yet are recorded under
// "ppend\x00<org>\x00<hex SHA-256>", valued with their size and upload
// time (two big-endian uint64s).
package badgerstore

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
	"go.uber.org/zap"

	"github.com/outpost-robotics/outpost/badgerdb"
	"github.com/outpost-robotics/outpost/cloud/store"
)

// maxRetries bounds Update's retries on conflicts.
const maxRetries = 20

// Store is the Badger implementation of store.Store.
type Store struct {
	db *badger.DB
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the store in dir. An empty dir opens an
// in-memory store, for tests.
func Open(dir string, log *zap.Logger) (*Store, error) {
	opts := badgerdb.Options(dir, log).WithIndexCacheSize(4 << 20)
	if dir == "" {
		// In memory there is no value log: every value lives in the LSM
		// tree, so the threshold must admit the largest record.
		opts = opts.WithInMemory(true).WithValueThreshold(1 << 20)
	}
	db, err := badgerdb.Open(opts, log)
	if err != nil {
		return nil, fmt.Errorf("open cloud store in %q: %w", dir, err)
	}
	s := &Store{db: db}
	if err := s.indexMachineNames(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open cloud store in %q: %w", dir, err)
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close cloud store: %w", err)
	}
	return nil
}

// View runs fn in a read-only transaction.
func (s *Store) View(ctx context.Context, fn func(store.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.View(func(txn *badger.Txn) error { return fn(&tx{txn: txn}) })
}

// Update runs fn in a read-write transaction, retrying on conflicts.
func (s *Store) Update(ctx context.Context, fn func(store.Tx) error) error {
	for range maxRetries {
		if err := ctx.Err(); err != nil {
			return err
		}
		err := s.db.Update(func(txn *badger.Txn) error {
			t := &tx{txn: txn}
			if err := fn(t); err != nil {
				return err
			}
			if t.hierarchyChanged {
				return t.bumpGeneration()
			}
			return nil
		})
		if errors.Is(err, badger.ErrConflict) {
			continue
		}
		return err
	}
	return fmt.Errorf("update cloud store: %d attempts: %w", maxRetries, store.ErrConflict)
}

// Generation returns the hierarchy generation.
func (s *Store) Generation(ctx context.Context) (uint64, error) {
	var g uint64
	err := s.View(ctx, func(st store.Tx) error {
		var err error
		g, err = st.(*tx).generation()
		return err
	})
	return g, err
}

var generationKey = []byte("gen")

type tx struct {
	txn              *badger.Txn
	hierarchyChanged bool
}

func (t *tx) generation() (uint64, error) {
	item, err := t.txn.Get(generationKey)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read generation: %w", err)
	}
	var g uint64
	err = item.Value(func(v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("generation is %d bytes, want 8", len(v))
		}
		g = binary.BigEndian.Uint64(v)
		return nil
	})
	return g, err
}

func (t *tx) bumpGeneration() error {
	g, err := t.generation()
	if err != nil {
		return err
	}
	return t.txn.Set(generationKey, binary.BigEndian.AppendUint64(nil, g+1))
}

// key joins parts with NUL; it refuses empty IDs and strings holding NUL.
func key(parts ...string) ([]byte, error) {
	for i, p := range parts {
		if strings.IndexByte(p, 0) >= 0 {
			return nil, fmt.Errorf("key part %q holds NUL", p)
		}
		if i == len(parts)-1 && p == "" {
			return nil, fmt.Errorf("empty ID in %q", strings.Join(parts, "/"))
		}
	}
	return []byte(strings.Join(parts, "\x00")), nil
}

func prefix(parts ...string) ([]byte, error) {
	for _, p := range parts {
		if strings.IndexByte(p, 0) >= 0 {
			return nil, fmt.Errorf("key part %q holds NUL", p)
		}
	}
	return []byte(strings.Join(parts, "\x00") + "\x00"), nil
}

// table describes one record type: where it lives, its ID, and its indexes.
type table[T any] struct {
	name string
	id   func(T) string
	// indexes returns index name and value pairs: (name, value...) keys.
	indexes func(T) [][]string
	// unique names indexes whose value may map to one ID only.
	unique map[string]bool
	// hierarchy says writes change the Generation.
	hierarchy bool
}

func get[T any](t *tx, tb table[T], id string) (T, error) {
	var v T
	k, err := key(tb.name, id)
	if err != nil {
		return v, fmt.Errorf("get %s %q: %w", tb.name, id, store.ErrNotFound)
	}
	item, err := t.txn.Get(k)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return v, fmt.Errorf("get %s %q: %w", tb.name, id, store.ErrNotFound)
	}
	if err != nil {
		return v, fmt.Errorf("get %s %q: %w", tb.name, id, err)
	}
	if err := item.Value(func(b []byte) error { return json.Unmarshal(b, &v) }); err != nil {
		return v, fmt.Errorf("decode %s %q: %w", tb.name, id, err)
	}
	return v, nil
}

func indexKeys[T any](tb table[T], v T) ([][]byte, []bool, error) {
	var keys [][]byte
	var uniq []bool
	for _, ix := range tb.indexes(v) {
		k, err := key(append(ix, tb.id(v))...)
		if err != nil {
			return nil, nil, err
		}
		if tb.unique[ix[0]] {
			// A unique index maps its value alone to the ID.
			k, err = key(ix...)
			if err != nil {
				return nil, nil, err
			}
		}
		keys = append(keys, k)
		uniq = append(uniq, tb.unique[ix[0]])
	}
	return keys, uniq, nil
}

func put[T any](t *tx, tb table[T], v T) error {
	id := tb.id(v)
	k, err := key(tb.name, id)
	if err != nil {
		return fmt.Errorf("put %s: %w", tb.name, err)
	}
	newKeys, uniq, err := indexKeys(tb, v)
	if err != nil {
		return fmt.Errorf("put %s %q: %w", tb.name, id, err)
	}
	old, err := get(t, tb, id)
	switch {
	case err == nil:
		oldKeys, _, err := indexKeys(tb, old)
		if err != nil {
			return fmt.Errorf("put %s %q: %w", tb.name, id, err)
		}
		for _, ok := range oldKeys {
			if err := t.txn.Delete(ok); err != nil {
				return fmt.Errorf("put %s %q: drop index: %w", tb.name, id, err)
			}
		}
	case !errors.Is(err, store.ErrNotFound):
		return err
	}
	for i, ik := range newKeys {
		if uniq[i] {
			item, err := t.txn.Get(ik)
			if err == nil {
				var owner []byte
				owner, err = item.ValueCopy(nil)
				if err != nil {
					return fmt.Errorf("put %s %q: %w", tb.name, id, err)
				}
				if string(owner) != id {
					return fmt.Errorf("put %s %q: %w", tb.name, id, store.ErrExists)
				}
			} else if !errors.Is(err, badger.ErrKeyNotFound) {
				return fmt.Errorf("put %s %q: %w", tb.name, id, err)
			}
		}
		if err := t.txn.Set(ik, []byte(id)); err != nil {
			return fmt.Errorf("put %s %q: index: %w", tb.name, id, err)
		}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s %q: %w", tb.name, id, err)
	}
	if err := t.txn.Set(k, b); err != nil {
		return fmt.Errorf("put %s %q: %w", tb.name, id, err)
	}
	if tb.hierarchy {
		t.hierarchyChanged = true
	}
	return nil
}

func del[T any](t *tx, tb table[T], id string) error {
	old, err := get(t, tb, id)
	if err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	keys, _, err := indexKeys(tb, old)
	if err != nil {
		return fmt.Errorf("delete %s %q: %w", tb.name, id, err)
	}
	k, _ := key(tb.name, id)
	for _, x := range append(keys, k) {
		if err := t.txn.Delete(x); err != nil {
			return fmt.Errorf("delete %s %q: %w", tb.name, id, err)
		}
	}
	if tb.hierarchy {
		t.hierarchyChanged = true
	}
	return nil
}

// scanIDs returns the values (record IDs) of every key under p, in key order.
func (t *tx) scanIDs(p []byte) ([]string, error) {
	it := t.txn.NewIterator(badger.IteratorOptions{Prefix: p, PrefetchValues: true, PrefetchSize: 64})
	defer it.Close()
	var ids []string
	for it.Rewind(); it.Valid(); it.Next() {
		v, err := it.Item().ValueCopy(nil)
		if err != nil {
			return nil, fmt.Errorf("scan index: %w", err)
		}
		ids = append(ids, string(v))
	}
	return ids, nil
}

// list returns the records whose index entry starts with parts, or every
// record of the table for no parts.
func list[T any](t *tx, tb table[T], parts ...string) ([]T, error) {
	var out []T
	if len(parts) == 0 {
		p, _ := prefix(tb.name)
		it := t.txn.NewIterator(badger.IteratorOptions{Prefix: p, PrefetchValues: true, PrefetchSize: 64})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var v T
			if err := it.Item().Value(func(b []byte) error { return json.Unmarshal(b, &v) }); err != nil {
				return nil, fmt.Errorf("decode %s: %w", tb.name, err)
			}
			out = append(out, v)
		}
		return out, nil
	}
	p, err := prefix(parts...)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", tb.name, err)
	}
	ids, err := t.scanIDs(p)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", tb.name, err)
	}
	for _, id := range ids {
		v, err := get(t, tb, id)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", tb.name, err)
		}
		out = append(out, v)
	}
	return out, nil
}

func one(parts ...string) [][]string { return [][]string{parts} }

var (
	orgs = table[store.Org]{name: "org", id: func(o store.Org) string { return o.ID },
		indexes: func(store.Org) [][]string { return nil }, hierarchy: true}
	locations = table[store.Location]{name: "loc", id: func(l store.Location) string { return l.ID },
		indexes: func(l store.Location) [][]string {
			return [][]string{{"loc.org", l.OrgID}, {"loc.parent", l.ParentID}}
		}, hierarchy: true}
	machines = table[store.Machine]{name: "mach", id: func(m store.Machine) string { return m.ID },
		indexes: func(m store.Machine) [][]string { return one("mach.loc", m.LocationID) }, hierarchy: true}
	parts = table[store.Part]{name: "part", id: func(p store.Part) string { return p.ID },
		indexes: func(p store.Part) [][]string { return one("part.mach", p.MachineID) }, hierarchy: true}
	users = table[store.User]{name: "user", id: func(u store.User) string { return u.ID },
		indexes: func(u store.User) [][]string { return one("user.email", u.Email) },
		unique:  map[string]bool{"user.email": true}}
	apikeys = table[store.APIKey]{name: "key", id: func(k store.APIKey) string { return k.ID },
		indexes: func(k store.APIKey) [][]string { return one("key.org", k.OrgID) }}
	invites = table[store.Invite]{name: "inv", id: func(i store.Invite) string { return i.ID },
		indexes: func(i store.Invite) [][]string { return one("inv.code", fmt.Sprintf("%x", i.CodeHash)) },
		unique:  map[string]bool{"inv.code": true}}
	// A grant's ID is subject NUL scope: one grant per subject and scope.
	grants = table[store.Grant]{name: "grant", id: func(g store.Grant) string { return grantID(g.Subject, g.Scope) },
		indexes: func(g store.Grant) [][]string {
			return [][]string{{"grant.subj", g.Subject, g.Scope}, {"grant.scope", g.Scope, g.Subject}, {"grant.org", g.OrgID}}
		}}
	audits = table[store.AuditEvent]{name: "audit", id: func(e store.AuditEvent) string { return e.ID },
		indexes: func(e store.AuditEvent) [][]string { return one("audit.org", e.OrgID) }}
)

var (
	configRevs = table[store.ConfigRevision]{name: "cfgrev", id: func(r store.ConfigRevision) string { return revID(r.MachineID, r.Revision) },
		indexes: func(r store.ConfigRevision) [][]string { return one("cfgrev.mach", r.MachineID) }}
	fragments = table[store.Fragment]{name: "frag", id: func(f store.Fragment) string { return f.ID },
		indexes: func(f store.Fragment) [][]string { return one("frag.org", f.OrgID) }}
	fragmentRevs = table[store.FragmentRevision]{name: "fragrev", id: func(r store.FragmentRevision) string { return revID(r.FragmentID, r.Revision) },
		indexes: func(store.FragmentRevision) [][]string { return nil }}
	partDocs = table[store.PartDocuments]{name: "pdoc", id: func(d store.PartDocuments) string { return d.PartID },
		indexes: func(store.PartDocuments) [][]string { return nil }}
	captureTags = table[store.CaptureTags]{name: "ctag", id: func(c store.CaptureTags) string { return c.ID },
		indexes: func(store.CaptureTags) [][]string { return nil }}
	proposals = table[store.Proposal]{name: "prop", id: func(p store.Proposal) string { return p.ID },
		indexes: func(p store.Proposal) [][]string { return one("prop.mach", p.MachineID) }}
	datasets = table[store.Dataset]{name: "dset", id: func(d store.Dataset) string { return d.ID },
		indexes: func(d store.Dataset) [][]string { return one("dset.org", d.OrgID) }}
	// A dataset entry's ID is the dataset's, "|", the capture's: a
	// dataset ID holds no "|", so the first one ends it.
	datasetCaptures = table[store.DatasetCapture]{name: "dscap", id: func(c store.DatasetCapture) string { return c.DatasetID + "|" + c.CaptureID },
		indexes: func(c store.DatasetCapture) [][]string { return one("dscap.set", c.DatasetID) }}
)

// revID orders revisions of one owner by number: the index keys sort as the
// zero-padded revision.
func revID(owner string, rev uint64) string { return fmt.Sprintf("%s|%020d", owner, rev) }

func (t *tx) GetConfigRevision(_ context.Context, machineID string, rev uint64) (store.ConfigRevision, error) {
	return get(t, configRevs, revID(machineID, rev))
}
func (t *tx) PutConfigRevision(_ context.Context, r store.ConfigRevision) error {
	if r.MachineID == "" || r.Revision == 0 || strings.Contains(r.MachineID, "|") {
		return fmt.Errorf("put config revision %q %d: machine and a revision from 1 are required", r.MachineID, r.Revision)
	}
	if _, err := get(t, configRevs, revID(r.MachineID, r.Revision)); err == nil {
		return fmt.Errorf("put config revision %d of machine %q: %w", r.Revision, r.MachineID, store.ErrExists)
	}
	return put(t, configRevs, r)
}
func (t *tx) ListConfigRevisions(_ context.Context, machineID string) ([]store.ConfigRevision, error) {
	return list(t, configRevs, "cfgrev.mach", machineID)
}

func (t *tx) GetFragment(_ context.Context, id string) (store.Fragment, error) {
	return get(t, fragments, id)
}
func (t *tx) PutFragment(_ context.Context, f store.Fragment) error { return put(t, fragments, f) }
func (t *tx) DeleteFragment(_ context.Context, id string) error     { return del(t, fragments, id) }
func (t *tx) ListFragments(_ context.Context, orgID string) ([]store.Fragment, error) {
	return list(t, fragments, "frag.org", orgID)
}
func (t *tx) GetFragmentRevision(_ context.Context, fragmentID string, rev uint64) (store.FragmentRevision, error) {
	return get(t, fragmentRevs, revID(fragmentID, rev))
}
func (t *tx) PutFragmentRevision(_ context.Context, r store.FragmentRevision) error {
	if r.FragmentID == "" || r.Revision == 0 || strings.Contains(r.FragmentID, "|") {
		return fmt.Errorf("put fragment revision %q %d: fragment and a revision from 1 are required", r.FragmentID, r.Revision)
	}
	if _, err := get(t, fragmentRevs, revID(r.FragmentID, r.Revision)); err == nil {
		return fmt.Errorf("put fragment revision %d of %q: %w", r.Revision, r.FragmentID, store.ErrExists)
	}
	return put(t, fragmentRevs, r)
}

func (t *tx) GetPartDocuments(_ context.Context, partID string) (store.PartDocuments, error) {
	return get(t, partDocs, partID)
}
func (t *tx) PutPartDocuments(_ context.Context, d store.PartDocuments) error {
	return put(t, partDocs, d)
}

func (t *tx) GetCaptureTags(_ context.Context, id string) (store.CaptureTags, error) {
	return get(t, captureTags, id)
}
func (t *tx) PutCaptureTags(_ context.Context, c store.CaptureTags) error {
	return put(t, captureTags, c)
}

func (t *tx) GetProposal(_ context.Context, id string) (store.Proposal, error) {
	return get(t, proposals, id)
}
func (t *tx) PutProposal(_ context.Context, p store.Proposal) error { return put(t, proposals, p) }
func (t *tx) ListProposals(_ context.Context, machineID string) ([]store.Proposal, error) {
	return list(t, proposals, "prop.mach", machineID)
}

func (t *tx) GetDataset(_ context.Context, id string) (store.Dataset, error) {
	return get(t, datasets, id)
}
func (t *tx) PutDataset(_ context.Context, d store.Dataset) error { return put(t, datasets, d) }

// DeleteDataset deletes the dataset's entries with it, in the same
// transaction (the cloud bounds a dataset's size so they fit in one).
func (t *tx) DeleteDataset(ctx context.Context, id string) error {
	if _, err := get(t, datasets, id); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	cs, err := t.ListDatasetCaptures(ctx, id)
	if err != nil {
		return err
	}
	for _, c := range cs {
		if err := del(t, datasetCaptures, c.DatasetID+"|"+c.CaptureID); err != nil {
			return err
		}
	}
	return del(t, datasets, id)
}
func (t *tx) ListDatasets(_ context.Context, orgID string) ([]store.Dataset, error) {
	return list(t, datasets, "dset.org", orgID)
}
func (t *tx) PutDatasetCapture(_ context.Context, c store.DatasetCapture) error {
	if c.DatasetID == "" || c.CaptureID == "" || strings.Contains(c.DatasetID, "|") {
		return fmt.Errorf("put dataset capture %q %q: a dataset without \"|\" and a capture are required", c.DatasetID, c.CaptureID)
	}
	return put(t, datasetCaptures, c)
}
func (t *tx) DeleteDatasetCapture(_ context.Context, datasetID, captureID string) error {
	return del(t, datasetCaptures, datasetID+"|"+captureID)
}
func (t *tx) ListDatasetCaptures(_ context.Context, datasetID string) ([]store.DatasetCapture, error) {
	return list(t, datasetCaptures, "dscap.set", datasetID)
}

// grantID is the grant table's ID; index keys add it as their last part.
func grantID(subject, scope string) string { return subject + "|" + scope }

func (t *tx) GetOrg(_ context.Context, id string) (store.Org, error) { return get(t, orgs, id) }
func (t *tx) PutOrg(_ context.Context, o store.Org) error            { return put(t, orgs, o) }
func (t *tx) DeleteOrg(_ context.Context, id string) error           { return del(t, orgs, id) }
func (t *tx) ListOrgs(context.Context) ([]store.Org, error)          { return list(t, orgs) }

func (t *tx) GetLocation(_ context.Context, id string) (store.Location, error) {
	return get(t, locations, id)
}
func (t *tx) PutLocation(_ context.Context, l store.Location) error {
	return put(t, locations, l)
}
func (t *tx) DeleteLocation(_ context.Context, id string) error { return del(t, locations, id) }
func (t *tx) ListLocations(_ context.Context, orgID string) ([]store.Location, error) {
	if orgID == "" {
		return list(t, locations)
	}
	return list(t, locations, "loc.org", orgID)
}
func (t *tx) ListChildLocations(_ context.Context, parentID string) ([]store.Location, error) {
	return list(t, locations, "loc.parent", parentID)
}

func (t *tx) GetMachine(_ context.Context, id string) (store.Machine, error) {
	return get(t, machines, id)
}
func (t *tx) PutMachine(_ context.Context, m store.Machine) error {
	nk, err := key(machineNameIndex, m.Name, m.ID)
	if err != nil {
		return fmt.Errorf("put mach: %w", err)
	}
	old, err := get(t, machines, m.ID)
	switch {
	case err == nil:
		ok, _ := key(machineNameIndex, old.Name, old.ID)
		if err := t.txn.Delete(ok); err != nil {
			return fmt.Errorf("put mach %q: drop name index: %w", m.ID, err)
		}
	case !errors.Is(err, store.ErrNotFound):
		return err
	}
	if err := put(t, machines, m); err != nil {
		return err
	}
	if err := t.txn.Set(nk, []byte(m.LocationID)); err != nil {
		return fmt.Errorf("put mach %q: name index: %w", m.ID, err)
	}
	return nil
}

func (t *tx) DeleteMachine(_ context.Context, id string) error {
	old, err := get(t, machines, id)
	if err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	if err := del(t, machines, id); err != nil {
		return err
	}
	k, _ := key(machineNameIndex, old.Name, old.ID)
	if err := t.txn.Delete(k); err != nil {
		return fmt.Errorf("delete mach %q: name index: %w", id, err)
	}
	return nil
}

// machineNameIndex orders machines by (name, ID) for PageMachines: keys
// "mach.name\x00NAME\x00ID" whose value is the machine's location, so a
// page is chosen from the index alone. NUL sorts before every other byte,
// so the keys' order is the order of (name, ID).
const machineNameIndex = "mach.name"

// machineNamesIndexed is the meta key saying the name index covers every
// machine (stores made before it existed are indexed once at open).
const machineNamesIndexed = "machine-name-index"

// indexMachineNames builds the name index of a store that predates it.
func (s *Store) indexMachineNames() error {
	done, _ := key("meta", machineNamesIndexed)
	var all []store.Machine
	err := s.db.View(func(txn *badger.Txn) error {
		if _, err := txn.Get(done); err == nil {
			return nil
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		var err error
		all, err = list(&tx{txn: txn}, machines)
		if all == nil && err == nil {
			all = []store.Machine{}
		}
		return err
	})
	if err != nil || all == nil {
		return err
	}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	for _, m := range all {
		k, err := key(machineNameIndex, m.Name, m.ID)
		if err != nil {
			return fmt.Errorf("index machine %q: %w", m.ID, err)
		}
		if err := wb.Set(k, []byte(m.LocationID)); err != nil {
			return fmt.Errorf("index machine names: %w", err)
		}
	}
	if err := wb.Set(done, []byte{1}); err != nil {
		return fmt.Errorf("index machine names: %w", err)
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("index machine names: %w", err)
	}
	return nil
}

func (t *tx) PageMachines(_ context.Context, q store.MachineQuery) ([]store.Machine, bool, error) {
	if q.Limit < 1 || q.Limit > store.MaxMachinePage {
		return nil, false, fmt.Errorf("page machines: limit %d is not from 1 to %d", q.Limit, store.MaxMachinePage)
	}
	locs := make(map[string]bool, len(q.LocationIDs))
	for _, l := range q.LocationIDs {
		locs[l] = true
	}
	ids := make(map[string]bool, len(q.MachineIDs))
	for _, m := range q.MachineIDs {
		ids[m] = true
	}
	if len(locs) == 0 && len(ids) == 0 {
		return nil, false, nil
	}
	p, _ := prefix(machineNameIndex)
	start := p
	if q.AfterName != "" || q.AfterID != "" {
		k, err := key(machineNameIndex, q.AfterName, q.AfterID)
		if err != nil {
			return nil, false, nil // no machine sorts after a cursor holding NUL: such names are refused
		}
		start = append(k, 0) // the first key after the cursor's own
	}
	search := store.FoldName(q.Search)
	it := t.txn.NewIterator(badger.IteratorOptions{Prefix: p, PrefetchValues: true, PrefetchSize: 256})
	defer it.Close()
	var page []store.Machine
	for it.Seek(start); it.Valid(); it.Next() {
		rest := it.Item().Key()[len(p):]
		i := bytes.LastIndexByte(rest, 0)
		if i < 0 {
			return nil, false, fmt.Errorf("page machines: malformed index key %q", rest)
		}
		name, id := rest[:i], string(rest[i+1:])
		if !ids[id] {
			var in bool
			if err := it.Item().Value(func(v []byte) error { in = locs[string(v)]; return nil }); err != nil {
				return nil, false, fmt.Errorf("page machines: %w", err)
			}
			if !in {
				continue
			}
		}
		if search != "" && !strings.Contains(store.FoldName(string(name)), search) {
			continue
		}
		if len(page) == q.Limit {
			return page, true, nil
		}
		m, err := get(t, machines, id)
		if err != nil {
			return nil, false, fmt.Errorf("page machines: %w", err)
		}
		page = append(page, m)
	}
	return page, false, nil
}
func (t *tx) ListMachines(_ context.Context, locationID string) ([]store.Machine, error) {
	if locationID == "" {
		return list(t, machines)
	}
	return list(t, machines, "mach.loc", locationID)
}

func (t *tx) GetPart(_ context.Context, id string) (store.Part, error) { return get(t, parts, id) }
func (t *tx) PutPart(_ context.Context, p store.Part) error            { return put(t, parts, p) }
func (t *tx) DeletePart(_ context.Context, id string) error            { return del(t, parts, id) }
func (t *tx) ListParts(_ context.Context, machineID string) ([]store.Part, error) {
	if machineID == "" {
		return list(t, parts)
	}
	return list(t, parts, "part.mach", machineID)
}

func (t *tx) GetUser(_ context.Context, id string) (store.User, error) { return get(t, users, id) }
func (t *tx) GetUserByEmail(_ context.Context, email string) (store.User, error) {
	k, err := key("user.email", email)
	if err != nil {
		return store.User{}, fmt.Errorf("get user by email: %w", store.ErrNotFound)
	}
	item, err := t.txn.Get(k)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return store.User{}, fmt.Errorf("get user by email: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.User{}, fmt.Errorf("get user by email: %w", err)
	}
	id, err := item.ValueCopy(nil)
	if err != nil {
		return store.User{}, fmt.Errorf("get user by email: %w", err)
	}
	return get(t, users, string(id))
}
func (t *tx) PutUser(_ context.Context, u store.User) error   { return put(t, users, u) }
func (t *tx) DeleteUser(_ context.Context, id string) error   { return del(t, users, id) }
func (t *tx) ListUsers(context.Context) ([]store.User, error) { return list(t, users) }

func (t *tx) GetAPIKey(_ context.Context, id string) (store.APIKey, error) {
	return get(t, apikeys, id)
}
func (t *tx) PutAPIKey(_ context.Context, k store.APIKey) error { return put(t, apikeys, k) }
func (t *tx) DeleteAPIKey(_ context.Context, id string) error   { return del(t, apikeys, id) }
func (t *tx) ListAPIKeys(_ context.Context, orgID string) ([]store.APIKey, error) {
	return list(t, apikeys, "key.org", orgID)
}

func (t *tx) GetGrant(_ context.Context, subject, scope string) (store.Grant, error) {
	return get(t, grants, grantID(subject, scope))
}
func (t *tx) PutGrant(_ context.Context, g store.Grant) error {
	if g.Subject == "" || g.Scope == "" || strings.Contains(g.Subject, "|") {
		return fmt.Errorf("put grant %q on %q: subject and scope are required and the subject holds no '|'", g.Subject, g.Scope)
	}
	return put(t, grants, g)
}
func (t *tx) DeleteGrant(_ context.Context, subject, scope string) error {
	return del(t, grants, grantID(subject, scope))
}
func (t *tx) ListGrantsBySubject(_ context.Context, subject string) ([]store.Grant, error) {
	return list(t, grants, "grant.subj", subject)
}
func (t *tx) ListGrantsByScope(_ context.Context, scope string) ([]store.Grant, error) {
	return list(t, grants, "grant.scope", scope)
}
func (t *tx) ListGrantsByOrg(_ context.Context, orgID string) ([]store.Grant, error) {
	gs, err := list(t, grants, "grant.org", orgID)
	sort.Slice(gs, func(i, j int) bool { return grantID(gs[i].Subject, gs[i].Scope) < grantID(gs[j].Subject, gs[j].Scope) })
	return gs, err
}

func (t *tx) GetInvite(_ context.Context, id string) (store.Invite, error) {
	return get(t, invites, id)
}
func (t *tx) GetInviteByCode(_ context.Context, codeHash []byte) (store.Invite, error) {
	k, _ := key("inv.code", fmt.Sprintf("%x", codeHash))
	item, err := t.txn.Get(k)
	if errors.Is(err, badger.ErrKeyNotFound) || len(codeHash) == 0 {
		return store.Invite{}, fmt.Errorf("get invite by code: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.Invite{}, fmt.Errorf("get invite by code: %w", err)
	}
	id, err := item.ValueCopy(nil)
	if err != nil {
		return store.Invite{}, fmt.Errorf("get invite by code: %w", err)
	}
	return get(t, invites, string(id))
}
func (t *tx) PutInvite(_ context.Context, inv store.Invite) error { return put(t, invites, inv) }
func (t *tx) DeleteInvite(_ context.Context, id string) error     { return del(t, invites, id) }
func (t *tx) ListInvites(context.Context) ([]store.Invite, error) { return list(t, invites) }

func (t *tx) AppendAudit(_ context.Context, e store.AuditEvent) error {
	if _, err := get(t, audits, e.ID); err == nil {
		return fmt.Errorf("append audit %q: %w", e.ID, store.ErrExists)
	}
	return put(t, audits, e)
}

func (t *tx) ListAudit(_ context.Context, orgID, before string, limit int) ([]store.AuditEvent, error) {
	p, err := prefix("audit.org", orgID)
	if err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	it := t.txn.NewIterator(badger.IteratorOptions{Prefix: p, Reverse: true})
	defer it.Close()
	// A reverse scan starts at the greatest key not above the seek key.
	seek := append(bytes.Clone(p), 0xff)
	if before != "" {
		seek = append(bytes.Clone(p), before...)
	}
	var out []store.AuditEvent
	for it.Seek(seek); it.Valid() && len(out) < limit; it.Next() {
		id := string(it.Item().Key()[len(p):])
		if before != "" && id >= before {
			continue
		}
		e, err := get(t, audits, id)
		if err != nil {
			return nil, fmt.Errorf("list audit: %w", err)
		}
		out = append(out, e)
	}
	return out, nil
}

func (t *tx) GetMeta(_ context.Context, k string) ([]byte, error) {
	bk, err := key("meta", k)
	if err != nil {
		return nil, fmt.Errorf("get meta: %w", store.ErrNotFound)
	}
	item, err := t.txn.Get(bk)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, fmt.Errorf("get meta %q: %w", k, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get meta %q: %w", k, err)
	}
	return item.ValueCopy(nil)
}

func (t *tx) PutMeta(_ context.Context, k string, v []byte) error {
	bk, err := key("meta", k)
	if err != nil {
		return fmt.Errorf("put meta: %w", err)
	}
	return t.txn.Set(bk, bytes.Clone(v))
}

// Packages are keyed ORG|NAME and versions ORG|NAME|VERSION|PLATFORM:
// organization ids, package names, versions and platforms never hold '|'
// (the handlers check their syntax), and the store refuses ones that do.
var (
	packages = table[store.Package]{name: "pkg", id: func(p store.Package) string { return p.OrgID + "|" + p.Name },
		indexes: func(p store.Package) [][]string { return one("pkg.org", p.OrgID) }}
	packageVersions = table[store.PackageVersion]{name: "pver",
		id: func(v store.PackageVersion) string {
			return v.OrgID + "|" + v.Name + "|" + v.Version + "|" + v.Platform
		},
		indexes: func(v store.PackageVersion) [][]string { return one("pver.pkg", v.OrgID+"|"+v.Name) }}
)

// checkBars refuses key parts holding the '|' that joins them.
func checkBars(what string, parts ...string) error {
	for _, p := range parts {
		if p == "" || strings.Contains(p, "|") {
			return fmt.Errorf("%s: %q: want a non-empty value without '|'", what, p)
		}
	}
	return nil
}

func (t *tx) GetPackage(_ context.Context, orgID, name string) (store.Package, error) {
	if checkBars("get package", orgID, name) != nil {
		return store.Package{}, fmt.Errorf("get package %q/%q: %w", orgID, name, store.ErrNotFound)
	}
	return get(t, packages, orgID+"|"+name)
}

func (t *tx) PutPackage(_ context.Context, p store.Package) error {
	if err := checkBars("put package", p.OrgID, p.Name); err != nil {
		return err
	}
	return put(t, packages, p)
}

func (t *tx) DeletePackage(_ context.Context, orgID, name string) error {
	if checkBars("delete package", orgID, name) != nil {
		return fmt.Errorf("delete package %q/%q: %w", orgID, name, store.ErrNotFound)
	}
	return del(t, packages, orgID+"|"+name)
}

func (t *tx) ListPackages(_ context.Context, orgID string) ([]store.Package, error) {
	return list(t, packages, "pkg.org", orgID)
}

func (t *tx) PutPackageVersion(_ context.Context, v store.PackageVersion) error {
	if err := checkBars("put package version", v.OrgID, v.Name, v.Version, v.Platform); err != nil {
		return err
	}
	if _, err := get(t, packageVersions, packageVersions.id(v)); err == nil {
		return fmt.Errorf("put package version %s/%s %s %s: %w", v.OrgID, v.Name, v.Version, v.Platform, store.ErrExists)
	}
	return put(t, packageVersions, v)
}

func (t *tx) DeletePackageVersion(_ context.Context, orgID, name, version, platform string) error {
	if checkBars("delete package version", orgID, name, version, platform) != nil {
		return fmt.Errorf("delete package version %s/%s %s %s: %w", orgID, name, version, platform, store.ErrNotFound)
	}
	return del(t, packageVersions, orgID+"|"+name+"|"+version+"|"+platform)
}

func (t *tx) ListPackageVersions(_ context.Context, orgID, name string) ([]store.PackageVersion, error) {
	if checkBars("list package versions", orgID, name) != nil {
		return nil, nil
	}
	vs, err := list(t, packageVersions, "pver.pkg", orgID+"|"+name)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(vs, func(a, b store.PackageVersion) int { return cmp.Compare(a.Seq, b.Seq) })
	return vs, nil
}

// chunkKey is where a chunk's raw bytes live: the organization, then the
// hash, so one organization's chunks are never another's.
func chunkKey(orgID string, sum []byte) ([]byte, error) {
	if len(sum) != 32 {
		return nil, fmt.Errorf("chunk hash of %d bytes, want 32", len(sum))
	}
	return key("pchunk", orgID, hex.EncodeToString(sum))
}

func (t *tx) PutPackageChunk(_ context.Context, orgID string, sum, data []byte) error {
	k, err := chunkKey(orgID, sum)
	if err != nil {
		return fmt.Errorf("put package chunk: %w", err)
	}
	if _, err := t.txn.Get(k); err == nil {
		return nil
	} else if !errors.Is(err, badger.ErrKeyNotFound) {
		return fmt.Errorf("put package chunk: %w", err)
	}
	if err := t.txn.Set(k, bytes.Clone(data)); err != nil {
		return fmt.Errorf("put package chunk: %w", err)
	}
	return nil
}

func (t *tx) GetPackageChunk(_ context.Context, orgID string, sum []byte) ([]byte, error) {
	k, err := chunkKey(orgID, sum)
	if err != nil {
		return nil, fmt.Errorf("get package chunk: %w", store.ErrNotFound)
	}
	item, err := t.txn.Get(k)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, fmt.Errorf("get package chunk %x: %w", sum, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get package chunk %x: %w", sum, err)
	}
	return item.ValueCopy(nil)
}

func (t *tx) HasPackageChunk(_ context.Context, orgID string, sum []byte) (bool, error) {
	k, err := chunkKey(orgID, sum)
	if err != nil {
		return false, nil
	}
	_, err = t.txn.Get(k)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read package chunk %x: %w", sum, err)
	}
	return true, nil
}

func (t *tx) DeletePackageChunk(_ context.Context, orgID string, sum []byte) error {
	k, err := chunkKey(orgID, sum)
	if err != nil {
		return nil
	}
	if err := t.txn.Delete(k); err != nil {
		return fmt.Errorf("delete package chunk %x: %w", sum, err)
	}
	return nil
}

// pendingKey is where an organization records a pending chunk: one key
// per chunk (its hash), valued with its size and upload time.
func pendingKey(orgID string, sum []byte) ([]byte, error) {
	if len(sum) != 32 {
		return nil, fmt.Errorf("chunk hash of %d bytes, want 32", len(sum))
	}
	return key("ppend", orgID, hex.EncodeToString(sum))
}

func (t *tx) PutPendingChunk(_ context.Context, c store.PendingChunk) error {
	k, err := pendingKey(c.OrgID, c.SHA256)
	if err != nil {
		return fmt.Errorf("put pending chunk: %w", err)
	}
	v := binary.BigEndian.AppendUint64(nil, uint64(c.Size))
	v = binary.BigEndian.AppendUint64(v, uint64(c.UploadedAt.UnixNano()))
	if err := t.txn.Set(k, v); err != nil {
		return fmt.Errorf("put pending chunk %x: %w", c.SHA256, err)
	}
	return nil
}

func (t *tx) DeletePendingChunk(_ context.Context, orgID string, sum []byte) error {
	k, err := pendingKey(orgID, sum)
	if err != nil {
		return nil
	}
	if err := t.txn.Delete(k); err != nil {
		return fmt.Errorf("delete pending chunk %x: %w", sum, err)
	}
	return nil
}

// pendingChunks calls fn with each of an organization's pending chunks,
// in hash order.
func (t *tx) pendingChunks(orgID string, fn func(store.PendingChunk)) error {
	p, err := prefix("ppend", orgID)
	if err != nil {
		return nil
	}
	it := t.txn.NewIterator(badger.IteratorOptions{Prefix: p, PrefetchValues: true, PrefetchSize: 256})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		sum, err := hex.DecodeString(string(it.Item().Key()[len(p):]))
		if err != nil || len(sum) != 32 {
			return fmt.Errorf("list pending chunks: malformed key %q", it.Item().Key())
		}
		c := store.PendingChunk{OrgID: orgID, SHA256: sum}
		err = it.Item().Value(func(v []byte) error {
			if len(v) != 16 {
				return fmt.Errorf("pending chunk %x: record of %d bytes, want 16", sum, len(v))
			}
			c.Size = int(binary.BigEndian.Uint64(v))
			c.UploadedAt = time.Unix(0, int64(binary.BigEndian.Uint64(v[8:]))).UTC()
			return nil
		})
		if err != nil {
			return fmt.Errorf("list pending chunks: %w", err)
		}
		fn(c)
	}
	return nil
}

func (t *tx) PendingChunkUsage(_ context.Context, orgID string) (store.PendingUsage, error) {
	var u store.PendingUsage
	err := t.pendingChunks(orgID, func(c store.PendingChunk) {
		u.Chunks++
		u.Bytes += int64(c.Size)
	})
	return u, err
}

func (t *tx) ListPendingChunks(_ context.Context, orgID string, before time.Time, limit int) ([]store.PendingChunk, error) {
	if limit <= 0 {
		return nil, nil
	}
	var out []store.PendingChunk
	err := t.pendingChunks(orgID, func(c store.PendingChunk) {
		if c.UploadedAt.Before(before) {
			out = append(out, c)
		}
	})
	slices.SortStableFunc(out, func(a, b store.PendingChunk) int { return a.UploadedAt.Compare(b.UploadedAt) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, err
}

var (
	alertRules = table[store.AlertRule]{name: "arule", id: func(r store.AlertRule) string { return r.ID },
		indexes: func(r store.AlertRule) [][]string { return one("arule.org", r.OrgID) }}
	// A state's ID is rule | part: one state per rule and part, listed by part.
	alertStates = table[store.AlertState]{name: "astate", id: func(s store.AlertState) string { return alertStateID(s.RuleID, s.PartID) },
		indexes: func(s store.AlertState) [][]string { return one("astate.rule", s.RuleID) }}
	alertEvents = table[store.AlertEvent]{name: "aevent", id: func(e store.AlertEvent) string { return e.ID },
		indexes: func(e store.AlertEvent) [][]string { return one("aevent.rule", e.RuleID) }}
)

func alertStateID(ruleID, partID string) string { return ruleID + "|" + partID }

func (t *tx) GetAlertRule(_ context.Context, id string) (store.AlertRule, error) {
	return get(t, alertRules, id)
}
func (t *tx) PutAlertRule(_ context.Context, r store.AlertRule) error { return put(t, alertRules, r) }
func (t *tx) DeleteAlertRule(_ context.Context, id string) error      { return del(t, alertRules, id) }
func (t *tx) ListAlertRules(_ context.Context, orgID string) ([]store.AlertRule, error) {
	if orgID == "" {
		return list(t, alertRules)
	}
	return list(t, alertRules, "arule.org", orgID)
}

func (t *tx) GetAlertState(_ context.Context, ruleID, partID string) (store.AlertState, error) {
	if strings.Contains(ruleID, "|") {
		return store.AlertState{}, fmt.Errorf("get alert state %q: %w", ruleID, store.ErrNotFound)
	}
	return get(t, alertStates, alertStateID(ruleID, partID))
}
func (t *tx) PutAlertState(_ context.Context, s store.AlertState) error {
	if s.RuleID == "" || s.PartID == "" || strings.Contains(s.RuleID, "|") {
		return fmt.Errorf("put alert state %q %q: a rule ID without | and a part ID are required", s.RuleID, s.PartID)
	}
	return put(t, alertStates, s)
}
func (t *tx) DeleteAlertState(_ context.Context, ruleID, partID string) error {
	if strings.Contains(ruleID, "|") {
		return fmt.Errorf("delete alert state %q: %w", ruleID, store.ErrNotFound)
	}
	return del(t, alertStates, alertStateID(ruleID, partID))
}
func (t *tx) ListAlertStates(_ context.Context, ruleID string) ([]store.AlertState, error) {
	if ruleID == "" {
		return list(t, alertStates)
	}
	return list(t, alertStates, "astate.rule", ruleID)
}

func (t *tx) GetAlertEvent(_ context.Context, id string) (store.AlertEvent, error) {
	return get(t, alertEvents, id)
}
func (t *tx) PutAlertEvent(_ context.Context, e store.AlertEvent) error {
	if e.RuleID == "" {
		return fmt.Errorf("put alert event %q: a rule ID is required", e.ID)
	}
	return put(t, alertEvents, e)
}
func (t *tx) DeleteAlertEvent(_ context.Context, id string) error { return del(t, alertEvents, id) }

// ListAlertEvents walks the rule's index backwards from before, as ListAudit.
func (t *tx) ListAlertEvents(_ context.Context, ruleID, before string, limit int) ([]store.AlertEvent, error) {
	p, err := prefix("aevent.rule", ruleID)
	if err != nil || ruleID == "" || limit <= 0 {
		return nil, nil
	}
	it := t.txn.NewIterator(badger.IteratorOptions{Prefix: p, Reverse: true})
	defer it.Close()
	seek := append(bytes.Clone(p), 0xff)
	if before != "" {
		seek = append(bytes.Clone(p), before...)
	}
	var out []store.AlertEvent
	for it.Seek(seek); it.Valid() && len(out) < limit; it.Next() {
		id := string(it.Item().Key()[len(p):])
		if before != "" && id >= before {
			continue
		}
		e, err := get(t, alertEvents, id)
		if err != nil {
			return nil, fmt.Errorf("list alert events: %w", err)
		}
		out = append(out, e)
	}
	return out, nil
}
