package cloud

import (
	"bytes"
	"cmp"
	"context"
	"crypto/hmac"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	"github.com/outpost-robotics/outpost/cloud/ingest"
	"github.com/outpost-robotics/outpost/cloud/partsync"
	"github.com/outpost-robotics/outpost/cloud/store"
	"github.com/outpost-robotics/outpost/rbac"
)

// The fleet list's bounds, so a hostile page_size or a filter that matches
// little keeps a request cheap.
const (
	defaultFleetPage = 50
	maxFleetPage     = 500
	// maxFleetScan is the most machines one ListFleet call examines when a
	// status filter drops them: the page comes back short, with a token.
	maxFleetScan = 1000
	// fleetScanChunk is how many machines a filtered call reads at a time.
	fleetScanChunk = 100
	// maxPageToken bounds the page token the caller sends back.
	maxPageToken = 512
	// onlineHalfIntervals is how many half sync intervals a part may stay
	// silent and still count as online: one missed cycle and jitter are
	// not an outage, a part stopped 40 s ago at 15 s intervals is.
	onlineHalfIntervals = 5
	// worstBacklogs is how many machines SummarizeFleet names by backlog.
	worstBacklogs = 5
)

// fleetIndex is what the fleet queries need of a snapshot beyond its maps:
// each location's children and machines. Built once per snapshot, on the
// first fleet query.
type fleetIndex struct {
	once       sync.Once
	children   map[string][]string
	machinesIn map[string][]string
}

func (s *snapshot) fleet() *fleetIndex {
	f := &s.fleetIdx
	f.once.Do(func() {
		f.children, f.machinesIn = map[string][]string{}, map[string][]string{}
		for _, l := range s.locations {
			if l.ParentID != "" {
				f.children[l.ParentID] = append(f.children[l.ParentID], l.ID)
			}
		}
		for _, m := range s.machines {
			f.machinesIn[m.LocationID] = append(f.machinesIn[m.LocationID], m.ID)
		}
	})
	return f
}

// fleetScope is the locations a fleet query covers: the organization's
// own, nested, and the subtrees shared with it; or a location's subtree.
func fleetScope(snap *snapshot, orgID, locationID string) ([]string, error) {
	if (orgID == "") == (locationID == "") {
		return nil, invalid("one of org_id and location_id is required")
	}
	var roots []string
	if orgID != "" {
		if err := requireID("org_id", orgID); err != nil {
			return nil, err
		}
		if !snap.exists(rbac.Org(orgID)) {
			return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("no org/%s: check the ID (list with `outpost org list`)", orgID))
		}
		for _, l := range snap.locations {
			if l.OrgID == orgID && l.ParentID == "" || slices.Contains(l.SharedWith, orgID) {
				roots = append(roots, l.ID)
			}
		}
	} else {
		if err := requireID("location_id", locationID); err != nil {
			return nil, err
		}
		if !snap.exists(rbac.Location(locationID)) {
			return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("no location/%s: check the ID (list with `outpost location list`)", locationID))
		}
		roots = []string{locationID}
	}
	children := snap.fleet().children
	seen := map[string]bool{}
	var out []string
	for len(roots) > 0 {
		id := roots[len(roots)-1]
		roots = roots[:len(roots)-1]
		if seen[id] {
			continue
		}
		seen[id] = true
		out = append(out, id)
		roots = append(roots, children[id]...)
	}
	slices.Sort(out)
	return out, nil
}

// fleetSelection turns a scope into what the store pages over: whole
// locations where the caller sees every machine, single machines where it
// sees only some (a role on one machine). What the caller sees is decided
// by rbac, machine by machine, as ListMachines does.
func fleetSelection(c *call, locs []string) (q store.MachineQuery) {
	in := c.snap.fleet().machinesIn
	for _, l := range locs {
		var some []string
		all := true
		for _, m := range in[l] {
			if c.visible(rbac.Machine(m)) {
				some = append(some, m)
			} else {
				all = false
			}
		}
		switch {
		case all:
			q.LocationIDs = append(q.LocationIDs, l)
		default:
			q.MachineIDs = append(q.MachineIDs, some...)
		}
	}
	return q
}

// fleetFilter is a ListFleet request's status filters.
type fleetFilter struct {
	offline, failing bool
	version          string
}

