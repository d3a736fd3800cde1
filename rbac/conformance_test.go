package rbac

import (
	"bufio"
	"os"
	"slices"
	"strings"
	"testing"
)

// The conformance fixture: two orgs, a location tree with a grandchild
// (acme: hq > lab > bench), a sibling (hq > office) and other roots (yard,
// field), field shared with beta, a machine with a part in every location,
// and one fragment, dataset, package and module per org.
//
//	org/acme
//	  hq ── m-hq
//	    lab ── m-lab
//	      bench ── m-bench
//	    office ── m-office
//	  yard ── m-yard
//	  field ── m-field        (shared with beta)
//	org/beta
//	  site ── m-site
func fixture() Hierarchy {
	h := Hierarchy{
		Orgs: []string{"acme", "beta"},
		Locations: []LocationInfo{
			{ID: "hq", Org: "acme"},
			{ID: "lab", Org: "acme", Parent: "hq"},
			{ID: "bench", Org: "acme", Parent: "lab"},
			{ID: "office", Org: "acme", Parent: "hq"},
			{ID: "yard", Org: "acme"},
			{ID: "field", Org: "acme"},
			{ID: "site", Org: "beta"},
		},
		Shares: []Share{{Location: "field", With: "beta"}},
	}
	for _, l := range h.Locations {
		h.Machines = append(h.Machines, MachineInfo{ID: "m-" + l.ID, Location: l.ID})
		h.Parts = append(h.Parts, PartInfo{ID: "p-" + l.ID, Machine: "m-" + l.ID})
	}
	for _, o := range []string{"acme", "beta"} {
		suffix := o[:1]
		h.Fragments = append(h.Fragments, OrgObject{ID: "frag-" + suffix, Org: o})
		h.Datasets = append(h.Datasets, OrgObject{ID: "ds-" + suffix, Org: o})
		h.Packages = append(h.Packages, OrgObject{ID: "pkg-" + suffix, Org: o})
		h.Modules = append(h.Modules, OrgObject{ID: "mod-" + suffix, Org: o})
	}
	return h
}

// Hand-written facts about the fixture, independent of the engine's numbering.
var (
	fixtureParent = map[Resource]Resource{
		Location("hq"): Org("acme"), Location("lab"): Location("hq"), Location("bench"): Location("lab"),
		Location("office"): Location("hq"), Location("yard"): Org("acme"), Location("field"): Org("acme"),
		Location("site"): Org("beta"),
		Machine("m-hq"):  Location("hq"), Machine("m-lab"): Location("lab"), Machine("m-bench"): Location("bench"),
		Machine("m-office"): Location("office"), Machine("m-yard"): Location("yard"), Machine("m-field"): Location("field"),
		Machine("m-site"): Location("site"),
		Part("p-hq"):      Machine("m-hq"), Part("p-lab"): Machine("m-lab"), Part("p-bench"): Machine("m-bench"),
		Part("p-office"): Machine("m-office"), Part("p-yard"): Machine("m-yard"), Part("p-field"): Machine("m-field"),
		Part("p-site"):     Machine("m-site"),
		Fragment("frag-a"): Org("acme"), Dataset("ds-a"): Org("acme"), Package("pkg-a"): Org("acme"), Module("mod-a"): Org("acme"),
		Fragment("frag-b"): Org("beta"), Dataset("ds-b"): Org("beta"), Package("pkg-b"): Org("beta"), Module("mod-b"): Org("beta"),
	}
	// fixtureReach lists, for each grant scope used, everything it reaches.
	fixtureReach = map[Resource][]Resource{
		Org("acme"): {Org("acme"),
			Location("hq"), Location("lab"), Location("bench"), Location("office"), Location("yard"), Location("field"),
			Machine("m-hq"), Machine("m-lab"), Machine("m-bench"), Machine("m-office"), Machine("m-yard"), Machine("m-field"),
			Part("p-hq"), Part("p-lab"), Part("p-bench"), Part("p-office"), Part("p-yard"), Part("p-field"),
			Fragment("frag-a"), Dataset("ds-a"), Package("pkg-a"), Module("mod-a")},
		Org("beta"): {Org("beta"), Location("site"), Machine("m-site"), Part("p-site"),
			Fragment("frag-b"), Dataset("ds-b"), Package("pkg-b"), Module("mod-b"),
			Location("field"), Machine("m-field"), Part("p-field")},
		Location("lab"):    {Location("lab"), Location("bench"), Machine("m-lab"), Machine("m-bench"), Part("p-lab"), Part("p-bench")},
		Location("field"):  {Location("field"), Machine("m-field"), Part("p-field")},
		Machine("m-lab"):   {Machine("m-lab"), Part("p-lab")},
		Machine("m-field"): {Machine("m-field"), Part("p-field")},
	}
	// fixtureHome is the org each grant scope is held in.
	fixtureHome = map[Resource]Resource{
		Org("acme"): Org("acme"), Org("beta"): Org("beta"), Location("lab"): Org("acme"),
		Location("field"): Org("acme"), Machine("m-lab"): Org("acme"), Machine("m-field"): Org("acme"),
	}
)

