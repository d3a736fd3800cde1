package rbac

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func fixtureEngine(t *testing.T) *Engine {
	t.Helper()
	e, err := NewEngine(fixture())
	if err != nil {
		t.Fatalf("build fixture engine: %v", err)
	}
	return e
}

func user(id string, grants ...Grant) *Subject {
	return &Subject{Kind: User, ID: id, Grants: grants}
}

func TestDecideScenarios(t *testing.T) {
	e := fixtureEngine(t)
	labOwner := user("lana", Grant{Owner, Location("lab")})
	mixed := user("mia", Grant{Operator, Org("acme")}, Grant{Owner, Machine("m-lab")})
	betaOwner := user("bo", Grant{Owner, Org("beta")})
	betaOperator := user("bop", Grant{Operator, Org("beta")})
	key := &Subject{Kind: APIKey, ID: "k1", Grants: []Grant{{Operator, Machine("m-yard")}}}
	tests := []struct {
		name      string
		s         *Subject
		a         Action
		r         Resource
		allowed   bool
		partial   bool
		reason    Reason
		grant     int
		sentences []string
	}{
		{"child location owner sees the grandchild's machine", labOwner, MachineView, Machine("m-bench"), true, false, ReasonGranted, 0, []string{"allowed", "owner of location/lab"}},
		{"child location owner cannot see machines in the parent", labOwner, MachineView, Machine("m-hq"), false, false, ReasonOutOfScope, -1, []string{"denied", "none of its roles reaches"}},
		{"nor in a sibling", labOwner, MachineControl, Machine("m-office"), false, false, ReasonOutOfScope, -1, nil},
		{"location owner edits a child location", labOwner, LocationEdit, Location("bench"), true, false, ReasonGranted, 0, nil},
		{"location owner cannot edit its parent", labOwner, LocationEdit, Location("hq"), false, false, ReasonOutOfScope, -1, nil},
		{"location owner cannot create locations in the org", labOwner, LocationCreate, Org("acme"), false, false, ReasonOutOfScope, -1, nil},
		{"location owner uses the org's fragments", labOwner, FragmentUse, Fragment("frag-a"), true, false, ReasonGranted, 0, nil},
		{"but not another org's", labOwner, FragmentUse, Fragment("frag-b"), false, false, ReasonOutOfScope, -1, nil},
		{"location owner may not edit fragments", labOwner, FragmentEdit, Fragment("frag-a"), false, false, ReasonNotPermitted, 0, []string{"fragment.edit is only for org owner"}},
		{"grants add up: owner of the machine", mixed, MachineConfigEdit, Machine("m-lab"), true, false, ReasonGranted, 1, nil},
		{"grants add up: the part of it", mixed, MachineConfigEdit, Part("p-lab"), true, false, ReasonGranted, 1, nil},
		{"operator elsewhere is not permitted", mixed, MachineConfigEdit, Machine("m-hq"), false, false, ReasonNotPermitted, 0, []string{"as operator of org/acme it reaches it"}},
		{"operator still controls", mixed, MachineControl, Machine("m-hq"), true, false, ReasonGranted, 0, nil},
		{"org operator sees members", mixed, OrgMembersView, Org("acme"), true, false, ReasonGranted, 0, nil},
		{"secondary org owner shares further", betaOwner, LocationShareAdd, Location("field"), true, false, ReasonGranted, 0, nil},
		{"secondary org owner configures its machines", betaOwner, MachineConfigEdit, Part("p-field"), true, false, ReasonGranted, 0, nil},
		{"but nothing else of the sharing org", betaOwner, MachineControl, Machine("m-yard"), false, false, ReasonOutOfScope, -1, nil},
		{"nor its fragments", betaOwner, FragmentUse, Fragment("frag-a"), false, false, ReasonOutOfScope, -1, nil},
		{"secondary org operator controls", betaOperator, MachineControl, Machine("m-field"), true, false, ReasonGranted, 0, nil},
		{"secondary org operator may not share", betaOperator, LocationShareAdd, Location("field"), false, false, ReasonNotPermitted, 0, nil},
		{"machine owner data of its machine", user("mo", Grant{Owner, Machine("m-lab")}), DataEdit, Part("p-lab"), true, false, ReasonGranted, 0, nil},
		{"machine owner data of its location, filtered", user("mo", Grant{Owner, Machine("m-lab")}), DataTagsView, Location("hq"), true, true, ReasonGranted, 0, []string{"allowed in part"}},
		{"location operator exports its data", user("lo", Grant{Operator, Location("lab")}), DataExport, Org("acme"), true, true, ReasonGranted, 0, nil},
		{"location operator may not see tags", user("lo", Grant{Operator, Location("lab")}), DataTagsView, Machine("m-lab"), false, false, ReasonNotPermitted, 0, nil},
		{"location owner opens datasets, filtered", labOwner, DatasetOpen, Dataset("ds-a"), true, true, ReasonGranted, 0, nil},
		{"org owner opens all of it", user("oo", Grant{Owner, Org("acme")}), DatasetTrain, Dataset("ds-a"), true, false, ReasonGranted, 0, nil},
		{"Yes*: location operator sees roles in its scope", user("lo", Grant{Operator, Location("lab")}), RoleViewOthers, Machine("m-bench"), true, false, ReasonGranted, 0, nil},
		{"Yes*: but not the org's", user("lo", Grant{Operator, Location("lab")}), RoleViewOthers, Org("acme"), false, false, ReasonOutOfScope, -1, nil},
		{"own role anywhere in the org", user("mo", Grant{Operator, Machine("m-lab")}), RoleViewOwn, Org("acme"), true, false, ReasonGranted, 0, nil},
		{"leave the org", user("mo", Grant{Operator, Machine("m-lab")}), OrgLeave, Org("acme"), true, false, ReasonGranted, 0, nil},
		{"cannot leave an org one is not in", user("mo", Grant{Operator, Machine("m-lab")}), OrgLeave, Org("beta"), false, false, ReasonOutOfScope, -1, nil},
		{"api key in scope", key, MachineControl, Machine("m-yard"), true, false, ReasonGranted, 0, []string{"apikey/k1"}},
		{"any user creates an org", user("new"), OrgCreate, Resource{}, true, false, ReasonAnySubject, -1, []string{"any signed-in user"}},
		{"an API key with grants creates an org", key, OrgCreate, Resource{}, true, false, ReasonAnySubject, -1, nil},
		{"an API key without grants does not", &Subject{Kind: APIKey, ID: "dead"}, OrgCreate, Resource{}, false, false, ReasonNoGrants, -1, nil},
		{"org.create names no resource", user("new"), OrgCreate, Org("acme"), false, false, ReasonWrongKind, -1, []string{"no resource"}},
		{"nobody", nil, MachineControl, Machine("m-lab"), false, false, ReasonNoSubject, -1, []string{"nobody is signed in"}},
		{"unknown action", labOwner, Action("machine.fly"), Machine("m-lab"), false, false, ReasonUnknownAction, -1, []string{`"machine.fly" is not an action`}},
		{"wrong kind", labOwner, MachineRename, Part("p-lab"), false, false, ReasonWrongKind, -1, []string{"it names machine"}},
		{"unknown resource", labOwner, MachineControl, Machine("ghost"), false, false, ReasonUnknownResource, -1, []string{"no such resource"}},
		{"no grants", user("nobody"), MachineControl, Machine("m-lab"), false, false, ReasonNoGrants, -1, []string{"holds no role"}},
		{"malformed and unknown grants reach nothing", user("odd", Grant{RoleNone, Org("acme")}, Grant{Owner, Part("p-lab")}, Grant{Owner, Location("gone")}), MachineControl, Machine("m-lab"), false, false, ReasonOutOfScope, -1, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := e.Decide(tc.s, tc.a, tc.r)
			if d.Allowed != tc.allowed || d.Partial != tc.partial || d.Reason != tc.reason || d.GrantIndex != tc.grant {
				t.Fatalf("got allowed=%v partial=%v reason=%v grant=%d, want %v %v %v %d\n\t%v",
					d.Allowed, d.Partial, d.Reason, d.GrantIndex, tc.allowed, tc.partial, tc.reason, tc.grant, d)
			}
			if tc.grant >= 0 && d.Grant != tc.s.Grants[tc.grant] {
				t.Fatalf("Grant = %v, want %v", d.Grant, tc.s.Grants[tc.grant])
			}
			for _, want := range tc.sentences {
				if !strings.Contains(d.String(), want) {
					t.Errorf("sentence %q lacks %q", d.String(), want)
				}
			}
			err := d.Err()
			if (err == nil) != d.Allowed {
				t.Fatalf("Err() = %v for allowed=%v", err, d.Allowed)
			}
			var denied *DeniedError
			if err != nil && (!errors.As(err, &denied) || denied.Decision.Reason != d.Reason) {
				t.Fatalf("Err() = %#v, want a *DeniedError carrying the decision", err)
			}
		})
	}
}