func (f fleetFilter) any() bool { return f.offline || f.failing || f.version != "" }

func (f fleetFilter) keep(m *fleetv1.FleetMachine) bool {
	if f.offline && m.GetOnline() {
		return false
	}
	if f.failing && !slices.ContainsFunc(m.GetParts(), func(p *fleetv1.FleetPart) bool { return len(p.GetFailing()) > 0 }) {
		return false
	}
	if f.version != "" && !slices.ContainsFunc(m.GetParts(), func(p *fleetv1.FleetPart) bool { return p.GetVersion() == f.version }) {
		return false
	}
	return true
}

// pageTokenPurpose names the MAC of fleet page tokens.
const pageTokenPurpose = "fleet page token"

// fleetQueryKey is what a page token is bound to: the caller and the query
// apart from its cursor, so a token is good for the next page of the same
// list by the same caller only.
func fleetQueryKey(c *call, m *fleetv1.ListFleetRequest) []byte {
	var b bytes.Buffer
	for _, s := range []string{c.subject.String(), m.GetOrgId(), m.GetLocationId(), m.GetSearch(), fmt.Sprint(m.GetOffline(), m.GetFailing()), m.GetVersion()} {
		fmt.Fprintf(&b, "%d:%s", len(s), s)
	}
	return b.Bytes()
}

// encodePageToken makes the token of the position after (name, id): the
// position, then a MAC over it and the query, base64url.
func (s *Server) encodePageToken(query []byte, name, id string) string {
	pos := []byte(name + "\x00" + id)
	mac := s.pageTokenMAC(query, pos)
	return base64.RawURLEncoding.EncodeToString(append(mac, pos...))
}

// pageTokenMAC is the first 16 bytes of the MAC over the query and the position.
func (s *Server) pageTokenMAC(query, pos []byte) []byte {
	msg := make([]byte, 0, len(query)+1+len(pos))
	msg = append(append(append(msg, query...), 0), pos...)
	return s.signer.MAC(pageTokenPurpose, msg)[:16]
}

// decodePageToken checks a token the caller sent back: it must be one this
// cloud made for this query and caller. Anything else, however close, is
// refused the same way, so a token cannot be forged or moved to another
// list (and would reveal nothing if it were: every page is filtered again).
func (s *Server) decodePageToken(query []byte, token string) (name, id string, err error) {
	bad := invalid("page_token: not a token this list returned (pass next_page_token with the same request)")
	if token == "" {
		return "", "", nil
	}
	if len(token) > maxPageToken {
		return "", "", bad
	}
	b, derr := base64.RawURLEncoding.DecodeString(token)
	if derr != nil || len(b) < 17 {
		return "", "", bad
	}
	mac, pos := b[:16], b[16:]
	want := s.pageTokenMAC(query, pos)
	if !hmac.Equal(mac, want) {
		return "", "", bad
	}
	name, id, ok := strings.Cut(string(pos), "\x00")
	if !ok || strings.IndexByte(id, 0) >= 0 {
		return "", "", bad
	}
	return name, id, nil
}

// pollInterval is how often a part syncs, as the cloud tells it.
func (s *Server) pollInterval(p store.Part) time.Duration {
	if d := s.docs.PollInterval(partsync.Part{ID: p.ID, MachineID: p.MachineID}); d > 0 {
		return d
	}
	return cmp.Or(s.syncOpts.PollInterval, 15*time.Second)
}

// fleetRows builds the rows of machines from their parts' last statuses,
// read in one call of the ingest store (when the cloud keeps one). The
// config versions issued to them are left to withIssued: filters do not
// need them, so only the rows kept pay for them.
func (s *Server) fleetRows(ctx context.Context, snap *snapshot, machines []store.Machine, now time.Time, paths map[string]string) ([]*fleetv1.FleetMachine, error) {
	var ids []string
	for _, m := range machines {
		ids = append(ids, snap.partsOf[m.ID]...)
	}
	statuses := map[string]ingest.PartStatus{}
	if s.ingest != nil && len(ids) > 0 {
		var err error
		if statuses, err = s.ingest.Statuses(ctx, ids); err != nil {
			return nil, fmt.Errorf("statuses of %d parts: %w", len(ids), err)
		}
	}
	rows := make([]*fleetv1.FleetMachine, len(machines))
	for i, m := range machines {
		var parts []store.Part
		for _, id := range snap.partsOf[m.ID] {
			parts = append(parts, snap.parts[id])
		}
		row := &fleetv1.FleetMachine{Machine: machinePB(m, parts), LocationPath: locationPath(snap, m.LocationID, paths), OrgId: snap.locations[m.LocationID].OrgID}
		var last time.Time
		for _, p := range parts { // machinePB sorted them: main part first
			fp := &fleetv1.FleetPart{PartId: p.ID, Name: p.Name}
			if st, ok := statuses[p.ID]; ok {
				fillFleetPart(fp, st, now, s.pollInterval(p))
				if st.At.After(last) {
					last = st.At
				}
			}
			row.Online = row.Online || fp.Online
			row.Parts = append(row.Parts, fp)
		}
		row.LastSeen = ts(last)
		rows[i] = row
	}
	return rows, nil
}

