package deptest

import (
	"context"
	"slices"
	"strings"
	"testing"
)

// TestOutpost fails when this module crosses one of its boundaries.
func TestOutpost(t *testing.T) {
	g, err := Load(context.Background(), "..")
	if err != nil {
		t.Fatal(err)
	}
	vs, err := Outpost().Check(g)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		t.Error(v)
	}
}

// loadViolations lists testdata/violations, a module with Outpost's path
// that crosses every boundary; Badger there is a local stand-in, so nothing
// is fetched.
func loadViolations(t *testing.T) *Graph {
	t.Helper()
	g, err := Load(context.Background(), "testdata/violations", "GOWORK=off", "GOPROXY=off")
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// TestEachRuleCatchesItsViolations runs Outpost's rules on the synthetic
// module: each rule must report exactly what that module does wrong, and
// none of what it does right (the store packages and their tests importing
// Badger, the PostgreSQL packages importing pgx, control listening, a Unix
// socket, tests listening, dialing, Sprintf in rbac, authz importing rbac
// and the contracts).
func TestEachRuleCatchesItsViolations(t *testing.T) {
	g := loadViolations(t)
	vs, err := Outpost().Check(g)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"import": {
			"capture: imports in its tests github.com/dgraph-io/badger/v4",
			"robot: imports github.com/dgraph-io/badger/v4",
			"cloud: imports github.com/jackc/pgx/v5",
			"sync: imports github.com/outpost-robotics/outpost/control",
		},
		"link": {
			"cmd/outpost: links github.com/dgraph-io/badger through cmd/outpost → cli → daemon → cache → github.com/dgraph-io/badger/v4",
			"cli: links github.com/dgraph-io/badger through cli → daemon → cache → github.com/dgraph-io/badger/v4",
			"cmd/outpost: links github.com/outpost-robotics/outpost/control through cmd/outpost → cli → daemon → control",
			"cli: links github.com/outpost-robotics/outpost/control through cli → daemon → control",
			"cli: links github.com/outpost-robotics/outpost/cloud through cli → cloud/relay",
			"cmd/outpost-cloud: links github.com/chromedp through cmd/outpost-cloud → web → github.com/chromedp/chromedp",
			"cmd/outpostd: links text/template through cmd/outpostd → text/template (2 of its packages)",
			"packages: links github.com/outpost-robotics/outpost/cloud through packages → cloud/relay",
		},
		"listen": {
			"robot: uses net.Listen at robot/robot.go:15",
			"sync: uses net.ListenConfig at sync/sync.go:14",
			"sync: calls a method ListenAndServeTLS at sync/sync.go:18",
			"sync: uses net/http.ListenAndServe at sync/sync.go:19",
		},
		"pure": {
			"rbac: links clock, outside the standard library, through rbac → clock",
			"rbac: imports os, a standard package that is not on its list",
			"rbac: uses fmt.Println at rbac/rbac.go:15",
			"rbac: calls the builtin println at rbac/rbac.go:16",
		},
		"leaf": {
			"authz: imports clock",
			"authz: imports in its tests capture",
			"pkgformat: imports cache",
			"pkgupload: imports daemon",
			"durable: imports clock",
		},
	}
	for _, rule := range []string{"import", "link", "listen", "pure", "leaf"} {
		t.Run(rule, func(t *testing.T) {
			var got []string
			for _, v := range vs {
				if v.Rule == rule {
					got = append(got, v.Package+": "+v.What)
					if v.Why == "" {
						t.Errorf("%s says no why", v)
					}
				}
			}
			if !slices.Equal(got, want[rule]) {
				t.Errorf("violations of %q:\ngot  %s\nwant %s", rule, strings.Join(got, "\n     "), strings.Join(want[rule], "\n     "))
			}
		})
	}
}

// TestRuleNamingAMissingPackage: a rule about a package that was renamed
// or removed is an error, not a rule that silently checks nothing.
func TestRuleNamingAMissingPackage(t *testing.T) {
	g := loadViolations(t)
	tests := []struct {
		name  string
		rules Rules
	}{
		{"import allow list", Rules{Imports: []ImportRule{{Path: Badger, Only: []string{"store"}}}}},
		{"link main", Rules{Links: []LinkRule{{Main: "cmd/gone", Path: Badger}}}},
		{"listen main", Rules{Listen: []ListenRule{{Main: "cmd/gone"}}}},
		{"listen allow list", Rules{Listen: []ListenRule{{Main: "cmd/outpostd", Only: []string{"server"}}}}},
		{"pure package", Rules{Pure: []PureRule{{Package: "subject"}}}},
		{"pure also", Rules{Pure: []PureRule{{Package: "rbac", Also: []string{"subject"}}}}},
		{"leaf package", Rules{Leaves: []LeafRule{{Package: "subject"}}}},
		{"leaf allow list", Rules{Leaves: []LeafRule{{Package: "authz", Only: []string{"api/contracts"}}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.rules.Check(g); err == nil || !strings.Contains(err.Error(), "update the rule") {
				t.Fatalf("Check = %v, want an error naming the missing package", err)
			}
		})
	}
}
