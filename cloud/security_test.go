package cloud_test

import (
	"context"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	"github.com/outpost-robotics/outpost/cloud"
	"github.com/outpost-robotics/outpost/cloud/cloudtest"
	"github.com/outpost-robotics/outpost/cloud/store"
)

// secFleet is an org with a location, a machine in it, and helpers to add
// users holding a role somewhere, all made through the fleet API as the
// cloud's admin.
type secFleet struct {
	e                 *env
	admin             *cloudtest.Clients
	org, loc, machine string
}

func newSecFleet(t *testing.T, e *env) *secFleet {
	t.Helper()
	ctx := context.Background()
	f := &secFleet{e: e, admin: e.client(e.adminToken)}
	f.org = check(f.admin.Org.CreateOrg(ctx, req(&fleetv1.CreateOrgRequest{Name: "Acme"})))(t).GetOrg().GetId()
	f.loc = check(f.admin.Location.CreateLocation(ctx, req(&fleetv1.CreateLocationRequest{OrgId: f.org, Name: "Plant"})))(t).GetLocation().GetId()
	f.machine = check(f.admin.Machine.CreateMachine(ctx, req(&fleetv1.CreateMachineRequest{LocationId: f.loc, Name: "rover"})))(t).GetMachine().GetId()
	return f
}

// newUser creates a user holding role on scope ("" for none) and returns its
// ID and a client signed in as it.
func (f *secFleet) newUser(t *testing.T, email, role, scope string) (string, *cloudtest.Clients) {
	t.Helper()
	ctx := context.Background()
	u := check(f.admin.User.CreateUser(ctx, req(&fleetv1.CreateUserRequest{Email: email, Password: fixturePassword})))(t).GetUser()
	if role != "" {
		check(f.admin.Role.GrantRole(ctx, req(&fleetv1.GrantRoleRequest{Subject: "user:" + u.GetId(), Role: role, Scope: scope})))(t)
	}
	return u.GetId(), f.e.client(f.e.token(u.GetId()))
}

// newKey creates an API key as the admin and returns its ID.
func (f *secFleet) newKey(t *testing.T, role, scope string) string {
	t.Helper()
	res := check(f.admin.APIKey.CreateAPIKey(context.Background(), req(&fleetv1.CreateAPIKeyRequest{Name: "robot key", Role: role, Scope: scope})))(t)
	f.e.Remember(res.GetToken())
	return res.GetKey().GetId()
}

// TestRevokeAPIKeyIsDecidedOnEveryGrant: revoking a key takes all its
// grants away, so the caller must be allowed to take each: a machine owner
// may revoke a key made on the machine, but not once the key also holds a
// role on the whole org.
func TestRevokeAPIKeyIsDecidedOnEveryGrant(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	f := newSecFleet(t, e)
	_, owner := f.newUser(t, "machine-owner@example.com", "owner", "machine/"+f.machine)

	plain := f.newKey(t, "operator", "machine/"+f.machine)
	check(owner.APIKey.RevokeAPIKey(ctx, req(&fleetv1.RevokeAPIKeyRequest{KeyId: plain})))(t)

	wide := f.newKey(t, "operator", "machine/"+f.machine)
	check(f.admin.Role.GrantRole(ctx, req(&fleetv1.GrantRoleRequest{Subject: "apikey:" + wide, Role: "operator", Scope: "org/" + f.org})))(t)
	_, err := owner.APIKey.RevokeAPIKey(ctx, req(&fleetv1.RevokeAPIKeyRequest{KeyId: wide}))
	wantCode(t, err, connect.CodePermissionDenied, "org/"+f.org)
	keys := check(f.admin.APIKey.ListAPIKeys(ctx, req(&fleetv1.ListAPIKeysRequest{OrgId: f.org})))(t).GetKeys()
	if len(keys) != 1 || keys[0].GetId() != wide || len(keys[0].GetGrants()) != 2 {
		t.Fatalf("after the refused revocation the org holds keys %v, want the wide key with both grants", keys)
	}
	// Whoever may take every grant may revoke it.
	check(f.admin.APIKey.RevokeAPIKey(ctx, req(&fleetv1.RevokeAPIKeyRequest{KeyId: wide})))(t)
}

