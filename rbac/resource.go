package rbac

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ResourceKind is the kind of a resource or of a grant's scope.
type ResourceKind uint8

// Resource kinds. Org, location and machine are also the scope kinds of grants.
const (
	// KindNone is the zero kind; it names nothing (org.create checks use it).
	KindNone ResourceKind = iota
	// KindOrg is an organization.
	KindOrg
	// KindLocation is a location: a tree of any depth inside one organization.
	KindLocation
	// KindMachine is a machine, in one location.
	KindMachine
	// KindPart is a part, in one machine.
	KindPart
	// KindFragment is a config fragment, in one organization.
	KindFragment
	// KindDataset is a dataset, in one organization.
	KindDataset
	// KindPackage is an organization model or package, in one organization.
	KindPackage
	// KindModule is a module, in one organization.
	KindModule
)

// kindName names a kind; a switch, not a table, so nothing can change the names.
func kindName(k ResourceKind) string {
	switch k {
	case KindOrg:
		return "org"
	case KindLocation:
		return "location"
	case KindMachine:
		return "machine"
	case KindPart:
		return "part"
	case KindFragment:
		return "fragment"
	case KindDataset:
		return "dataset"
	case KindPackage:
		return "package"
	case KindModule:
		return "module"
	}
	return ""
}

// String returns the kind's name as used in "kind/ID" ("org", "location", ...).
func (k ResourceKind) String() string {
	if n := kindName(k); n != "" {
		return n
	}
	return fmt.Sprintf("ResourceKind(%d)", uint8(k))
}

// ParseResourceKind returns the kind named s ("org", "location", "machine", ...).
func ParseResourceKind(s string) (ResourceKind, error) {
	for k := KindOrg; k <= KindModule; k++ {
		if kindName(k) == s {
			return k, nil
		}
	}
	return KindNone, fmt.Errorf("parse resource kind %q: %w", s, ErrBadResource)
}

// ErrBadResource is wrapped by every error about a malformed resource name or ID.
var ErrBadResource = errors.New("bad resource")

// maxIDLen bounds IDs so a hostile name cannot make a check expensive.
const maxIDLen = 256

// Resource names one thing a check is about, such as machine/ID.
type Resource struct {
	// Kind is what the resource is.
	Kind ResourceKind
	// ID identifies it among resources of its kind.
	ID string
}

// Org, Location, Machine, Part, Fragment, Dataset, Package and Module build
// resources of their kind; they exist so call sites read like the docs.

// Org returns the resource org/id.
func Org(id string) Resource { return Resource{KindOrg, id} }

// Location returns the resource location/id.
func Location(id string) Resource { return Resource{KindLocation, id} }

// Machine returns the resource machine/id.
func Machine(id string) Resource { return Resource{KindMachine, id} }

// Part returns the resource part/id.
func Part(id string) Resource { return Resource{KindPart, id} }

// Fragment returns the resource fragment/id.
func Fragment(id string) Resource { return Resource{KindFragment, id} }

// Dataset returns the resource dataset/id.
func Dataset(id string) Resource { return Resource{KindDataset, id} }

// Package returns the resource package/id.
func Package(id string) Resource { return Resource{KindPackage, id} }

// Module returns the resource module/id.
func Module(id string) Resource { return Resource{KindModule, id} }

// String returns "kind/ID", the form ParseResource reads, or "none" for the zero resource.
func (r Resource) String() string {
	if r.Kind == KindNone && r.ID == "" {
		return "none"
	}
	return r.Kind.String() + "/" + r.ID
}

// IsZero reports whether r names nothing.
func (r Resource) IsZero() bool { return r.Kind == KindNone && r.ID == "" }

// ParseResource reads "kind/ID" (for example "machine/7f3a"), validating both halves.
func ParseResource(s string) (Resource, error) {
	kind, id, ok := strings.Cut(s, "/")
	if !ok {
		return Resource{}, fmt.Errorf("parse resource %q: want kind/ID (org, location, machine, part, fragment, dataset, package or module): %w", s, ErrBadResource)
	}
	k, err := ParseResourceKind(kind)
	if err != nil {
		return Resource{}, fmt.Errorf("parse resource %q: %w", s, err)
	}
	if err := validID(id); err != nil {
		return Resource{}, fmt.Errorf("parse resource %q: %w", s, err)
	}
	return Resource{k, id}, nil
}

