package cloud_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"connectrpc.com/connect"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	"github.com/outpost-robotics/outpost/cloud"
	"github.com/outpost-robotics/outpost/cloud/auth"
	"github.com/outpost-robotics/outpost/cloud/cloudtest"
	"github.com/outpost-robotics/outpost/cloud/store"
)

// The six roles of the seed, plus a signed-in user with no grant and an
// anonymous caller.
const (
	orgOwner     = "org owner"
	orgOperator  = "org operator"
	locOwner     = "location owner"
	locOperator  = "location operator"
	machOwner    = "machine owner"
	machOperator = "machine operator"
	noGrant      = "no grant"
	anonymous    = "anonymous"
	// cloudAdmin is the cloud-wide admin: allowed everything, everywhere.
	cloudAdmin = "cloud admin"
)

var roles = []string{orgOwner, orgOperator, locOwner, locOperator, machOwner, machOperator, noGrant, anonymous, cloudAdmin}

var (
	allSix      = []string{orgOwner, orgOperator, locOwner, locOperator, machOwner, machOperator}
	signedIn    = []string{orgOwner, orgOperator, locOwner, locOperator, machOwner, machOperator, noGrant}
	everyone    = roles
	owners      = []string{orgOwner, locOwner, machOwner}
	locOwners   = []string{orgOwner, locOwner}
	orgOwnerOnl = []string{orgOwner}
	orgRoles    = []string{orgOwner, orgOperator}
	nobody      = []string{}
	// viewers may see a machine's tabs (machine.view), dataViewers its data (data.view).
	viewers     = owners
	dataViewers = allSix
	// alertViewers hold alert.view: both roles at organization and location
	// scope (docs/ACTIONS.md, beyond the seed).
	alertViewers = []string{orgOwner, orgOperator, locOwner, locOperator}
)

// side is one organization's tree, made fresh for every case:
//
//	org ── L ──┬── L2 ── M (parts P main, P2)
//	           └── L3
//
// with a dataset DS of the org (empty), an invitation and an API key on machine/M, user T holding operator
// on machine/M, user T2 operator on location/L2, and L2 shared with org C.
type side struct {
	org, l, l2, l3, m, p, p2, inv, invCode, key, t, t2, c, f, prop string
	// alert is a rule on L2, whose webhook the cloud refuses at delivery
	// (so a test-fire makes no connection).
	alert string
	// ds is a dataset of org, holding no captures.
	ds string
}

func newSide() side {
	id := auth.NewID
	return side{org: id(), l: id(), l2: id(), l3: id(), m: id(), p: id(), p2: id(), inv: id(), invCode: auth.NewSecret(),
		key: id(), t: id(), t2: id(), c: id(), f: id(), prop: id(), alert: id(), ds: id()}
}