// TestOrgKeepsAnOwner: the last owner of an org can neither demote nor
// remove its own grant, nor narrow it, and neither can anyone else take it;
// with a second owner, either may go.
func TestOrgKeepsAnOwner(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	f := newSecFleet(t, e)
	aliceID, alice := f.newUser(t, "alice@example.com", "", "")
	org := check(alice.Org.CreateOrg(ctx, req(&fleetv1.CreateOrgRequest{Name: "Alice's"})))(t).GetOrg().GetId()
	loc := check(alice.Location.CreateLocation(ctx, req(&fleetv1.CreateLocationRequest{OrgId: org, Name: "Yard"})))(t).GetLocation().GetId()
	self, scope := "user:"+aliceID, "org/"+org
	// The admin's own owner grant on f.org must not count for Alice's org.
	for name, call := range map[string]func(c *cloudtest.Clients) error{
		"change her own role": func(c *cloudtest.Clients) error {
			return discard(c.Role.ChangeRole(ctx, req(&fleetv1.ChangeRoleRequest{Subject: self, Role: "operator", Scope: scope})))
		},
		"remove her own role": func(c *cloudtest.Clients) error {
			return discard(c.Role.RemoveRole(ctx, req(&fleetv1.RemoveRoleRequest{Subject: self, Scope: scope})))
		},
		"limit her own access": func(c *cloudtest.Clients) error {
			return discard(c.Role.LimitAccess(ctx, req(&fleetv1.LimitAccessRequest{Subject: self, Scope: scope, LimitTo: []string{"location/" + loc}})))
		},
	} {
		for who, c := range map[string]*cloudtest.Clients{"alice": alice, "the admin": f.admin} {
			t.Run(who+" may not "+name, func(t *testing.T) {
				wantCode(t, call(c), connect.CodeFailedPrecondition, "last owner of org/"+org)
			})
		}
	}
	if got := check(alice.Auth.WhoAmI(ctx, req(&fleetv1.WhoAmIRequest{})))(t).GetGrants(); len(got) != 1 || got[0].GetRole() != "owner" || got[0].GetScope() != scope {
		t.Fatalf("alice holds %v after the refusals, want owner of %s", got, scope)
	}
	// An API key holding owner is no one to ask: it does not count.
	check(alice.APIKey.CreateAPIKey(ctx, req(&fleetv1.CreateAPIKeyRequest{Name: "ci", Role: "owner", Scope: scope})))(t)
	_, err := alice.Role.RemoveRole(ctx, req(&fleetv1.RemoveRoleRequest{Subject: self, Scope: scope}))
	wantCode(t, err, connect.CodeFailedPrecondition, "last owner")

	bobID, _ := f.newUser(t, "bob@example.com", "", "")
	check(alice.Role.GrantRole(ctx, req(&fleetv1.GrantRoleRequest{Subject: "user:" + bobID, Role: "owner", Scope: scope})))(t)
	check(alice.Role.ChangeRole(ctx, req(&fleetv1.ChangeRoleRequest{Subject: self, Role: "operator", Scope: scope})))(t)
	_, err = f.admin.Role.RemoveRole(ctx, req(&fleetv1.RemoveRoleRequest{Subject: "user:" + bobID, Scope: scope}))
	wantCode(t, err, connect.CodeFailedPrecondition, "last owner")
}

