package authz

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/outpost-robotics/outpost/rbac"
)

// Kind is what sort of subject calls.
type Kind uint8

// Subject kinds.
const (
	// KindUser is a person, signed in with a session.
	KindUser Kind = iota + 1
	// KindAPIKey is an API key holding roles of its own.
	KindAPIKey
	// KindLocal is the local peer of a part's break-glass socket, by uid.
	KindLocal
)

var kindNames = [...]string{KindUser: "user", KindAPIKey: "apikey", KindLocal: "local"}

// String returns "user", "apikey" or "local".
func (k Kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// MaxIDLen bounds a subject's ID: an ID the cloud makes, a uid, or (in
// fleet API requests naming a user) an email address.
const MaxIDLen = 320

// Subject names who calls: a user, an API key or the break-glass socket's
// peer. Its one spelling is "kind/ID" (String), the spelling of rbac's
// subjects and resources; Parse also reads "kind:ID", which the cloud wrote
// into its store and audit records, and which the fleet API accepted,
// before there was one spelling.
type Subject struct {
	Kind Kind
	ID   string
}

// User is the subject of the user id.
func User(id string) Subject { return Subject{Kind: KindUser, ID: id} }

// APIKey is the subject of the API key id.
func APIKey(id string) Subject { return Subject{Kind: KindAPIKey, ID: id} }

// Local is the subject of the break-glass socket's peer with uid.
func Local(uid uint32) Subject {
	return Subject{Kind: KindLocal, ID: strconv.FormatUint(uint64(uid), 10)}
}

// FromRBAC is the subject rbac knows as kind and id.
func FromRBAC(kind rbac.SubjectKind, id string) Subject {
	switch kind {
	case rbac.User:
		return User(id)
	case rbac.APIKey:
		return APIKey(id)
	}
	return Subject{}
}

// ErrSubject marks a string that is not a subject.
var ErrSubject = errors.New("not a subject")

// Parse reads "kind/ID", or the old spelling "kind:ID", where kind is
// user, apikey or local and ID is 1 to MaxIDLen bytes of printable UTF-8
// without spaces. Errors wrap ErrSubject and quote at most a short,
// printable prefix of s.
func Parse(s string) (Subject, error) {
	i := strings.IndexAny(s, "/:")
	if i < 0 {
		return Subject{}, fmt.Errorf("subject %s: want user/ID, apikey/ID or local/UID: %w", quote(s), ErrSubject)
	}
	var k Kind
	switch s[:i] {
	case "user":
		k = KindUser
	case "apikey":
		k = KindAPIKey
	case "local":
		k = KindLocal
	default:
		return Subject{}, fmt.Errorf("subject %s: kind is user, apikey or local: %w", quote(s), ErrSubject)
	}
	id := s[i+1:]
	if id == "" || len(id) > MaxIDLen {
		return Subject{}, fmt.Errorf("subject %s: the ID has 1 to %d characters: %w", quote(s), MaxIDLen, ErrSubject)
	}
	if !utf8.ValidString(id) || strings.ContainsFunc(id, func(r rune) bool { return !unicode.IsPrint(r) || unicode.IsSpace(r) }) {
		return Subject{}, fmt.Errorf("subject %s: the ID is printable UTF-8 without spaces: %w", quote(s), ErrSubject)
	}
	return Subject{Kind: k, ID: id}, nil
}

// quote is s for an error message: printable, and short.
func quote(s string) string {
	const max = 40
	if len(s) > max {
		return strconv.QuoteToASCII(strings.ToValidUTF8(s[:max], "")) + "..."
	}
	return strconv.QuoteToASCII(s)
}

// String is the subject's one spelling, "kind/ID"; "" for the zero Subject.
func (s Subject) String() string {
	if s.IsZero() {
		return ""
	}
	return s.Kind.String() + "/" + s.ID
}

// Legacy is the spelling "kind:ID" the cloud's store keyed grants by
// before there was one spelling: only for finding those records, never
// written.
func (s Subject) Legacy() string {
	if s.IsZero() {
		return ""
	}
	return s.Kind.String() + ":" + s.ID
}

// IsZero reports whether s names nobody.
func (s Subject) IsZero() bool { return s == Subject{} }

// RBACKind is the kind rbac decides s as: users and API keys are rbac's
// subjects; the break-glass peer is decided as a user (see control).
func (s Subject) RBACKind() rbac.SubjectKind {
	if s.Kind == KindAPIKey {
		return rbac.APIKey
	}
	return rbac.User
}
