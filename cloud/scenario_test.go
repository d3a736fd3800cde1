package cloud_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/cloud"
	"github.com/outpost-robotics/outpost/cloud/cloudtest"
	"github.com/outpost-robotics/outpost/cloud/store/badgerstore"
	"github.com/outpost-robotics/outpost/credential"
)

// TestFleetLifecycle walks the API as a new admin would: users, an org, a
// tree of locations, machines, roles and keys, and the refusals on the way.
func TestFleetLifecycle(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	admin := e.client(e.adminToken)

	// Users: created by the admin, signing in with a password.
	alice := check(admin.User.CreateUser(ctx, req(&fleetv1.CreateUserRequest{Email: "Alice@Example.com", Password: "alice password 1"})))(t)
	e.Remember("alice password 1")
	if alice.GetUser().GetEmail() != "alice@example.com" {
		t.Fatalf("email not normalized: %v", alice.GetUser())
	}
	gen := check(admin.User.CreateUser(ctx, req(&fleetv1.CreateUserRequest{Email: "bob@example.com"})))(t)
	e.Remember(gen.GetGeneratedPassword())
	if len(gen.GetGeneratedPassword()) < 40 {
		t.Fatalf("generated password %d chars", len(gen.GetGeneratedPassword()))
	}
	_, err := admin.User.CreateUser(ctx, req(&fleetv1.CreateUserRequest{Email: "alice@example.com", Password: "another password"}))
	wantCode(t, err, connect.CodeAlreadyExists, "already exists")
	_, err = admin.User.CreateUser(ctx, req(&fleetv1.CreateUserRequest{Email: "not an email"}))
	wantCode(t, err, connect.CodeInvalidArgument, "not an address")

	anon := e.client("")
	signIn := check(anon.Auth.SignIn(ctx, req(&fleetv1.SignInRequest{SessionPublicKey: sessionPub, Email: "alice@example.com", Password: "alice password 1", TtlSeconds: 30 * 86400})))(t)
	e.Remember(signIn.GetAccessToken())
	if got := signIn.GetExpiresAt().AsTime().Sub(e.clk.Now()); got != 30*24*time.Hour {
		t.Fatalf("token lifetime %v", got)
	}
	_, err = anon.Auth.SignIn(ctx, req(&fleetv1.SignInRequest{SessionPublicKey: sessionPub, Email: "alice@example.com", Password: "x", TtlSeconds: 61 * 86400}))
	wantCode(t, err, connect.CodeInvalidArgument, "60 days")
	a := e.client(session(signIn.GetAccessToken()))

	// Alice creates an org and owns it.
	org := check(a.Org.CreateOrg(ctx, req(&fleetv1.CreateOrgRequest{Name: "Acme Robotics"})))(t).GetOrg()
	_, err = a.Org.CreateOrg(ctx, req(&fleetv1.CreateOrgRequest{Name: " padded"}))
	wantCode(t, err, connect.CodeInvalidArgument, "leading or trailing")
	_, err = a.Org.CreateOrg(ctx, req(&fleetv1.CreateOrgRequest{Name: strings.Repeat("x", 101)}))
	wantCode(t, err, connect.CodeInvalidArgument, "at most 100")

	// Locations nest; moves refuse cycles; deletes refuse non-empty locations.
	mk := func(name, parent string) *fleetv1.Location {
		t.Helper()
		return check(a.Location.CreateLocation(ctx, req(&fleetv1.CreateLocationRequest{OrgId: org.GetId(), Name: name, ParentLocationId: parent})))(t).GetLocation()
	}
	plant := mk("Plant", "")
	line := mk("Line 1", plant.GetId())
	cell := mk("Cell A", line.GetId())
	_, err = a.Location.MoveLocation(ctx, req(&fleetv1.MoveLocationRequest{LocationId: plant.GetId(), NewParentLocationId: cell.GetId()}))
	wantCode(t, err, connect.CodeFailedPrecondition, "under itself")
	_, err = a.Location.MoveLocation(ctx, req(&fleetv1.MoveLocationRequest{LocationId: plant.GetId(), NewParentLocationId: plant.GetId()}))
	wantCode(t, err, connect.CodeFailedPrecondition, "under itself")
	moved := check(a.Location.MoveLocation(ctx, req(&fleetv1.MoveLocationRequest{LocationId: cell.GetId()})))(t).GetLocation()
	if moved.GetParentLocationId() != "" {
		t.Fatalf("moved to root: %v", moved)
	}
	check(a.Location.MoveLocation(ctx, req(&fleetv1.MoveLocationRequest{LocationId: cell.GetId(), NewParentLocationId: line.GetId()})))(t)
	_, err = a.Location.CreateLocation(ctx, req(&fleetv1.CreateLocationRequest{OrgId: org.GetId(), Name: "x", ParentLocationId: "nothex"}))
	wantCode(t, err, connect.CodeInvalidArgument, "not an ID")
	// Depth is bounded.
	parent := cell.GetId()
	for range cloud.MaxDepth - 3 {
		parent = mk("deep", parent).GetId()
	}
	_, err = a.Location.CreateLocation(ctx, req(&fleetv1.CreateLocationRequest{OrgId: org.GetId(), Name: "too deep", ParentLocationId: parent}))
	wantCode(t, err, connect.CodeInvalidArgument, "nest at most")

	m := check(a.Machine.CreateMachine(ctx, req(&fleetv1.CreateMachineRequest{LocationId: cell.GetId(), Name: "arm-1"})))(t)
	e.Remember(m.GetMainPartSecret())
	if len(m.GetMachine().GetParts()) != 1 || !m.GetMachine().GetParts()[0].GetMain() || len(m.GetMainPartSecret()) != 43 {
		t.Fatalf("machine %v", m)
	}
	_, err = a.Location.DeleteLocation(ctx, req(&fleetv1.DeleteLocationRequest{LocationId: cell.GetId()}))
	wantCode(t, err, connect.CodeFailedPrecondition, "still holds 1 machine and 1 child location")
	_, err = a.Machine.DeletePart(ctx, req(&fleetv1.DeletePartRequest{PartId: m.GetMachine().GetParts()[0].GetId()}))
	wantCode(t, err, connect.CodeFailedPrecondition, "main part")
	_, err = a.Machine.AddPart(ctx, req(&fleetv1.AddPartRequest{MachineId: m.GetMachine().GetId(), Name: "main"}))
	wantCode(t, err, connect.CodeAlreadyExists, "already has a part")

	// Bob gets operator on Line 1: he sees Line 1 and below, not Plant.
	bob := e.client(e.token(gen.GetUser().GetId()))
	check(a.Role.GrantRole(ctx, req(&fleetv1.GrantRoleRequest{Subject: "user:bob@example.com", Role: "operator", Scope: "location/" + line.GetId()})))(t)
	locs := check(bob.Location.ListLocations(ctx, req(&fleetv1.ListLocationsRequest{OrgId: org.GetId()})))(t).GetLocations()
	if len(locs) < 2 || locs[0].GetId() != line.GetId() {
		t.Fatalf("bob sees %v", locs)
	}
	for _, l := range locs {
		if l.GetId() == plant.GetId() {
			t.Fatal("bob sees the parent location")
		}
	}
	machines := check(bob.Machine.ListMachines(ctx, req(&fleetv1.ListMachinesRequest{LocationId: cell.GetId()})))(t).GetMachines()
	if len(machines) != 1 {
		t.Fatalf("bob sees machines %v", machines)
	}
	_, err = bob.Machine.RenameMachine(ctx, req(&fleetv1.RenameMachineRequest{MachineId: m.GetMachine().GetId(), Name: "x"}))
	wantCode(t, err, connect.CodePermissionDenied, "org owner, location owner, machine owner")
	// Bob cannot raise himself.
	_, err = bob.Role.ChangeRole(ctx, req(&fleetv1.ChangeRoleRequest{Subject: "user:bob@example.com", Role: "owner", Scope: "location/" + line.GetId()}))
	wantCode(t, err, connect.CodePermissionDenied, "")
	// The access simulator: bob about himself; alice about bob.
	chk := check(bob.Access.CheckAccess(ctx, req(&fleetv1.CheckAccessRequest{Subject: "user:bob@example.com", Action: "machine.control", Resource: "machine/" + m.GetMachine().GetId()})))(t)
	if !chk.GetAllowed() || chk.GetReason() != "granted" || !strings.Contains(chk.GetGrant(), "operator of location/") {
		t.Fatalf("check %v", chk)
	}
	chk = check(a.Access.CheckAccess(ctx, req(&fleetv1.CheckAccessRequest{Subject: "user:bob@example.com", Action: "location.move", Resource: "location/" + cell.GetId()})))(t)
	if chk.GetAllowed() || chk.GetReason() != "not-permitted" {
		t.Fatalf("check %v", chk)
	}
	// A fragment is decided on its organization, as its own calls are.
	frag := check(a.Fragment.CreateFragment(ctx, req(&fleetv1.CreateFragmentRequest{OrgId: org.GetId(), Name: "checked"})))(t)
	chk = check(a.Access.CheckAccess(ctx, req(&fleetv1.CheckAccessRequest{Subject: "user:alice@example.com", Action: "fragment.edit", Resource: "fragment/" + frag.GetFragment().GetId()})))(t)
	if !chk.GetAllowed() {
		t.Fatalf("the org's owner may not edit its fragment: %v", chk)
	}
	chk = check(a.Access.CheckAccess(ctx, req(&fleetv1.CheckAccessRequest{Subject: "user:bob@example.com", Action: "fragment.edit", Resource: "fragment/" + frag.GetFragment().GetId()})))(t)
	if chk.GetAllowed() {
		t.Fatalf("an operator may edit a fragment: %v", chk)
	}
	for _, bad := range []string{"fragment/nope", "fragment/../x", "fragment/" + strings.Repeat("a", 300)} {
		_, err = a.Access.CheckAccess(ctx, req(&fleetv1.CheckAccessRequest{Subject: "user:alice@example.com", Action: "fragment.edit", Resource: bad}))
		if connect.CodeOf(err) != connect.CodeNotFound && connect.CodeOf(err) != connect.CodeInvalidArgument {
			t.Fatalf("CheckAccess on %q: %v", bad, err)
		}
	}
	_, err = a.Access.CheckAccess(ctx, req(&fleetv1.CheckAccessRequest{Subject: "user:bob@example.com", Action: "machine.fly", Resource: "machine/" + m.GetMachine().GetId()}))
	wantCode(t, err, connect.CodeInvalidArgument, "not in the vocabulary")
	// Limit Bob's access from Line 1 to the one machine.
	check(a.Role.LimitAccess(ctx, req(&fleetv1.LimitAccessRequest{Subject: "user:bob@example.com", Scope: "location/" + line.GetId(), LimitTo: []string{"machine/" + m.GetMachine().GetId()}})))(t)
	locs = check(bob.Location.ListLocations(ctx, req(&fleetv1.ListLocationsRequest{OrgId: org.GetId()})))(t).GetLocations()
	if len(locs) != 0 {
		t.Fatalf("after limiting, bob sees %v", locs)
	}
	_, err = a.Role.LimitAccess(ctx, req(&fleetv1.LimitAccessRequest{Subject: "user:bob@example.com", Scope: "machine/" + m.GetMachine().GetId(), LimitTo: []string{"location/" + plant.GetId()}}))
	wantCode(t, err, connect.CodeInvalidArgument, "not inside")

	// API keys are key pairs: a proof by the private key authenticates,
	// and the key holds its own grants. Here the cloud made the pair (as
	// for a client that cannot) and returned the private key once.
	k := check(a.APIKey.CreateAPIKey(ctx, req(&fleetv1.CreateAPIKeyRequest{Name: "ci", Role: "operator", Scope: "machine/" + m.GetMachine().GetId()})))(t)
	e.Remember(k.GetToken(), k.GetToken()[len(k.GetToken())-43:])
	kc := e.client(k.GetToken())
	check(kc.Machine.GetMachine(ctx, req(&fleetv1.GetMachineRequest{MachineId: m.GetMachine().GetId()})))(t)
	impostor := credential.APIKey(k.GetKey().GetId(), credential.NewPrivateKey()).String()
	_, err = e.client(impostor).Machine.GetMachine(ctx, req(&fleetv1.GetMachineRequest{MachineId: m.GetMachine().GetId()}))
	wantCode(t, err, connect.CodeUnauthenticated, "verify API key proof")
	_, err = e.client("Bearer "+k.GetKey().GetId()+":secret").Machine.GetMachine(ctx, req(&fleetv1.GetMachineRequest{MachineId: m.GetMachine().GetId()}))
	wantCode(t, err, connect.CodeUnauthenticated, "outpost apikey create")
	keys := check(a.APIKey.ListAPIKeys(ctx, req(&fleetv1.ListAPIKeysRequest{OrgId: org.GetId()})))(t).GetKeys()
	if len(keys) != 1 || len(keys[0].GetGrants()) != 1 {
		t.Fatalf("keys %v", keys)
	}
	check(a.APIKey.RevokeAPIKey(ctx, req(&fleetv1.RevokeAPIKeyRequest{KeyId: k.GetKey().GetId()})))(t)
	_, err = kc.Machine.GetMachine(ctx, req(&fleetv1.GetMachineRequest{MachineId: m.GetMachine().GetId()}))
	wantCode(t, err, connect.CodeUnauthenticated, "")

	// Invitations: invite, resend (the old code dies), accept.
	inv := check(a.User.InviteUser(ctx, req(&fleetv1.InviteUserRequest{Email: "carol@example.com", Role: "owner", Scope: "location/" + line.GetId()})))(t)
	first := e.inviteCode(t, "carol@example.com", 0)
	check(a.User.ResendInvite(ctx, req(&fleetv1.ResendInviteRequest{InviteId: inv.GetInvite().GetId()})))(t)
	second := e.inviteCode(t, "carol@example.com", 1)
	e.Remember("carol password 1")
	_, err = anon.User.AcceptInvite(ctx, req(&fleetv1.AcceptInviteRequest{SessionPublicKey: sessionPub, Code: first, Password: "carol password 1"}))
	wantCode(t, err, connect.CodeNotFound, "no invitation")
	acc := check(anon.User.AcceptInvite(ctx, req(&fleetv1.AcceptInviteRequest{SessionPublicKey: sessionPub, Code: second, Password: "carol password 1"})))(t)
	e.Remember(acc.GetAccessToken())
	if acc.GetGrant().GetRole() != "owner" {
		t.Fatalf("accepted %v", acc)
	}
	carol := e.client(session(acc.GetAccessToken()))
	check(carol.Machine.RenameMachine(ctx, req(&fleetv1.RenameMachineRequest{MachineId: m.GetMachine().GetId(), Name: "arm-one"})))(t)

	// Roles: the list shows grants reaching a scope, widest first.
	rl := check(a.Role.ListRoles(ctx, req(&fleetv1.ListRolesRequest{Scope: "machine/" + m.GetMachine().GetId()})))(t).GetGrants()
	if len(rl) != 3 || !strings.HasPrefix(rl[0].GetScope(), "org/") || rl[0].GetEmail() != "alice@example.com" {
		t.Fatalf("roles %v", rl)
	}
	members := check(a.Org.ListMembers(ctx, req(&fleetv1.ListMembersRequest{OrgId: org.GetId()})))(t).GetMembers()
	if len(members) != 3 {
		t.Fatalf("members %v", members)
	}

	// The last owner cannot leave; an empty org can be deleted by its owner.
	_, err = a.Org.LeaveOrg(ctx, req(&fleetv1.LeaveOrgRequest{OrgId: org.GetId()}))
	wantCode(t, err, connect.CodeFailedPrecondition, "last owner")
	empty := check(a.Org.CreateOrg(ctx, req(&fleetv1.CreateOrgRequest{Name: "Empty"})))(t).GetOrg()
	_, err = a.Org.DeleteOrg(ctx, req(&fleetv1.DeleteOrgRequest{OrgId: org.GetId()}))
	wantCode(t, err, connect.CodeFailedPrecondition, "still holds")
	check(a.Org.DeleteOrg(ctx, req(&fleetv1.DeleteOrgRequest{OrgId: empty.GetId()})))(t)

	// Audit: every change, allowed or denied, with who and why.
	evs := check(a.Audit.ListAuditEvents(ctx, req(&fleetv1.ListAuditEventsRequest{OrgId: org.GetId(), PageSize: 1000})))(t).GetEvents()
	var denied, renamed bool
	for _, ev := range evs {
		denied = denied || (!ev.GetAllowed() && ev.GetAction() == "machine.rename" && strings.HasPrefix(ev.GetSubject(), "user/"))
		renamed = renamed || (ev.GetAllowed() && ev.GetAction() == "machine.rename" && ev.GetOutcome() == "ok")
	}
	if !denied || !renamed || len(evs) < 15 {
		t.Fatalf("audit has %d events (denied rename %v, rename %v)", len(evs), denied, renamed)
	}
	page := check(a.Audit.ListAuditEvents(ctx, req(&fleetv1.ListAuditEventsRequest{OrgId: org.GetId(), PageSize: 2})))(t)
	next := check(a.Audit.ListAuditEvents(ctx, req(&fleetv1.ListAuditEventsRequest{OrgId: org.GetId(), PageSize: 2, PageToken: page.GetNextPageToken()})))(t)
	if len(next.GetEvents()) != 2 || next.GetEvents()[0].GetId() >= page.GetEvents()[1].GetId() {
		t.Fatal("audit pages overlap")
	}
}

