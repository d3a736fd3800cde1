package cloud

import (
	"strings"
	"testing"
	"unicode/utf8"
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
