// Package storetest is the conformance suite every store.Store
// implementation runs: the embedded Badger store and the PostgreSQL one.
package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/outpost-robotics/outpost/cloud/store"
)

// Run runs the suite; open returns a new, empty store for each subtest.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Hierarchy", testHierarchy},
		{"UsersUniqueEmail", testUsers},
		{"Grants", testGrants},
		{"APIKeysAndInvites", testKeysInvites},
		{"Audit", testAudit},
		{"Meta", testMeta},
		{"RollbackOnError", testRollback},
		{"Generation", testGeneration},
		{"ConcurrentUpdates", testConcurrent},
		{"ConfigsAndFragments", testConfigs},
		{"PartDocumentsAndProposals", testPartDocs},
		{"Datasets", testDatasets},
		{"MachinePages", testMachinePages},
		{"Alerts", testAlerts},
		{"AlertTransitionOnce", testAlertTransitionOnce},
		{"Packages", testPackages},
		{"PackageChunks", testPackageChunks},
		{"PendingChunks", testPendingChunks},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			tc.fn(t, s)
		})
	}
}

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func update(t *testing.T, s store.Store, fn func(ctx context.Context, tx store.Tx) error) {
	t.Helper()
	ctx := context.Background()
	if err := s.Update(ctx, func(tx store.Tx) error { return fn(ctx, tx) }); err != nil {
		t.Fatal(err)
	}
}

func view(t *testing.T, s store.Store, fn func(ctx context.Context, tx store.Tx) error) {
	t.Helper()
	ctx := context.Background()
	if err := s.View(ctx, func(tx store.Tx) error { return fn(ctx, tx) }); err != nil {
		t.Fatal(err)
	}
}

func equal(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

func ids[T any](xs []T, id func(T) string) []string {
	out := []string{}
	for _, x := range xs {
		out = append(out, id(x))
	}
	return out
}

func testHierarchy(t *testing.T, s store.Store) {
	org := store.Org{ID: "o1", Name: "Acme", CreatedAt: t0}
	l1 := store.Location{ID: "l1", OrgID: "o1", Name: "Plant", CreatedAt: t0}
	l2 := store.Location{ID: "l2", OrgID: "o1", ParentID: "l1", Name: "Line", SharedWith: []string{"o2"}, CreatedAt: t0}
	m := store.Machine{ID: "m1", LocationID: "l2", Name: "arm", CreatedAt: t0}
	p := store.Part{ID: "p1", MachineID: "m1", Name: "main", Main: true, SecretHash: []byte{1, 2}, CreatedAt: t0,
		Restart: store.PartRestart{ID: "0123456789abcdef0123456789abcdef", RequestedAt: t0, RequestedBy: "user/u1",
			HandledID: "fedcba9876543210fedcba9876543210", HandledAt: t0, Outcome: "failed", Error: "robot: stop timed out"}}
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		for _, err := range []error{tx.PutOrg(ctx, org), tx.PutOrg(ctx, store.Org{ID: "o2", Name: "B"}),
			tx.PutLocation(ctx, l1), tx.PutLocation(ctx, l2), tx.PutMachine(ctx, m), tx.PutPart(ctx, p)} {
			if err != nil {
				return err
			}
		}
		return nil
	})
	view(t, s, func(ctx context.Context, tx store.Tx) error {
		gp, err := tx.GetPart(ctx, "p1")
		if err != nil {
			return err
		}
		if gp.Restart.ID != p.Restart.ID || !gp.Restart.RequestedAt.Equal(t0) || gp.Restart.RequestedBy != p.Restart.RequestedBy ||
			gp.Restart.HandledID != p.Restart.HandledID || !gp.Restart.HandledAt.Equal(t0) || gp.Restart.Outcome != p.Restart.Outcome ||
			gp.Restart.Error != p.Restart.Error || !gp.Main || !bytes.Equal(gp.SecretHash, p.SecretHash) {
			t.Errorf("part read back as %+v, want %+v", gp, p)
		}
		got, err := tx.GetOrg(ctx, "o1")
		if err != nil {
			return err
		}
		equal(t, "org", got.Name, "Acme")
		if !got.CreatedAt.Equal(t0) {
			t.Errorf("created at %v, want %v", got.CreatedAt, t0)
		}
		gl, err := tx.GetLocation(ctx, "l2")
		if err != nil {
			return err
		}
		equal(t, "location", gl.SharedWith, []string{"o2"})
		ls, err := tx.ListLocations(ctx, "o1")
		if err != nil {
			return err
		}
		equal(t, "locations of o1", ids(ls, func(l store.Location) string { return l.ID }), []string{"l1", "l2"})
		kids, err := tx.ListChildLocations(ctx, "l1")
		if err != nil {
			return err
		}
		equal(t, "children of l1", ids(kids, func(l store.Location) string { return l.ID }), []string{"l2"})
		ms, err := tx.ListMachines(ctx, "l2")
		if err != nil {
			return err
		}
		equal(t, "machines", ids(ms, func(m store.Machine) string { return m.ID }), []string{"m1"})
		ps, err := tx.ListParts(ctx, "m1")
		if err != nil {
			return err
		}
		equal(t, "parts", ps[0].SecretHash, []byte{1, 2})
		orgsList, err := tx.ListOrgs(ctx)
		if err != nil {
			return err
		}
		equal(t, "orgs", ids(orgsList, func(o store.Org) string { return o.ID }), []string{"o1", "o2"})
		if _, err := tx.GetMachine(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("missing machine: %v, want ErrNotFound", err)
		}
		return nil
	})
	// Moving a location or machine moves it in the indexes too.
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		l2.ParentID = ""
		m.LocationID = "l1"
		if err := tx.PutLocation(ctx, l2); err != nil {
			return err
		}
		return tx.PutMachine(ctx, m)
	})
	view(t, s, func(ctx context.Context, tx store.Tx) error {
		kids, err := tx.ListChildLocations(ctx, "l1")
		if err != nil {
			return err
		}
		equal(t, "children after move", len(kids), 0)
		top, err := tx.ListChildLocations(ctx, "")
		if err != nil {
			return err
		}
		equal(t, "top level", ids(top, func(l store.Location) string { return l.ID }), []string{"l1", "l2"})
		ms, err := tx.ListMachines(ctx, "l2")
		if err != nil {
			return err
		}
		equal(t, "machines of l2", len(ms), 0)
		ms, err = tx.ListMachines(ctx, "l1")
		if err != nil {
			return err
		}
		equal(t, "machines of l1", len(ms), 1)
		return nil
	})
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		if err := tx.DeletePart(ctx, "p1"); err != nil {
			return err
		}
		if err := tx.DeleteMachine(ctx, "m1"); err != nil {
			return err
		}
		if err := tx.DeleteMachine(ctx, "m1"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("second delete: %v, want ErrNotFound", err)
		}
		return nil
	})
	view(t, s, func(ctx context.Context, tx store.Tx) error {
		ms, err := tx.ListMachines(ctx, "")
		if err != nil {
			return err
		}
		ps, err := tx.ListParts(ctx, "m1")
		if err != nil {
			return err
		}
		equal(t, "after delete", len(ms)+len(ps), 0)
		return nil
	})
}