func (s side) write(ctx context.Context, tx store.Tx) error {
	now := epoch
	puts := []error{
		tx.PutOrg(ctx, store.Org{ID: s.org, Name: "org", CreatedAt: now}),
		tx.PutOrg(ctx, store.Org{ID: s.c, Name: "c", CreatedAt: now}),
		tx.PutLocation(ctx, store.Location{ID: s.l, OrgID: s.org, Name: "L"}),
		tx.PutLocation(ctx, store.Location{ID: s.l2, OrgID: s.org, ParentID: s.l, Name: "L2", SharedWith: []string{s.c}}),
		tx.PutLocation(ctx, store.Location{ID: s.l3, OrgID: s.org, ParentID: s.l, Name: "L3"}),
		tx.PutMachine(ctx, store.Machine{ID: s.m, LocationID: s.l2, Name: "M"}),
		tx.PutPart(ctx, store.Part{ID: s.p, MachineID: s.m, Name: "main", Main: true}),
		tx.PutPart(ctx, store.Part{ID: s.p2, MachineID: s.m, Name: "second"}),
		tx.PutInvite(ctx, store.Invite{ID: s.inv, Email: s.inv + "@x.org", Role: "operator", Scope: "machine/" + s.m, OrgID: s.org,
			CodeHash: auth.HashSecret(s.invCode), ExpiresAt: now.Add(cloud.InviteTTL)}),
		tx.PutAPIKey(ctx, store.APIKey{ID: s.key, Name: "k", OrgID: s.org, Scope: "machine/" + s.m}),
		tx.PutGrant(ctx, store.Grant{Subject: "apikey:" + s.key, Role: "operator", Scope: "machine/" + s.m, OrgID: s.org}),
		tx.PutUser(ctx, store.User{ID: s.t, Email: s.t + "@x.org", PasswordHash: fixturePasswordHash()}),
		tx.PutUser(ctx, store.User{ID: s.t2, Email: s.t2 + "@x.org"}),
		tx.PutGrant(ctx, store.Grant{Subject: "user:" + s.t, Role: "operator", Scope: "machine/" + s.m, OrgID: s.org}),
		tx.PutGrant(ctx, store.Grant{Subject: "user:" + s.t2, Role: "operator", Scope: "location/" + s.l2, OrgID: s.org}),
		tx.PutFragment(ctx, store.Fragment{ID: s.f, OrgID: s.org, Name: "F", Revision: 1}),
		tx.PutFragmentRevision(ctx, store.FragmentRevision{FragmentID: s.f, Revision: 1}),
		tx.PutProposal(ctx, store.Proposal{ID: s.prop, PartID: s.p, MachineID: s.m, Seq: 1, BaseRevision: 7, State: "conflict"}),
		tx.PutAlertRule(ctx, store.AlertRule{ID: s.alert, OrgID: s.org, Scope: "location/" + s.l2, Name: "A", Kind: "failing",
			WebhookURL: "https://127.0.0.1:1/", Secret: []byte("matrix")}),
		tx.PutDataset(ctx, store.Dataset{ID: s.ds, OrgID: s.org, Name: "DS", CreatedBy: "user/" + s.t, CreatedAt: now}),
	}
	for _, err := range puts {
		if err != nil {
			return err
		}
	}
	return nil
}

// grantFor is where each role's grant sits on the "in" side.
func (s side) grantFor(role string) (string, string, bool) {
	switch role {
	case orgOwner:
		return "owner", "org/" + s.org, true
	case orgOperator:
		return "operator", "org/" + s.org, true
	case locOwner:
		return "owner", "location/" + s.l, true
	case locOperator:
		return "operator", "location/" + s.l, true
	case machOwner:
		return "owner", "machine/" + s.m, true
	case machOperator:
		return "operator", "machine/" + s.m, true
	}
	return "", "", false
}

const fixturePassword = "fixture password 1"

// fixturePasswordHash is hashed once: argon2id is slow on purpose.
var fixturePasswordHash = sync.OnceValue(func() string { return auth.HashPassword(fixturePassword) })

type rpcCase struct {
	name string
	// allowed lists the roles allowed on the "in" side; on the "out" side
	// only markers (public, authenticated) allow anyone.
	allowed []string
	// marker calls are decided without a resource, so both sides agree.
	marker bool
	// okCode is what an allowed call returns when not OK (a refusal that
	// is not about permission, such as deleting a non-empty org).
	okCode connect.Code
	call   func(ctx context.Context, c *cloudtest.Clients, s side) error
}

func req[T any](m *T) *connect.Request[T] { return connect.NewRequest(m) }

func discard[T any](_ *connect.Response[T], err error) error { return err }