// TestSignInThrottle: repeated failures slow an account down, with the
// injected clock; success afterwards works and clears it.
func TestSignInThrottle(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	admin := e.client(e.adminToken)
	check(admin.User.CreateUser(ctx, req(&fleetv1.CreateUserRequest{Email: "dan@example.com", Password: "dan password 12"})))(t)
	e.Remember("dan password 12")
	anon := e.client("")
	for range 5 {
		_, err := anon.Auth.SignIn(ctx, req(&fleetv1.SignInRequest{SessionPublicKey: sessionPub, Email: "dan@example.com", Password: "wrong password"}))
		wantCode(t, err, connect.CodeUnauthenticated, "wrong email or password")
	}
	_, err := anon.Auth.SignIn(ctx, req(&fleetv1.SignInRequest{SessionPublicKey: sessionPub, Email: "dan@example.com", Password: "dan password 12"}))
	wantCode(t, err, connect.CodeResourceExhausted, "try again in 1 seconds")
	// The address is throttled too, for any account.
	_, err = anon.Auth.SignIn(ctx, req(&fleetv1.SignInRequest{SessionPublicKey: sessionPub, Email: "nobody@example.com", Password: "whatever password"}))
	wantCode(t, err, connect.CodeResourceExhausted, "try again")
	e.clk.Advance(time.Second)
	res := check(anon.Auth.SignIn(ctx, req(&fleetv1.SignInRequest{SessionPublicKey: sessionPub, Email: "dan@example.com", Password: "dan password 12"})))(t)
	e.Remember(res.GetAccessToken())
	// An expired token is refused with what to do.
	e.clk.Advance(13 * time.Hour)
	_, err = e.client(session(res.GetAccessToken())).Auth.WhoAmI(ctx, req(&fleetv1.WhoAmIRequest{}))
	wantCode(t, err, connect.CodeUnauthenticated, "outpost login")
}