// fixtureOrg walks the hand-written parent links up to the org.
func fixtureOrg(r Resource) Resource {
	for r.Kind != KindOrg {
		r = fixtureParent[r]
	}
	return r
}

// fixtureUnder reports whether x is strictly under r in the primary tree.
func fixtureUnder(x, r Resource) bool {
	for p, ok := fixtureParent[x]; ok; p, ok = fixtureParent[p] {
		if p == r {
			return true
		}
	}
	return false
}

// conformanceRow is one line of testdata/permissions.tsv.
type conformanceRow struct {
	action    string
	rule      string
	resources []ResourceKind
	seedRow   string
	cells     [6]string
}

func loadConformance(t *testing.T) []conformanceRow {
	t.Helper()
	f, err := os.Open("testdata/permissions.tsv")
	if err != nil {
		t.Fatalf("open conformance table: %v", err)
	}
	defer f.Close()
	var rows []conformanceRow
	sc := bufio.NewScanner(f)
	header := true
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if strings.HasPrefix(text, "#") || text == "" {
			continue
		}
		fields := strings.Split(text, "\t")
		if len(fields) != 10 {
			t.Fatalf("permissions.tsv:%d: %d fields, want 10", line, len(fields))
		}
		if header {
			header = false
			continue
		}
		r := conformanceRow{action: fields[0], rule: fields[1], seedRow: fields[3]}
		for _, k := range strings.Fields(fields[2]) {
			kind, err := ParseResourceKind(k)
			if err != nil {
				t.Fatalf("permissions.tsv:%d: %v", line, err)
			}
			r.resources = append(r.resources, kind)
		}
		copy(r.cells[:], fields[4:])
		rows = append(rows, r)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read conformance table: %v", err)
	}
	return rows
}

// cellClass maps every distinct wording of a seed cell to what it allows.
func cellClass(t *testing.T, text string) (allow, filtered bool) {
	t.Helper()
	switch text {
	case "No":
		return false, false
	case "Yes", "Yes*", "Yes**",
		"Yes for this and any child locations",
		"Yes in this and any child locations",
		"Yes, to other locations they have access to",
		"Can see all names in current org",
		"Can click into dataset and see all data in it":
		return true, false
	case "Only tags applied to data they have access to",
		"Yes on data they have access to",
		"Can see the data in the dataset that they have permission to access",
		"Can add images they have permissions on",
		"Can remove images in the dataset that they can see",
		"Trains on the portion of the dataset that they have access to":
		return true, true
	}
	t.Fatalf("seed cell %q has no meaning in this test; transcribe it", text)
	return false, false
}

// columns are the six seed columns as (role, scope kind), with the grant
// scopes each is tried at: one inside the acme tree, one on or through the
// shared location.
var columns = []struct {
	name   string
	role   Role
	scopes []Resource
}{
	{"org owner", Owner, []Resource{Org("acme"), Org("beta")}},
	{"org operator", Operator, []Resource{Org("acme"), Org("beta")}},
	{"location owner", Owner, []Resource{Location("lab"), Location("field")}},
	{"location operator", Operator, []Resource{Location("lab"), Location("field")}},
	{"machine owner", Owner, []Resource{Machine("m-lab"), Machine("m-field")}},
	{"machine operator", Operator, []Resource{Machine("m-lab"), Machine("m-field")}},
}