// TestNoRolesOnParts: a role is held on an org, location or machine; a
// grant, key or invitation on a part would be stored and match nothing, so
// each is refused, saying where to give it instead.
func TestNoRolesOnParts(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	f := newSecFleet(t, e)
	part := check(f.admin.Machine.GetMachine(ctx, req(&fleetv1.GetMachineRequest{MachineId: f.machine})))(t).GetMachine().GetParts()[0].GetId()
	userID, _ := f.newUser(t, "carol@example.com", "operator", "machine/"+f.machine)
	for _, tc := range []struct {
		scope, says string
	}{
		{"part/" + part, "never on a part: give it on the part's machine"},
		{"fragment/" + part, "roles are given on an org, location or machine"},
		{"dataset/" + part, "roles are given on an org, location or machine"},
	} {
		calls := map[string]func() error{
			"GrantRole": func() error {
				return discard(f.admin.Role.GrantRole(ctx, req(&fleetv1.GrantRoleRequest{Subject: "user:" + userID, Role: "operator", Scope: tc.scope})))
			},
			"ChangeRole": func() error {
				return discard(f.admin.Role.ChangeRole(ctx, req(&fleetv1.ChangeRoleRequest{Subject: "user:" + userID, Role: "owner", Scope: tc.scope})))
			},
			"CreateAPIKey": func() error {
				return discard(f.admin.APIKey.CreateAPIKey(ctx, req(&fleetv1.CreateAPIKeyRequest{Name: "k", Role: "operator", Scope: tc.scope})))
			},
			"InviteUser": func() error {
				return discard(f.admin.User.InviteUser(ctx, req(&fleetv1.InviteUserRequest{Email: "dave@example.com", Role: "operator", Scope: tc.scope})))
			},
		}
		for name, call := range calls {
			t.Run(name+" on "+tc.scope[:4], func(t *testing.T) {
				wantCode(t, call(), connect.CodeInvalidArgument, tc.says)
			})
		}
	}
	if keys := check(f.admin.APIKey.ListAPIKeys(ctx, req(&fleetv1.ListAPIKeysRequest{OrgId: f.org})))(t).GetKeys(); len(keys) != 0 {
		t.Fatalf("keys were made: %v", keys)
	}
	// Asking about a part stays possible: it is decided on its machine.
	check(f.admin.Access.CheckAccess(ctx, req(&fleetv1.CheckAccessRequest{Subject: "user:" + userID, Action: "machine.control", Resource: "part/" + part})))(t)
}

// TestDataFilesAreOwnerOnly runs the cloud as `outpost-cloud serve` does,
// changes some state, and finds every file of its data folder readable by
// its user alone: the fleet store holds the signing key and credential
// hashes, which Badger would otherwise write 0644.
func TestDataFilesAreOwnerOnly(t *testing.T) {
	// Run sets the process's umask; the test's other files keep theirs.
	old := syscall.Umask(0o022)
	syscall.Umask(old)
	t.Cleanup(func() { syscall.Umask(old) })

	dir := filepath.Join(t.TempDir(), "data")
	r := startRun(t, dir)
	org := check(r.admin.Org.CreateOrg(r.ctx, req(&fleetv1.CreateOrgRequest{Name: "Acme"})))(t).GetOrg().GetId()
	res := check(r.admin.APIKey.CreateAPIKey(r.ctx, req(&fleetv1.CreateAPIKeyRequest{Name: "k", Role: "owner", Scope: "org/" + org})))(t)
	r.log.Remember(res.GetToken())
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	files := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s is %v: others may read it", strings.TrimPrefix(path, dir), fi.Mode().Perm())
		}
		if fi.Mode().IsRegular() {
			files++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 5 {
		t.Fatalf("only %d files in the data folder: the check saw too little", files)
	}
}

// from returns clients of the fleet API that connect from ip, a loopback
// address other than 127.0.0.1, so the cloud sees another client address.
func (e *env) from(t *testing.T, ip string) *cloudtest.Clients {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	tr := &http.Transport{DialContext: d.DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr}
	return cloudtest.NewClients(hc, e.URL)
}

