package cloud_test

import (
	"context"
	"encoding/hex"
	"slices"
	"strings"
	"testing"

	"connectrpc.com/connect"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
)

func componentNames(c *configv1.RobotConfig) []string {
	var out []string
	for _, x := range c.GetComponents() {
		out = append(out, x.GetName())
	}
	return out
}

// TestEachPartGetsItsShare: the machine's config is one document with one
// history, and each part's signed document holds only what the config
// places on it, with every part of the machine listed (the fingerprint and
// addresses each last reported, and its components); a fragment places a
// component on a part by name; placing one on an unknown part is refused
// with the field named.
func TestEachPartGetsItsShare(t *testing.T) {
	ctx := context.Background()
	e, f, admin, mainPart := newPartSync(t, false)
	arm := e.part(t, f.boot2)
	onArm := motor("gripper")
	onArm.Part = "arm"
	lift := motor("lift")
	res, err := admin.Config.UpdateMachineConfig(ctx, connect.NewRequest(&fleetv1.UpdateMachineConfigRequest{MachineId: f.machine, FragmentIds: []string{f.frag}, BaseRevision: 1,
		Config: &configv1.RobotConfig{Components: []*configv1.Component{motor("right"), lift, onArm}}}))
	if err != nil {
		t.Fatalf("a component placed on the second part: %v", err)
	}
	_ = res
	fp := strings.Repeat("ab", 32)
	raw, _ := hex.DecodeString(fp)
	if _, err := arm.client.ReportStatus(ctx, connect.NewRequest(&syncv1.ReportStatusRequest{Status: &syncv1.PartStatus{
		ControlCertSha256: raw, ControlAddresses: []string{"127.0.0.1:4242", "not an address"}}})); err != nil {
		t.Fatal(err)
	}
	mc, _ := mainPart.pull(t)
	ac, _ := arm.pull(t)
	if got := componentNames(mc.GetConfig()); !slices.Equal(got, []string{"left", "right", "lift"}) {
		t.Errorf("the main part's share: %v", got)
	}
	if got := componentNames(ac.GetConfig()); !slices.Equal(got, []string{"gripper"}) {
		t.Errorf("the second part's share: %v", got)
	}
	if ac.GetConfig().GetLogLevel() != "debug" {
		t.Error("the fragment's log level is every part's")
	}
	for _, doc := range []*syncv1.ConfigDocument{mc, ac} {
		ps := doc.GetParts()
		if len(ps) != 2 || !ps[0].GetMain() || ps[1].GetName() != "arm" || ps[1].GetId() != f.boot2.GetPartId() {
			t.Fatalf("parts listed: %v", ps)
		}
		if ps[1].GetFingerprint() != fp || !slices.Equal(ps[1].GetAddresses(), []string{"127.0.0.1:4242"}) {
			t.Errorf("the second part's reported control plane: %v", ps[1])
		}
		if len(ps[1].GetComponents()) != 1 || ps[1].GetComponents()[0].GetName() != "gripper" || len(ps[0].GetComponents()) != 3 {
			t.Errorf("placed components: %v", ps)
		}
	}

	// A new address reaches the other parts with their next pull.
	if _, err := arm.client.ReportStatus(ctx, connect.NewRequest(&syncv1.ReportStatusRequest{Status: &syncv1.PartStatus{
		ControlCertSha256: raw, ControlAddresses: []string{"10.1.2.3:4242"}}})); err != nil {
		t.Fatal(err)
	}
	if mc, _ = mainPart.pull(t); mc == nil || !slices.Equal(mc.GetParts()[1].GetAddresses(), []string{"10.1.2.3:4242"}) {
		t.Fatalf("after a new address the main part pulled %v", mc)
	}

	// A fragment targets a part by name.
	onFrag := motor("camera-pan")
	onFrag.Part = "arm"
	if _, err := admin.Fragment.UpdateFragment(ctx, connect.NewRequest(&fleetv1.UpdateFragmentRequest{FragmentId: f.frag, BaseRevision: 1,
		Config: &configv1.RobotConfig{Components: []*configv1.Component{motor("left"), motor("right"), onFrag}}})); err != nil {
		t.Fatalf("a fragment placing a component on a part: %v", err)
	}
	if ac, _ = arm.pull(t); !slices.Equal(componentNames(ac.GetConfig()), []string{"camera-pan", "gripper"}) {
		t.Errorf("the second part's share with the fragment's component: %v", componentNames(ac.GetConfig()))
	}

	// Refused, with the field named.
	bad := motor("wrist")
	bad.Part = "nowhere"
	_, err = admin.Config.UpdateMachineConfig(ctx, connect.NewRequest(&fleetv1.UpdateMachineConfigRequest{MachineId: f.machine, BaseRevision: 2,
		Config: &configv1.RobotConfig{Components: []*configv1.Component{bad}}}))
	if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), `components[0].part: unknown part "nowhere"`) {
		t.Fatalf("a component on an unknown part: %v", err)
	}
	_, err = admin.Fragment.UpdateFragment(ctx, connect.NewRequest(&fleetv1.UpdateFragmentRequest{FragmentId: f.frag, BaseRevision: 2,
		Config: &configv1.RobotConfig{Components: []*configv1.Component{bad}}}))
	if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), `unknown part "nowhere"`) {
		t.Fatalf("a fragment placing a component on a part its machine lacks: %v", err)
	}
	_, err = admin.Machine.AddPart(ctx, connect.NewRequest(&fleetv1.AddPartRequest{MachineId: f.machine, Name: "arm"}))
	if connect.CodeOf(err) != connect.CodeAlreadyExists {
		t.Fatalf("two parts claiming one name: %v", err)
	}
}