func testUsers(t *testing.T, s store.Store) {
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		return tx.PutUser(ctx, store.User{ID: "u1", Email: "a@x.org", PasswordHash: "h", CreatedAt: t0})
	})
	ctx := context.Background()
	err := s.Update(ctx, func(tx store.Tx) error {
		return tx.PutUser(ctx, store.User{ID: "u2", Email: "a@x.org"})
	})
	if !errors.Is(err, store.ErrExists) {
		t.Fatalf("duplicate email: %v, want ErrExists", err)
	}
	// Changing one's own email frees the old one.
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		return tx.PutUser(ctx, store.User{ID: "u1", Email: "b@x.org", PasswordHash: "h"})
	})
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		return tx.PutUser(ctx, store.User{ID: "u2", Email: "a@x.org"})
	})
	view(t, s, func(ctx context.Context, tx store.Tx) error {
		u, err := tx.GetUserByEmail(ctx, "b@x.org")
		if err != nil {
			return err
		}
		equal(t, "by email", u.ID, "u1")
		if _, err := tx.GetUserByEmail(ctx, "c@x.org"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("unknown email: %v", err)
		}
		all, err := tx.ListUsers(ctx)
		if err != nil {
			return err
		}
		equal(t, "users", ids(all, func(u store.User) string { return u.ID }), []string{"u1", "u2"})
		return nil
	})
	// A deleted user's email is free again; revocations round-trip.
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		if err := tx.DeleteUser(ctx, "u1"); err != nil {
			return err
		}
		return tx.PutUser(ctx, store.User{ID: "u3", Email: "b@x.org", TokensNotBefore: t0,
			RevokedTokens: []store.RevokedToken{{ID: "t1", ExpiresAt: t0}}})
	})
	view(t, s, func(ctx context.Context, tx store.Tx) error {
		if _, err := tx.GetUser(ctx, "u1"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("deleted user: %v", err)
		}
		u, err := tx.GetUserByEmail(ctx, "b@x.org")
		if err != nil {
			return err
		}
		equal(t, "email of the new user", u.ID, "u3")
		if !u.TokensNotBefore.Equal(t0) || len(u.RevokedTokens) != 1 || u.RevokedTokens[0].ID != "t1" || !u.RevokedTokens[0].ExpiresAt.Equal(t0) {
			t.Errorf("revocations %v %v", u.TokensNotBefore, u.RevokedTokens)
		}
		return nil
	})
}

func testGrants(t *testing.T, s store.Store) {
	g := func(subj, role, scope, org string) store.Grant {
		return store.Grant{Subject: subj, Role: role, Scope: scope, OrgID: org, CreatedAt: t0}
	}
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		for _, x := range []store.Grant{
			g("user:u1", "owner", "org/o1", "o1"),
			g("user:u1", "operator", "location/l1", "o1"),
			g("user:u2", "operator", "location/l1", "o1"),
			g("apikey:k1", "owner", "machine/m9", "o2"),
		} {
			if err := tx.PutGrant(ctx, x); err != nil {
				return err
			}
		}
		// Replacing a grant changes its role, not the number of grants.
		return tx.PutGrant(ctx, g("user:u2", "owner", "location/l1", "o1"))
	})
	view(t, s, func(ctx context.Context, tx store.Tx) error {
		bySubj, err := tx.ListGrantsBySubject(ctx, "user:u1")
		if err != nil {
			return err
		}
		equal(t, "by subject", ids(bySubj, func(g store.Grant) string { return g.Scope }), []string{"location/l1", "org/o1"})
		byScope, err := tx.ListGrantsByScope(ctx, "location/l1")
		if err != nil {
			return err
		}
		equal(t, "by scope", ids(byScope, func(g store.Grant) string { return g.Subject + "=" + g.Role }), []string{"user:u1=operator", "user:u2=owner"})
		byOrg, err := tx.ListGrantsByOrg(ctx, "o1")
		if err != nil {
			return err
		}
		equal(t, "by org", len(byOrg), 3)
		one, err := tx.GetGrant(ctx, "apikey:k1", "machine/m9")
		if err != nil {
			return err
		}
		equal(t, "get", one.Role, "owner")
		return nil
	})
	update(t, s, func(ctx context.Context, tx store.Tx) error { return tx.DeleteGrant(ctx, "user:u1", "location/l1") })
	view(t, s, func(ctx context.Context, tx store.Tx) error {
		byScope, err := tx.ListGrantsByScope(ctx, "location/l1")
		if err != nil {
			return err
		}
		equal(t, "after delete", ids(byScope, func(g store.Grant) string { return g.Subject }), []string{"user:u2"})
		if _, err := tx.GetGrant(ctx, "user:u1", "location/l1"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("deleted grant: %v", err)
		}
		return nil
	})
}

