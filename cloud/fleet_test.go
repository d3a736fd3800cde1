package cloud_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/cloud/cloudtest"
	"github.com/outpost-robotics/outpost/cloud/store"
)

// fleetWorld is an organization Acme with Plant/Line 1/Cell A and a Depot
// of another organization shared with Acme, machines in each, and parts
// that reported (or not) on the cloud's fake clock.
type fleetWorld struct {
	e                                  *env
	acme, other                        string
	plant, line, cell, depot, office   string
	rover, arm, crane, forklift, plots string // machine IDs
	partOf                             map[string]string
}

func newFleetWorld(t *testing.T) *fleetWorld { return newFleetWorldWith(t, cloudtest.Options{}) }

// newFleetWorldWith is newFleetWorld on a cloud with opts (its stores).
func newFleetWorldWith(t *testing.T, opts cloudtest.Options) *fleetWorld {
	e := newEnvWith(t, opts)
	ctx := context.Background()
	a := e.client(e.adminToken)
	w := &fleetWorld{e: e, partOf: map[string]string{}}
	org := func(name string) string {
		return check(a.Org.CreateOrg(ctx, req(&fleetv1.CreateOrgRequest{Name: name})))(t).GetOrg().GetId()
	}
	loc := func(org, parent, name string) string {
		return check(a.Location.CreateLocation(ctx, req(&fleetv1.CreateLocationRequest{OrgId: org, ParentLocationId: parent, Name: name})))(t).GetLocation().GetId()
	}
	machine := func(loc, name string) string {
		m := check(a.Machine.CreateMachine(ctx, req(&fleetv1.CreateMachineRequest{LocationId: loc, Name: name})))(t)
		e.Remember(m.GetMainPartSecret())
		w.partOf[m.GetMachine().GetId()] = m.GetMachine().GetParts()[0].GetId()
		return m.GetMachine().GetId()
	}
	w.acme, w.other = org("Acme"), org("Other")
	w.plant = loc(w.acme, "", "Plant")
	w.line = loc(w.acme, w.plant, "Line 1")
	w.cell = loc(w.acme, w.line, "Cell A")
	w.office = loc(w.acme, "", "Office")
	w.depot = loc(w.other, "", "Depot")
	check(a.Location.ShareLocation(ctx, req(&fleetv1.ShareLocationRequest{LocationId: w.depot, OrgId: w.acme})))(t)
	w.rover = machine(w.cell, "rover")
	w.arm = machine(w.plant, "Arm")
	w.crane = machine(w.depot, "crane")
	w.forklift = machine(w.office, "forklift")
	w.plots = machine(loc(w.other, "", "Fields"), "plotter") // Other's own, not shared

	// rover: online, 1.2.3, a crash-looping process, a backlog; arm: seen
	// a minute ago (offline at a 15 s interval); crane: online, 1.2.2;
	// forklift: never seen.
	put := func(machine string, st *syncv1.PartStatus) {
		if err := e.Ingest().PutStatus(ctx, w.partOf[machine], st, e.clk.Now()); err != nil {
			t.Fatal(err)
		}
	}
	put(w.arm, &syncv1.PartStatus{Version: "1.2.3", ConfigVersion: 1})
	e.clk.Advance(time.Minute)
	// The cloud has signed config 4 for rover, which still runs 3.
	e.update(func(ctx context.Context, tx store.Tx) error {
		return tx.PutPartDocuments(ctx, store.PartDocuments{PartID: w.partOf[w.rover], ConfigVersion: 4})
	})
	put(w.rover, &syncv1.PartStatus{Version: "1.2.3", ConfigVersion: 3,
		Backlog:   []*syncv1.StreamBacklog{{Stream: "logs/info", Records: 7, Bytes: 700}, {Stream: "captures", Records: 3, Bytes: 30}},
		Resources: []*syncv1.ResourceStatus{{Name: "process/pump", State: "failed", Error: "crash loop"}, {Name: "component/motor", State: "running"}}})
	put(w.crane, &syncv1.PartStatus{Version: "1.2.2", Backlog: []*syncv1.StreamBacklog{{Stream: "logs/info", Records: 1}}})
	return w
}

// names lists the machines of a fleet page.
func names(ms []*fleetv1.FleetMachine) []string {
	out := []string{}
	for _, m := range ms {
		out = append(out, m.GetMachine().GetName())
	}
	return out
}