func TestDecideMove(t *testing.T) {
	e := fixtureEngine(t)
	orgOwner := user("oo", Grant{Owner, Org("acme")})
	labOwner := user("lana", Grant{Owner, Location("lab")})
	twoOwner := user("two", Grant{Owner, Location("lab")}, Grant{Owner, Location("office")})
	opOffice := user("opo", Grant{Owner, Location("lab")}, Grant{Operator, Location("office")})
	tests := []struct {
		name      string
		s         *Subject
		loc, dest Resource
		allowed   bool
		reason    Reason
	}{
		{"org owner moves a location under another", orgOwner, Location("lab"), Location("yard"), true, ReasonGranted},
		{"org owner moves a location to top level", orgOwner, Location("bench"), Org("acme"), true, ReasonGranted},
		{"not under itself", orgOwner, Location("lab"), Location("lab"), false, ReasonMoveIntoItself},
		{"not under its own descendant", orgOwner, Location("lab"), Location("bench"), false, ReasonMoveIntoItself},
		{"not into another org", orgOwner, Location("yard"), Location("site"), false, ReasonMoveAcrossOrgs},
		{"a secondary org owner moves it only within its org", user("bo", Grant{Owner, Org("beta")}), Location("field"), Location("site"), false, ReasonMoveAcrossOrgs},
		{"destination must be a location or org", orgOwner, Location("lab"), Machine("m-yard"), false, ReasonBadDestination},
		{"destination must exist", orgOwner, Location("lab"), Location("gone"), false, ReasonBadDestination},
		{"location owner within its own tree", labOwner, Location("bench"), Location("lab"), true, ReasonGranted},
		{"location owner not to a location it has no access to", labOwner, Location("bench"), Location("office"), false, ReasonDestinationDenied},
		{"location owner not to top level", labOwner, Location("bench"), Org("acme"), false, ReasonDestinationDenied},
		{"location owner to another location it owns", twoOwner, Location("bench"), Location("office"), true, ReasonGranted},
		{"operator access to the destination is not enough", opOffice, Location("bench"), Location("office"), false, ReasonDestinationDenied},
		{"location owner cannot move its own root out of reach", labOwner, Location("lab"), Location("yard"), false, ReasonDestinationDenied},
		{"location operator moves nothing", user("lo", Grant{Operator, Location("lab")}), Location("bench"), Location("lab"), false, ReasonNotPermitted},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := e.DecideMove(tc.s, tc.loc, tc.dest)
			if d.Allowed != tc.allowed || d.Reason != tc.reason {
				t.Fatalf("got allowed=%v reason=%v, want %v %v: %v", d.Allowed, d.Reason, tc.allowed, tc.reason, d)
			}
			if d.Destination != tc.dest || !strings.Contains(d.String(), tc.loc.String()) {
				t.Fatalf("decision does not name the move: %v", d)
			}
		})
	}
}