func testKeysInvites(t *testing.T, s store.Store) {
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		if err := tx.PutAPIKey(ctx, store.APIKey{ID: "k1", Name: "ci", OrgID: "o1", Scope: "org/o1", SecretHash: []byte{9}}); err != nil {
			return err
		}
		if err := tx.PutAPIKey(ctx, store.APIKey{ID: "k2", Name: "other", OrgID: "o2", Scope: "org/o2"}); err != nil {
			return err
		}
		if err := tx.PutInvite(ctx, store.Invite{ID: "i2", Email: "m@x.org", Role: "owner", Scope: "org/o2", OrgID: "o2", CodeHash: []byte{0x12}, ExpiresAt: t0}); err != nil {
			return err
		}
		return tx.PutInvite(ctx, store.Invite{ID: "i1", Email: "n@x.org", Role: "operator", Scope: "org/o1", OrgID: "o1", CodeHash: []byte{0xab, 0xcd}, ExpiresAt: t0})
	})
	view(t, s, func(ctx context.Context, tx store.Tx) error {
		ks, err := tx.ListAPIKeys(ctx, "o1")
		if err != nil {
			return err
		}
		equal(t, "keys", ids(ks, func(k store.APIKey) string { return k.ID }), []string{"k1"})
		inv, err := tx.GetInviteByCode(ctx, []byte{0xab, 0xcd})
		if err != nil {
			return err
		}
		equal(t, "invite", inv.ID, "i1")
		if _, err := tx.GetInviteByCode(ctx, []byte{0xab}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("wrong code: %v", err)
		}
		all, err := tx.ListInvites(ctx)
		equal(t, "every invitation", ids(all, func(i store.Invite) string { return i.ID }), []string{"i1", "i2"})
		return err
	})
	// A resent invitation has a new code; the old one stops matching.
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		inv, err := tx.GetInvite(ctx, "i1")
		if err != nil {
			return err
		}
		inv.CodeHash = []byte{0xef}
		return tx.PutInvite(ctx, inv)
	})
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		if _, err := tx.GetInviteByCode(ctx, []byte{0xab, 0xcd}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("old code after resend: %v", err)
		}
		if err := tx.DeleteAPIKey(ctx, "k1"); err != nil {
			return err
		}
		return tx.DeleteInvite(ctx, "i1")
	})
	view(t, s, func(ctx context.Context, tx store.Tx) error {
		if _, err := tx.GetInviteByCode(ctx, []byte{0xef}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("deleted invite by code: %v", err)
		}
		all, err := tx.ListInvites(ctx)
		if err != nil {
			return err
		}
		equal(t, "invitations after delete", ids(all, func(i store.Invite) string { return i.ID }), []string{"i2"})
		ks, err := tx.ListAPIKeys(ctx, "o1")
		equal(t, "keys after revoke", len(ks), 0)
		return err
	})
}

func testAudit(t *testing.T, s store.Store) {
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		for i := range 25 {
			org := "o1"
			if i%5 == 0 {
				org = "o2"
			}
			e := store.AuditEvent{ID: fmt.Sprintf("%04d", i), Time: t0.Add(time.Duration(i) * time.Second), OrgID: org, Action: "org.rename", Allowed: i%2 == 0}
			if err := tx.AppendAudit(ctx, e); err != nil {
				return err
			}
		}
		return nil
	})
	ctx := context.Background()
	if err := s.Update(ctx, func(tx store.Tx) error { return tx.AppendAudit(ctx, store.AuditEvent{ID: "0003", OrgID: "o1"}) }); !errors.Is(err, store.ErrExists) {
		t.Errorf("repeated audit ID: %v, want ErrExists", err)
	}
	view(t, s, func(ctx context.Context, tx store.Tx) error {
		page, err := tx.ListAudit(ctx, "o1", "", 3)
		if err != nil {
			return err
		}
		equal(t, "newest first", ids(page, func(e store.AuditEvent) string { return e.ID }), []string{"0024", "0023", "0022"})
		page, err = tx.ListAudit(ctx, "o1", "0022", 3)
		if err != nil {
			return err
		}
		equal(t, "next page skips o2", ids(page, func(e store.AuditEvent) string { return e.ID }), []string{"0021", "0019", "0018"})
		all, err := tx.ListAudit(ctx, "o2", "", 100)
		if err != nil {
			return err
		}
		equal(t, "o2", ids(all, func(e store.AuditEvent) string { return e.ID }), []string{"0020", "0015", "0010", "0005", "0000"})
		return nil
	})
}

func testMeta(t *testing.T, s store.Store) {
	ctx := context.Background()
	err := s.View(ctx, func(tx store.Tx) error {
		_, err := tx.GetMeta(ctx, "signing-key")
		return err
	})
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing meta: %v", err)
	}
	update(t, s, func(ctx context.Context, tx store.Tx) error { return tx.PutMeta(ctx, "signing-key", []byte("k")) })
	view(t, s, func(ctx context.Context, tx store.Tx) error {
		v, err := tx.GetMeta(ctx, "signing-key")
		equal(t, "meta", string(v), "k")
		return err
	})
}

func testRollback(t *testing.T, s store.Store) {
	ctx := context.Background()
	boom := errors.New("boom")
	err := s.Update(ctx, func(tx store.Tx) error {
		if err := tx.PutOrg(ctx, store.Org{ID: "o1", Name: "x"}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update returned %v, want the function's error", err)
	}
	view(t, s, func(ctx context.Context, tx store.Tx) error {
		if _, err := tx.GetOrg(ctx, "o1"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("rolled-back org: %v", err)
		}
		return nil
	})
}

func testGeneration(t *testing.T, s store.Store) {
	ctx := context.Background()
	g0, err := s.Generation(ctx)
	if err != nil {
		t.Fatal(err)
	}
	update(t, s, func(ctx context.Context, tx store.Tx) error { return tx.PutOrg(ctx, store.Org{ID: "o1", Name: "x"}) })
	g1, err := s.Generation(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if g1 == g0 {
		t.Fatal("generation did not change with the hierarchy")
	}
	// Users, grants, audit and meta are not the hierarchy.
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		if err := tx.PutUser(ctx, store.User{ID: "u", Email: "u@x"}); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, store.AuditEvent{ID: "1", OrgID: "o1"})
	})
	g2, err := s.Generation(ctx)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "generation after non-hierarchy writes", g2, g1)
}

// testConcurrent increments one counter from many goroutines: every
// increment must survive, so conflicts are retried, never lost.
func testConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			errs <- s.Update(ctx, func(tx store.Tx) error {
				o, err := tx.GetOrg(ctx, "counter")
				if err != nil && !errors.Is(err, store.ErrNotFound) {
					return err
				}
				o.ID = "counter"
				o.Name += "x"
				return tx.PutOrg(ctx, o)
			})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	view(t, s, func(ctx context.Context, tx store.Tx) error {
		o, err := tx.GetOrg(ctx, "counter")
		equal(t, "increments", len(o.Name), n)
		return err
	})
}

