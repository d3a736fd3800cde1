package control

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"

	authzv1 "github.com/outpost-robotics/outpost/api/gen/outpost/authz/v1"
	"github.com/outpost-robotics/outpost/rbac"
)

// Rule markers: rule actions that are not actions of docs/ACTIONS.md. On the part,
// "authenticated" means a verified credential whose subject holds a grant
// reaching this machine ("anyone with access"); "admin" (cloud-wide admin)
// has no meaning here and is refused when building the rules.
const (
	markerPublic        = "public"
	markerAuthenticated = "authenticated"
)

// rule is what one procedure needs, read once from the descriptors.
type rule struct {
	procedure string
	marker    string      // public or authenticated; "" for an action
	action    rbac.Action // when marker is ""
	audit     bool        // the call changes state: every decision is audited
}

// componentServiceName is the robot's component API, served here too. Its
// rules come from components.proto like every other service's; a test holds
// every one of them to machine.control (an operator "can see and use only
// the CONTROL tab").
const componentServiceName = "outpost.control.v1.ComponentService"

// readOnly reports whether a method declares NO_SIDE_EFFECTS.
func readOnly(md protoreflect.MethodDescriptor) bool {
	opts, _ := md.Options().(*descriptorpb.MethodOptions)
	return opts.GetIdempotencyLevel() == descriptorpb.MethodOptions_NO_SIDE_EFFECTS
}

// reflectionProcedures make the gRPC reflection services need access: the schema
// is not secret, but nothing on the part answers strangers beyond Health.
var reflectionProcedures = []string{
	"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
	"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
}

// rulesFor reads the rule of every method of the services. A method without
// a rule, or naming an unknown action, is an error: a new RPC cannot ship
// undecided. Every method that does not declare NO_SIDE_EFFECTS is audited
// whatever its rule says: every call that changes something is an audit event.
func rulesFor(services ...protoreflect.ServiceDescriptor) (map[string]*rule, error) {
	rules := map[string]*rule{}
	for _, sd := range services {
		methods := sd.Methods()
		for i := range methods.Len() {
			md := methods.Get(i)
			proc := "/" + string(sd.FullName()) + "/" + string(md.Name())
			r, err := ruleOf(md)
			if err != nil {
				return nil, fmt.Errorf("rule of %s: %w", proc, err)
			}
			r.procedure = proc
			r.audit = r.audit || !readOnly(md)
			rules[proc] = r
		}
	}
	for _, proc := range reflectionProcedures {
		rules[proc] = &rule{procedure: proc, marker: markerAuthenticated}
	}
	return rules, nil
}

var errNoRule = errors.New("no (outpost.authz.v1.rule) action")

func ruleOf(md protoreflect.MethodDescriptor) (*rule, error) {
	r, _ := proto.GetExtension(md.Options(), authzv1.E_Rule).(*authzv1.Rule)
	if r == nil || r.GetAction() == "" {
		return nil, errNoRule
	}
	out := &rule{audit: r.GetAudit()}
	switch a := r.GetAction(); a {
	case markerPublic, markerAuthenticated:
		out.marker = a
	default:
		act, err := rbac.ParseAction(a)
		if err != nil {
			return nil, fmt.Errorf("action %q (markers \"admin\" and list_action mean nothing on a part): %w", a, err)
		}
		out.action = act
	}
	return out, nil
}
