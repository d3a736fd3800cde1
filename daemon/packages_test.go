package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/control/v1/controlv1connect"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/cache"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/packages/packagetest"
	"github.com/outpost-robotics/outpost/robot/component"
)

// holdPackages stores a config document issuing pkgs, as a sync would
// have, over what hold stored.
func (p *part) holdPackages(t *testing.T, now time.Time, cfg *configv1.RobotConfig, pkgs ...*syncv1.ResolvedPackage) {
	t.Helper()
	p.hold(t, now, cfg)
	ctx := context.Background()
	st, err := cache.Open(ctx, filepath.Join(p.DataDir, "store"), cache.Options{Clock: clock.NewFake(now), GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	doc, err := p.signer.Sign(&syncv1.ConfigDocument{PartId: "part-1", Version: 1, IssuedAt: timestamppb.New(now), ExpiresAt: timestamppb.New(now.Add(60 * 24 * time.Hour)),
		Config: cfg, MachineRevision: 3, Packages: pkgs})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := proto.Marshal(doc)
	if err := st.PutDocument(ctx, cache.KindConfig, cache.Document{Raw: raw, Version: 1, FetchedAt: now}); err != nil {
		t.Fatal(err)
	}
}

// until polls cond, moving the fake clock a second each time so the
// package manager's checks and the robot's restarts run, until it holds or
// a generous real deadline passes.
func until(t *testing.T, clk *clock.Fake, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		clk.Advance(time.Second)
		time.Sleep(20 * time.Millisecond)
	}
}

// packageState reads the part's persisted package state.
func packageState(p *part) (map[string]map[string]any, error) {
	raw, err := os.ReadFile(filepath.Join(p.DataDir, "packages", "state.json"))
	if err != nil {
		return nil, err
	}
	var st map[string]map[string]any
	return st, json.Unmarshal(raw, &st)
}

// TestPackageModuleRollsBack runs the blinker module from a package, then
// issues a version whose executable crashes at start: the part switches
// back to the first by itself, remembers it, and runs it with the cloud
// gone.
func TestPackageModuleRollsBack(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the blinker module")
	}
	bin := filepath.Join(t.TempDir(), "blinker")
	build := exec.Command("go", "build", "-trimpath", "-o", bin, "./examples/modules/blinker")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	body, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	platform := runtime.GOOS + "/" + runtime.GOARCH
	v1 := packagetest.New(t, "blinker", "1.0.0", platform, map[string]string{"bin/blinker": string(body)})
	v2 := packagetest.New(t, "blinker", "2.0.0", platform, map[string]string{"bin/blinker": "#!/bin/sh\necho no hardware >&2\nexit 2\n"})
	cloud := packagetest.NewServer(t)
	cloud.Add(v1)
	cloud.Add(v2)

	p := newPartOf(t, cloud.URL)
	attrs, _ := structpb.NewStruct(map[string]any{"led_path": filepath.Join(t.TempDir(), "brightness")})
	cfg := &configv1.RobotConfig{
		Modules:    []*configv1.Module{{Name: "acme", Executable: "${packages.blinker}/bin/blinker"}},
		Components: []*configv1.Component{{Name: "status-led", Type: component.TypeGeneric, Model: "acme:blinker", Attributes: attrs}},
	}
	clk := clock.NewFake(epoch.Add(time.Hour))
	state := func(want ...string) func() error {
		return func() error {
			st, err := packageState(p)
			if err != nil {
				return err
			}
			got := fmt.Sprint(st["blinker"])
			for _, w := range want {
				if !strings.Contains(got, w) {
					return fmt.Errorf("state %s lacks %s", got, w)
				}
			}
			return nil
		}
	}

	// v1 downloads and runs.
	p.holdPackages(t, epoch, cfg, v1.Resolved(t, p.signer, "blinker"))
	r := run(t, p, clk, nil)
	defer func() {
		if t.Failed() {
			t.Log(r.stderr.String())
		}
	}()
	until(t, clk, "v1 runs", ledRunning(r))
	until(t, clk, "v1 stays past the deadline", state("current:map[dir:versions/org1/blinker/1.0.0-"+strings.ReplaceAll(platform, "/", "-")))
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}

	// v2 crashes at start: the part goes back to v1 and says so.
	p.holdPackages(t, epoch, cfg, v2.Resolved(t, p.signer, "blinker"))
	r = run(t, p, clk, nil)
	until(t, clk, "rolled back", state("rolled_back_from:2.0.0", "current:map[dir:versions/org1/blinker/1.0.0-", "refused:["))
	until(t, clk, "v1 runs again", ledRunning(r))
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(r.stderr.String(), "rolled back") {
		t.Fatalf("no log line says the part rolled back:\n%s", r.stderr.String())
	}

	// The cloud gone: the part starts on the cached v1 and does not try v2.
	before := cloud.Requests.Load()
	p2 := *p
	p2.BootPath = filepath.Join(t.TempDir(), "outpostd.json")
	boot, _ := os.ReadFile(p.BootPath)
	_ = os.WriteFile(p2.BootPath, []byte(strings.Replace(string(boot), cloud.URL, "http://127.0.0.1:1", 1)), 0o600)
	r = run(t, &p2, clk, nil)
	until(t, clk, "v1 runs offline", ledRunning(r))
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	if n := cloud.Requests.Load(); n != before {
		t.Fatalf("%d chunk requests after the rollback, want none", n-before)
	}
}

// ledRunning checks, through the part's local control socket, that the
// packaged blinker's status-led component runs.
func ledRunning(r *running) func() error {
	ep := <-r.ready
	r.ready <- ep
	cc := controlv1connect.NewComponentServiceClient(socketClient(ep.Socket), "http://outpostd")
	return func() error {
		res, err := cc.ListResources(context.Background(), connect.NewRequest(&controlv1.ListResourcesRequest{}))
		if err != nil {
			return err
		}
		for _, rs := range res.Msg.GetResources() {
			if rs.GetName() == "status-led" && rs.GetState() == controlv1.ResourceState_RESOURCE_STATE_RUNNING {
				return nil
			}
		}
		return fmt.Errorf("resources %v", res.Msg.GetResources())
	}
}