func testConfigs(t *testing.T, s store.Store) {
	big := make([]byte, 64<<10) // configs are larger than most records
	for i := range big {
		big[i] = byte(i)
	}
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		for rev := uint64(1); rev <= 11; rev++ {
			if err := tx.PutConfigRevision(ctx, store.ConfigRevision{MachineID: "m1", Revision: rev, Config: big[:rev], Author: "user:u", CreatedAt: t0}); err != nil {
				return err
			}
		}
		if err := tx.PutConfigRevision(ctx, store.ConfigRevision{MachineID: "m2", Revision: 1, Config: big, Fragments: []string{"f1"}}); err != nil {
			return err
		}
		if err := tx.PutFragment(ctx, store.Fragment{ID: "f1", OrgID: "o1", Name: "drive", Revision: 1}); err != nil {
			return err
		}
		if err := tx.PutFragment(ctx, store.Fragment{ID: "f2", OrgID: "o2", Name: "arm", Revision: 1}); err != nil {
			return err
		}
		return tx.PutFragmentRevision(ctx, store.FragmentRevision{FragmentID: "f1", Revision: 1, Config: big})
	})
	ctx := context.Background()
	err := s.Update(ctx, func(tx store.Tx) error {
		return tx.PutConfigRevision(ctx, store.ConfigRevision{MachineID: "m1", Revision: 3})
	})
	if !errors.Is(err, store.ErrExists) {
		t.Errorf("rewriting a revision: %v, want ErrExists", err)
	}
	err = s.Update(ctx, func(tx store.Tx) error {
		return tx.PutFragmentRevision(ctx, store.FragmentRevision{FragmentID: "f1", Revision: 1})
	})
	if !errors.Is(err, store.ErrExists) {
		t.Errorf("rewriting a fragment revision: %v, want ErrExists", err)
	}
	view(t, s, func(ctx context.Context, tx store.Tx) error {
		revs, err := tx.ListConfigRevisions(ctx, "m1")
		if err != nil {
			return err
		}
		var nums []uint64
		for _, r := range revs {
			nums = append(nums, r.Revision)
		}
		// Revision 10 sorts after 9, not after 1.
		equal(t, "revisions in order", nums, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11})
		r, err := tx.GetConfigRevision(ctx, "m2", 1)
		if err != nil {
			return err
		}
		equal(t, "large config", len(r.Config), len(big))
		equal(t, "fragments", r.Fragments, []string{"f1"})
		fs, err := tx.ListFragments(ctx, "o1")
		if err != nil {
			return err
		}
		equal(t, "fragments of o1", ids(fs, func(f store.Fragment) string { return f.ID }), []string{"f1"})
		fr, err := tx.GetFragmentRevision(ctx, "f1", 1)
		if err != nil {
			return err
		}
		equal(t, "fragment config", len(fr.Config), len(big))
		if _, err := tx.GetConfigRevision(ctx, "m1", 12); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("missing revision: %v", err)
		}
		return nil
	})
	update(t, s, func(ctx context.Context, tx store.Tx) error { return tx.DeleteFragment(ctx, "f1") })
	view(t, s, func(ctx context.Context, tx store.Tx) error {
		if _, err := tx.GetFragment(ctx, "f1"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("deleted fragment: %v", err)
		}
		fs, err := tx.ListFragments(ctx, "o1")
		equal(t, "fragments after delete", len(fs), 0)
		return err
	})
}

func testPartDocs(t *testing.T, s store.Store) {
	doc := store.PartDocuments{PartID: "p1", ConfigVersion: 3, ConfigDigest: []byte{1}, Config: make([]byte, 4096), GrantsVersion: 5,
		GrantsIssuedAt: t0, GrantsExpiresAt: t0.Add(time.Hour), Grants: []byte{2}}
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		if err := tx.PutPartDocuments(ctx, doc); err != nil {
			return err
		}
		for i, m := range []string{"m1", "m1", "m2"} {
			p := store.Proposal{ID: fmt.Sprintf("p1|s|%d", i+1), PartID: "p1", MachineID: m, Seq: uint64(i + 1), State: "conflict", CreatedAt: t0}
			if err := tx.PutProposal(ctx, p); err != nil {
				return err
			}
		}
		return nil
	})
	tags := store.CaptureTags{ID: "p1|s|2", Added: []string{"a"}, Removed: []string{"b"}, UpdatedBy: "user:u", UpdatedAt: t0}
	update(t, s, func(ctx context.Context, tx store.Tx) error { return tx.PutCaptureTags(ctx, tags) })
	view(t, s, func(ctx context.Context, tx store.Tx) error {
		got, err := tx.GetCaptureTags(ctx, tags.ID)
		if !reflect.DeepEqual(got, tags) {
			t.Errorf("capture tags %+v, want %+v", got, tags)
		}
		return err
	})
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		p, err := tx.GetProposal(ctx, "p1|s|1")
		if err != nil {
			return err
		}
		p.State, p.Told = "accepted", true
		return tx.PutProposal(ctx, p)
	})
	view(t, s, func(ctx context.Context, tx store.Tx) error {
		got, err := tx.GetPartDocuments(ctx, "p1")
		if err != nil {
			return err
		}
		if !reflect.DeepEqual(got, doc) {
			t.Errorf("part documents %+v, want %+v", got, doc)
		}
		if _, err := tx.GetPartDocuments(ctx, "p2"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("unknown part documents: %v", err)
		}
		if _, err := tx.GetCaptureTags(ctx, "p1|s|1"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("tags never edited: %v", err)
		}
		ps, err := tx.ListProposals(ctx, "m1")
		if err != nil {
			return err
		}
		equal(t, "proposals of m1", ids(ps, func(p store.Proposal) string { return p.ID + " " + p.State }), []string{"p1|s|1 accepted", "p1|s|2 conflict"})
		return nil
	})
}

