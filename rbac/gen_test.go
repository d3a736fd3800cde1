package rbac

import (
	"fmt"
	"math/rand/v2"
)

// genTree is a generated hierarchy plus the plain parent links and shares it
// was made from, so tests can answer questions by walking, independently of
// the engine's interval numbering.
type genTree struct {
	h        Hierarchy
	parent   map[Resource]Resource
	shares   map[string][]string // location ID -> org IDs it is shared with
	orgs     []Resource
	locs     []Resource
	machines []Resource
	parts    []Resource
	datasets []Resource
}

// generate builds a random forest: orgs, locations at most maxDepth deep
// (top level is depth 1), machines each with one part, a few shares, and one
// dataset and fragment per org.
func generate(rng *rand.Rand, orgs, locs, maxDepth, machines, shares int) *genTree {
	g := &genTree{parent: map[Resource]Resource{}, shares: map[string][]string{}}
	for i := range orgs {
		id := fmt.Sprintf("o%d", i)
		g.h.Orgs = append(g.h.Orgs, id)
		g.orgs = append(g.orgs, Org(id))
		g.h.Datasets = append(g.h.Datasets, OrgObject{ID: "ds" + id, Org: id})
		g.h.Fragments = append(g.h.Fragments, OrgObject{ID: "fr" + id, Org: id})
		g.parent[Dataset("ds"+id)] = Org(id)
		g.parent[Fragment("fr"+id)] = Org(id)
		g.datasets = append(g.datasets, Dataset("ds"+id))
	}
	depth := map[string]int{}
	orgOf := map[string]string{}
	byOrg := map[string][]string{}
	for i := range locs {
		id := fmt.Sprintf("l%d", i)
		org := g.h.Orgs[rng.IntN(orgs)]
		parent := ""
		if cands := byOrg[org]; len(cands) > 0 && rng.IntN(10) > 1 {
			if p := cands[rng.IntN(len(cands))]; depth[p] < maxDepth {
				parent = p
			}
		}
		depth[id] = depth[parent] + 1
		orgOf[id] = org
		byOrg[org] = append(byOrg[org], id)
		g.h.Locations = append(g.h.Locations, LocationInfo{ID: id, Org: org, Parent: parent})
		g.locs = append(g.locs, Location(id))
		if parent == "" {
			g.parent[Location(id)] = Org(org)
		} else {
			g.parent[Location(id)] = Location(parent)
		}
	}
	for range shares {
		if orgs < 2 {
			break
		}
		l := g.h.Locations[rng.IntN(len(g.h.Locations))]
		with := g.h.Orgs[rng.IntN(orgs)]
		if with == l.Org {
			continue
		}
		g.h.Shares = append(g.h.Shares, Share{Location: l.ID, With: with})
		g.shares[l.ID] = append(g.shares[l.ID], with)
	}
	for i := range machines {
		id := fmt.Sprintf("m%d", i)
		loc := g.h.Locations[rng.IntN(len(g.h.Locations))].ID
		g.h.Machines = append(g.h.Machines, MachineInfo{ID: id, Location: loc})
		g.h.Parts = append(g.h.Parts, PartInfo{ID: "p" + id, Machine: id})
		g.machines = append(g.machines, Machine(id))
		g.parts = append(g.parts, Part("p"+id))
		g.parent[Machine(id)] = Location(loc)
		g.parent[Part("p"+id)] = Machine(id)
	}
	return g
}

// reaches walks up from r: does a grant scoped at scope reach it?
func (g *genTree) reaches(scope, r Resource) bool {
	for x, ok := r, true; ok; x, ok = g.parent[x] {
		if x == scope {
			return true
		}
		if scope.Kind == KindOrg && x.Kind == KindLocation {
			for _, o := range g.shares[x.ID] {
				if o == scope.ID {
					return true
				}
			}
		}
	}
	return false
}

// orgOf walks up to r's owning org.
func (g *genTree) orgOf(r Resource) Resource {
	for r.Kind != KindOrg {
		r = g.parent[r]
	}
	return r
}

// ancestors returns r's primary ancestors, nearest first, ending at the org.
func (g *genTree) ancestors(r Resource) []Resource {
	var out []Resource
	for x, ok := g.parent[r]; ok; x, ok = g.parent[x] {
		out = append(out, x)
	}
	return out
}

// anyResource picks a resource of any kind a check may name.
func (g *genTree) anyResource(rng *rand.Rand) Resource {
	switch rng.IntN(5) {
	case 0:
		return g.orgs[rng.IntN(len(g.orgs))]
	case 1:
		return g.locs[rng.IntN(len(g.locs))]
	case 2:
		return g.parts[rng.IntN(len(g.parts))]
	case 3:
		return g.datasets[rng.IntN(len(g.datasets))]
	}
	return g.machines[rng.IntN(len(g.machines))]
}

// anyScope picks a grant scope of any kind.
func (g *genTree) anyScope(rng *rand.Rand) Resource {
	switch rng.IntN(3) {
	case 0:
		return g.orgs[rng.IntN(len(g.orgs))]
	case 1:
		return g.locs[rng.IntN(len(g.locs))]
	}
	return g.machines[rng.IntN(len(g.machines))]
}

func anyRole(rng *rand.Rand) Role {
	if rng.IntN(2) == 0 {
		return Owner
	}
	return Operator
}

// rank orders decisions: denied < partial < full.
func rank(d Decision) int {
	switch {
	case !d.Allowed:
		return 0
	case d.Partial:
		return 1
	}
	return 2
}
