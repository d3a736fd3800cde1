package cloud

import (
	"testing"

	"github.com/outpost-robotics/outpost/authz"
	"github.com/outpost-robotics/outpost/rbac"
)

// TestEveryRPCDeclaresARule is the contract's guard: every method of every
// fleet service has an (outpost.authz.v1.rule) the interceptor understands.
func TestEveryRPCDeclaresARule(t *testing.T) {
	rules, err := rulesFor(Services()...)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, sd := range Services() {
		n += sd.Methods().Len()
	}
	if len(rules) != n || n < 40 {
		t.Fatalf("%d rules for %d methods", len(rules), n)
	}
	for proc, r := range rules {
		if r.Marker != authz.NoMarker {
			continue
		}
		for _, rf := range r.Resources {
			switch rf.Kind {
			case "scope", "invite", "apikey", "alert":
				continue
			case "dataset":
				// Resolved to its organization (authz.go).
				if !accepts(r.Action, rbac.KindOrg) {
					t.Errorf("%s: %s cannot name an org (field %s, a dataset)", proc, r.Action, rf.Field.Name())
				}
				continue
			}
			if !accepts(r.Action, mustKind(t, rf.Kind)) {
				t.Errorf("%s: %s cannot name a %s (field %s)", proc, r.Action, rf.Kind, rf.Field.Name())
			}
		}
	}
}

func mustKind(t *testing.T, k string) rbac.ResourceKind {
	t.Helper()
	kind, err := rbac.ParseResourceKind(k)
	if err != nil {
		t.Fatal(err)
	}
	return kind
}
