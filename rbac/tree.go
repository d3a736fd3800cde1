package rbac

import (
	"errors"
	"fmt"
)

// Hierarchy lists the resources an Engine decides about, with their parent links.
//
// The cloud builds it from a whole organization tree; the daemon builds it
// from a grant bundle holding one machine's ancestry (its location chain up
// to the org, the orgs the chain is shared with, the machine and its parts).
type Hierarchy struct {
	// Orgs are organization IDs.
	Orgs []string
	// Locations belong to one org; Parent is "" for a top-level location.
	Locations []LocationInfo
	// Shares share a location (and everything under it) with another org.
	Shares []Share
	// Machines are each in one location.
	Machines []MachineInfo
	// Parts are each in one machine.
	Parts []PartInfo
	// Fragments, Datasets, Packages and Modules each belong to one org.
	Fragments, Datasets, Packages, Modules []OrgObject
}

// LocationInfo is one location of a Hierarchy.
type LocationInfo struct {
	// ID is the location's ID.
	ID string
	// Org is the organization that owns the location.
	Org string
	// Parent is the parent location's ID, or "" for a top-level location.
	Parent string
}

// Share says that a location is shared with another organization.
type Share struct {
	// Location is the shared location's ID.
	Location string
	// With is the ID of the organization it is shared with.
	With string
}

// MachineInfo is one machine of a Hierarchy.
type MachineInfo struct {
	// ID is the machine's ID.
	ID string
	// Location is the ID of the location the machine is in.
	Location string
}

// PartInfo is one part of a Hierarchy.
type PartInfo struct {
	// ID is the part's ID.
	ID string
	// Machine is the ID of the machine the part belongs to.
	Machine string
}

// OrgObject is a fragment, dataset, package or module, owned by one organization.
type OrgObject struct {
	// ID is the object's ID.
	ID string
	// Org is the ID of the owning organization.
	Org string
}

// ErrBadHierarchy is wrapped by NewEngine's errors about an inconsistent Hierarchy.
var ErrBadHierarchy = errors.New("bad hierarchy")

// node is one resource of the tree. pre and post number the nodes in
// depth-first order over org → location → machine → part (org objects hang
// off their org), so "a covers b" is the interval test a.pre <= b.pre < a.post:
// one comparison per grant, whatever the depth, and no allocation.
type node struct {
	id     string
	kind   ResourceKind
	parent int32 // -1 for orgs
	org    int32 // owning org; an org is its own
	loc    int32 // nearest location (itself for a location); -1 above locations and for org objects
	pre    int32
	post   int32
}

// Engine answers "may this subject do this action on this resource?" over
// one immutable Hierarchy. It is safe for concurrent use; to change the
// hierarchy, build a new Engine and swap it in.
type Engine struct {
	nodes []node
	// index finds a node by kind and ID without allocating.
	index [KindModule + 1]map[string]int32
	// sharedWith[n], for a location n, lists the orgs n is shared with,
	// directly or through an ancestor; nil for most locations.
	sharedWith [][]int32
	// sharedIn[o], for an org o, lists the locations shared directly with o.
	sharedIn [][]int32
	specs    []actionSpec
	actions  map[Action]int
}

