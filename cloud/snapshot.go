package cloud

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/outpost-robotics/outpost/cloud/store"
	"github.com/outpost-robotics/outpost/rbac"
)

// snapshot is an immutable view of the whole hierarchy with the rbac engine
// built over it. The cloud keeps one in memory and rebuilds it when the
// store's Generation moves; every request reads the generation (one small
// read), so replicas sharing a PostgreSQL store see each other's changes on
// their next request.
type snapshot struct {
	gen       uint64
	engine    *rbac.Engine
	orgs      map[string]store.Org
	locations map[string]store.Location
	machines  map[string]store.Machine
	parts     map[string]store.Part
	// partsOf lists each machine's part IDs, sorted.
	partsOf map[string][]string
	// fleetIdx is built on the first fleet query (fleet.go).
	fleetIdx fleetIndex
}

// snapshots caches the current snapshot.
type snapshots struct {
	st  store.Store
	mu  sync.Mutex
	cur *snapshot
}

// get returns the snapshot of the store's current generation.
func (s *snapshots) get(ctx context.Context) (*snapshot, error) {
	gen, err := s.st.Generation(ctx)
	if err != nil {
		return nil, fmt.Errorf("read hierarchy generation: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur != nil && s.cur.gen == gen {
		return s.cur, nil
	}
	snap, err := loadSnapshot(ctx, s.st)
	if err != nil {
		return nil, err
	}
	s.cur = snap
	return snap, nil
}

// loadSnapshot reads the hierarchy in one transaction, with its generation.
func loadSnapshot(ctx context.Context, st store.Store) (*snapshot, error) {
	snap := &snapshot{
		orgs: map[string]store.Org{}, locations: map[string]store.Location{},
		machines: map[string]store.Machine{}, parts: map[string]store.Part{}, partsOf: map[string][]string{},
	}
	var h rbac.Hierarchy
	// The generation is read before the records: a change in between makes
	// the snapshot newer than its number, never older, so the next request
	// rebuilds once more and nothing is ever served stale.
	var err error
	if snap.gen, err = st.Generation(ctx); err != nil {
		return nil, fmt.Errorf("load hierarchy: %w", err)
	}
	err = st.View(ctx, func(tx store.Tx) error {
		orgs, err := tx.ListOrgs(ctx)
		if err != nil {
			return err
		}
		for _, o := range orgs {
			snap.orgs[o.ID] = o
			h.Orgs = append(h.Orgs, o.ID)
		}
		locs, err := tx.ListLocations(ctx, "")
		if err != nil {
			return err
		}
		for _, l := range locs {
			snap.locations[l.ID] = l
			h.Locations = append(h.Locations, rbac.LocationInfo{ID: l.ID, Org: l.OrgID, Parent: l.ParentID})
			for _, with := range l.SharedWith {
				h.Shares = append(h.Shares, rbac.Share{Location: l.ID, With: with})
			}
		}
		ms, err := tx.ListMachines(ctx, "")
		if err != nil {
			return err
		}
		for _, m := range ms {
			snap.machines[m.ID] = m
			h.Machines = append(h.Machines, rbac.MachineInfo{ID: m.ID, Location: m.LocationID})
		}
		ps, err := tx.ListParts(ctx, "")
		if err != nil {
			return err
		}
		for _, p := range ps {
			snap.parts[p.ID] = p
			snap.partsOf[p.MachineID] = append(snap.partsOf[p.MachineID], p.ID) // ListParts is sorted by ID
			h.Parts = append(h.Parts, rbac.PartInfo{ID: p.ID, Machine: p.MachineID})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load hierarchy: %w", err)
	}
	if snap.engine, err = rbac.NewEngine(h); err != nil {
		return nil, fmt.Errorf("load hierarchy: %w", err)
	}
	return snap, nil
}

// orgOf returns the organization a resource belongs to, or "".
func (s *snapshot) orgOf(r rbac.Resource) string {
	switch r.Kind {
	case rbac.KindOrg:
		if _, ok := s.orgs[r.ID]; ok {
			return r.ID
		}
	case rbac.KindLocation:
		return s.locations[r.ID].OrgID
	case rbac.KindMachine:
		return s.locations[s.machines[r.ID].LocationID].OrgID
	case rbac.KindPart:
		return s.locations[s.machines[s.parts[r.ID].MachineID].LocationID].OrgID
	}
	return ""
}

// exists reports whether the snapshot knows r.
func (s *snapshot) exists(r rbac.Resource) bool {
	var ok bool
	switch r.Kind {
	case rbac.KindOrg:
		_, ok = s.orgs[r.ID]
	case rbac.KindLocation:
		_, ok = s.locations[r.ID]
	case rbac.KindMachine:
		_, ok = s.machines[r.ID]
	case rbac.KindPart:
		_, ok = s.parts[r.ID]
	}
	return ok
}

// parent returns the resource directly above r (a part's machine, a
// machine's location, a location's parent or org), or the zero resource.
func (s *snapshot) parent(r rbac.Resource) rbac.Resource {
	switch r.Kind {
	case rbac.KindPart:
		if p, ok := s.parts[r.ID]; ok {
			return rbac.Machine(p.MachineID)
		}
	case rbac.KindMachine:
		if m, ok := s.machines[r.ID]; ok {
			return rbac.Location(m.LocationID)
		}
	case rbac.KindLocation:
		if l, ok := s.locations[r.ID]; ok {
			if l.ParentID != "" {
				return rbac.Location(l.ParentID)
			}
			return rbac.Org(l.OrgID)
		}
	}
	return rbac.Resource{}
}

// ancestors returns r and everything above it, nearest first.
func (s *snapshot) ancestors(r rbac.Resource) []rbac.Resource {
	var out []rbac.Resource
	for ; !r.IsZero() && len(out) <= maxDepth+3; r = s.parent(r) {
		out = append(out, r)
	}
	return out
}

// within reports whether inner is outer or under it (ignoring shares).
func (s *snapshot) within(inner, outer rbac.Resource) bool {
	for _, a := range s.ancestors(inner) {
		if a == outer {
			return true
		}
	}
	return false
}

// depth is a location's depth: 1 at the top of its org.
func (s *snapshot) depth(locationID string) int {
	d := 0
	for id := locationID; id != "" && d <= maxDepth+1; id = s.locations[id].ParentID {
		d++
	}
	return d
}

// height is the depth of the deepest location under locationID, counting
// locationID as 1.
func (s *snapshot) height(locationID string) int {
	children := map[string][]string{}
	for _, l := range s.locations {
		if l.ParentID != "" {
			children[l.ParentID] = append(children[l.ParentID], l.ID)
		}
	}
	var h func(id string, d int) int
	h = func(id string, d int) int {
		best := d
		if d > maxDepth+1 {
			return d
		}
		for _, c := range children[id] {
			best = max(best, h(c, d+1))
		}
		return best
	}
	return h(locationID, 1)
}

// sharedInto says whether the location, or a location above it, is shared
// with org.
func (s *snapshot) sharedInto(locID, org string) bool {
	for depth := 0; locID != "" && depth <= maxDepth; depth++ {
		l, ok := s.locations[locID]
		if !ok {
			return false
		}
		if l.OrgID != org && slices.Contains(l.SharedWith, org) {
			return true
		}
		locID = l.ParentID
	}
	return false
}
