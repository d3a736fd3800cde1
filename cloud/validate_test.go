package cloud

import (
	"context"
	"strings"
	"testing"
	"unicode/utf8"

	"connectrpc.com/connect"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	"github.com/outpost-robotics/outpost/cloud/store"
)

func TestValidators(t *testing.T) {
	names := []struct {
		in string
		ok bool
	}{
		{"Plant 1", true}, {"Ünïcode ✓", true}, {"", false}, {" lead", false}, {"trail ", false},
		{"tab\there", false}, {strings.Repeat("é", 100), true}, {strings.Repeat("é", 101), false}, {"\xff", false},
	}
	for _, tc := range names {
		if err := validName("name", tc.in); (err == nil) != tc.ok {
			t.Errorf("validName(%q) = %v", tc.in, err)
		}
	}
	emails := []struct {
		in string
		ok bool
	}{
		{"a@b.c", true}, {"a@", false}, {"@b", false}, {"a b@c", false}, {"a@b@c", false}, {strings.Repeat("a", 250) + "@b.co", false},
	}
	for _, tc := range emails {
		if err := validEmail(tc.in); (err == nil) != tc.ok {
			t.Errorf("validEmail(%q) = %v", tc.in, err)
		}
	}
	if !validID("0123456789abcdef0123456789abcdef") || validID("0123456789ABCDEF0123456789abcdef") || validID("x") {
		t.Error("validID")
	}
}

// FuzzValidators: outside input never panics a validator, and whatever is
// accepted fits the documented bounds.
func FuzzValidators(f *testing.F) {
	f.Add("Plant 1")
	f.Add("a@b.c")
	f.Fuzz(func(t *testing.T, s string) {
		if validName("name", s) == nil && (utf8.RuneCountInString(s) > maxNameLen || !utf8.ValidString(s) || s == "") {
			t.Fatalf("accepted name %q", s)
		}
		if validEmail(normalizeEmail(s)) == nil && (len(normalizeEmail(s)) > maxEmailLen || !strings.Contains(s, "@")) {
			t.Fatalf("accepted email %q", s)
		}
		if validID(s) && len(s) != 32 {
			t.Fatalf("accepted ID %q", s)
		}
	})
}

// TestNoEmailProbing: a caller who may not change roles learns nothing
// about which emails have accounts.
func TestNoEmailProbing(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	s := newSide()
	e.update(func(ctx context.Context, tx store.Tx) error { return s.write(ctx, tx) })
	op := e.client(e.token(s.t)) // operator of machine M
	for _, subject := range []string{"user:nobody@example.com", "user:" + s.t2 + "@x.org"} {
		_, err := op.role.GrantRole(ctx, req(&fleetv1.GrantRoleRequest{Subject: subject, Role: "operator", Scope: "machine/" + s.m}))
		wantCode(t, err, connect.CodePermissionDenied, "")
		_, err = op.access.CheckAccess(ctx, req(&fleetv1.CheckAccessRequest{Subject: subject, Action: "machine.view", Resource: "location/" + s.l}))
		wantCode(t, err, connect.CodePermissionDenied, "")
	}
	// An owner is told the subject does not exist.
	admin := e.client(e.adminToken)
	_, err := admin.role.GrantRole(ctx, req(&fleetv1.GrantRoleRequest{Subject: "user:nobody@example.com", Role: "operator", Scope: "machine/" + s.m}))
	wantCode(t, err, connect.CodeNotFound, "outpost user create")
}