// TestListFleet: an organization's list holds its nested locations and the
// location shared with it, a location's list its subtree; each row says
// online or offline against the sync interval, the version, config
// running and issued, the backlog and the failing resources; the filters
// and the search narrow it; and each caller sees only what rbac lets it
// (seed 003: an operator on Line 1 sees Line 1's subtree, one on a machine
// that machine, the owner of the sharing organization its own machines).
func TestListFleet(t *testing.T) {
	w := newFleetWorld(t)
	e, ctx := w.e, context.Background()
	admin := e.client(e.adminToken)
	list := func(c interface {
		ListFleet(context.Context, *connect.Request[fleetv1.ListFleetRequest]) (*connect.Response[fleetv1.ListFleetResponse], error)
	}, r *fleetv1.ListFleetRequest) []string {
		t.Helper()
		return names(check(c.ListFleet(ctx, req(r)))(t).GetMachines())
	}

	for _, tc := range []struct {
		name string
		req  *fleetv1.ListFleetRequest
		want []string
	}{
		{"org: nested and shared", &fleetv1.ListFleetRequest{OrgId: w.acme}, []string{"Arm", "crane", "forklift", "rover"}},
		{"location subtree", &fleetv1.ListFleetRequest{LocationId: w.plant}, []string{"Arm", "rover"}},
		{"offline", &fleetv1.ListFleetRequest{OrgId: w.acme, Offline: true}, []string{"Arm", "forklift"}},
		{"failing", &fleetv1.ListFleetRequest{OrgId: w.acme, Failing: true}, []string{"rover"}},
		{"version", &fleetv1.ListFleetRequest{OrgId: w.acme, Version: "1.2.3"}, []string{"Arm", "rover"}},
		{"search ignores case", &fleetv1.ListFleetRequest{OrgId: w.acme, Search: "ARM"}, []string{"Arm"}},
		{"filters together", &fleetv1.ListFleetRequest{OrgId: w.acme, Offline: true, Version: "1.2.3"}, []string{"Arm"}},
		{"the other org's own", &fleetv1.ListFleetRequest{OrgId: w.other}, []string{"crane", "plotter"}},
	} {
		if got := list(admin.Machine, tc.req); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}

	if res := check(admin.Machine.ListFleet(ctx, req(&fleetv1.ListFleetRequest{OrgId: w.acme, Search: "rov", PageSize: 1})))(t); res.GetTotal() != 4 {
		t.Errorf("total %d, want the 4 machines before the search", res.GetTotal())
	}
	rows := check(admin.Machine.ListFleet(ctx, req(&fleetv1.ListFleetRequest{LocationId: w.plant})))(t).GetMachines()
	arm, rover := rows[0], rows[1]
	if rover.GetLocationPath() != "Plant/Line 1/Cell A" || rover.GetOrgId() != w.acme || !rover.GetOnline() {
		t.Errorf("rover's row: %v", rover)
	}
	p := rover.GetParts()[0]
	if p.GetVersion() != "1.2.3" || p.GetBacklogRecords() != 10 || p.GetBacklogBytes() != 730 ||
		!slices.Equal(p.GetFailing(), []string{"process/pump"}) || p.GetIssuedConfigVersion() != 4 || p.GetRunningConfigVersion() != 3 || p.GetLastSeen() == nil {
		t.Errorf("rover's part: %v", p)
	}
	if arm.GetOnline() || arm.GetParts()[0].GetOnline() || arm.GetParts()[0].GetRunningConfigVersion() != 1 {
		t.Errorf("arm, a minute silent at a 15 s interval, is online: %v", arm)
	}
	e.clk.Advance(30 * time.Second) // rover silent 30 s, one missed cycle: still online
	if got := list(admin.Machine, &fleetv1.ListFleetRequest{OrgId: w.acme, Offline: true}); !slices.Equal(got, []string{"Arm", "forklift"}) {
		t.Errorf("30 s after its report rover counts as offline: %v", got)
	}
	e.clk.Advance(10 * time.Second) // 40 s: offline
	if got := list(admin.Machine, &fleetv1.ListFleetRequest{OrgId: w.acme, Offline: true}); !slices.Equal(got, []string{"Arm", "crane", "forklift", "rover"}) {
		t.Errorf("40 s after their reports: offline %v", got)
	}

	// Who sees what.
	lineOp := e.client(e.token(e.CreateUser(t, "line@example.com", "line operator's long password", "operator", "location/"+w.line)))
	machOp := e.client(e.token(e.CreateUser(t, "arm@example.com", "arm operator's long password", "operator", "machine/"+w.arm)))
	otherOwner := e.client(e.token(e.CreateUser(t, "other@example.com", "other owner's long password", "owner", "org/"+w.other)))
	acmeOwner := e.client(e.token(e.CreateUser(t, "acme@example.com", "acme owner's long password", "owner", "org/"+w.acme)))
	for _, tc := range []struct {
		who  string
		as   *cloudtest.Clients
		req  *fleetv1.ListFleetRequest
		want []string
	}{
		{"Acme's owner, Acme", acmeOwner, &fleetv1.ListFleetRequest{OrgId: w.acme}, []string{"Arm", "crane", "forklift", "rover"}},
		{"Acme's owner, Other", acmeOwner, &fleetv1.ListFleetRequest{OrgId: w.other}, []string{"crane"}},
		{"Line 1's operator, Acme", lineOp, &fleetv1.ListFleetRequest{OrgId: w.acme}, []string{"rover"}},
		{"Line 1's operator, Plant", lineOp, &fleetv1.ListFleetRequest{LocationId: w.plant}, []string{"rover"}},
		{"Line 1's operator, Office", lineOp, &fleetv1.ListFleetRequest{LocationId: w.office}, []string{}},
		{"Arm's operator, Acme", machOp, &fleetv1.ListFleetRequest{OrgId: w.acme}, []string{"Arm"}},
		{"Other's owner, Acme", otherOwner, &fleetv1.ListFleetRequest{OrgId: w.acme}, []string{"crane"}},
		{"Other's owner, Other", otherOwner, &fleetv1.ListFleetRequest{OrgId: w.other}, []string{"crane", "plotter"}},
	} {
		if got := list(tc.as.Machine, tc.req); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.who, got, tc.want)
		}
	}
	sum := check(lineOp.Machine.SummarizeFleet(ctx, req(&fleetv1.SummarizeFleetRequest{OrgId: w.acme})))(t)
	if sum.GetMachines() != 1 {
		t.Errorf("Line 1's operator's summary of Acme counts %d machines", sum.GetMachines())
	}
}

