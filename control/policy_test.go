package control

import (
	"testing"

	"github.com/outpost-robotics/outpost/rbac"
)

// TestDecideIsTheEngines holds the policy's kept decisions to the engine's:
// for every principal of the fixture's bundle and every action, asked twice
// (the second answer comes from the cache), the answer and its reason are
// the engine's; a new bundle's policy answers from its own grants.
func TestDecideIsTheEngines(t *testing.T) {
	c := newCreds()
	b := c.bundle(1, t0)
	p := newPolicy(b)
	if p.err != nil {
		t.Fatal(p.err)
	}
	for _, tc := range []struct {
		name string
		pr   *principal
	}{
		{"owner user", p.users[ownerUser]},
		{"operator user", p.users[opUser]},
		{"owner key", p.keys[ownerKey]},
		{"operator key", p.keys[opKey]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.pr == nil {
				t.Fatal("principal missing from the fixture's bundle")
			}
			for _, a := range rbac.AllActions() {
				want := p.engine.Decide(&tc.pr.subject, a, p.machine)
				for range 2 {
					if got := p.decide(tc.pr, a); got.allowed != want.Allowed || got.reason != want.String() {
						t.Fatalf("%s: decide = %+v, engine says %v %q", a, got, want.Allowed, want.String())
					}
				}
			}
		})
	}
	// The operator key loses its grant in the next bundle: the new policy
	// knows nothing of the old one's answers.
	before := p.decide(p.keys[opKey], rbac.MachineControl)
	if !before.allowed {
		t.Fatalf("operator key refused machine.control: %s", before.reason)
	}
	b2 := c.bundle(2, t0)
	for _, pr := range b2.GetPrincipals() {
		if pr.GetId() == opKey {
			pr.Grants = nil
		}
	}
	p2 := newPolicy(b2)
	if after := p2.decide(p2.keys[opKey], rbac.MachineControl); after.allowed {
		t.Fatalf("the new bundle's policy allowed what it no longer grants: %s", after.reason)
	}
	if p.machineRef != p.machine.String() || p2.machineRef != "machine/m1" {
		t.Fatalf("machineRef %q, %q", p.machineRef, p2.machineRef)
	}
}

// TestGrowStackAllocatesNothing holds growStack to the stack: its frame
// moved to the heap would cost every call an allocation of 12 KiB.
func TestGrowStackAllocatesNothing(t *testing.T) {
	if n := testing.AllocsPerRun(100, growStack); n != 0 {
		t.Fatalf("growStack allocates %v times a call", n)
	}
}