func matrixCases() []rpcCase {
	return []rpcCase{
		{"GetServerInfo", everyone, true, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Server.GetServerInfo(ctx, req(&fleetv1.GetServerInfoRequest{})))
		}},
		{"SignIn", everyone, true, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Auth.SignIn(ctx, req(&fleetv1.SignInRequest{SessionPublicKey: sessionPub, Email: s.t + "@x.org", Password: fixturePassword})))
		}},
		{"WhoAmI", signedIn, true, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Auth.WhoAmI(ctx, req(&fleetv1.WhoAmIRequest{})))
		}},
		{"CreateOrg", signedIn, true, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Org.CreateOrg(ctx, req(&fleetv1.CreateOrgRequest{Name: "new org"})))
		}},
		{"ListOrgs", signedIn, true, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Org.ListOrgs(ctx, req(&fleetv1.ListOrgsRequest{})))
		}},
		{"RenameOrg", orgOwnerOnl, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Org.RenameOrg(ctx, req(&fleetv1.RenameOrgRequest{OrgId: s.org, Name: "renamed"})))
		}},
		{"SetDocumentLifetime", orgOwnerOnl, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Org.SetDocumentLifetime(ctx, req(&fleetv1.SetDocumentLifetimeRequest{OrgId: s.org, Days: 7})))
		}},
		{"SetDataRetention", orgOwnerOnl, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Org.SetDataRetention(ctx, req(&fleetv1.SetDataRetentionRequest{OrgId: s.org, Days: 30})))
		}},
		{"DeleteOrg", orgOwnerOnl, false, connect.CodeFailedPrecondition, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Org.DeleteOrg(ctx, req(&fleetv1.DeleteOrgRequest{OrgId: s.org})))
		}},
		{"LeaveOrg", allSix, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Org.LeaveOrg(ctx, req(&fleetv1.LeaveOrgRequest{OrgId: s.org})))
		}},
		{"ListMembers", orgRoles, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Org.ListMembers(ctx, req(&fleetv1.ListMembersRequest{OrgId: s.org})))
		}},
		{"CreateLocation", orgOwnerOnl, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Location.CreateLocation(ctx, req(&fleetv1.CreateLocationRequest{OrgId: s.org, Name: "new", ParentLocationId: s.l2})))
		}},
		{"ListLocations", signedIn, true, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Location.ListLocations(ctx, req(&fleetv1.ListLocationsRequest{OrgId: s.org})))
		}},
		{"RenameLocation", locOwners, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Location.RenameLocation(ctx, req(&fleetv1.RenameLocationRequest{LocationId: s.l2, Name: "renamed"})))
		}},
		{"MoveLocation", locOwners, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Location.MoveLocation(ctx, req(&fleetv1.MoveLocationRequest{LocationId: s.l2, NewParentLocationId: s.l3})))
		}},
		{"DeleteLocation", locOwners, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Location.DeleteLocation(ctx, req(&fleetv1.DeleteLocationRequest{LocationId: s.l3})))
		}},
		{"ShareLocation", locOwners, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Location.ShareLocation(ctx, req(&fleetv1.ShareLocationRequest{LocationId: s.l3, OrgId: s.c})))
		}},
		{"UnshareLocation", locOwners, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Location.UnshareLocation(ctx, req(&fleetv1.UnshareLocationRequest{LocationId: s.l2, OrgId: s.c})))
		}},
		{"SetSupportAccess", locOwners, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Location.SetSupportAccess(ctx, req(&fleetv1.SetSupportAccessRequest{LocationId: s.l2, Enabled: true})))
		}},
		{"CreateMachine", locOwners, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Machine.CreateMachine(ctx, req(&fleetv1.CreateMachineRequest{LocationId: s.l2, Name: "new"})))
		}},
		{"GetMachine", allSix, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Machine.GetMachine(ctx, req(&fleetv1.GetMachineRequest{MachineId: s.m})))
		}},
		{"ListMachines", signedIn, true, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Machine.ListMachines(ctx, req(&fleetv1.ListMachinesRequest{LocationId: s.l2})))
		}},
		{"RenameMachine", owners, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Machine.RenameMachine(ctx, req(&fleetv1.RenameMachineRequest{MachineId: s.m, Name: "renamed"})))
		}},
		{"DeleteMachine", owners, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Machine.DeleteMachine(ctx, req(&fleetv1.DeleteMachineRequest{MachineId: s.m})))
		}},
		{"RestartMachine", owners, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Machine.RestartMachine(ctx, req(&fleetv1.RestartMachineRequest{MachineId: s.m})))
		}},
		{"RestartPart", owners, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Machine.RestartPart(ctx, req(&fleetv1.RestartPartRequest{PartId: s.p2})))
		}},
		{"AddPart", owners, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Machine.AddPart(ctx, req(&fleetv1.AddPartRequest{MachineId: s.m, Name: "third"})))
		}},
		{"RenamePart", owners, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Machine.RenamePart(ctx, req(&fleetv1.RenamePartRequest{PartId: s.p2, Name: "renamed"})))
		}},
		{"DeletePart", owners, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Machine.DeletePart(ctx, req(&fleetv1.DeletePartRequest{PartId: s.p2})))
		}},
		{"RotatePartSecret", owners, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Machine.RotatePartSecret(ctx, req(&fleetv1.RotatePartSecretRequest{PartId: s.p})))
		}},
		{"CreateUser", nobody, true, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.User.CreateUser(ctx, req(&fleetv1.CreateUserRequest{Email: "new-" + s.org + "@x.org"})))
		}},
		{"InviteUser", owners, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.User.InviteUser(ctx, req(&fleetv1.InviteUserRequest{Email: "i@x.org", Role: "operator", Scope: "machine/" + s.m})))
		}},
		{"ResendInvite", owners, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.User.ResendInvite(ctx, req(&fleetv1.ResendInviteRequest{InviteId: s.inv})))
		}},
		{"RevokeInvite", owners, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.User.RevokeInvite(ctx, req(&fleetv1.RevokeInviteRequest{InviteId: s.inv})))
		}},
		{"DeleteUser", nobody, true, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.User.DeleteUser(ctx, req(&fleetv1.DeleteUserRequest{User: "user:" + s.t})))
		}},
		{"SignOut", signedIn, true, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Auth.SignOut(ctx, req(&fleetv1.SignOutRequest{})))
		}},
		// Let through, the call is refused on its too short new password:
		// the matrix's users have none to give.
		{"ChangePassword", signedIn, true, connect.CodeInvalidArgument, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Auth.ChangePassword(ctx, req(&fleetv1.ChangePasswordRequest{CurrentPassword: "x", NewPassword: "short"})))
		}},
		{"AcceptInvite", everyone, true, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.User.AcceptInvite(ctx, req(&fleetv1.AcceptInviteRequest{SessionPublicKey: sessionPub, Code: s.invCode, Password: "a long enough password"})))
		}},
		{"CreateAPIKey", owners, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.APIKey.CreateAPIKey(ctx, req(&fleetv1.CreateAPIKeyRequest{Name: "k", Role: "operator", Scope: "machine/" + s.m})))
		}},
		{"ListAPIKeys", signedIn, true, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.APIKey.ListAPIKeys(ctx, req(&fleetv1.ListAPIKeysRequest{OrgId: s.org})))
		}},
		{"RevokeAPIKey", owners, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.APIKey.RevokeAPIKey(ctx, req(&fleetv1.RevokeAPIKeyRequest{KeyId: s.key})))
		}},
		{"GrantRole", owners, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Role.GrantRole(ctx, req(&fleetv1.GrantRoleRequest{Subject: "user:" + s.t2, Role: "operator", Scope: "machine/" + s.m})))
		}},
		{"ChangeRole", owners, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Role.ChangeRole(ctx, req(&fleetv1.ChangeRoleRequest{Subject: "user:" + s.t, Role: "owner", Scope: "machine/" + s.m})))
		}},
		{"LimitAccess", locOwners, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Role.LimitAccess(ctx, req(&fleetv1.LimitAccessRequest{Subject: "user:" + s.t2, Scope: "location/" + s.l2, LimitTo: []string{"machine/" + s.m}})))
		}},
		{"RemoveRole", owners, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Role.RemoveRole(ctx, req(&fleetv1.RemoveRoleRequest{Subject: "user:" + s.t, Scope: "machine/" + s.m})))
		}},
		{"ListRoles", allSix, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Role.ListRoles(ctx, req(&fleetv1.ListRolesRequest{Scope: "machine/" + s.m})))
		}},
		{"CheckAccess", allSix, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Access.CheckAccess(ctx, req(&fleetv1.CheckAccessRequest{Subject: "user:" + s.t, Action: "machine.view", Resource: "part/" + s.p})))
		}},
		{"ListAuditEvents", orgOwnerOnl, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Audit.ListAuditEvents(ctx, req(&fleetv1.ListAuditEventsRequest{OrgId: s.org})))
		}},
		{"BootstrapPart", owners, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Machine.BootstrapPart(ctx, req(&fleetv1.BootstrapPartRequest{PartId: s.p, CloudUrl: "https://cloud.example.com"})))
		}},
		// Lists: anyone signed in may ask; the answer holds only what rbac lets the caller see (fleet_test.go).
		{"ListFleet", signedIn, true, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Machine.ListFleet(ctx, req(&fleetv1.ListFleetRequest{OrgId: s.org})))
		}},
		{"SummarizeFleet", signedIn, true, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Machine.SummarizeFleet(ctx, req(&fleetv1.SummarizeFleetRequest{LocationId: s.l2})))
		}},
		// Alerts: alert.manage and alert.view on the rule's scope.
		{"CreateAlertRule", locOwners, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Alert.CreateAlertRule(ctx, req(&fleetv1.CreateAlertRuleRequest{Scope: "location/" + s.l2, Name: "new", Kind: "failing", WebhookUrl: "https://hooks.example.com/x"})))
		}},
		{"ListAlertRules", alertViewers, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Alert.ListAlertRules(ctx, req(&fleetv1.ListAlertRulesRequest{Scope: "location/" + s.l2})))
		}},
		{"ListAlertEvents", alertViewers, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Alert.ListAlertEvents(ctx, req(&fleetv1.ListAlertEventsRequest{RuleId: s.alert})))
		}},
		{"TestAlertRule", locOwners, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Alert.TestAlertRule(ctx, req(&fleetv1.TestAlertRuleRequest{RuleId: s.alert})))
		}},
		{"DeleteAlertRule", locOwners, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Alert.DeleteAlertRule(ctx, req(&fleetv1.DeleteAlertRuleRequest{RuleId: s.alert})))
		}},
		// Data across the fleet: lists the same way (fleetdata_test.go).
		{"ListFleetCaptures", signedIn, true, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Data.ListFleetCaptures(ctx, req(&fleetv1.ListFleetCapturesRequest{Query: &fleetv1.FleetDataQuery{OrgId: s.org}})))
		}},
		{"ExportFleetCaptures", signedIn, true, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Data.ExportFleetCaptures(ctx, req(&fleetv1.ExportFleetCapturesRequest{Query: &fleetv1.FleetDataQuery{LocationId: s.l2}})))
		}},
		{"DeleteFleetCaptures", signedIn, true, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Data.DeleteFleetCaptures(ctx, req(&fleetv1.DeleteFleetCapturesRequest{Query: &fleetv1.FleetDataQuery{OrgId: s.org, Component: "cam"}})))
		}},
		{"ListFleetLogs", signedIn, true, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Data.ListFleetLogs(ctx, req(&fleetv1.ListFleetLogsRequest{OrgId: s.org})))
		}},
		{"GetMachineStatus", allSix, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Machine.GetMachineStatus(ctx, req(&fleetv1.GetMachineStatusRequest{MachineId: s.m})))
		}},
		{"GetMachineConfig", viewers, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Config.GetMachineConfig(ctx, req(&fleetv1.GetMachineConfigRequest{MachineId: s.m})))
		}},
		{"UpdateMachineConfig", owners, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Config.UpdateMachineConfig(ctx, req(&fleetv1.UpdateMachineConfigRequest{MachineId: s.m, FragmentIds: []string{s.f}})))
		}},
		{"ListConfigRevisions", viewers, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Config.ListConfigRevisions(ctx, req(&fleetv1.ListConfigRevisionsRequest{MachineId: s.m})))
		}},
		{"ListConfigProposals", viewers, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Config.ListConfigProposals(ctx, req(&fleetv1.ListConfigProposalsRequest{MachineId: s.m})))
		}},
		{"ResolveConfigProposal", owners, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Config.ResolveConfigProposal(ctx, req(&fleetv1.ResolveConfigProposalRequest{MachineId: s.m, ProposalId: s.prop})))
		}},
		{"CreateFragment", orgOwnerOnl, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Fragment.CreateFragment(ctx, req(&fleetv1.CreateFragmentRequest{OrgId: s.org, Name: "new fragment"})))
		}},
		{"GetFragment", owners, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Fragment.GetFragment(ctx, req(&fleetv1.GetFragmentRequest{FragmentId: s.f})))
		}},
		{"ListFragments", owners, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Fragment.ListFragments(ctx, req(&fleetv1.ListFragmentsRequest{OrgId: s.org})))
		}},
		{"UpdateFragment", orgOwnerOnl, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Fragment.UpdateFragment(ctx, req(&fleetv1.UpdateFragmentRequest{FragmentId: s.f, BaseRevision: 1})))
		}},
		{"DeleteFragment", orgOwnerOnl, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Fragment.DeleteFragment(ctx, req(&fleetv1.DeleteFragmentRequest{FragmentId: s.f})))
		}},
		// Packages are the organization's; calls an allowed caller makes
		// about a package that does not exist end in NotFound, and a
		// version without chunks in InvalidArgument.
		{"MissingChunks", owners, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Package.MissingChunks(ctx, req(&fleetv1.MissingChunksRequest{OrgId: s.org})))
		}},
		{"UploadChunk", owners, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Package.UploadChunk(ctx, req(&fleetv1.UploadChunkRequest{OrgId: s.org, Data: []byte("chunk")})))
		}},
		{"CreateVersion", owners, false, connect.CodeInvalidArgument, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Package.CreateVersion(ctx, req(&fleetv1.CreateVersionRequest{OrgId: s.org, Name: "p", Version: "1.0.0", Type: "file", Platform: "any"})))
		}},
		{"ListPackages", owners, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Package.ListPackages(ctx, req(&fleetv1.ListPackagesRequest{OrgId: s.org})))
		}},
		{"ListVersions", owners, false, connect.CodeNotFound, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Package.ListVersions(ctx, req(&fleetv1.ListVersionsRequest{OrgId: s.org, Name: "p"})))
		}},
		{"TagVersion", owners, false, connect.CodeNotFound, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Package.TagVersion(ctx, req(&fleetv1.TagVersionRequest{OrgId: s.org, Name: "p", Version: "1.0.0", Tag: "stable"})))
		}},
		{"DeleteVersion", orgOwnerOnl, false, connect.CodeNotFound, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Package.DeleteVersion(ctx, req(&fleetv1.DeleteVersionRequest{OrgId: s.org, Name: "p", Version: "1.0.0"})))
		}},
		{"DeletePackage", orgOwnerOnl, false, connect.CodeNotFound, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Package.DeletePackage(ctx, req(&fleetv1.DeletePackageRequest{OrgId: s.org, Name: "p"})))
		}},
		{"GetRolloutStatus", owners, false, connect.CodeNotFound, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Package.GetRolloutStatus(ctx, req(&fleetv1.GetRolloutStatusRequest{OrgId: s.org, Name: "p"})))
		}},
		{"ListLogs", viewers, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Data.ListLogs(ctx, req(&fleetv1.ListLogsRequest{MachineId: s.m})))
		}},
		{"ListCaptures", dataViewers, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Data.ListCaptures(ctx, req(&fleetv1.ListCapturesRequest{MachineId: s.m})))
		}},
		// An allowed caller gets as far as the relay, which refuses the
		// missing SDP: nothing waits for a part.
		{"RelayOffer", allSix, false, connect.CodeInvalidArgument, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Relay.RelayOffer(ctx, req(&fleetv1.RelayOfferRequest{PartId: s.p})))
		}},
		{"ExportCaptures", dataViewers, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Data.ExportCaptures(ctx, req(&fleetv1.ExportCapturesRequest{MachineId: s.m})))
		}},
		// No blob exists: an allowed caller learns that, and only then.
		{"ReadBlob", dataViewers, false, connect.CodeNotFound, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Data.ReadBlob(ctx, req(&fleetv1.ReadBlobRequest{MachineId: s.m, PartId: s.p, BlobId: "img-1"})))
		}},
		{"DeleteCaptures", owners, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Data.DeleteCaptures(ctx, req(&fleetv1.DeleteCapturesRequest{MachineId: s.m, Component: "cam"})))
		}},
		// Datasets: the seed's dataset.* rows. Creating, listing, opening,
		// training on, adding and removing are for owners at any scope of
		// the organization (a location or machine owner works on its portion,
		// fleetdata_test.go); renaming and deleting for the org's owner.
		{"CreateDataset", owners, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Dataset.CreateDataset(ctx, req(&fleetv1.CreateDatasetRequest{OrgId: s.org, Name: "new dataset"})))
		}},
		{"ListDatasets", owners, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Dataset.ListDatasets(ctx, req(&fleetv1.ListDatasetsRequest{OrgId: s.org})))
		}},
		{"RenameDataset", orgOwnerOnl, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Dataset.RenameDataset(ctx, req(&fleetv1.RenameDatasetRequest{DatasetId: s.ds, Name: "renamed"})))
		}},
		{"DeleteDataset", orgOwnerOnl, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Dataset.DeleteDataset(ctx, req(&fleetv1.DeleteDatasetRequest{DatasetId: s.ds})))
		}},
		{"AddToDataset", owners, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Dataset.AddToDataset(ctx, req(&fleetv1.AddToDatasetRequest{DatasetId: s.ds, Query: &fleetv1.FleetDataQuery{Component: "cam"}})))
		}},
		{"RemoveFromDataset", owners, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Dataset.RemoveFromDataset(ctx, req(&fleetv1.RemoveFromDatasetRequest{DatasetId: s.ds, Query: &fleetv1.FleetDataQuery{Component: "cam"}})))
		}},
		{"ListDatasetCaptures", owners, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Dataset.ListDatasetCaptures(ctx, req(&fleetv1.ListDatasetCapturesRequest{DatasetId: s.ds})))
		}},
		{"ExportDataset", owners, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Dataset.ExportDataset(ctx, req(&fleetv1.ExportDatasetRequest{DatasetId: s.ds})))
		}},
		{"TagCaptures", owners, false, 0, func(ctx context.Context, c *cloudtest.Clients, s side) error {
			return discard(c.Data.TagCaptures(ctx, req(&fleetv1.TagCapturesRequest{MachineId: s.m,
				Captures: []*fleetv1.CaptureRef{{PartId: s.p, StoreId: "s1", Seq: 1}}, Add: []string{"reviewed"}})))
		}},
	}
}

