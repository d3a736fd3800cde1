package daemon

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/cloud/cloudtest"
	"github.com/outpost-robotics/outpost/cloud/partsync"
	"github.com/outpost-robotics/outpost/faultproxy"
	"github.com/outpost-robotics/outpost/robot/component"
)

// TestPackagesEndToEnd runs package deployment with the real cloud and two
// real parts (two machines of one organization): blinker v1, uploaded and
// tagged stable, reaches both through a fragment pinned to tag:stable and
// runs; v2, which exits at start, is tagged stable next: both parts roll
// back to v1 by themselves and the cloud's rollout status says so. Then the
// cloud is gone and a restarted part runs its cached v1.
func TestPackagesEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the blinker module")
	}
	ctx := context.Background()
	platform := runtime.GOOS + "/" + runtime.GOARCH
	v1Dir, v2Dir := t.TempDir(), t.TempDir()
	if err := os.Mkdir(filepath.Join(v1Dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	build := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(v1Dir, "bin", "blinker"), "./examples/modules/blinker")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	if err := os.Mkdir(filepath.Join(v2Dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(v2Dir, "bin", "blinker"), []byte("#!/bin/sh\necho no hardware >&2\nexit 2\n"), 0o755); err != nil {
		t.Fatal(err)
	}

	cl := cloudtest.New(t, cloudtest.Options{Sync: partsync.Options{PollInterval: time.Second}})
	admin := cl.Admin(t)
	first := cl.Provision(t, cloudtest.PartOptions{})
	org := first.OrgID
	v1 := cl.UploadPackage(t, org, "blinker", "1.0.0", "module", platform, v1Dir)
	if v1.GetChunkCount() < 2 {
		t.Fatalf("blinker v1 is %d chunks: too few to cut a download in the middle", v1.GetChunkCount())
	}
	cl.TagPackage(t, org, "blinker", "1.0.0", "stable")

	attrs, _ := structpb.NewStruct(map[string]any{"led_path": filepath.Join(t.TempDir(), "brightness")})
	frag, err := admin.Fragment.CreateFragment(ctx, connect.NewRequest(&fleetv1.CreateFragmentRequest{OrgId: org, Name: "blink", Config: &configv1.RobotConfig{
		Packages:   []*configv1.PackageRef{{Name: "blinker", Package: org + "/blinker", Version: "tag:stable"}},
		Modules:    []*configv1.Module{{Name: "acme", Executable: "${packages.blinker}/bin/blinker"}},
		Components: []*configv1.Component{{Name: "status-led", Type: component.TypeGeneric, Model: "acme:blinker", Attributes: attrs}},
	}}))
	if err != nil {
		t.Fatal(err)
	}
	useFragment := func(machineID string) {
		t.Helper()
		if _, err := admin.Config.UpdateMachineConfig(ctx, connect.NewRequest(&fleetv1.UpdateMachineConfigRequest{
			MachineId: machineID, Config: &configv1.RobotConfig{}, FragmentIds: []string{frag.Msg.GetFragment().GetId()}})); err != nil {
			t.Fatal(err)
		}
	}
	useFragment(first.MachineID)
	// The second machine, in the same location and organization.
	m2, err := admin.Machine.CreateMachine(ctx, connect.NewRequest(&fleetv1.CreateMachineRequest{LocationId: first.LocationID, Name: "rover 2"}))
	if err != nil {
		t.Fatal(err)
	}
	cl.Remember(m2.Msg.GetMainPartSecret())
	useFragment(m2.Msg.GetMachine().GetId())
	// The second part reaches the cloud through a fault proxy that cuts
	// the link from its second chunk fetch on, until the part's download
	// failed (every fetch in flight, retries and all, failed or passed
	// by then), so the download fails.
	var chunkFetches, passed atomic.Int64
	var cutOver atomic.Bool
	proxy, err := faultproxy.New(cl.URL, func(_ int64, r *http.Request) faultproxy.Fault {
		if !strings.HasSuffix(r.URL.Path, "/GetPackageChunk") {
			return faultproxy.Pass
		}
		if n := chunkFetches.Add(1); n >= 2 && !cutOver.Load() {
			return faultproxy.ResetBefore
		}
		passed.Add(1)
		return faultproxy.Pass
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	boot2, err := admin.Machine.BootstrapPart(ctx, connect.NewRequest(&fleetv1.BootstrapPartRequest{PartId: m2.Msg.GetMachine().GetParts()[0].GetId(), CloudUrl: proxy.URL()}))
	if err != nil {
		t.Fatal(err)
	}
	cl.Remember(boot2.Msg.GetBootstrap().GetPartSecret())

	newE2EPart := func(boot any) *part {
		t.Helper()
		var raw []byte
		switch b := boot.(type) {
		case cloudtest.Part:
			raw, err = protojson.Marshal(b.Bootstrap)
		case *fleetv1.BootstrapPartResponse:
			raw, err = protojson.Marshal(b.GetBootstrap())
		}
		if err != nil {
			t.Fatal(err)
		}
		p := &part{Dir: t.TempDir()}
		p.BootPath, p.DataDir, p.RunDir = filepath.Join(p.Dir, "outpostd.json"), filepath.Join(p.Dir, "data"), filepath.Join(p.Dir, "run")
		if err := os.WriteFile(p.BootPath, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	parts := []*part{newE2EPart(first), newE2EPart(boot2.Msg)}
	partIDs := []string{first.ID, boot2.Msg.GetBootstrap().GetPartId()}

	// rollout checks what the cloud's rollout status says of every part.
	rollout := func(want func(*fleetv1.PartRollout) error) func() error {
		return func() error {
			res, err := admin.Package.GetRolloutStatus(ctx, connect.NewRequest(&fleetv1.GetRolloutStatusRequest{OrgId: org, Name: "blinker"}))
			if err != nil {
				return err
			}
			if len(res.Msg.GetParts()) != len(partIDs) {
				return fmt.Errorf("rollout of %d parts, want %d: %v", len(res.Msg.GetParts()), len(partIDs), res.Msg)
			}
			for _, pr := range res.Msg.GetParts() {
				if err := want(pr); err != nil {
					return fmt.Errorf("part/%s: %w (%v)", pr.GetPartId(), err, pr)
				}
			}
			return nil
		}
	}

	// v1 reaches both parts, which download and run it.
	var runs []*running
	for _, p := range parts {
		r := run(t, p, clock.NewReal(), nil)
		runs = append(runs, r)
		defer func() {
			if t.Failed() {
				t.Log(tail(r.stderr.String()))
			}
		}()
	}
	// The cut fails the second part's download; restarted, it fetches only
	// the chunks it did not keep.
	cloudtest.Eventually(t, "the cut fails a download", func() error {
		if !strings.Contains(runs[1].stderr.String(), "package download failed") {
			return fmt.Errorf("no failed download in the log (%d chunk fetches)", chunkFetches.Load())
		}
		return nil
	})
	if err := runs[1].stop(t); err != nil {
		t.Fatal(err)
	}
	cutOver.Store(true)
	cut := runs[1]
	runs[1] = run(t, parts[1], clock.NewReal(), nil)
	defer func() {
		if t.Failed() {
			t.Log(tail(cut.stderr.String()))
		}
	}()
	for i, r := range runs {
		cloudtest.Eventually(t, fmt.Sprintf("part %d runs v1", i), ledRunning(r))
	}
	if n := passed.Load(); n != int64(v1.GetChunkCount()) {
		t.Fatalf("the second part fetched %d chunks of v1 past the cut, want each of the %d once", n, v1.GetChunkCount())
	}
	cloudtest.Eventually(t, "the cloud sees v1 running everywhere", rollout(func(pr *fleetv1.PartRollout) error {
		st := pr.GetStatus()
		if pr.GetPlatform() != platform || pr.GetIssuedVersion() != "1.0.0" || st.GetRunningVersion() != "1.0.0" || st.GetState() != "running" {
			return fmt.Errorf("not running 1.0.0 on %s", platform)
		}
		return nil
	}))

	// v2 exits at start; stable moves to it and both parts go back to v1.
	cl.UploadPackage(t, org, "blinker", "2.0.0", "module", platform, v2Dir)
	cl.TagPackage(t, org, "blinker", "2.0.0", "stable")
	cloudtest.Eventually(t, "the cloud sees both parts rolled back", rollout(func(pr *fleetv1.PartRollout) error {
		st := pr.GetStatus()
		if pr.GetIssuedVersion() != "2.0.0" || st.GetIssuedVersion() != "2.0.0" || st.GetState() != "rolled_back" ||
			st.GetRolledBackFrom() != "2.0.0" || st.GetRunningVersion() != "1.0.0" {
			return fmt.Errorf("not rolled back from 2.0.0 to 1.0.0")
		}
		return nil
	}))
	for i, r := range runs {
		cloudtest.Eventually(t, fmt.Sprintf("part %d runs v1 again", i), ledRunning(r))
	}
	for _, r := range runs {
		if err := r.stop(t); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(r.stderr.String(), "rolled back") {
			t.Fatalf("no log line says the part rolled back:\n%s", tail(r.stderr.String()))
		}
	}

	// The cloud unreachable: a restarted part runs its cached v1 and asks
	// for no chunk.
	proxy.SetDown(true)
	before := chunkFetches.Load()
	r := run(t, parts[1], clock.NewReal(), nil)
	cloudtest.Eventually(t, "v1 runs with the cloud gone", ledRunning(r))
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	if n := chunkFetches.Load() - before; n != 0 {
		t.Fatalf("%d chunk fetches with the cloud gone, want none", n)
	}
}