// testMachinePages: PageMachines selects by locations and machine IDs,
// searches names folding ASCII case, pages by (name, ID) without skipping or
// repeating across renames and deletes, and answers hostile queries with
// nothing rather than an error.
func testMachinePages(t *testing.T, s store.Store) {
	ctx := context.Background()
	names := map[string]string{ // id → name; "a" sorts before "b", ties by ID
		"m1": "rover", "m2": "Rover", "m3": "arm", "m4": "rover", "m5": "zeta", "m6": "Ärm", "m7": "crane",
	}
	loc := map[string]string{"m1": "l1", "m2": "l1", "m3": "l2", "m4": "l2", "m5": "l3", "m6": "l1", "m7": "l3"}
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		for id, name := range names {
			if err := tx.PutMachine(ctx, store.Machine{ID: id, LocationID: loc[id], Name: name, CreatedAt: t0}); err != nil {
				return err
			}
		}
		return nil
	})
	pageIDs := func(q store.MachineQuery) ([]string, bool) {
		t.Helper()
		var got []store.Machine
		var more bool
		view(t, s, func(ctx context.Context, tx store.Tx) error {
			var err error
			got, more, err = tx.PageMachines(ctx, q)
			return err
		})
		return ids(got, func(m store.Machine) string { return m.ID }), more
	}
	// Every page of 2 over l1, l2 and m7, in (name, ID) byte order.
	q := store.MachineQuery{LocationIDs: []string{"l1", "l2"}, MachineIDs: []string{"m7"}, Limit: 2}
	var all []string
	for range 10 {
		got, more := pageIDs(q)
		all = append(all, got...)
		if !more {
			break
		}
		last := got[len(got)-1]
		q.AfterName, q.AfterID = names[last], last
	}
	equal(t, "every page", all, []string{"m2", "m3", "m7", "m1", "m4", "m6"})

	for _, tc := range []struct {
		name string
		q    store.MachineQuery
		want []string
		more bool
	}{
		{"search folds ASCII case", store.MachineQuery{LocationIDs: []string{"l1", "l2", "l3"}, Search: "ROV", Limit: 10}, []string{"m2", "m1", "m4"}, false},
		{"search keeps other letters", store.MachineQuery{LocationIDs: []string{"l1", "l2"}, Search: "ärm", Limit: 10}, []string{}, false},
		{"search exact non-ASCII", store.MachineQuery{LocationIDs: []string{"l1", "l2"}, Search: "Ärm", Limit: 10}, []string{"m6"}, false},
		{"machine IDs alone", store.MachineQuery{MachineIDs: []string{"m5", "nope"}, Limit: 10}, []string{"m5"}, false},
		{"a full page says more", store.MachineQuery{LocationIDs: []string{"l3"}, Limit: 1}, []string{"m7"}, true},
		{"an exact last page says no more", store.MachineQuery{LocationIDs: []string{"l3"}, Limit: 2}, []string{"m7", "m5"}, false},
		{"selects nothing", store.MachineQuery{Limit: 10}, []string{}, false},
		{"cursor between ties", store.MachineQuery{LocationIDs: []string{"l1", "l2"}, AfterName: "rover", AfterID: "m1", Limit: 10}, []string{"m4", "m6"}, false},
		{"cursor past the end", store.MachineQuery{LocationIDs: []string{"l1"}, AfterName: "\xf4\x8f\xbf\xbf", AfterID: "z", Limit: 10}, []string{}, false},
		{"hostile cursor", store.MachineQuery{LocationIDs: []string{"l1"}, AfterName: "a\x00b", AfterID: "\xff", Limit: 10}, []string{}, false},
		{"hostile search", store.MachineQuery{LocationIDs: []string{"l1"}, Search: "%_\x00'", Limit: 10}, []string{}, false},
		{"hostile location", store.MachineQuery{LocationIDs: []string{"l1' OR 1=1 --", "\x00"}, Limit: 10}, []string{}, false},
	} {
		got, more := pageIDs(tc.q)
		if !reflect.DeepEqual(got, tc.want) || more != tc.more {
			t.Errorf("%s: got %v more=%v, want %v more=%v", tc.name, got, more, tc.want, tc.more)
		}
	}

	// A rename moves the machine in the order; a delete takes it out.
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		if err := tx.PutMachine(ctx, store.Machine{ID: "m3", LocationID: "l2", Name: "zz-arm", CreatedAt: t0}); err != nil {
			return err
		}
		return tx.DeleteMachine(ctx, "m4")
	})
	got, _ := pageIDs(store.MachineQuery{LocationIDs: []string{"l1", "l2"}, Limit: 10})
	equal(t, "after a rename and a delete", got, []string{"m2", "m1", "m3", "m6"})

	for _, limit := range []int{0, -1, store.MaxMachinePage + 1} {
		err := s.View(ctx, func(tx store.Tx) error {
			_, _, err := tx.PageMachines(ctx, store.MachineQuery{LocationIDs: []string{"l1"}, Limit: limit})
			return err
		})
		if err == nil {
			t.Errorf("limit %d: no error", limit)
		}
	}
	if err := s.Update(ctx, func(tx store.Tx) error {
		return tx.PutMachine(ctx, store.Machine{ID: "m9", LocationID: "l1", Name: "nul\x00name"})
	}); err == nil {
		t.Error("a machine name holding NUL was stored")
	}
}

func testPackages(t *testing.T, s store.Store) {
	sum := bytes.Repeat([]byte{7}, 32)
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		for _, p := range []store.Package{
			{OrgID: "o1", Name: "zeta", Type: "file", CreatedAt: t0},
			{OrgID: "o1", Name: "blinker", Type: "module", Tags: map[string]string{"stable": "1.0.0"}, NextSeq: 3, CreatedAt: t0, UpdatedAt: t0},
			{OrgID: "o2", Name: "blinker", Type: "file"},
		} {
			if err := tx.PutPackage(ctx, p); err != nil {
				return err
			}
		}
		for _, v := range []store.PackageVersion{
			{OrgID: "o1", Name: "blinker", Version: "1.1.0", Platform: "linux/arm64", Seq: 2, Manifest: []byte("signed"), Size: 10, SHA256: sum, ChunkCount: 1, CreatedAt: t0},
			{OrgID: "o1", Name: "blinker", Version: "1.0.0", Platform: "linux/amd64", Seq: 1, CreatedAt: t0},
			{OrgID: "o1", Name: "blinker", Version: "1.0.0", Platform: "linux/arm64", Seq: 0, CreatedAt: t0},
			{OrgID: "o2", Name: "blinker", Version: "9.0.0", Platform: "any", Seq: 1},
		} {
			if err := tx.PutPackageVersion(ctx, v); err != nil {
				return err
			}
		}
		return nil
	})
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		err := tx.PutPackageVersion(ctx, store.PackageVersion{OrgID: "o1", Name: "blinker", Version: "1.0.0", Platform: "linux/amd64", Seq: 9})
		if !errors.Is(err, store.ErrExists) {
			return fmt.Errorf("a version written twice: %v, want ErrExists", err)
		}
		for _, bad := range []store.PackageVersion{
			{OrgID: "o1", Name: "a|b", Version: "1.0.0", Platform: "any"},
			{OrgID: "o1", Name: "b", Version: "", Platform: "any"},
		} {
			if tx.PutPackageVersion(ctx, bad) == nil {
				return fmt.Errorf("version %+v stored", bad)
			}
		}
		if tx.PutPackage(ctx, store.Package{OrgID: "o1|x", Name: "y"}) == nil {
			return errors.New("a package with '|' in its organization stored")
		}
		return nil
	})
	view(t, s, func(ctx context.Context, tx store.Tx) error {
		p, err := tx.GetPackage(ctx, "o1", "blinker")
		if err != nil {
			return err
		}
		equal(t, "package", p, store.Package{OrgID: "o1", Name: "blinker", Type: "module", Tags: map[string]string{"stable": "1.0.0"}, NextSeq: 3, CreatedAt: t0, UpdatedAt: t0})
		ps, err := tx.ListPackages(ctx, "o1")
		if err != nil {
			return err
		}
		equal(t, "packages of o1", ids(ps, func(p store.Package) string { return p.Name }), []string{"blinker", "zeta"})
		vs, err := tx.ListPackageVersions(ctx, "o1", "blinker")
		if err != nil {
			return err
		}
		equal(t, "versions by upload", ids(vs, func(v store.PackageVersion) string { return v.Version + " " + v.Platform }),
			[]string{"1.0.0 linux/arm64", "1.0.0 linux/amd64", "1.1.0 linux/arm64"})
		equal(t, "stored version", vs[2], store.PackageVersion{OrgID: "o1", Name: "blinker", Version: "1.1.0", Platform: "linux/arm64", Seq: 2,
			Manifest: []byte("signed"), Size: 10, SHA256: sum, ChunkCount: 1, CreatedAt: t0})
		if _, err := tx.GetPackage(ctx, "o3", "blinker"); !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("another organization's package: %v, want ErrNotFound", err)
		}
		if _, err := tx.GetPackage(ctx, "o1\x00", "blinker"); !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("a hostile organization id: %v, want ErrNotFound", err)
		}
		return nil
	})
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		if err := tx.DeletePackageVersion(ctx, "o1", "blinker", "1.0.0", "linux/amd64"); err != nil {
			return err
		}
		if err := tx.DeletePackageVersion(ctx, "o1", "blinker", "1.0.0", "linux/amd64"); !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("deleting a deleted version: %v, want ErrNotFound", err)
		}
		return tx.DeletePackage(ctx, "o1", "zeta")
	})
	view(t, s, func(ctx context.Context, tx store.Tx) error {
		vs, err := tx.ListPackageVersions(ctx, "o1", "blinker")
		if err != nil {
			return err
		}
		equal(t, "versions after delete", len(vs), 2)
		ps, err := tx.ListPackages(ctx, "o1")
		if err != nil {
			return err
		}
		equal(t, "packages after delete", len(ps), 1)
		vs, err = tx.ListPackageVersions(ctx, "o2", "blinker")
		equal(t, "o2's versions untouched", len(vs), 1)
		return err
	})
}