func TestFilter(t *testing.T) {
	e := fixtureEngine(t)
	tests := []struct {
		name    string
		s       *Subject
		a       Action
		r       Resource
		all     bool
		scopes  []Resource
		in, out []Resource
	}{
		{"location owner's data in the org", user("l", Grant{Owner, Location("lab")}), DataView, Org("acme"), false,
			[]Resource{Location("lab")}, []Resource{Machine("m-bench"), Part("p-lab"), Location("bench")}, []Resource{Machine("m-hq"), Machine("m-office"), Machine("ghost")}},
		{"scopes inside one another collapse", user("l", Grant{Owner, Machine("m-lab")}, Grant{Owner, Location("lab")}, Grant{Owner, Machine("m-office")}), DatasetOpen, Dataset("ds-a"), false,
			[]Resource{Location("lab"), Machine("m-office")}, []Resource{Machine("m-bench"), Part("p-office")}, []Resource{Machine("m-hq")}},
		{"a secondary org's data of the sharing org", user("b", Grant{Operator, Org("beta")}), DataExport, Org("acme"), false,
			[]Resource{Location("field")}, []Resource{Part("p-field")}, []Resource{Machine("m-yard")}},
		{"train on the portion in reach", user("m", Grant{Owner, Machine("m-bench")}), DatasetTrain, Org("acme"), false,
			[]Resource{Machine("m-bench")}, []Resource{Part("p-bench")}, []Resource{Machine("m-lab")}},
		{"org owner reads all", user("o", Grant{Owner, Org("acme")}), DatasetOpen, Dataset("ds-a"), true,
			[]Resource{Dataset("ds-a")}, []Resource{Machine("m-hq"), Part("p-field")}, nil},
		{"covered location is all", user("l", Grant{Owner, Location("lab")}), DataTagsView, Location("bench"), true,
			[]Resource{Location("bench")}, []Resource{Machine("m-bench")}, nil},
		{"operators see no tags", user("l", Grant{Operator, Location("lab")}), DataTagsView, Org("acme"), false,
			nil, nil, []Resource{Machine("m-lab")}},
		{"a yes/no action is all or nothing", user("l", Grant{Owner, Location("lab")}), MachineView, Machine("m-lab"), true,
			[]Resource{Machine("m-lab")}, nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := e.Filter(tc.s, tc.a, tc.r)
			if f.All != tc.all || !slices.Equal(f.Scopes, tc.scopes) {
				t.Fatalf("All=%v Scopes=%v, want %v %v (%v)", f.All, f.Scopes, tc.all, tc.scopes, f.Decision)
			}
			if f.Decision.Allowed != (len(tc.scopes) > 0) {
				t.Fatalf("decision %v disagrees with scopes %v", f.Decision, f.Scopes)
			}
			for _, r := range tc.in {
				if !f.Contains(r) {
					t.Errorf("filter excludes %v", r)
				}
			}
			for _, r := range tc.out {
				if f.Contains(r) {
					t.Errorf("filter includes %v", r)
				}
			}
		})
	}
	if (DataFilter{}).Contains(Machine("m-lab")) {
		t.Fatal("the zero filter contains something")
	}
}

