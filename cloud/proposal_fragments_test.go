package cloud_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
)

// TestAcceptedEditKeepsTheMachineOnItsFragments: a part edits the merged
// config it runs and proposes it with the fragment versions it came from.
// Accepting it (by an owner, or at once with an owner's signature) keeps
// only what differs from the fragments as the machine's own: an edited
// fragment entry becomes a machine-level override, the rest stays the
// fragment's, so a later fragment revision still reaches the machine. An
// edit removing a fragment's entry is refused, saying where to remove it.
func TestAcceptedEditKeepsTheMachineOnItsFragments(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	f := newFleet(t, e) // fragment "drive": left, right, log debug; the machine's own: right, lift
	admin := e.client(e.adminToken)
	p := e.part(t, f.boot)
	p.pull(t)
	current := func() *fleetv1.GetMachineConfigResponse {
		return check(admin.Config.GetMachineConfig(ctx, req(&fleetv1.GetMachineConfigRequest{MachineId: f.machine})))(t)
	}
	names := func(c *configv1.RobotConfig) []string {
		var out []string
		for _, x := range c.GetComponents() {
			v := x.GetModel()
			if x.GetAttributes() != nil {
				v = "edited"
			}
			out = append(out, x.GetName()+":"+v)
		}
		slices.Sort(out)
		return out
	}
	seq := uint64(0)
	propose := func(cfg *configv1.RobotConfig, base uint64, frags []*syncv1.FragmentVersion, en *syncv1.Endorsement) *fleetv1.ConfigProposal {
		t.Helper()
		seq++
		p.upload(t, "proposals", record(t, seq, e.clk.Now(), &syncv1.ConfigProposal{BaseRevision: base, Config: cfg, Fragments: frags, Endorsement: en}))
		props := check(admin.Config.ListConfigProposals(ctx, req(&fleetv1.ListConfigProposalsRequest{MachineId: f.machine})))(t).GetProposals()
		return props[len(props)-1]
	}

	// A field edit of the fragment's "left", waiting for an owner.
	cur := current()
	edited := proto.Clone(cur.GetMerged()).(*configv1.RobotConfig)
	for _, c := range edited.GetComponents() {
		if c.GetName() == "left" {
			c.Attributes = &structpb.Struct{Fields: map[string]*structpb.Value{"max_rpm": structpb.NewNumberValue(100)}}
		}
	}
	prop := propose(edited, cur.GetRevision().GetRevision(), cur.GetFragments(), nil)
	if prop.GetState() != "conflict" || len(prop.GetFragments()) != 1 || prop.GetFragments()[0].GetId() != f.frag {
		t.Fatalf("proposal %v", prop)
	}
	check(admin.Config.ResolveConfigProposal(ctx, req(&fleetv1.ResolveConfigProposalRequest{MachineId: f.machine, ProposalId: prop.GetId(), Accept: true})))(t)
	after := current()
	if got, want := names(after.GetRevision().GetConfig()), []string{"left:edited", "lift:fake", "right:fake"}; !slices.Equal(got, want) {
		t.Fatalf("the machine's own config after accepting holds %v, want %v (the edited entry and its own, not the fragment's copy)", got, want)
	}
	if after.GetRevision().GetConfig().GetLogLevel() != "" || !slices.Equal(after.GetRevision().GetFragmentIds(), []string{f.frag}) {
		t.Fatalf("the machine's own config took the fragment's log level or left the fragment: %v", after.GetRevision())
	}

	// A later fragment revision still applies; the edited entry stays the machine's.
	frag := check(admin.Fragment.GetFragment(ctx, req(&fleetv1.GetFragmentRequest{FragmentId: f.frag})))(t).GetFragment()
	fc := proto.Clone(frag.GetConfig()).(*configv1.RobotConfig)
	fc.Components = append(fc.Components, motor("third"))
	fc.LogLevel = "warn"
	check(admin.Fragment.UpdateFragment(ctx, req(&fleetv1.UpdateFragmentRequest{FragmentId: f.frag, BaseRevision: frag.GetRevision(), Config: fc})))(t)
	after = current()
	if got, want := names(after.GetMerged()), []string{"left:edited", "lift:fake", "right:fake", "third:fake"}; !slices.Equal(got, want) || after.GetMerged().GetLogLevel() != "warn" {
		t.Fatalf("after a fragment update the machine runs %v (log %q), want %v (log warn)", got, after.GetMerged().GetLogLevel(), want)
	}

	// An edit that removes a fragment's entry cannot be accepted.
	removed := proto.Clone(after.GetMerged()).(*configv1.RobotConfig)
	removed.Components = slices.DeleteFunc(removed.Components, func(c *configv1.Component) bool { return c.GetName() == "third" })
	prop = propose(removed, after.GetRevision().GetRevision(), after.GetFragments(), nil)
	_, err := admin.Config.ResolveConfigProposal(ctx, req(&fleetv1.ResolveConfigProposalRequest{MachineId: f.machine, ProposalId: prop.GetId(), Accept: true}))
	if connect.CodeOf(err) != connect.CodeFailedPrecondition || !strings.Contains(err.Error(), `component "third"`) || !strings.Contains(err.Error(), "remove it from the fragment") {
		t.Fatalf("accepting an edit that removes a fragment's entry: %v", err)
	}

	// Accepted at once with an owner's signature: detached the same way.
	added := proto.Clone(after.GetMerged()).(*configv1.RobotConfig)
	added.Components = append(added.Components, motor("winch"))
	b := after.GetRevision().GetRevision()
	prop = propose(added, b, after.GetFragments(), endorse(t, e.adminToken, f.machine, b, added))
	if prop.GetState() != "accepted" {
		t.Fatalf("an owner-signed edit: %v", prop)
	}
	if got, want := names(current().GetRevision().GetConfig()), []string{"left:edited", "lift:fake", "right:fake", "winch:fake"}; !slices.Equal(got, want) {
		t.Fatalf("the machine's own config after an owner-signed edit holds %v, want %v", got, want)
	}

	// Fragments the machine does not use, and too many, are not read.
	other := []*syncv1.FragmentVersion{{Id: strings.Repeat("a", 32), Version: 1}}
	for range 40 {
		other = append(other, &syncv1.FragmentVersion{Id: strings.Repeat("b", 32), Version: 1})
	}
	prop = propose(added, current().GetRevision().GetRevision(), other, nil)
	_, err = admin.Config.ResolveConfigProposal(ctx, req(&fleetv1.ResolveConfigProposalRequest{MachineId: f.machine, ProposalId: prop.GetId(), Accept: true}))
	if err != nil {
		t.Fatalf("a proposal naming fragments the machine does not use: %v", err)
	}
	if got := names(current().GetRevision().GetConfig()); len(got) != 5 { // the whole edit is the machine's own
		t.Fatalf("the machine's own config holds %v", got)
	}
}