// TestSignInThrottleHoldsUnderConcurrency: 60 wrong passwords sent at once
// from one address are checked at most Free (5) times, the rest refused
// before any hashing. The attack goes on from that address for hours, and
// still the account's owner signs in: at once from an address it signed in
// from before, and after at most a minute from a new one.
func TestSignInThrottleHoldsUnderConcurrency(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	admin := e.client(e.adminToken)
	const email, password = "erin@example.com", "erin password 12"
	check(admin.User.CreateUser(ctx, req(&fleetv1.CreateUserRequest{Email: email, Password: password})))(t)
	e.Remember(password)
	home, attacker, travel := e.from(t, "127.0.0.3"), e.from(t, "127.0.0.1"), e.from(t, "127.0.0.2")
	signIn := func(c *cloudtest.Clients, pw string) error {
		res, err := c.Auth.SignIn(ctx, req(&fleetv1.SignInRequest{SessionPublicKey: sessionPub, Email: email, Password: pw}))
		if err == nil {
			e.Remember(res.Msg.GetAccessToken())
		}
		return err
	}
	if err := signIn(home, password); err != nil {
		t.Fatal(err)
	}

	attack := func() (checked int) {
		var wg sync.WaitGroup
		var n atomic.Int64
		for range 60 {
			wg.Go(func() {
				switch err := signIn(attacker, "wrong password 1"); connect.CodeOf(err) {
				case connect.CodeUnauthenticated:
					n.Add(1)
				case connect.CodeResourceExhausted:
				default:
					t.Errorf("a wrong password: %v", err)
				}
			})
		}
		wg.Wait()
		return int(n.Load())
	}
	if n := attack(); n > 5 {
		t.Fatalf("%d of 60 concurrent wrong passwords were checked, want at most 5", n)
	}
	// The attacker comes back whenever its address may try again.
	for range 12 {
		e.clk.Advance(15 * time.Minute)
		if n := attack(); n > 5 {
			t.Fatalf("%d of 60 concurrent wrong passwords were checked, want at most 5", n)
		}
	}
	if err := signIn(home, password); err != nil {
		t.Fatalf("from an address known to the account: %v", err)
	}
	err := signIn(travel, password)
	if connect.CodeOf(err) == connect.CodeResourceExhausted {
		var secs int
		if _, scanErr := fmt.Sscanf(err.(*connect.Error).Message(), "too many failed attempts: try again in %d seconds", &secs); scanErr != nil || secs > 60 {
			t.Fatalf("a new address must wait %q, want at most a minute", err)
		}
		e.clk.Advance(time.Duration(secs) * time.Second)
		err = signIn(travel, password)
	}
	if err != nil {
		t.Fatalf("the right password from a new address: %v", err)
	}
}

