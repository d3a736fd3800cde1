package rbac

import (
	"math/rand/v2"
	"testing"
)

// BenchmarkDecide measures one decision over a cloud-sized hierarchy: 10,000
// subjects (1-3 grants each), 2,000 locations at most 6 deep in 20 orgs with
// shares, 20,000 machines each with a part. Queries mix checks near a
// subject's grants (mostly allowed) with random ones (mostly denied) over
// every action. The goal is under 1 µs and 0 allocations per decision.
func BenchmarkDecide(b *testing.B) {
	const (
		subjects = 10000
		locs     = 2000
		depth    = 6
		machines = 20000
		queries  = 1 << 14
	)
	rng := rand.New(rand.NewPCG(42, 7))
	g := generate(rng, 20, locs, depth, machines, 60)
	e, err := NewEngine(g.h)
	if err != nil {
		b.Fatal(err)
	}
	deepest := 0
	for _, l := range g.locs {
		deepest = max(deepest, len(g.ancestors(l)))
	}
	if deepest != depth {
		b.Fatalf("generated tree is %d deep, want %d", deepest, depth)
	}

	subs := make([]*Subject, subjects)
	anchor := make([]Resource, subjects)
	for i := range subs {
		m := g.machines[rng.IntN(len(g.machines))]
		chain := append([]Resource{m}, g.ancestors(m)...)
		s := &Subject{Kind: User, ID: "u", Grants: []Grant{{anyRole(rng), chain[rng.IntN(len(chain))]}}}
		for range rng.IntN(3) {
			s.Grants = append(s.Grants, Grant{anyRole(rng), g.anyScope(rng)})
		}
		subs[i], anchor[i] = s, m
	}
	type query struct {
		s *Subject
		a Action
		r Resource
	}
	actions := AllActions()
	qs := make([]query, queries)
	for i := range qs {
		n := rng.IntN(subjects)
		r := g.anyResource(rng)
		if rng.IntN(10) < 7 {
			chain := append([]Resource{anchor[n], Part("p" + anchor[n].ID)}, g.ancestors(anchor[n])...)
			r = chain[rng.IntN(len(chain))]
		}
		qs[i] = query{subs[n], actions[rng.IntN(len(actions))], r}
	}

	b.ReportAllocs()
	allowed := 0
	for i := 0; b.Loop(); i++ {
		q := &qs[i&(queries-1)]
		if e.Decide(q.s, q.a, q.r).Allowed {
			allowed++
		}
	}
	b.ReportMetric(float64(allowed)/float64(b.N), "allowed/op")
}
