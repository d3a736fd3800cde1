package authz_test

import (
	"reflect"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"

	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	"github.com/outpost-robotics/outpost/authz"
	"github.com/outpost-robotics/outpost/rbac"
)

// decided are the contracts whose every RPC is decided by a rule: the
// fleet API and the relay (the cloud), the control and component APIs (a
// part). The sync API is not: a part calls it with its own secret, for its
// own data only (cloud/partsync).
var decided = []protoreflect.FileDescriptor{
	fleetv1.File_outpost_fleet_v1_fleet_proto,
	fleetv1.File_outpost_fleet_v1_relay_proto,
	fleetv1.File_outpost_fleet_v1_dataset_proto,
	controlv1.File_outpost_control_v1_control_proto,
	controlv1.File_outpost_control_v1_components_proto,
}

func services(files ...protoreflect.FileDescriptor) []protoreflect.ServiceDescriptor {
	var out []protoreflect.ServiceDescriptor
	for _, f := range files {
		for i := range f.Services().Len() {
			out = append(out, f.Services().Get(i))
		}
	}
	return out
}

// TestEveryRPCHasOneRule: every method of every decided service has
// exactly one rule, under its procedure, and a service's rules read alone
// are the rules read with all the others: the cloud (which reads the fleet
// services) and a part (which reads the control services) read the same
// typed rule from the same declaration.
func TestEveryRPCHasOneRule(t *testing.T) {
	all, err := authz.Read(services(decided...)...)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, sd := range services(decided...) {
		alone, err := authz.Read(sd)
		if err != nil {
			t.Fatal(err)
		}
		methods := sd.Methods()
		if len(alone) != methods.Len() {
			t.Errorf("%s: %d rules for %d methods", sd.FullName(), len(alone), methods.Len())
		}
		for i := range methods.Len() {
			n++
			proc := "/" + string(sd.FullName()) + "/" + string(methods.Get(i).Name())
			r := alone[proc]
			if r == nil || r.Procedure != proc {
				t.Errorf("%s: rule %+v", proc, r)
				continue
			}
			if !reflect.DeepEqual(r, all[proc]) {
				t.Errorf("%s: read alone %+v, with the others %+v", proc, r, all[proc])
			}
			if (r.Marker == authz.NoMarker) == (r.Action == "") {
				t.Errorf("%s: a rule is a marker or an action: %+v", proc, r)
			}
		}
	}
	if len(all) != n || n < 90 {
		t.Fatalf("%d rules for %d methods", len(all), n)
	}
}

// TestRulesReadAsDeclared holds a sample of the declarations to what Read
// makes of them.
func TestRulesReadAsDeclared(t *testing.T) {
	rules, err := authz.Read(services(decided...)...)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		proc            string
		name            string
		audit, readOnly bool
		resources       []string
		listAction      rbac.Action
	}{
		{"/outpost.fleet.v1.AuthService/SignIn", "public", false, false, nil, ""},
		{"/outpost.fleet.v1.AuthService/WhoAmI", "authenticated", false, true, nil, ""},
		{"/outpost.fleet.v1.OrgService/CreateOrg", "org.create", true, false, nil, ""},
		{"/outpost.fleet.v1.MachineService/RenameMachine", "machine.rename", true, false, []string{"machine"}, ""},
		{"/outpost.fleet.v1.MachineService/ListMachines", "authenticated", false, true, nil, rbac.MachineControl},
		{"/outpost.fleet.v1.RoleService/GrantRole", "role.change", true, false, []string{"scope"}, ""},
		{"/outpost.control.v1.ControlService/Health", "public", false, true, nil, ""},
		{"/outpost.control.v1.ControlService/WhoAmI", "authenticated", false, true, nil, ""},
		{"/outpost.control.v1.ComponentService/DoCommand", "machine.control", true, false, nil, ""},
		{"/outpost.control.v1.ComponentService/SensorReadings", "machine.control", false, true, nil, ""},
	} {
		r := rules[tc.proc]
		if r == nil {
			t.Errorf("%s: no rule", tc.proc)
			continue
		}
		var kinds []string
		for _, rf := range r.Resources {
			kinds = append(kinds, rf.Kind)
		}
		if r.Name() != tc.name || r.Audit != tc.audit || r.ReadOnly != tc.readOnly || !reflect.DeepEqual(kinds, tc.resources) || r.ListAction != tc.listAction {
			t.Errorf("%s: %s audit %v read-only %v resources %v list %q; want %s %v %v %v %q",
				tc.proc, r.Name(), r.Audit, r.ReadOnly, kinds, r.ListAction, tc.name, tc.audit, tc.readOnly, tc.resources, tc.listAction)
		}
	}
}