// testPackageChunks checks chunks are held per organization, as raw bytes
// up to the largest chunk a package may have.
func testPackageChunks(t *testing.T, s store.Store) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 4<<20/16)
	bigSum := sha256.Sum256(big)
	small := []byte{0, 1, 2, 0xff}
	smallSum := sha256.Sum256(small)
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		if err := tx.PutPackageChunk(ctx, "o1", bigSum[:], big); err != nil {
			return err
		}
		if err := tx.PutPackageChunk(ctx, "o1", smallSum[:], small); err != nil {
			return err
		}
		// Again: a no-op.
		return tx.PutPackageChunk(ctx, "o1", smallSum[:], small)
	})
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		if tx.PutPackageChunk(ctx, "o1", []byte("short"), small) == nil {
			return errors.New("a chunk with a 5-byte hash stored")
		}
		return nil
	})
	view(t, s, func(ctx context.Context, tx store.Tx) error {
		got, err := tx.GetPackageChunk(ctx, "o1", bigSum[:])
		if err != nil {
			return err
		}
		if !bytes.Equal(got, big) {
			return errors.New("the 4 MiB chunk came back different")
		}
		got, err = tx.GetPackageChunk(ctx, "o1", smallSum[:])
		if err != nil || !bytes.Equal(got, small) {
			return fmt.Errorf("small chunk: %x, %v", got, err)
		}
		for _, org := range []string{"o2", "", "o1\x00"} {
			if _, err := tx.GetPackageChunk(ctx, org, smallSum[:]); !errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("organization %q reads o1's chunk: %v", org, err)
			}
			if has, err := tx.HasPackageChunk(ctx, org, smallSum[:]); has || err != nil {
				return fmt.Errorf("organization %q holds o1's chunk: %v, %v", org, has, err)
			}
		}
		if has, err := tx.HasPackageChunk(ctx, "o1", bigSum[:]); !has || err != nil {
			return fmt.Errorf("o1 holds its chunk: %v, %v", has, err)
		}
		return nil
	})
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		if err := tx.DeletePackageChunk(ctx, "o1", smallSum[:]); err != nil {
			return err
		}
		return tx.DeletePackageChunk(ctx, "o1", smallSum[:])
	})
	view(t, s, func(ctx context.Context, tx store.Tx) error {
		if has, err := tx.HasPackageChunk(ctx, "o1", smallSum[:]); has || err != nil {
			return fmt.Errorf("a deleted chunk: %v, %v", has, err)
		}
		return nil
	})
}

// testPendingChunks checks an organization's pending chunks are counted,
// listed oldest first before a time and within a limit, forgotten, and
// never another organization's.
func testPendingChunks(t *testing.T, s store.Store) {
	sum := func(i int) []byte { h := sha256.Sum256([]byte{byte(i)}); return h[:] }
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		for i := range 4 {
			if err := tx.PutPendingChunk(ctx, store.PendingChunk{OrgID: "o1", SHA256: sum(i), Size: 1000 * (i + 1), UploadedAt: t0.Add(time.Duration(3-i) * time.Hour)}); err != nil {
				return err
			}
		}
		if err := tx.PutPendingChunk(ctx, store.PendingChunk{OrgID: "o2", SHA256: sum(9), Size: 4 << 20, UploadedAt: t0}); err != nil {
			return err
		}
		if tx.PutPendingChunk(ctx, store.PendingChunk{OrgID: "o1", SHA256: []byte("short"), Size: 1, UploadedAt: t0}) == nil {
			return errors.New("a pending chunk with a 5-byte hash recorded")
		}
		return nil
	})
	view(t, s, func(ctx context.Context, tx store.Tx) error {
		u, err := tx.PendingChunkUsage(ctx, "o1")
		if err != nil || u != (store.PendingUsage{Chunks: 4, Bytes: 10000}) {
			return fmt.Errorf("o1's usage %+v, %v; want 4 chunks of 10000 bytes", u, err)
		}
		for _, org := range []string{"o3", "", "o1\x00"} {
			if u, err := tx.PendingChunkUsage(ctx, org); err != nil || u != (store.PendingUsage{}) {
				return fmt.Errorf("organization %q's usage %+v, %v", org, u, err)
			}
		}
		// Uploaded before t0+2h: chunks 3 (t0), 2 (t0+1h); oldest first.
		old, err := tx.ListPendingChunks(ctx, "o1", t0.Add(2*time.Hour), 10)
		if err != nil || len(old) != 2 || !bytes.Equal(old[0].SHA256, sum(3)) || !bytes.Equal(old[1].SHA256, sum(2)) ||
			old[0].Size != 4000 || !old[0].UploadedAt.Equal(t0) || old[0].OrgID != "o1" {
			return fmt.Errorf("pending before t0+2h: %+v, %v", old, err)
		}
		if one, err := tx.ListPendingChunks(ctx, "o1", t0.Add(time.Hour*24), 1); err != nil || len(one) != 1 || !bytes.Equal(one[0].SHA256, sum(3)) {
			return fmt.Errorf("the oldest pending chunk: %+v, %v", one, err)
		}
		for _, limit := range []int{0, -1} {
			if none, err := tx.ListPendingChunks(ctx, "o1", t0.Add(time.Hour*24), limit); err != nil || len(none) != 0 {
				return fmt.Errorf("pending chunks within a limit of %d: %+v, %v", limit, none, err)
			}
		}
		return nil
	})
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		if err := tx.DeletePendingChunk(ctx, "o1", sum(3)); err != nil {
			return err
		}
		if err := tx.DeletePendingChunk(ctx, "o1", sum(3)); err != nil {
			return err
		}
		return tx.DeletePendingChunk(ctx, "o2", sum(2))
	})
	view(t, s, func(ctx context.Context, tx store.Tx) error {
		if u, err := tx.PendingChunkUsage(ctx, "o1"); err != nil || u != (store.PendingUsage{Chunks: 3, Bytes: 6000}) {
			return fmt.Errorf("o1's usage after a delete %+v, %v", u, err)
		}
		if u, err := tx.PendingChunkUsage(ctx, "o2"); err != nil || u != (store.PendingUsage{Chunks: 1, Bytes: 4 << 20}) {
			return fmt.Errorf("o2's usage %+v, %v", u, err)
		}
		return nil
	})
}