// TestSummarizeFleet: the counts of one organization on one screen.
func TestSummarizeFleet(t *testing.T) {
	w := newFleetWorld(t)
	sum := check(w.e.client(w.e.adminToken).Machine.SummarizeFleet(context.Background(), req(&fleetv1.SummarizeFleetRequest{OrgId: w.acme})))(t)
	if sum.GetMachines() != 4 || sum.GetOnline() != 2 || sum.GetOffline() != 2 || sum.GetNeverSeen() != 1 || sum.GetFailing() != 1 {
		t.Errorf("counts: %v", sum)
	}
	var versions []string
	for _, v := range sum.GetVersions() {
		versions = append(versions, fmt.Sprintf("%s=%d", v.GetVersion(), v.GetParts()))
	}
	if want := []string{"1.2.3=2", "=1", "1.2.2=1"}; !slices.Equal(versions, want) {
		t.Errorf("versions %v, want %v", versions, want)
	}
	if got := names(sum.GetWorstBacklogs()); !slices.Equal(got, []string{"rover", "crane"}) {
		t.Errorf("worst backlogs %v", got)
	}
}

// TestListFleetPages: pages of every size up to the cap walk the whole list
// once, in order; hostile page sizes, tokens and values are refused with a
// clear error; a token works only for the query and caller it was made
// for.
func TestListFleetPages(t *testing.T) {
	w := newFleetWorld(t)
	e, ctx := w.e, context.Background()
	admin := e.client(e.adminToken)
	all := []string{"Arm", "crane", "forklift", "rover"}
	for size := uint32(1); size <= 5; size++ {
		var got []string
		r := &fleetv1.ListFleetRequest{OrgId: w.acme, PageSize: size}
		for range 10 {
			res := check(admin.Machine.ListFleet(ctx, req(r)))(t)
			got = append(got, names(res.GetMachines())...)
			if r.PageToken = res.GetNextPageToken(); r.PageToken == "" {
				break
			}
		}
		if !slices.Equal(got, all) {
			t.Errorf("pages of %d: %v", size, got)
		}
	}

	first := check(admin.Machine.ListFleet(ctx, req(&fleetv1.ListFleetRequest{OrgId: w.acme, PageSize: 1})))(t)
	token := first.GetNextPageToken()
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		t.Fatal(err)
	}
	flipped := slices.Clone(raw)
	flipped[len(flipped)-1] ^= 1
	forged := base64.RawURLEncoding.EncodeToString(append(slices.Clone(raw[:16]), "a\x00b"...))
	owner := e.client(e.token(e.CreateUser(t, "acme@example.com", "acme owner's long password", "owner", "org/"+w.acme)))
	for _, tc := range []struct {
		name string
		as   *cloudtest.Clients
		req  *fleetv1.ListFleetRequest
		code connect.Code
		says string
	}{
		{"no scope", admin, &fleetv1.ListFleetRequest{}, connect.CodeInvalidArgument, "one of org_id and location_id"},
		{"both scopes", admin, &fleetv1.ListFleetRequest{OrgId: w.acme, LocationId: w.plant}, connect.CodeInvalidArgument, "one of org_id and location_id"},
		{"not an ID", admin, &fleetv1.ListFleetRequest{OrgId: "' OR 1=1 --"}, connect.CodeInvalidArgument, "not an ID"},
		{"unknown org", admin, &fleetv1.ListFleetRequest{OrgId: strings.Repeat("0", 32)}, connect.CodeNotFound, "no org/"},
		{"unknown location", admin, &fleetv1.ListFleetRequest{LocationId: strings.Repeat("0", 32)}, connect.CodeNotFound, "no location/"},
		{"page too large", admin, &fleetv1.ListFleetRequest{OrgId: w.acme, PageSize: 501}, connect.CodeInvalidArgument, "at most 500"},
		{"page size max uint32", admin, &fleetv1.ListFleetRequest{OrgId: w.acme, PageSize: 1<<32 - 1}, connect.CodeInvalidArgument, "at most 500"},
		{"search too long", admin, &fleetv1.ListFleetRequest{OrgId: w.acme, Search: strings.Repeat("x", 101)}, connect.CodeInvalidArgument, "search"},
		{"search with NUL", admin, &fleetv1.ListFleetRequest{OrgId: w.acme, Search: "a\x00"}, connect.CodeInvalidArgument, "search"},
		{"version too long", admin, &fleetv1.ListFleetRequest{OrgId: w.acme, Version: strings.Repeat("1", 101)}, connect.CodeInvalidArgument, "version"},
		{"garbage token", admin, &fleetv1.ListFleetRequest{OrgId: w.acme, PageToken: "!!!"}, connect.CodeInvalidArgument, "page_token"},
		{"short token", admin, &fleetv1.ListFleetRequest{OrgId: w.acme, PageToken: "AAAA"}, connect.CodeInvalidArgument, "page_token"},
		{"huge token", admin, &fleetv1.ListFleetRequest{OrgId: w.acme, PageToken: strings.Repeat("A", 1<<12)}, connect.CodeInvalidArgument, "page_token"},
		{"tampered token", admin, &fleetv1.ListFleetRequest{OrgId: w.acme, PageToken: base64.RawURLEncoding.EncodeToString(flipped)}, connect.CodeInvalidArgument, "page_token"},
		{"forged position", admin, &fleetv1.ListFleetRequest{OrgId: w.acme, PageToken: forged}, connect.CodeInvalidArgument, "page_token"},
		{"token of another query", admin, &fleetv1.ListFleetRequest{OrgId: w.acme, Offline: true, PageToken: token}, connect.CodeInvalidArgument, "page_token"},
		{"token of another scope", admin, &fleetv1.ListFleetRequest{OrgId: w.other, PageToken: token}, connect.CodeInvalidArgument, "page_token"},
		{"token of another caller", owner, &fleetv1.ListFleetRequest{OrgId: w.acme, PageToken: token}, connect.CodeInvalidArgument, "page_token"},
	} {
		_, err := tc.as.Machine.ListFleet(ctx, req(tc.req))
		if connect.CodeOf(err) != tc.code || !strings.Contains(fmt.Sprint(err), tc.says) {
			t.Errorf("%s: %v, want %v saying %q", tc.name, err, tc.code, tc.says)
		}
	}
	// The token goes on where it left off.
	next := check(admin.Machine.ListFleet(ctx, req(&fleetv1.ListFleetRequest{OrgId: w.acme, PageSize: 1, PageToken: token})))(t)
	if got := names(next.GetMachines()); !slices.Equal(got, []string{"crane"}) {
		t.Errorf("the second page: %v", got)
	}
	// Unauthenticated callers are refused before anything is read.
	if _, err := e.client("").Machine.ListFleet(ctx, req(&fleetv1.ListFleetRequest{OrgId: w.acme})); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Errorf("without a credential: %v", err)
	}
}