// Validate reports whether r has a known kind and a well-formed ID.
func (r Resource) Validate() error {
	if kindName(r.Kind) == "" {
		return fmt.Errorf("resource %v: unknown kind: %w", r, ErrBadResource)
	}
	if err := validID(r.ID); err != nil {
		return fmt.Errorf("resource %v: %w", r, err)
	}
	return nil
}

// validID accepts non-empty printable IDs without spaces or slashes, so that
// "kind/ID" always round-trips and IDs print unambiguously in reasons and audit records.
func validID(id string) error {
	if id == "" {
		return fmt.Errorf("empty ID: %w", ErrBadResource)
	}
	if len(id) > maxIDLen {
		return fmt.Errorf("ID longer than %d bytes: %w", maxIDLen, ErrBadResource)
	}
	if !utf8.ValidString(id) {
		return fmt.Errorf("ID is not UTF-8: %w", ErrBadResource)
	}
	for _, c := range id {
		if c == '/' || unicode.IsSpace(c) || !unicode.IsPrint(c) {
			return fmt.Errorf("ID contains %q: %w", c, ErrBadResource)
		}
	}
	return nil
}

// Role is what a grant lets its holder do; Owner includes everything Operator may.
type Role uint8

// Roles, ordered so that a greater role never has less.
const (
	// RoleNone is the zero role; it is not a valid grant.
	RoleNone Role = iota
	// Operator may see and use only the CONTROL tab and equivalent APIs.
	Operator
	// Owner may see and edit everything in its scope.
	Owner
)

// String returns "owner" or "operator".
func (r Role) String() string {
	switch r {
	case Owner:
		return "owner"
	case Operator:
		return "operator"
	}
	return fmt.Sprintf("Role(%d)", uint8(r))
}

// ParseRole returns the role named "owner" or "operator".
func ParseRole(s string) (Role, error) {
	switch s {
	case "owner":
		return Owner, nil
	case "operator":
		return Operator, nil
	}
	return RoleNone, fmt.Errorf("parse role %q: want owner or operator: %w", s, ErrBadGrant)
}

// ErrBadGrant is wrapped by every error about a malformed role or grant.
var ErrBadGrant = errors.New("bad grant")

// Grant is a role on a scope: an organization, a location or a machine.
type Grant struct {
	// Role is owner or operator.
	Role Role
	// Scope is the org, location or machine the role is held on.
	Scope Resource
}

// String returns "owner of location/ID".
func (g Grant) String() string { return g.Role.String() + " of " + g.Scope.String() }

// Validate reports whether g has a known role and an org, location or machine scope.
func (g Grant) Validate() error {
	if g.Role != Owner && g.Role != Operator {
		return fmt.Errorf("grant %v: role must be owner or operator: %w", g, ErrBadGrant)
	}
	switch g.Scope.Kind {
	case KindOrg, KindLocation, KindMachine:
	default:
		return fmt.Errorf("grant %v: scope must be an org, location or machine: %w", g, ErrBadGrant)
	}
	if err := g.Scope.Validate(); err != nil {
		return fmt.Errorf("grant %v: %w", g, err)
	}
	return nil
}

// SubjectKind says whether a subject is a user or an API key.
type SubjectKind uint8

// Subject kinds.
const (
	// User is an organization member signed in as a person.
	User SubjectKind = iota + 1
	// APIKey is an API key holding roles of its own.
	APIKey
)

// String returns "user" or "apikey".
func (k SubjectKind) String() string {
	switch k {
	case User:
		return "user"
	case APIKey:
		return "apikey"
	}
	return fmt.Sprintf("SubjectKind(%d)", uint8(k))
}

// Subject is who asks: a user or an API key, with every grant it holds; their permissions add up.
type Subject struct {
	// Kind is user or apikey.
	Kind SubjectKind
	// ID identifies the user or key.
	ID string
	// Grants are the roles the subject holds; order only breaks ties in reasons.
	Grants []Grant
}

// String returns "user/ID" or "apikey/ID".
func (s *Subject) String() string {
	if s == nil {
		return "nobody"
	}
	return s.Kind.String() + "/" + s.ID
}

// same reports whether a and b are the same principal.
func same(a, b *Subject) bool {
	return a != nil && b != nil && a.Kind == b.Kind && a.ID == b.ID
}