// NewEngine checks and indexes h; it refuses duplicates, dangling parent
// links, location cycles, cross-org parents and self-shares.
func NewEngine(h Hierarchy) (*Engine, error) {
	e := &Engine{specs: actionSpecs()}
	e.actions = make(map[Action]int, len(e.specs))
	for i, s := range e.specs {
		e.actions[s.action] = i
	}
	for k := range e.index {
		e.index[k] = map[string]int32{}
	}
	add := func(k ResourceKind, id string) (int32, error) {
		if err := validID(id); err != nil {
			return 0, fmt.Errorf("build engine: %v %q: %w", k, id, err)
		}
		if _, dup := e.index[k][id]; dup {
			return 0, fmt.Errorf("build engine: duplicate %v: %w", Resource{k, id}, ErrBadHierarchy)
		}
		n := int32(len(e.nodes))
		e.nodes = append(e.nodes, node{id: id, kind: k, parent: -1, org: -1, loc: -1})
		e.index[k][id] = n
		return n, nil
	}
	find := func(k ResourceKind, id, what string) (int32, error) {
		n, ok := e.index[k][id]
		if !ok {
			return 0, fmt.Errorf("build engine: %s names unknown %v: %w", what, Resource{k, id}, ErrBadHierarchy)
		}
		return n, nil
	}

	// First every node, so parent links may point forward.
	for _, id := range h.Orgs {
		n, err := add(KindOrg, id)
		if err != nil {
			return nil, err
		}
		e.nodes[n].org = n
	}
	for _, l := range h.Locations {
		if _, err := add(KindLocation, l.ID); err != nil {
			return nil, err
		}
	}
	for _, m := range h.Machines {
		if _, err := add(KindMachine, m.ID); err != nil {
			return nil, err
		}
	}
	for _, p := range h.Parts {
		if _, err := add(KindPart, p.ID); err != nil {
			return nil, err
		}
	}
	objects := []struct {
		kind ResourceKind
		list []OrgObject
	}{{KindFragment, h.Fragments}, {KindDataset, h.Datasets}, {KindPackage, h.Packages}, {KindModule, h.Modules}}
	for _, o := range objects {
		for _, x := range o.list {
			if _, err := add(o.kind, x.ID); err != nil {
				return nil, err
			}
		}
	}

	// Then the links, kept as child lists for the numbering walk.
	children := make([][]int32, len(e.nodes))
	link := func(child, parent int32) {
		e.nodes[child].parent = parent
		children[parent] = append(children[parent], child)
	}
	for _, l := range h.Locations {
		n := e.index[KindLocation][l.ID]
		org, err := find(KindOrg, l.Org, "location/"+l.ID)
		if err != nil {
			return nil, err
		}
		e.nodes[n].org = org
		e.nodes[n].loc = n
		if l.Parent == "" {
			link(n, org)
			continue
		}
		p, err := find(KindLocation, l.Parent, "location/"+l.ID)
		if err != nil {
			return nil, err
		}
		link(n, p)
	}
	// Machines and parts come after child locations in each child list; the
	// order does not matter for intervals.
	for _, m := range h.Machines {
		n := e.index[KindMachine][m.ID]
		p, err := find(KindLocation, m.Location, "machine/"+m.ID)
		if err != nil {
			return nil, err
		}
		link(n, p)
		e.nodes[n].loc = p
	}
	for _, pt := range h.Parts {
		n := e.index[KindPart][pt.ID]
		p, err := find(KindMachine, pt.Machine, "part/"+pt.ID)
		if err != nil {
			return nil, err
		}
		link(n, p)
	}
	for _, o := range objects {
		for _, x := range o.list {
			n := e.index[o.kind][x.ID]
			org, err := find(KindOrg, x.Org, Resource{o.kind, x.ID}.String())
			if err != nil {
				return nil, err
			}
			link(n, org)
			e.nodes[n].org = org
		}
	}

	// Direct shares, deduplicated.
	direct := make([][]int32, len(e.nodes))
	e.sharedIn = make([][]int32, len(e.nodes))
	for _, s := range h.Shares {
		l, err := find(KindLocation, s.Location, "share")
		if err != nil {
			return nil, err
		}
		o, err := find(KindOrg, s.With, "share of location/"+s.Location)
		if err != nil {
			return nil, err
		}
		if e.nodes[l].org == o {
			return nil, fmt.Errorf("build engine: location/%s shared with its own org/%s: %w", s.Location, s.With, ErrBadHierarchy)
		}
		if !contains(direct[l], o) {
			direct[l] = append(direct[l], o)
			e.sharedIn[o] = append(e.sharedIn[o], l)
		}
	}

	// A location's parent must be in the same org.
	for _, l := range h.Locations {
		if l.Parent == "" {
			continue
		}
		n, p := e.index[KindLocation][l.ID], e.index[KindLocation][l.Parent]
		if e.nodes[n].org != e.nodes[p].org {
			return nil, fmt.Errorf("build engine: location/%s in org/%s has parent location/%s in org/%s: %w",
				l.ID, l.Org, l.Parent, e.nodes[e.nodes[p].org].id, ErrBadHierarchy)
		}
	}

	// Number the forest depth-first from each org; inherit shares downward.
	// Machines and parts take their org and location from their parent.
	e.sharedWith = make([][]int32, len(e.nodes))
	for i := range e.nodes {
		e.nodes[i].pre = -1
	}
	var clock int32
	var walk func(n int32, inherited []int32)
	walk = func(n int32, inherited []int32) {
		nd := &e.nodes[n]
		nd.pre = clock
		clock++
		if nd.kind == KindLocation {
			if len(direct[n]) > 0 {
				merged := append([]int32(nil), inherited...)
				for _, o := range direct[n] {
					if !contains(merged, o) {
						merged = append(merged, o)
					}
				}
				inherited = merged
			}
			e.sharedWith[n] = inherited
		}
		for _, c := range children[n] {
			switch e.nodes[c].kind {
			case KindMachine:
				e.nodes[c].org = nd.org
			case KindPart:
				e.nodes[c].org = nd.org
				e.nodes[c].loc = nd.loc
			}
			walk(c, inherited)
		}
		e.nodes[n].post = clock
	}
	for n := range e.nodes {
		if e.nodes[n].kind == KindOrg {
			walk(int32(n), nil)
		}
	}
	// Anything the walk did not reach hangs off a cycle of locations.
	for _, nd := range e.nodes {
		if nd.pre < 0 {
			return nil, fmt.Errorf("build engine: %v is not under any org (a cycle of parent locations): %w",
				Resource{nd.kind, nd.id}, ErrBadHierarchy)
		}
	}
	return e, nil
}

func contains(s []int32, x int32) bool {
	for _, y := range s {
		if y == x {
			return true
		}
	}
	return false
}