func TestGranting(t *testing.T) {
	e := fixtureEngine(t)
	orgOwner := user("oo", Grant{Owner, Org("acme")})
	orgOperator := user("oop", Grant{Operator, Org("acme")})
	labOwner := user("lana", Grant{Owner, Location("lab")})
	mOwner := user("mo", Grant{Owner, Machine("m-lab")})
	betaOwner := user("bo", Grant{Owner, Org("beta")})
	someone := user("sam", Grant{Operator, Location("bench")})
	tests := []struct {
		name    string
		check   func() Decision
		allowed bool
		reason  Reason
	}{
		{"org owner invites an org owner", func() Decision { return e.CanGrant(orgOwner, nil, Grant{Owner, Org("acme")}) }, true, ReasonGranted},
		{"location owner invites to a child", func() Decision { return e.CanGrant(labOwner, nil, Grant{Operator, Location("bench")}) }, true, ReasonGranted},
		{"location owner grants owner of its location", func() Decision { return e.CanGrant(labOwner, someone, Grant{Owner, Location("lab")}) }, true, ReasonGranted},
		{"never wider than its own owner scope: the parent", func() Decision { return e.CanGrant(labOwner, someone, Grant{Operator, Location("hq")}) }, false, ReasonOutOfScope},
		{"never wider than its own owner scope: the org", func() Decision { return e.CanGrant(labOwner, nil, Grant{Operator, Org("acme")}) }, false, ReasonOutOfScope},
		{"machine owner invites to its machine", func() Decision { return e.CanGrant(mOwner, nil, Grant{Owner, Machine("m-lab")}) }, true, ReasonGranted},
		{"machine owner cannot grant its location", func() Decision { return e.CanGrant(mOwner, someone, Grant{Operator, Location("lab")}) }, false, ReasonOutOfScope},
		{"org operator cannot invite", func() Decision { return e.CanGrant(orgOperator, nil, Grant{Operator, Machine("m-lab")}) }, false, ReasonNotPermitted},
		{"nobody raises their own role: org operator", func() Decision { return e.CanGrant(orgOperator, orgOperator, Grant{Owner, Org("acme")}) }, false, ReasonNotPermitted},
		{"nobody raises their own role: location owner to the org", func() Decision { return e.CanGrant(labOwner, labOwner, Grant{Owner, Org("acme")}) }, false, ReasonOutOfScope},
		{"giving oneself what one has is no raise", func() Decision { return e.CanGrant(labOwner, labOwner, Grant{Owner, Location("bench")}) }, true, ReasonGranted},
		{"secondary org owner grants on the shared location", func() Decision { return e.CanGrant(betaOwner, someone, Grant{Operator, Location("field")}) }, true, ReasonGranted},
		{"bad role", func() Decision { return e.CanGrant(orgOwner, someone, Grant{RoleNone, Org("acme")}) }, false, ReasonBadGrant},
		{"bad scope kind", func() Decision { return e.CanGrant(orgOwner, someone, Grant{Owner, Part("p-lab")}) }, false, ReasonBadGrant},
		{"unknown scope", func() Decision { return e.CanGrant(orgOwner, someone, Grant{Owner, Location("gone")}) }, false, ReasonBadGrant},
		{"revoke in scope", func() Decision { return e.CanRevoke(labOwner, someone, Grant{Operator, Location("bench")}) }, true, ReasonGranted},
		{"revoke out of scope", func() Decision { return e.CanRevoke(labOwner, orgOperator, Grant{Operator, Org("acme")}) }, false, ReasonOutOfScope},
		{"anyone gives up their own grant", func() Decision { return e.CanRevoke(someone, someone, Grant{Operator, Location("bench")}) }, true, ReasonOwnGrant},
		{"operator cannot revoke others", func() Decision { return e.CanRevoke(someone, labOwner, Grant{Owner, Location("lab")}) }, false, ReasonOutOfScope},
		{"change operator to owner in scope", func() Decision {
			return e.CanChangeRole(labOwner, someone, Grant{Operator, Location("bench")}, Grant{Owner, Location("bench")})
		}, true, ReasonGranted},
		{"change needs both ends in scope", func() Decision {
			return e.CanChangeRole(labOwner, someone, Grant{Operator, Location("bench")}, Grant{Owner, Location("office")})
		}, false, ReasonOutOfScope},
		{"lowering one's own role is fine", func() Decision {
			return e.CanChangeRole(labOwner, labOwner, Grant{Owner, Location("lab")}, Grant{Operator, Location("lab")})
		}, true, ReasonGranted},
		{"raising one's own role is not", func() Decision {
			return e.CanChangeRole(someone, someone, Grant{Operator, Location("bench")}, Grant{Owner, Location("bench")})
		}, false, ReasonNotPermitted},
		{"no granter", func() Decision { return e.CanGrant(nil, someone, Grant{Owner, Location("bench")}) }, false, ReasonNoSubject},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := tc.check()
			if d.Allowed != tc.allowed || d.Reason != tc.reason {
				t.Fatalf("got allowed=%v reason=%v, want %v %v: %v", d.Allowed, d.Reason, tc.allowed, tc.reason, d)
			}
			if d.String() == "" {
				t.Fatal("empty sentence")
			}
		})
	}
}