// TestSessionsEnd: signing out revokes the token the call carries, and only
// it; a password change revokes every older token and returns a new one;
// the admin's deletion of a user ends all of its tokens. The cloud refuses
// each revoked token at once.
func TestSessionsEnd(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	f := newSecFleet(t, e)
	const email, password, newPassword = "alice@example.com", fixturePassword, "alice's new password"
	e.Remember(newPassword)
	aliceID, _ := f.newUser(t, email, "operator", "machine/"+f.machine)
	anon := e.client("")
	signIn := func(pw string) (*cloudtest.Clients, error) {
		res, err := anon.Auth.SignIn(ctx, req(&fleetv1.SignInRequest{SessionPublicKey: sessionPub, Email: email, Password: pw}))
		if err != nil {
			return nil, err
		}
		e.Remember(res.Msg.GetAccessToken())
		return e.client(session(res.Msg.GetAccessToken())), nil
	}
	whoami := func(c *cloudtest.Clients) error { return discard(c.Auth.WhoAmI(ctx, req(&fleetv1.WhoAmIRequest{}))) }
	laptop, err := signIn(password)
	if err != nil {
		t.Fatal(err)
	}
	phone, err := signIn(password)
	if err != nil {
		t.Fatal(err)
	}

	check(laptop.Auth.SignOut(ctx, req(&fleetv1.SignOutRequest{})))(t)
	wantCode(t, whoami(laptop), connect.CodeUnauthenticated, "revoked")
	wantCode(t, discard(laptop.Auth.SignOut(ctx, req(&fleetv1.SignOutRequest{}))), connect.CodeUnauthenticated, "revoked")
	if err := whoami(phone); err != nil {
		t.Fatalf("another session of the same user: %v", err)
	}

	e.clk.Advance(time.Second)
	_, err = phone.Auth.ChangePassword(ctx, req(&fleetv1.ChangePasswordRequest{SessionPublicKey: sessionPub, CurrentPassword: "not the password", NewPassword: newPassword}))
	wantCode(t, err, connect.CodePermissionDenied, "current_password is wrong")
	_, err = phone.Auth.ChangePassword(ctx, req(&fleetv1.ChangePasswordRequest{SessionPublicKey: sessionPub, CurrentPassword: password, NewPassword: "short"}))
	wantCode(t, err, connect.CodeInvalidArgument, "new_password")
	res := check(phone.Auth.ChangePassword(ctx, req(&fleetv1.ChangePasswordRequest{SessionPublicKey: sessionPub, CurrentPassword: password, NewPassword: newPassword})))(t)
	e.Remember(res.GetAccessToken())
	wantCode(t, whoami(phone), connect.CodeUnauthenticated, "revoked")
	fresh := e.client(session(res.GetAccessToken()))
	if err := whoami(fresh); err != nil {
		t.Fatalf("the token ChangePassword returned: %v", err)
	}
	if _, err := signIn(password); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("the old password: %v", err)
	}
	again, err := signIn(newPassword)
	if err != nil {
		t.Fatalf("the new password: %v", err)
	}

	// Sessions are users': an API key is revoked, not signed out.
	key := check(f.admin.APIKey.CreateAPIKey(ctx, req(&fleetv1.CreateAPIKeyRequest{Name: "k", Role: "operator", Scope: "machine/" + f.machine})))(t)
	e.Remember(key.GetToken())
	wantCode(t, discard(e.client(key.GetToken()).Auth.SignOut(ctx, req(&fleetv1.SignOutRequest{}))), connect.CodeFailedPrecondition, "outpost apikey revoke")

	// Deletion: only the admin, never itself, hostile names refused.
	wantCode(t, discard(fresh.User.DeleteUser(ctx, req(&fleetv1.DeleteUserRequest{User: "user:" + email}))), connect.CodePermissionDenied, "admin")
	for _, bad := range []string{"", "user:", "apikey:" + key.GetKey().GetId(), email, "user:\x00@x", "user:" + strings.Repeat("a", 300)} {
		if _, err := f.admin.User.DeleteUser(ctx, req(&fleetv1.DeleteUserRequest{User: bad})); connect.CodeOf(err) != connect.CodeInvalidArgument && connect.CodeOf(err) != connect.CodeNotFound {
			t.Errorf("DeleteUser(%q): %v", bad, err)
		}
	}
	wantCode(t, discard(f.admin.User.DeleteUser(ctx, req(&fleetv1.DeleteUserRequest{User: "user:" + e.AdminID()}))), connect.CodeFailedPrecondition, "admin account")
	del := check(f.admin.User.DeleteUser(ctx, req(&fleetv1.DeleteUserRequest{User: "user:" + email})))(t)
	if del.GetUser().GetId() != aliceID || del.GetGrantsRemoved() != 1 {
		t.Fatalf("deleted %v", del)
	}
	for _, c := range []*cloudtest.Clients{fresh, again} {
		wantCode(t, whoami(c), connect.CodeUnauthenticated, "no longer exists")
	}
	if _, err := signIn(newPassword); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("a deleted user signs in: %v", err)
	}
	// The email is free for a new account.
	f.newUser(t, email, "", "")

	// The last owner of an org is not deleted from under it.
	bobID, bob := f.newUser(t, "bob@example.com", "", "")
	org := check(bob.Org.CreateOrg(ctx, req(&fleetv1.CreateOrgRequest{Name: "Bob's"})))(t).GetOrg().GetId()
	wantCode(t, discard(f.admin.User.DeleteUser(ctx, req(&fleetv1.DeleteUserRequest{User: "user:" + bobID}))), connect.CodeFailedPrecondition, "last owner of org/"+org)
}