// TestBootstrap: a fresh data folder gets a key, an admin and admin.token
// (0600); a restart keeps them.
func TestBootstrap(t *testing.T) {
	dir := t.TempDir()
	clk := clock.NewFake(epoch)
	ctx := context.Background()
	log := cloudtest.NewLog(t)
	open := func() (string, string) {
		st, err := badgerstore.Open(filepath.Join(dir, "store"), log.Logger())
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
		}()
		signer, wrote, err := cloud.Bootstrap(ctx, st, dir, clk, log.Logger())
		if err != nil {
			t.Fatal(err)
		}
		return signer.KeyID(), wrote
	}
	kid, wrote := open()
	if wrote != filepath.Join(dir, cloud.AdminTokenFile) {
		t.Fatalf("wrote %q", wrote)
	}
	fi, err := os.Stat(wrote)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin.token mode %v", fi.Mode().Perm())
	}
	tok, _ := os.ReadFile(wrote)
	log.Remember(strings.TrimSpace(string(tok)))
	kid2, wrote2 := open()
	if kid2 != kid || wrote2 != "" {
		t.Fatalf("restart: key %s→%s, rewrote %q", kid, kid2, wrote2)
	}
	clk.Advance(55 * 24 * time.Hour)
	if _, wrote3 := open(); wrote3 == "" {
		t.Fatal("a token near expiry was not refreshed")
	}
}