// The self-raise guard holds even where the table alone would let a subject
// through: a subject holding role.change on a scope but no owner grant there.
func TestSelfRaiseGuard(t *testing.T) {
	e := fixtureEngine(t)
	s := user("u", Grant{Operator, Location("lab")})
	if e.implied(s, Grant{Owner, Location("bench")}) {
		t.Fatal("an operator grant implies an owner grant")
	}
	if !e.implied(s, Grant{Operator, Location("bench")}) {
		t.Fatal("an operator grant does not imply an operator grant below it")
	}
	if e.owns(s, Location("bench")) {
		t.Fatal("an operator owns")
	}
}

func TestNewEngineRejectsBadHierarchies(t *testing.T) {
	tests := []struct {
		name string
		edit func(h *Hierarchy)
		want error
	}{
		{"duplicate location", func(h *Hierarchy) { h.Locations = append(h.Locations, LocationInfo{ID: "lab", Org: "acme"}) }, ErrBadHierarchy},
		{"unknown parent", func(h *Hierarchy) { h.Locations[1].Parent = "nowhere" }, ErrBadHierarchy},
		{"unknown org", func(h *Hierarchy) { h.Locations[0].Org = "nobody" }, ErrBadHierarchy},
		{"cycle", func(h *Hierarchy) { h.Locations[0].Parent = "bench" }, ErrBadHierarchy},
		{"parent in another org", func(h *Hierarchy) { h.Locations[6].Parent = "hq" }, ErrBadHierarchy},
		{"machine in unknown location", func(h *Hierarchy) { h.Machines[0].Location = "nowhere" }, ErrBadHierarchy},
		{"part of unknown machine", func(h *Hierarchy) { h.Parts[0].Machine = "nothing" }, ErrBadHierarchy},
		{"dataset of unknown org", func(h *Hierarchy) { h.Datasets[0].Org = "nobody" }, ErrBadHierarchy},
		{"shared with its own org", func(h *Hierarchy) { h.Shares = append(h.Shares, Share{Location: "yard", With: "acme"}) }, ErrBadHierarchy},
		{"shared with an unknown org", func(h *Hierarchy) { h.Shares = append(h.Shares, Share{Location: "yard", With: "gamma"}) }, ErrBadHierarchy},
		{"share of an unknown location", func(h *Hierarchy) { h.Shares = append(h.Shares, Share{Location: "moon", With: "beta"}) }, ErrBadHierarchy},
		{"bad ID", func(h *Hierarchy) { h.Orgs = append(h.Orgs, "a b") }, ErrBadResource},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := fixture()
			tc.edit(&h)
			_, err := NewEngine(h)
			if !errors.Is(err, tc.want) {
				t.Fatalf("NewEngine = %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), "build engine") {
				t.Fatalf("error %q does not say what was being done", err)
			}
		})
	}
	// A repeated share is harmless, and the empty hierarchy is valid.
	h := fixture()
	h.Shares = append(h.Shares, h.Shares[0])
	if _, err := NewEngine(h); err != nil {
		t.Fatalf("repeated share: %v", err)
	}
	if _, err := NewEngine(Hierarchy{}); err != nil {
		t.Fatalf("empty hierarchy: %v", err)
	}
}