// TestUnshareEndsWhatTheShareMade: the owners of org B, with whom a
// location of org A is shared, give roles and make keys there; unsharing
// removes exactly those (audited), not what A's own owners gave there, nor
// what B made before on its own. Sharing again does not bring them back.
func TestUnshareEndsWhatTheShareMade(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	f := newSecFleet(t, e) // org A: f.org, f.loc holding f.machine
	_, bob := f.newUser(t, "bob@example.com", "", "")
	orgB := check(bob.Org.CreateOrg(ctx, req(&fleetv1.CreateOrgRequest{Name: "Integrator"})))(t).GetOrg().GetId()
	check(f.admin.Location.ShareLocation(ctx, req(&fleetv1.ShareLocationRequest{LocationId: f.loc, OrgId: orgB})))(t)

	carolID, carol := f.newUser(t, "carol@example.com", "", "")
	erinID, erin := f.newUser(t, "erin@example.com", "", "")
	// Through the share: a role on the location, a role on the machine, a key.
	check(bob.Role.GrantRole(ctx, req(&fleetv1.GrantRoleRequest{Subject: "user:" + carolID, Role: "operator", Scope: "location/" + f.loc})))(t)
	check(bob.Role.GrantRole(ctx, req(&fleetv1.GrantRoleRequest{Subject: "user:" + carolID, Role: "owner", Scope: "machine/" + f.machine})))(t)
	key := check(bob.APIKey.CreateAPIKey(ctx, req(&fleetv1.CreateAPIKeyRequest{Name: "integrator ci", Role: "operator", Scope: "machine/" + f.machine})))(t)
	e.Remember(key.GetToken())
	keyClient := e.client(key.GetToken())
	// By A's own owner: stays.
	check(f.admin.Role.GrantRole(ctx, req(&fleetv1.GrantRoleRequest{Subject: "user:" + erinID, Role: "operator", Scope: "location/" + f.loc})))(t)
	// In B itself: stays.
	check(bob.Role.GrantRole(ctx, req(&fleetv1.GrantRoleRequest{Subject: "user:" + carolID, Role: "operator", Scope: "org/" + orgB})))(t)

	getMachine := func(c *cloudtest.Clients) error {
		return discard(c.Machine.GetMachine(ctx, req(&fleetv1.GetMachineRequest{MachineId: f.machine})))
	}
	for name, c := range map[string]*cloudtest.Clients{"carol": carol, "the key": keyClient, "erin": erin} {
		if err := getMachine(c); err != nil {
			t.Fatalf("%s before the unshare: %v", name, err)
		}
	}

	res := check(f.admin.Location.UnshareLocation(ctx, req(&fleetv1.UnshareLocationRequest{LocationId: f.loc, OrgId: orgB})))(t)
	if res.GetGrantsRemoved() != 2 || res.GetApiKeysRemoved() != 1 {
		t.Fatalf("unshare removed %d grants and %d keys, want carol's 2 and bob's key", res.GetGrantsRemoved(), res.GetApiKeysRemoved())
	}
	wantCode(t, getMachine(carol), connect.CodePermissionDenied, "")
	wantCode(t, getMachine(keyClient), connect.CodeUnauthenticated, "")
	if err := getMachine(erin); err != nil {
		t.Fatalf("a role A's owner gave: %v", err)
	}
	who := check(carol.Auth.WhoAmI(ctx, req(&fleetv1.WhoAmIRequest{})))(t).GetGrants()
	if len(who) != 1 || who[0].GetScope() != "org/"+orgB {
		t.Fatalf("carol holds %v, want only her role in org B", who)
	}
	// Each removal is in A's audit log, naming the share.
	evs := check(f.admin.Audit.ListAuditEvents(ctx, req(&fleetv1.ListAuditEventsRequest{OrgId: f.org})))(t).GetEvents()
	removals := 0
	for _, ev := range evs {
		if strings.Contains(ev.GetReason(), "made through the share of location/"+f.loc+" with org/"+orgB) {
			removals++
		}
	}
	if removals != 3 {
		t.Fatalf("%d audited removals, want 3", removals)
	}
	check(f.admin.Location.ShareLocation(ctx, req(&fleetv1.ShareLocationRequest{LocationId: f.loc, OrgId: orgB})))(t)
	if who := check(carol.Auth.WhoAmI(ctx, req(&fleetv1.WhoAmIRequest{})))(t).GetGrants(); len(who) != 1 {
		t.Fatalf("sharing again brought back %v", who)
	}
	wantCode(t, getMachine(keyClient), connect.CodeUnauthenticated, "")
}

