package authz

import (
	"errors"
	"strings"
	"testing"

	"github.com/outpost-robotics/outpost/rbac"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Subject
	}{
		{"user/0123456789abcdef0123456789abcdef", User("0123456789abcdef0123456789abcdef")},
		{"apikey/k1", APIKey("k1")},
		{"local/1000", Local(1000)},
		{"user/bob@example.com", User("bob@example.com")},
		{"user/josé@example.com", User("josé@example.com")},
		// The first separator divides: an ID may hold the other one.
		{"user/a:b", User("a:b")},
		{"user:a/b@example.com", User("a/b@example.com")},
	} {
		got, err := Parse(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("Parse(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

// TestParseReadsTheOldSpelling: what was written before there was one
// spelling still reads as the same subject. The cloud's store keyed grants
// by "user:ID" and "apikey:ID" and wrote them into audit records, config
// revisions and proposals; the fleet API took "user:EMAIL"; a part's audit
// records, proposals and the relay's assertions have "user/ID".
func TestParseReadsTheOldSpelling(t *testing.T) {
	for _, tc := range []struct {
		old  string
		want Subject
	}{
		{"user:0123456789abcdef0123456789abcdef", User("0123456789abcdef0123456789abcdef")},
		{"apikey:fedcba9876543210fedcba9876543210", APIKey("fedcba9876543210fedcba9876543210")},
		{"user:bob@example.com", User("bob@example.com")},
		{"user/0123456789abcdef0123456789abcdef", User("0123456789abcdef0123456789abcdef")},
		{"apikey/k1", APIKey("k1")},
		{"local/0", Local(0)},
	} {
		got, err := Parse(tc.old)
		if err != nil || got != tc.want {
			t.Errorf("Parse(%q) = %v, %v; want %v", tc.old, got, err, tc.want)
		}
		if got.Legacy() != strings.Replace(got.String(), "/", ":", 1) {
			t.Errorf("%v: Legacy %q", got, got.Legacy())
		}
	}
}

// TestParseRefusesHostileValues: nothing but a kind, one separator and a
// printable ID parses, and the error quotes little of the input.
func TestParseRefusesHostileValues(t *testing.T) {
	for _, in := range []string{
		"", "user", "user/", "user:", "/id", ":id", "admin/1", "USER/1", "org/1", "part/1",
		"user/ 1", "user/1 ", "user/a\tb", "user/a\nb", "user/a\x00b", "user/\u202e1", "user/\xff",
		"user/" + strings.Repeat("a", MaxIDLen+1), " user/1", "user\\1", "user//",
		"apikey/" + strings.Repeat("\x00", 4096),
	} {
		s, err := Parse(in)
		if in == "user//" {
			// "/" is printable: the ID is "/", a string no store holds.
			if err != nil || s != User("/") {
				t.Errorf("Parse(%q) = %v, %v", in, s, err)
			}
			continue
		}
		if err == nil || !errors.Is(err, ErrSubject) || !s.IsZero() {
			t.Errorf("Parse(%q) = %v, %v; want an ErrSubject", in, s, err)
			continue
		}
		if len(err.Error()) > 200 {
			t.Errorf("Parse(%.20q): the error quotes too much: %d bytes", in, len(err.Error()))
		}
	}
}

// TestSubjectSpellsLikeRBAC: a subject's spelling is rbac's, so decisions,
// audit records and grants name a subject the same way.
func TestSubjectSpellsLikeRBAC(t *testing.T) {
	for _, s := range []*rbac.Subject{{Kind: rbac.User, ID: "u1"}, {Kind: rbac.APIKey, ID: "k1"}} {
		got := FromRBAC(s.Kind, s.ID)
		if got.String() != s.String() || got.RBACKind() != s.Kind {
			t.Errorf("%v: %q, rbac %q", s, got, s.String())
		}
	}
	if (Subject{}).String() != "" || !FromRBAC(0, "x").IsZero() {
		t.Error("the zero subject")
	}
}

// FuzzParse: Parse never panics; what it accepts spells back to a string
// that parses to the same subject.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"user/u1", "apikey:k1", "local/0", "user:bob@example.com", "user/", "x/y", "user/\xff", "user/a/b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, err := Parse(in)
		if err != nil {
			if !errors.Is(err, ErrSubject) {
				t.Fatalf("Parse(%q): %v is no ErrSubject", in, err)
			}
			return
		}
		again, err := Parse(s.String())
		if err != nil || again != s {
			t.Fatalf("Parse(%q) = %v; its spelling %q reads %v, %v", in, s, s.String(), again, err)
		}
		if legacy, err := Parse(s.Legacy()); err != nil || legacy != s {
			t.Fatalf("Parse(%q) = %v; its old spelling reads %v, %v", in, s, legacy, err)
		}
	})
}