// TestPermissionMatrix calls every RPC as each role of the seed, as a user
// with no grant, anonymously and as the cloud's admin (allowed everything), on resources inside the grant's scope
// ("in") and in another organization ("out"), against a real server on
// loopback through the generated clients. Every case gets fresh resources,
// so destructive calls do not disturb each other.
func TestPermissionMatrix(t *testing.T) {
	ctx := context.Background()
	cases := matrixCases()
	covered := map[string]bool{}
	for _, tc := range cases {
		covered[tc.name] = true
	}
	for _, sd := range cloud.Services() {
		for i := range sd.Methods().Len() {
			if md := sd.Methods().Get(i); !covered[string(md.Name())] {
				t.Errorf("/%s/%s has no row in the permission matrix", sd.FullName(), md.Name())
			}
		}
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// A server per RPC keeps the hierarchy small: it is reloaded
			// after every change.
			e := newEnv(t)
			for _, where := range []string{"in", "out"} {
				for _, role := range roles {
					in, out := newSide(), newSide()
					users := map[string]string{}
					e.update(func(ctx context.Context, tx store.Tx) error {
						if err := in.write(ctx, tx); err != nil {
							return err
						}
						if err := out.write(ctx, tx); err != nil {
							return err
						}
						// A second org owner, so the first may leave.
						other := auth.NewID()
						if err := tx.PutUser(ctx, store.User{ID: other, Email: other + "@x.org"}); err != nil {
							return err
						}
						if err := tx.PutGrant(ctx, store.Grant{Subject: "user:" + other, Role: "owner", Scope: "org/" + in.org, OrgID: in.org}); err != nil {
							return err
						}
						for _, r := range signedIn {
							id := auth.NewID()
							users[r] = id
							if err := tx.PutUser(ctx, store.User{ID: id, Email: id + "@x.org"}); err != nil {
								return err
							}
							if roleName, scope, ok := in.grantFor(r); ok {
								if err := tx.PutGrant(ctx, store.Grant{Subject: "user:" + id, Role: roleName, Scope: scope, OrgID: in.org}); err != nil {
									return err
								}
							}
						}
						return nil
					})
					e.Remember(in.invCode, out.invCode, fixturePassword)
					tok := ""
					switch role {
					case cloudAdmin:
						// Fresh every time: SignOut revokes the token it carries.
						tok = e.token(e.AdminID())
					case anonymous:
					default:
						tok = e.token(users[role])
					}
					target := in
					if where == "out" {
						target = out
					}
					err := tc.call(ctx, e.client(tok), target)
					want := slices.Contains(tc.allowed, role) && (where == "in" || tc.marker) || role == cloudAdmin
					label := fmt.Sprintf("%s as %s (%s)", tc.name, role, where)
					switch {
					case want && err == nil:
					// The admin holds no grant of its own to give up.
					case role == cloudAdmin && tc.name == "LeaveOrg" && connect.CodeOf(err) == connect.CodeFailedPrecondition:
					case want && tc.okCode != 0 && connect.CodeOf(err) == tc.okCode:
					case want:
						t.Errorf("%s: want allowed, got %v", label, err)
					case role == anonymous:
						if connect.CodeOf(err) != connect.CodeUnauthenticated {
							t.Errorf("%s: want Unauthenticated, got %v", label, err)
						}
					case connect.CodeOf(err) != connect.CodePermissionDenied:
						t.Errorf("%s: want PermissionDenied, got %v", label, err)
					}
				}
			}
		})
	}
}