// TestInvitationsGoOnlyToTheMailbox: an invitation's code is mailed through
// the SMTP relay to the invited address and never returned to the inviter,
// so a user inviting an address without an account cannot accept it and
// own that account. A cloud without a relay refuses to invite, naming what
// to do instead; a relay that fails withdraws the invitation.
func TestInvitationsGoOnlyToTheMailbox(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	f := newSecFleet(t, e)
	_, mallory := f.newUser(t, "mallory@example.com", "", "")
	org := check(mallory.Org.CreateOrg(ctx, req(&fleetv1.CreateOrgRequest{Name: "Mallory's"})))(t).GetOrg().GetId()
	const victim = "victim@example.com"
	invite := func(c *cloudtest.Clients, email string) (*fleetv1.InviteUserResponse, error) {
		res, err := c.User.InviteUser(ctx, req(&fleetv1.InviteUserRequest{Email: email, Role: "owner", Scope: "org/" + org}))
		if err != nil {
			return nil, err
		}
		return res.Msg, nil
	}

	res, err := invite(mallory, victim)
	if err != nil {
		t.Fatal(err)
	}
	if res.GetCode() != "" {
		t.Fatal("the invitation code was returned to the inviter")
	}
	m := e.Mail.Wait(t, victim, 0)
	code := e.inviteCode(t, victim, 0)
	if len(m.To) != 1 || !strings.Contains(m.Data, "mallory@example.com invited you") || strings.Contains(m.Data, e.adminToken) {
		t.Fatalf("the mail went to %v and says:\n%s", m.To, m.Data)
	}
	// The mail links to the fleet app's page with the code in the
	// fragment, which a browser never sends to a server.
	if body := strings.ReplaceAll(m.Data, "=\r\n", ""); !strings.Contains(body, "\r\n"+e.URL+"/invite#"+code+"\r\n") {
		t.Errorf("the mail does not link to %s/invite#CODE:\n%s", e.URL, m.Data)
	}
	for _, guess := range []string{"", strings.Repeat("A", 43), res.GetInvite().GetId()} {
		if _, err := mallory.User.AcceptInvite(ctx, req(&fleetv1.AcceptInviteRequest{SessionPublicKey: sessionPub, Code: guess, Password: "mallory's choice"})); err == nil {
			t.Fatalf("accepted with %q", guess)
		}
	}
	acc := check(e.client("").User.AcceptInvite(ctx, req(&fleetv1.AcceptInviteRequest{SessionPublicKey: sessionPub, Code: code, Password: "victim's own password"})))(t)
	e.Remember(acc.GetAccessToken())
	if acc.GetUser().GetEmail() != victim {
		t.Fatalf("accepted as %v", acc.GetUser())
	}

	// Hostile addresses never reach the relay.
	sent := len(e.Mail.Messages())
	for _, bad := range []string{"a@example.com\r\nBcc: x@evil.example", "a@example.com>,<b@evil.example", "<a@example.com>", "a@b@c"} {
		if _, err := invite(mallory, bad); connect.CodeOf(err) != connect.CodeInvalidArgument {
			t.Errorf("invite %q: %v", bad, err)
		}
	}
	if n := len(e.Mail.Messages()); n != sent {
		t.Fatalf("%d mails sent for hostile addresses", n-sent)
	}

	pending, err := invite(mallory, "pending@example.com")
	if err != nil {
		t.Fatal(err)
	}
	e.inviteCode(t, "pending@example.com", 0)

	// A relay that refuses: nothing is kept that nobody received.
	broken, err := cloud.NewSMTPMailer(cloud.SMTPConfig{Host: e.Mail.Host, Port: e.Mail.Port, From: "outpost@example.com",
		Username: e.Mail.Username, Password: "not the relay's password", TLSConfig: e.Mail.TLSConfig})
	if err != nil {
		t.Fatal(err)
	}
	good := e.Server.Mailer()
	e.Server.SetMailer(broken)
	_, err = invite(mallory, "later@example.com")
	wantCode(t, err, connect.CodeUnavailable, "could not be sent")

	// Without a relay: refused, saying what to do.
	e.Server.SetMailer(nil)
	_, err = invite(mallory, "later@example.com")
	wantCode(t, err, connect.CodeFailedPrecondition, "outpost user create")
	_, err = mallory.User.ResendInvite(ctx, req(&fleetv1.ResendInviteRequest{InviteId: pending.GetInvite().GetId()}))
	wantCode(t, err, connect.CodeFailedPrecondition, "--smtp-host")
	e.Server.SetMailer(good)

	// Cleartext relays only on loopback; bad settings are refused.
	for _, cfg := range []cloud.SMTPConfig{
		{Host: "mail.example.com", From: "outpost@example.com", TLS: "none"},
		{Host: "mail.example.com", From: "not an address"},
		{Host: "", From: "outpost@example.com"},
		{Host: "mail.example.com", From: "outpost@example.com", TLS: "ssl3"},
	} {
		if _, err := cloud.NewSMTPMailer(cfg); err == nil {
			t.Errorf("cloud.NewSMTPMailer(%+v) accepted", cfg)
		}
	}
}

// TestNoEmailProbing: a caller who may not change roles learns nothing
// about which emails have accounts.
func TestNoEmailProbing(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	s := newSide()
	e.update(func(ctx context.Context, tx store.Tx) error { return s.write(ctx, tx) })
	op := e.client(e.token(s.t)) // operator of machine M
	for _, subject := range []string{"user:nobody@example.com", "user:" + s.t2 + "@x.org"} {
		_, err := op.Role.GrantRole(ctx, req(&fleetv1.GrantRoleRequest{Subject: subject, Role: "operator", Scope: "machine/" + s.m}))
		wantCode(t, err, connect.CodePermissionDenied, "")
		_, err = op.Access.CheckAccess(ctx, req(&fleetv1.CheckAccessRequest{Subject: subject, Action: "machine.view", Resource: "location/" + s.l}))
		wantCode(t, err, connect.CodePermissionDenied, "")
	}
	// An owner is told the subject does not exist.
	admin := e.client(e.adminToken)
	_, err := admin.Role.GrantRole(ctx, req(&fleetv1.GrantRoleRequest{Subject: "user:nobody@example.com", Role: "operator", Scope: "machine/" + s.m}))
	wantCode(t, err, connect.CodeNotFound, "outpost user create")
}