// TestListLocationsIncludesShared: the fleet's tree lists the locations
// shared with an organization, with their subtrees, only when asked, and
// never the other organization's unshared ones.
func TestListLocationsIncludesShared(t *testing.T) {
	w := newFleetWorld(t)
	ctx := context.Background()
	a := w.e.client(w.e.adminToken)
	bay := check(a.Location.CreateLocation(ctx, req(&fleetv1.CreateLocationRequest{OrgId: w.other, ParentLocationId: w.depot, Name: "Bay 2"})))(t).GetLocation().GetId()
	ids := func(include bool) []string {
		var out []string
		for _, l := range check(a.Location.ListLocations(ctx, req(&fleetv1.ListLocationsRequest{OrgId: w.acme, IncludeShared: include})))(t).GetLocations() {
			out = append(out, l.GetId())
		}
		slices.Sort(out)
		return out
	}
	own := []string{w.plant, w.line, w.cell, w.office}
	slices.Sort(own)
	if got := ids(false); !slices.Equal(got, own) {
		t.Fatalf("Acme's own locations: %v, want %v", got, own)
	}
	withShared := append(slices.Clone(own), w.depot, bay)
	slices.Sort(withShared)
	if got := ids(true); !slices.Equal(got, withShared) {
		t.Fatalf("Acme's locations with the shared ones: %v, want %v (Other's Fields is not shared)", got, withShared)
	}
}