func testAlerts(t *testing.T, s store.Store) {
	r1 := store.AlertRule{ID: "r1", OrgID: "o1", Scope: "org/o1", Name: "offline", Kind: "offline", Window: 5 * time.Minute,
		WebhookURL: "https://hooks.example/a", Secret: []byte("k1"), CreatedBy: "user/u1", CreatedAt: t0}
	r2 := store.AlertRule{ID: "r2", OrgID: "o2", Scope: "location/l9", Name: "backlog", Kind: "capture_backlog", Threshold: 100,
		WebhookURL: "https://hooks.example/b", Secret: []byte("k2"), CreatedAt: t0}
	r3 := store.AlertRule{ID: "r3", OrgID: "o1", Scope: "location/l1", Name: "failing", Kind: "failing", WebhookURL: "https://hooks.example/c", CreatedAt: t0}
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		for _, r := range []store.AlertRule{r1, r2, r3} {
			if err := tx.PutAlertRule(ctx, r); err != nil {
				return err
			}
		}
		for _, st := range []store.AlertState{
			{RuleID: "r1", PartID: "p2", Firing: true, Since: t0, EventID: "e2"},
			{RuleID: "r1", PartID: "p1", Firing: false, Since: t0, EventID: "e1"},
			{RuleID: "r3", PartID: "p1", Firing: true, Since: t0},
		} {
			if err := tx.PutAlertState(ctx, st); err != nil {
				return err
			}
		}
		for i, id := range []string{"e1", "e3", "e2", "e4"} {
			rule := "r1"
			if id == "e4" {
				rule = "r3"
			}
			if err := tx.PutAlertEvent(ctx, store.AlertEvent{ID: id, RuleID: rule, OrgID: "o1", PartID: "p1", State: "firing", Time: t0.Add(time.Duration(i) * time.Second)}); err != nil {
				return err
			}
		}
		return nil
	})
	view(t, s, func(ctx context.Context, tx store.Tx) error {
		got, err := tx.GetAlertRule(ctx, "r1")
		if err != nil {
			return err
		}
		equal(t, "rule", got, r1)
		o1, err := tx.ListAlertRules(ctx, "o1")
		if err != nil {
			return err
		}
		equal(t, "rules of o1", ids(o1, func(r store.AlertRule) string { return r.ID }), []string{"r1", "r3"})
		all, err := tx.ListAlertRules(ctx, "")
		if err != nil {
			return err
		}
		equal(t, "every rule", ids(all, func(r store.AlertRule) string { return r.ID }), []string{"r1", "r2", "r3"})
		st, err := tx.GetAlertState(ctx, "r1", "p2")
		if err != nil {
			return err
		}
		equal(t, "state", st, store.AlertState{RuleID: "r1", PartID: "p2", Firing: true, Since: t0, EventID: "e2"})
		if _, err := tx.GetAlertState(ctx, "r2", "p2"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("state of a rule and part never written: %v, want ErrNotFound", err)
		}
		if _, err := tx.GetAlertState(ctx, "r1|x", "p2"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("state of a hostile rule ID: %v, want ErrNotFound", err)
		}
		states, err := tx.ListAlertStates(ctx, "r1")
		if err != nil {
			return err
		}
		equal(t, "states of r1", ids(states, func(s store.AlertState) string { return s.PartID }), []string{"p1", "p2"})
		every, err := tx.ListAlertStates(ctx, "")
		if err != nil {
			return err
		}
		equal(t, "every state", ids(every, func(s store.AlertState) string { return s.RuleID + "/" + s.PartID }), []string{"r1/p1", "r1/p2", "r3/p1"})
		evs, err := tx.ListAlertEvents(ctx, "r1", "", 10)
		if err != nil {
			return err
		}
		equal(t, "events of r1, newest first", ids(evs, func(e store.AlertEvent) string { return e.ID }), []string{"e3", "e2", "e1"})
		evs, err = tx.ListAlertEvents(ctx, "r1", "e3", 1)
		if err != nil {
			return err
		}
		equal(t, "events of r1 before e3, one", ids(evs, func(e store.AlertEvent) string { return e.ID }), []string{"e2"})
		for _, bad := range []string{"", "r1\x00", "nope"} {
			evs, err := tx.ListAlertEvents(ctx, bad, "", 10)
			if err != nil || len(evs) != 0 {
				t.Fatalf("events of rule %q: %v, %v; want none", bad, evs, err)
			}
		}
		return nil
	})
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		e, err := tx.GetAlertEvent(ctx, "e1")
		if err != nil {
			return err
		}
		e.Delivery = store.AlertDelivery{Attempts: 2, StatusCode: 200, Delivered: true, At: t0}
		if err := tx.PutAlertEvent(ctx, e); err != nil {
			return err
		}
		if err := tx.DeleteAlertState(ctx, "r1", "p1"); err != nil {
			return err
		}
		if err := tx.DeleteAlertEvent(ctx, "e3"); err != nil {
			return err
		}
		return tx.DeleteAlertRule(ctx, "r2")
	})
	view(t, s, func(ctx context.Context, tx store.Tx) error {
		e, err := tx.GetAlertEvent(ctx, "e1")
		if err != nil {
			return err
		}
		equal(t, "delivery", e.Delivery, store.AlertDelivery{Attempts: 2, StatusCode: 200, Delivered: true, At: t0})
		if _, err := tx.GetAlertRule(ctx, "r2"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("deleted rule: %v, want ErrNotFound", err)
		}
		if _, err := tx.GetAlertEvent(ctx, "e3"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("deleted event: %v, want ErrNotFound", err)
		}
		states, err := tx.ListAlertStates(ctx, "r1")
		if err != nil {
			return err
		}
		equal(t, "states of r1 after a delete", ids(states, func(s store.AlertState) string { return s.PartID }), []string{"p2"})
		return nil
	})
	ctx := context.Background()
	err := s.Update(ctx, func(tx store.Tx) error { return tx.DeleteAlertState(ctx, "r1", "p1") })
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleting a missing state: %v, want ErrNotFound", err)
	}
}

