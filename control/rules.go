package control

import (
	"fmt"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/outpost-robotics/outpost/authz"
)

// rule is a procedure's rule as the contracts declare it (authz.Read, the
// cloud's reader) and whether the part audits its calls. On the part,
// "authenticated" means a verified credential whose subject holds a grant
// reaching this machine ("anyone with access"); "admin" (the cloud-wide
// admin) has no meaning here and is refused when building the rules.
type rule struct {
	*authz.Rule
	// audit: every decision about the call is audited.
	audit bool
}

// componentServiceName is the robot's component API, served here too. Its
// rules come from components.proto like every other service's; a test holds
// every one of them to machine.control (an operator "can see and use only
// the CONTROL tab").
const componentServiceName = "outpost.control.v1.ComponentService"

// reflectionProcedures make the gRPC reflection services need access: the schema
// is not secret, but nothing on the part answers strangers beyond Health.
var reflectionProcedures = []string{
	"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
	"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
}

// rulesFor reads the rule of every method of the services. A method without
// a rule, or naming an unknown action or the cloud's admin, is an error: a
// new RPC cannot ship undecided. Every method that does not declare
// NO_SIDE_EFFECTS is audited whatever its rule says: every call that
// changes something is an audit event.
func rulesFor(services ...protoreflect.ServiceDescriptor) (map[string]*rule, error) {
	read, err := authz.Read(services...)
	if err != nil {
		return nil, err
	}
	rules := map[string]*rule{}
	for proc, r := range read {
		if r.Marker == authz.Admin {
			return nil, fmt.Errorf("rule of %s: the marker \"admin\" means nothing on a part", proc)
		}
		rules[proc] = &rule{Rule: r, audit: r.Audit || !r.ReadOnly}
	}
	for _, proc := range reflectionProcedures {
		rules[proc] = &rule{Rule: &authz.Rule{Procedure: proc, Marker: authz.Authenticated}}
	}
	return rules, nil
}