// The daemon's view: a bundle with one machine's ancestry decides like the
// cloud's whole tree for checks naming that machine or its part. (Member and
// dataset rules need the org of every grant's scope, which the bundle holds
// only for grants in the ancestry; the daemon does not serve those actions.)
func TestDaemonBundleDecidesLikeTheCloud(t *testing.T) {
	cloud := fixtureEngine(t)
	bundle, err := NewEngine(Hierarchy{
		Orgs:      []string{"acme", "beta"},
		Locations: []LocationInfo{{ID: "hq", Org: "acme"}, {ID: "lab", Org: "acme", Parent: "hq"}, {ID: "bench", Org: "acme", Parent: "lab"}},
		Machines:  []MachineInfo{{ID: "m-bench", Location: "bench"}},
		Parts:     []PartInfo{{ID: "p-bench", Machine: "m-bench"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	subjects := []*Subject{
		user("a", Grant{Owner, Org("acme")}), user("b", Grant{Operator, Location("hq")}),
		user("c", Grant{Owner, Location("lab")}), user("d", Grant{Operator, Machine("m-bench")}),
		user("e", Grant{Owner, Location("office")}), user("f", Grant{Owner, Org("beta")}),
	}
	for _, s := range subjects {
		for _, a := range AllActions() {
			if m := cloud.specs[cloud.actions[a]].mode; m != modeReach && m != modeData {
				continue
			}
			for _, r := range []Resource{Machine("m-bench"), Part("p-bench")} {
				c, b := cloud.Decide(s, a, r), bundle.Decide(s, a, r)
				if c.Allowed != b.Allowed || c.Partial != b.Partial {
					t.Errorf("%v %v %v: cloud %v, daemon %v", s, a, r, c, b)
				}
			}
		}
	}
}

func TestDecideDoesNotAllocate(t *testing.T) {
	e := fixtureEngine(t)
	s := user("mia", Grant{Operator, Org("beta")}, Grant{Owner, Location("lab")}, Grant{Owner, Machine("m-office")})
	checks := []struct {
		a Action
		r Resource
	}{
		{MachineConfigEdit, Part("p-bench")}, {DataView, Org("acme")}, {DatasetOpen, Dataset("ds-a")},
		{MachineControl, Machine("m-field")}, {LocationCreate, Org("acme")}, {OrgCreate, Resource{}},
	}
	for _, c := range checks {
		if n := testing.AllocsPerRun(100, func() { _ = e.Decide(s, c.a, c.r) }); n != 0 {
			t.Errorf("Decide(%v, %v) allocates %v times", c.a, c.r, n)
		}
	}
}

func TestParseAction(t *testing.T) {
	for _, a := range AllActions() {
		got, err := ParseAction(string(a))
		if err != nil || got != a {
			t.Fatalf("ParseAction(%q) = %q, %v", a, got, err)
		}
		if a.SeedRow() == "" {
			t.Fatalf("%v has no seed row", a)
		}
	}
	if len(AllActions()) != 51 {
		t.Fatalf("%d actions, want the 51 rows of docs/ACTIONS.md", len(AllActions()))
	}
	for _, bad := range []string{"", "machine", "MACHINE.CONTROL", "machine.control ", "org.create\x00"} {
		_, err := ParseAction(bad)
		if !errors.Is(err, ErrUnknownAction) || !strings.Contains(err.Error(), "parse action") {
			t.Fatalf("ParseAction(%q) = %v, want a wrapped ErrUnknownAction", bad, err)
		}
	}
	if Action("nope").SeedRow() != "" || Action("nope").ResourceKinds() != nil {
		t.Fatal("an unknown action has a row")
	}
}

func TestParseResource(t *testing.T) {
	good := map[string]Resource{
		"org/acme":           Org("acme"),
		"location/l-1":       Location("l-1"),
		"machine/7f3a-9c":    Machine("7f3a-9c"),
		"part/p.1":           Part("p.1"),
		"fragment/f":         Fragment("f"),
		"dataset/d":          Dataset("d"),
		"package/pk:1":       Package("pk:1"),
		"module/m_1":         Module("m_1"),
		"machine/ünïcode-ok": Machine("ünïcode-ok"),
	}
	for s, want := range good {
		got, err := ParseResource(s)
		if err != nil || got != want || got.String() != s || got.Validate() != nil {
			t.Fatalf("ParseResource(%q) = %v, %v", s, got, err)
		}
	}
	for _, bad := range []string{"", "machine", "machine/", "/x", "robot/x", "machine/a/b", "machine/a b", "machine/\x00", "machine/\xff", "machine/" + strings.Repeat("x", 257)} {
		if _, err := ParseResource(bad); !errors.Is(err, ErrBadResource) || !strings.Contains(err.Error(), "parse resource") {
			t.Fatalf("ParseResource(%q) = %v, want a wrapped ErrBadResource", bad, err)
		}
	}
	if (Resource{}).String() != "none" || !(Resource{}).IsZero() || (Resource{}).Validate() == nil {
		t.Fatal("zero resource")
	}
	for _, s := range []string{"owner", "operator"} {
		if r, err := ParseRole(s); err != nil || r.String() != s {
			t.Fatalf("ParseRole(%q) = %v, %v", s, r, err)
		}
	}
	if _, err := ParseRole("admin"); !errors.Is(err, ErrBadGrant) {
		t.Fatalf("ParseRole(admin) = %v", err)
	}
	if err := (Grant{Owner, Location("x")}).Validate(); err != nil {
		t.Fatal(err)
	}
	for _, g := range []Grant{{RoleNone, Org("a")}, {Owner, Part("p")}, {Owner, Location("")}} {
		if err := g.Validate(); !errors.Is(err, ErrBadGrant) && !errors.Is(err, ErrBadResource) {
			t.Fatalf("Validate(%v) = %v", g, err)
		}
	}
	// Every code has a name, and unknown values still print.
	for r := ReasonNone; r <= ReasonSelfRaise+1; r++ {
		if r.String() == "" {
			t.Fatalf("reason %d has no name", r)
		}
	}
	_ = ResourceKind(99).String() + Role(9).String() + SubjectKind(9).String()
	if (*Subject)(nil).String() != "nobody" {
		t.Fatal("nil subject name")
	}
}

func FuzzParseResource(f *testing.F) {
	for _, s := range []string{"machine/abc", "org/", "/", "location/a/b", "part/\xff", "dataset/x y", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseResource(s)
		if err != nil {
			return
		}
		if r.String() != s {
			t.Fatalf("ParseResource(%q) round-trips to %q", s, r.String())
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("parsed %q does not validate: %v", s, err)
		}
	})
}

func FuzzParseAction(f *testing.F) {
	for _, s := range []string{"machine.control", "dataset.train", "", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAction(s)
		if err == nil && string(a) != s {
			t.Fatalf("ParseAction(%q) = %q", s, a)
		}
	})
}

// FuzzDecide feeds arbitrary names to every entry point: nothing panics and
// nothing unknown is allowed.
func FuzzDecide(f *testing.F) {
	f.Add("machine.control", "machine/m-lab", "location/lab", uint8(2))
	f.Add("location.move", "location/bench", "org/acme", uint8(1))
	f.Add("dataset.open", "dataset/ds-a", "machine/m-lab", uint8(2))
	f.Add("org.create", "", "", uint8(0))
	e, err := NewEngine(fixture())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, action, resource, scope string, role uint8) {
		r, _ := ParseResource(resource)
		sc, _ := ParseResource(scope)
		s := user("fuzz", Grant{Role(role % 4), sc})
		d := e.Decide(s, Action(action), r)
		if d.Allowed && d.Reason != ReasonGranted && d.Reason != ReasonAnySubject {
			t.Fatalf("allowed with reason %v", d.Reason)
		}
		if _, err := ParseAction(action); err != nil && d.Allowed {
			t.Fatalf("unknown action %q allowed", action)
		}
		_ = d.String()
		_ = e.DecideMove(s, r, sc).String()
		_ = e.Filter(s, Action(action), r).Contains(sc)
		_ = e.CanGrant(s, s, Grant{Role(role % 4), r}).String()
		_ = e.CanChangeRole(s, nil, Grant{Role(role % 4), sc}, Grant{Owner, r}).String()
	})
}
