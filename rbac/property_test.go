package rbac

import (
	"math/rand/v2"
	"testing"
)

// Property tests over generated hierarchies with a fixed seed, so a failure
// reproduces; each checks thousands of random (subject, action, resource).

const propertyChecks = 20000

func propertyEngine(t *testing.T, seed uint64) (*Engine, *genTree, *rand.Rand) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	g := generate(rng, 4, 120, 6, 600, 12)
	e, err := NewEngine(g.h)
	if err != nil {
		t.Fatalf("build generated engine: %v", err)
	}
	return e, g, rng
}

// No grant containing the resource means deny: for reach actions (and data
// actions on a machine or part) no grant reaching it; for member and dataset
// actions no grant reaching it or held in its org.
func TestPropertyNoContainingGrantDenies(t *testing.T) {
	e, g, rng := propertyEngine(t, 1)
	actions := AllActions()
	denials := 0
	for range propertyChecks {
		s := &Subject{Kind: User, ID: "u"}
		for range 1 + rng.IntN(3) {
			s.Grants = append(s.Grants, Grant{Role: anyRole(rng), Scope: g.anyScope(rng)})
		}
		a := actions[rng.IntN(len(actions))]
		r := g.anyResource(rng)
		spec := e.specs[e.actions[a]]
		contained := false
		for _, gr := range s.Grants {
			switch {
			case g.reaches(gr.Scope, r):
				contained = true
			case spec.mode == modeMember || spec.mode == modeDataset:
				contained = contained || g.orgOf(gr.Scope) == g.orgOf(r)
			case spec.mode == modeData && (r.Kind == KindOrg || r.Kind == KindLocation):
				contained = true // a grant inside r may allow part of it; not this property
			}
		}
		if contained || spec.mode == modeNone {
			continue
		}
		denials++
		if d := e.Decide(s, a, r); d.Allowed {
			t.Fatalf("%v allowed with no grant containing the resource: %v", a, d)
		}
	}
	if denials < propertyChecks/10 {
		t.Fatalf("only %d checks exercised the property", denials)
	}
}

// An operator never has more than an owner at the same scope.
func TestPropertyOperatorNeverExceedsOwner(t *testing.T) {
	e, g, rng := propertyEngine(t, 2)
	actions := AllActions()
	for range propertyChecks {
		scope := g.anyScope(rng)
		a := actions[rng.IntN(len(actions))]
		r := g.anyResource(rng)
		op := e.Decide(&Subject{Kind: User, ID: "op", Grants: []Grant{{Operator, scope}}}, a, r)
		own := e.Decide(&Subject{Kind: User, ID: "own", Grants: []Grant{{Owner, scope}}}, a, r)
		if rank(op) > rank(own) {
			t.Fatalf("%v on %v at %v: operator %v, owner %v", a, r, scope, op, own)
		}
	}
}

// A wider scope never has less than a narrower one for the same role: a
// machine, each location above it, and its org.
func TestPropertyWiderScopeNeverHasLess(t *testing.T) {
	e, g, rng := propertyEngine(t, 3)
	actions := AllActions()
	for range propertyChecks / 4 {
		m := g.machines[rng.IntN(len(g.machines))]
		chain := append([]Resource{m}, g.ancestors(m)...)
		role := anyRole(rng)
		a := actions[rng.IntN(len(actions))]
		r := g.anyResource(rng)
		prev := -1
		for _, scope := range chain {
			d := e.Decide(&Subject{Kind: User, ID: "u", Grants: []Grant{{role, scope}}}, a, r)
			if rank(d) < prev {
				t.Fatalf("%v on %v: %v at %v has less than the narrower scope below it (%v)", a, r, role, scope, d)
			}
			prev = rank(d)
		}
	}
}

// Moving a location moves the access with it: grants on the location or
// under it decide the same before and after for everything under it; grants
// on the new parent reach it after; grants on old ancestors that are not
// ancestors of the new parent no longer do.
func TestPropertyMoveCarriesAccess(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 0x5eed))
	actions := AllActions()
	moves := 0
	for range 200 {
		g := generate(rng, 2, 60, 6, 300, 4)
		before, err := NewEngine(g.h)
		if err != nil {
			t.Fatal(err)
		}
		loc := g.locs[rng.IntN(len(g.locs))]
		dest := g.locs[rng.IntN(len(g.locs))]
		if g.orgOf(loc) != g.orgOf(dest) || dest == loc || g.reaches(loc, dest) {
			continue
		}
		moved := g.h
		moved.Locations = append([]LocationInfo(nil), g.h.Locations...)
		for i := range moved.Locations {
			if moved.Locations[i].ID == loc.ID {
				moved.Locations[i].Parent = dest.ID
			}
		}
		after, err := NewEngine(moved)
		if err != nil {
			t.Fatalf("move %v under %v: %v", loc, dest, err)
		}
		moves++
		var under []Resource
		for _, m := range append(append([]Resource{}, g.machines...), g.locs...) {
			if g.reaches(loc, m) {
				under = append(under, m)
			}
		}
		oldAncestors := g.ancestors(loc)
		for _, r := range under {
			for _, role := range []Role{Owner, Operator} {
				for _, a := range actions {
					// Grants on the location itself, and on r itself.
					for _, scope := range []Resource{loc, r} {
						if scope.Kind == KindPart {
							continue
						}
						s := &Subject{Kind: User, ID: "u", Grants: []Grant{{role, scope}}}
						if b, c := before.Decide(s, a, r), after.Decide(s, a, r); b.Allowed != c.Allowed || b.Partial != c.Partial {
							t.Fatalf("move %v under %v changed %v of %v on %v: %v -> %v", loc, dest, a, scope, r, b, c)
						}
					}
				}
				s := &Subject{Kind: User, ID: "u", Grants: []Grant{{role, dest}}}
				if r.Kind == KindMachine && !after.Decide(s, MachineControl, r).Allowed {
					t.Fatalf("after moving %v under %v, %v of the new parent cannot control %v", loc, dest, role, r)
				}
				for _, anc := range oldAncestors {
					if anc.Kind != KindLocation || g.reaches(anc, dest) {
						continue
					}
					s := &Subject{Kind: User, ID: "u", Grants: []Grant{{role, anc}}}
					if r.Kind == KindMachine && after.Decide(s, MachineControl, r).Allowed {
						t.Fatalf("after moving %v under %v, %v of old ancestor %v still controls %v", loc, dest, role, anc, r)
					}
				}
			}
		}
	}
	if moves < 50 {
		t.Fatalf("only %d moves exercised", moves)
	}
}

// The engine's interval-and-share test agrees with walking parent links, on
// a generated forest up to six deep with shares.
func TestPropertyCoversMatchesWalk(t *testing.T) {
	e, g, rng := propertyEngine(t, 5)
	for range propertyChecks {
		scope, r := g.anyScope(rng), g.anyResource(rng)
		if got, want := e.Covers(Grant{Owner, scope}, r), g.reaches(scope, r); got != want {
			t.Fatalf("Covers(%v, %v) = %v, walking says %v", scope, r, got, want)
		}
	}
}