// testAlertTransitionOnce: replicas that see the same change at once each
// try to record it; the conditional write in one transaction lets exactly
// one of them.
func testAlertTransitionOnce(t *testing.T, s store.Store) {
	ctx := context.Background()
	const n = 8
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := 0
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			recorded := false
			errs <- s.Update(ctx, func(tx store.Tx) error {
				recorded = false
				st, err := tx.GetAlertState(ctx, "r1", "p1")
				if err != nil && !errors.Is(err, store.ErrNotFound) {
					return err
				}
				if st.Firing {
					return nil
				}
				id := fmt.Sprintf("e%02d", i)
				if err := tx.PutAlertState(ctx, store.AlertState{RuleID: "r1", PartID: "p1", Firing: true, Since: t0, EventID: id}); err != nil {
					return err
				}
				recorded = true
				return tx.PutAlertEvent(ctx, store.AlertEvent{ID: id, RuleID: "r1", PartID: "p1", State: "firing", Time: t0})
			})
			if recorded {
				mu.Lock()
				won++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	view(t, s, func(ctx context.Context, tx store.Tx) error {
		evs, err := tx.ListAlertEvents(ctx, "r1", "", 100)
		equal(t, "events recorded", len(evs), 1)
		return err
	})
	equal(t, "replicas that recorded the transition", won, 1)
}

func testDatasets(t *testing.T, s store.Store) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		for _, d := range []store.Dataset{
			{ID: "d2", OrgID: "o1", Name: "cones", CreatedBy: "user/u", CreatedAt: t0},
			{ID: "d1", OrgID: "o1", Name: "pallets", CreatedBy: "user/u", CreatedAt: t0},
			{ID: "d3", OrgID: "o2", Name: "cones", CreatedBy: "user/v", CreatedAt: t0},
		} {
			if err := tx.PutDataset(ctx, d); err != nil {
				return err
			}
		}
		for _, c := range []store.DatasetCapture{
			{DatasetID: "d1", CaptureID: "p2|s|1", MachineID: "m2", AddedBy: "user/u", AddedAt: t0},
			{DatasetID: "d1", CaptureID: "p1|s|10", MachineID: "m1", AddedBy: "user/u", AddedAt: t0},
			{DatasetID: "d1", CaptureID: "p1|s|9", MachineID: "m1", AddedBy: "user/u", AddedAt: t0},
			{DatasetID: "d2", CaptureID: "p1|s|9", MachineID: "m1", AddedBy: "user/u", AddedAt: t0},
		} {
			if err := tx.PutDatasetCapture(ctx, c); err != nil {
				return err
			}
		}
		// Adding a capture again replaces its entry: still one.
		return tx.PutDatasetCapture(ctx, store.DatasetCapture{DatasetID: "d1", CaptureID: "p2|s|1", MachineID: "m2", AddedBy: "user/w", AddedAt: t0})
	})
	capIDs := func(cs []store.DatasetCapture) []string {
		return ids(cs, func(c store.DatasetCapture) string { return c.CaptureID + " " + c.AddedBy })
	}
	view(t, s, func(ctx context.Context, tx store.Tx) error {
		ds, err := tx.ListDatasets(ctx, "o1")
		if err != nil {
			return err
		}
		equal(t, "datasets of o1", ids(ds, func(d store.Dataset) string { return d.ID + " " + d.Name }), []string{"d1 pallets", "d2 cones"})
		got, err := tx.GetDataset(ctx, "d3")
		if want := (store.Dataset{ID: "d3", OrgID: "o2", Name: "cones", CreatedBy: "user/v", CreatedAt: t0}); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("dataset d3 %+v, %v; want %+v", got, err, want)
		}
		cs, err := tx.ListDatasetCaptures(ctx, "d1")
		if err != nil {
			return err
		}
		equal(t, "captures of d1", capIDs(cs), []string{"p1|s|10 user/u", "p1|s|9 user/u", "p2|s|1 user/w"})
		if _, err := tx.GetDataset(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("unknown dataset: %v", err)
		}
		return nil
	})
	update(t, s, func(ctx context.Context, tx store.Tx) error {
		if err := tx.DeleteDatasetCapture(ctx, "d1", "p1|s|9"); err != nil {
			return err
		}
		if err := tx.DeleteDatasetCapture(ctx, "d1", "p1|s|9"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("remove a capture twice: %v", err)
		}
		return tx.DeleteDataset(ctx, "d2")
	})
	view(t, s, func(ctx context.Context, tx store.Tx) error {
		cs, err := tx.ListDatasetCaptures(ctx, "d1")
		if err != nil {
			return err
		}
		equal(t, "captures of d1 after a removal", capIDs(cs), []string{"p1|s|10 user/u", "p2|s|1 user/w"})
		cs, err = tx.ListDatasetCaptures(ctx, "d2")
		if err != nil {
			return err
		}
		equal(t, "captures of a deleted dataset", len(cs), 0)
		if _, err := tx.GetDataset(ctx, "d2"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("deleted dataset: %v", err)
		}
		return nil
	})
	err := s.Update(context.Background(), func(tx store.Tx) error { return tx.DeleteDataset(context.Background(), "d2") })
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("delete a deleted dataset: %v", err)
	}
}