// withIssued sets the config version the cloud last signed for each part
// of rows.
func withIssued(ctx context.Context, tx store.Tx, rows []*fleetv1.FleetMachine) error {
	for _, r := range rows {
		for _, fp := range r.GetParts() {
			d, err := tx.GetPartDocuments(ctx, fp.GetPartId())
			switch {
			case err == nil:
				fp.IssuedConfigVersion = d.ConfigVersion
			case !errors.Is(err, store.ErrNotFound):
				return fmt.Errorf("documents of part/%s: %w", fp.GetPartId(), err)
			}
		}
	}
	return nil
}

// fillFleetPart sets what a part's last status says.
func fillFleetPart(fp *fleetv1.FleetPart, st ingest.PartStatus, now time.Time, poll time.Duration) {
	fp.LastSeen = ts(st.At)
	fp.Online = now.Sub(st.At) <= onlineHalfIntervals*poll/2
	r := st.Status
	fp.Version, fp.RunningConfigVersion = r.GetVersion(), r.GetConfigVersion()
	for _, b := range r.GetBacklog() {
		fp.BacklogRecords += b.GetRecords()
		fp.BacklogBytes += b.GetBytes()
	}
	for _, res := range r.GetResources() {
		if res.GetState() == "failed" {
			fp.Failing = append(fp.Failing, res.GetName())
		}
	}
}

// locationPath is "Plant/Line 1/Cell A", memoized in paths.
func locationPath(snap *snapshot, id string, paths map[string]string) string {
	if p, ok := paths[id]; ok {
		return p
	}
	var names []string
	for i, cur := 0, id; cur != "" && i <= maxDepth+1; i++ {
		l := snap.locations[cur]
		names = append(names, l.Name)
		cur = l.ParentID
	}
	slices.Reverse(names)
	p := strings.Join(names, "/")
	paths[id] = p
	return p
}