func TestConformanceTableCoversTheVocabulary(t *testing.T) {
	rows := loadConformance(t)
	var got []Action
	for _, r := range rows {
		a, err := ParseAction(r.action)
		if err != nil {
			t.Fatalf("table row %q: %v", r.action, err)
		}
		if a.SeedRow() != r.seedRow {
			t.Errorf("%s: engine transcribes seed row %q, table says %q", a, a.SeedRow(), r.seedRow)
		}
		if !slices.Equal(a.ResourceKinds(), sortedKinds(r.resources)) {
			t.Errorf("%s: engine accepts %v, table says %v", a, a.ResourceKinds(), r.resources)
		}
		got = append(got, a)
	}
	if !slices.Equal(got, AllActions()) {
		t.Fatalf("table actions %v\nwant AllActions %v", got, AllActions())
	}
}

func sortedKinds(ks []ResourceKind) []ResourceKind {
	out := slices.Clone(ks)
	slices.Sort(out)
	if len(out) == 0 {
		return nil
	}
	return out
}

// TestConformance checks every cell of the 003 tables: every action, for
// each of the six roles, at two scopes each, against every resource of the
// fixture (inside and outside the grant's reach, of every kind) and an
// unknown one.
func TestConformance(t *testing.T) {
	e, err := NewEngine(fixture())
	if err != nil {
		t.Fatal(err)
	}
	resources := []Resource{Org("acme"), Org("beta"), Machine("ghost")}
	for r := range fixtureParent {
		resources = append(resources, r)
	}
	slices.SortFunc(resources, func(a, b Resource) int { return strings.Compare(a.String(), b.String()) })
	checked := 0
	for _, row := range loadConformance(t) {
		action := Action(row.action)
		for ci, col := range columns {
			allow, filtered := cellClass(t, row.cells[ci])
			for _, scope := range col.scopes {
				s := &Subject{Kind: User, ID: "tester", Grants: []Grant{{Role: col.role, Scope: scope}}}
				if row.rule == "none" {
					d := e.Decide(s, action, Resource{})
					if d.Allowed != allow {
						t.Errorf("%s as %s of %v: allowed=%v, want %v (%v)", action, col.name, scope, d.Allowed, allow, d)
					}
					checked++
				}
				for _, r := range resources {
					wantAllow, wantPartial := expect(row, allow, scope, r)
					d := e.Decide(s, action, r)
					checked++
					if d.Allowed != wantAllow || d.Partial != wantPartial {
						t.Errorf("%s on %v as %s of %v (seed: %q): allowed=%v partial=%v, want %v %v\n\t%v",
							action, r, col.name, scope, row.cells[ci], d.Allowed, d.Partial, wantAllow, wantPartial, d)
						continue
					}
					if filtered && d.Allowed && !d.Partial && !slices.Contains(fixtureReach[scope], r) {
						t.Errorf("%s on %v as %s of %v: a filtered cell allowed all of a resource the grant does not reach", action, r, col.name, scope)
					}
					if d.Allowed && (d.GrantIndex != 0 || d.Reason != ReasonGranted) {
						t.Errorf("%s on %v: allowed without naming its grant: %+v", action, r, d)
					}
					if !d.Allowed && d.Reason == ReasonGranted {
						t.Errorf("%s on %v: denied with reason granted", action, r)
					}
				}
			}
		}
	}
	t.Logf("%d decisions checked", checked)
}

// expect is the oracle: what the seed cell allows for a grant at scope on r,
// computed from the hand-written reach lists.
func expect(row conformanceRow, allow bool, scope, r Resource) (allowed, partial bool) {
	if !allow || !slices.Contains(row.resources, r.Kind) || r.ID == "ghost" {
		return false, false
	}
	reached := slices.Contains(fixtureReach[scope], r)
	switch row.rule {
	case "reach":
		return reached, false
	case "member":
		return reached || fixtureHome[scope] == fixtureOrg(r), false
	case "data":
		if reached {
			return true, false
		}
		if r.Kind == KindOrg || r.Kind == KindLocation {
			for _, x := range fixtureReach[scope] {
				if (x.Kind == KindLocation || x.Kind == KindMachine) && fixtureUnder(x, r) {
					return true, true
				}
			}
		}
		return false, false
	case "dataset":
		if fixtureHome[scope] != fixtureOrg(r) {
			return false, false
		}
		return true, scope.Kind != KindOrg
	}
	return false, false
}
