package authz

import (
	"errors"
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"

	authzv1 "github.com/outpost-robotics/outpost/api/gen/outpost/authz/v1"
	"github.com/outpost-robotics/outpost/rbac"
)

// Marker is a rule that is not an action of docs/ACTIONS.md.
type Marker uint8

// Markers.
const (
	// NoMarker: the rule is an action, decided by rbac.
	NoMarker Marker = iota
	// Public: no credential is needed.
	Public
	// Authenticated: any authenticated subject (on a part: one whose
	// grants reach the part's machine).
	Authenticated
	// Admin: the cloud's admin only.
	Admin
)

var markerNames = [...]string{Public: "public", Authenticated: "authenticated", Admin: "admin"}

// String returns the marker as the contracts spell it ("" for NoMarker).
func (m Marker) String() string {
	if int(m) < len(markerNames) {
		return markerNames[m]
	}
	return fmt.Sprintf("Marker(%d)", uint8(m))
}

// ResourceKinds are the values (outpost.authz.v1.field).resource may take:
// a kind whose ID the field holds, "scope" ("kind/ID"), or a record that
// is resolved to its scope.
var ResourceKinds = []string{"org", "location", "machine", "part", "scope", "invite", "apikey", "fragment", "alert", "dataset"}

// ResourceField is a request field naming the resource a call acts on.
type ResourceField struct {
	Field protoreflect.FieldDescriptor
	// Kind is one of ResourceKinds.
	Kind string
}

// Rule is one RPC's (outpost.authz.v1.rule) and its marked request fields,
// read from the descriptors once.
type Rule struct {
	// Procedure is "/package.Service/Method".
	Procedure string
	// Marker is set for a rule that is not an action; Action otherwise.
	Marker Marker
	Action rbac.Action
	// ListAction, on a list call, is what each returned item must allow.
	ListAction rbac.Action
	// Audit is the rule's own audit flag.
	Audit bool
	// ReadOnly says the method declares NO_SIDE_EFFECTS.
	ReadOnly bool
	// Resources are the fields marked with a resource kind.
	Resources []ResourceField
	// The fields marked destination, grant_role, grant_subject and self,
	// when there are.
	Destination, GrantRole, GrantSubject, Self protoreflect.FieldDescriptor
}

// Name is the rule's action, or its marker's name.
func (r *Rule) Name() string {
	if r.Marker != NoMarker {
		return r.Marker.String()
	}
	return string(r.Action)
}

// Rules are rules by procedure.
type Rules map[string]*Rule

// ErrNoRule marks a method without a (outpost.authz.v1.rule) action.
var ErrNoRule = errors.New("no (outpost.authz.v1.rule) action")

// Read reads the rule of every method of the services. A method without a
// rule, with an unknown action or marker, or with a field marked with an
// unknown resource kind or on a field that is not a string, is an error:
// a new RPC cannot ship undecided.
func Read(services ...protoreflect.ServiceDescriptor) (Rules, error) {
	rules := Rules{}
	for _, sd := range services {
		methods := sd.Methods()
		for i := range methods.Len() {
			md := methods.Get(i)
			proc := "/" + string(sd.FullName()) + "/" + string(md.Name())
			r, err := ReadMethod(md)
			if err != nil {
				return nil, fmt.Errorf("rule of %s: %w", proc, err)
			}
			rules[proc] = r
		}
	}
	return rules, nil
}

// ReadMethod reads one method's rule.
func ReadMethod(md protoreflect.MethodDescriptor) (*Rule, error) {
	pr, _ := proto.GetExtension(md.Options(), authzv1.E_Rule).(*authzv1.Rule)
	if pr == nil || pr.GetAction() == "" {
		return nil, ErrNoRule
	}
	opts, _ := md.Options().(*descriptorpb.MethodOptions)
	r := &Rule{
		Procedure: "/" + string(md.Parent().FullName()) + "/" + string(md.Name()),
		Audit:     pr.GetAudit(),
		ReadOnly:  opts.GetIdempotencyLevel() == descriptorpb.MethodOptions_NO_SIDE_EFFECTS,
	}
	switch a := pr.GetAction(); a {
	case "public":
		r.Marker = Public
	case "authenticated":
		r.Marker = Authenticated
	case "admin":
		r.Marker = Admin
	default:
		act, err := rbac.ParseAction(a)
		if err != nil {
			return nil, err
		}
		r.Action = act
	}
	if la := pr.GetListAction(); la != "" {
		act, err := rbac.ParseAction(la)
		if err != nil {
			return nil, fmt.Errorf("list_action: %w", err)
		}
		r.ListAction = act
	}
	fields := md.Input().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		f, _ := proto.GetExtension(fd.Options(), authzv1.E_Field).(*authzv1.Field)
		if f == nil {
			continue
		}
		if fd.Kind() != protoreflect.StringKind {
			return nil, fmt.Errorf("field %s: marked fields are strings", fd.Name())
		}
		if k := f.GetResource(); k != "" {
			if !slices.Contains(ResourceKinds, k) {
				return nil, fmt.Errorf("field %s: unknown resource kind %q", fd.Name(), k)
			}
			r.Resources = append(r.Resources, ResourceField{Field: fd, Kind: k})
		}
		if f.GetDestination() {
			r.Destination = fd
		}
		if f.GetGrantRole() {
			r.GrantRole = fd
		}
		if f.GetGrantSubject() {
			r.GrantSubject = fd
		}
		if f.GetSelf() {
			r.Self = fd
		}
	}
	return r, nil
}