// listFleet answers ListFleet: pages of the store's name index over the
// caller's selection, each machine's row built and filtered, until the
// page is full, the selection ends, or maxFleetScan machines were read.
func (s *Server) listFleet(ctx context.Context, m *fleetv1.ListFleetRequest) (*fleetv1.ListFleetResponse, error) {
	c := callFrom(ctx)
	size := int(m.GetPageSize())
	switch {
	case size == 0:
		size = defaultFleetPage
	case size > maxFleetPage:
		return nil, invalid("page_size %d: at most %d", size, maxFleetPage)
	}
	if len(m.GetSearch()) > maxNameLen || strings.IndexByte(m.GetSearch(), 0) >= 0 {
		return nil, invalid("search: at most %d bytes, no NUL", maxNameLen)
	}
	if len(m.GetVersion()) > maxNameLen {
		return nil, invalid("version: at most %d bytes", maxNameLen)
	}
	locs, err := fleetScope(c.snap, m.GetOrgId(), m.GetLocationId())
	if err != nil {
		return nil, err
	}
	key := fleetQueryKey(c, m)
	q := fleetSelection(c, locs)
	total := len(q.MachineIDs)
	for _, l := range q.LocationIDs {
		total += len(c.snap.fleet().machinesIn[l])
	}
	q.Search = m.GetSearch()
	if q.AfterName, q.AfterID, err = s.decodePageToken(key, m.GetPageToken()); err != nil {
		return nil, err
	}
	filter := fleetFilter{offline: m.GetOffline(), failing: m.GetFailing(), version: m.GetVersion()}
	now := s.clock.Now()
	paths := map[string]string{}
	out := &fleetv1.ListFleetResponse{Total: uint32(total)}
	err = s.view(ctx, func(tx store.Tx) error {
		out.Machines = nil
		q := q
		more := len(q.LocationIDs)+len(q.MachineIDs) > 0
		for examined := 0; more && len(out.Machines) < size && examined < maxFleetScan; {
			q.Limit = size - len(out.Machines)
			if filter.any() {
				q.Limit = fleetScanChunk
			}
			var page []store.Machine
			var err error
			if page, more, err = tx.PageMachines(ctx, q); err != nil {
				return err
			}
			var visible []store.Machine
			for _, mach := range page {
				if c.visible(rbac.Machine(mach.ID)) { // else changed since the snapshot
					visible = append(visible, mach)
				}
			}
			rows, err := s.fleetRows(ctx, c.snap, visible, now, paths)
			if err != nil {
				return err
			}
			for i, mach := range page {
				examined++
				q.AfterName, q.AfterID = mach.Name, mach.ID
				if len(rows) == 0 || rows[0].GetMachine().GetId() != mach.ID {
					continue // not visible
				}
				row := rows[0]
				rows = rows[1:]
				if filter.keep(row) {
					out.Machines = append(out.Machines, row)
				}
				if len(out.Machines) == size {
					more = more || i < len(page)-1
					break
				}
			}
		}
		if err := withIssued(ctx, tx, out.Machines); err != nil {
			return err
		}
		out.NextPageToken = ""
		if more {
			out.NextPageToken = s.encodePageToken(key, q.AfterName, q.AfterID)
		}
		return nil
	})
	return out, err
}

// summarizeFleet answers SummarizeFleet over every machine of the scope
// the caller may see.
func (s *Server) summarizeFleet(ctx context.Context, m *fleetv1.SummarizeFleetRequest) (*fleetv1.SummarizeFleetResponse, error) {
	c := callFrom(ctx)
	locs, err := fleetScope(c.snap, m.GetOrgId(), m.GetLocationId())
	if err != nil {
		return nil, err
	}
	var machines []store.Machine
	in := c.snap.fleet().machinesIn
	for _, l := range locs {
		for _, id := range in[l] {
			if c.visible(rbac.Machine(id)) {
				machines = append(machines, c.snap.machines[id])
			}
		}
	}
	now, paths := s.clock.Now(), map[string]string{}
	out := &fleetv1.SummarizeFleetResponse{Machines: uint32(len(machines))}
	versions := map[string]uint32{}
	rows, err := s.fleetRows(ctx, c.snap, machines, now, paths)
	if err != nil {
		return nil, err
	}
	for _, row := range rows {
		if row.GetOnline() {
			out.Online++
		} else {
			out.Offline++
			if row.GetLastSeen() == nil {
				out.NeverSeen++
			}
		}
		if (fleetFilter{failing: true}).keep(row) {
			out.Failing++
		}
		for _, p := range row.GetParts() {
			versions[p.GetVersion()]++
		}
	}
	for v, n := range versions {
		out.Versions = append(out.Versions, &fleetv1.VersionCount{Version: v, Parts: n})
	}
	slices.SortFunc(out.Versions, func(a, b *fleetv1.VersionCount) int {
		return cmp.Or(cmp.Compare(b.GetParts(), a.GetParts()), strings.Compare(a.GetVersion(), b.GetVersion()))
	})
	backlog := func(r *fleetv1.FleetMachine) (n uint64) {
		for _, p := range r.GetParts() {
			n += p.GetBacklogRecords()
		}
		return n
	}
	rows = slices.DeleteFunc(rows, func(r *fleetv1.FleetMachine) bool { return backlog(r) == 0 })
	slices.SortFunc(rows, func(a, b *fleetv1.FleetMachine) int {
		return cmp.Or(cmp.Compare(backlog(b), backlog(a)), strings.Compare(a.GetMachine().GetName(), b.GetMachine().GetName()), strings.Compare(a.GetMachine().GetId(), b.GetMachine().GetId()))
	})
	out.WorstBacklogs = rows[:min(len(rows), worstBacklogs)]
	return out, s.view(ctx, func(tx store.Tx) error { return withIssued(ctx, tx, out.WorstBacklogs) })
}
