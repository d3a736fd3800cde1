package daemon

import (
	"context"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/structpb"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/cloud/cloudtest"
	"github.com/outpost-robotics/outpost/cloud/partsync"
	"github.com/outpost-robotics/outpost/qemutest"
	"github.com/outpost-robotics/outpost/robot/component"
)

// TestPackageForThePartsPlatform: blinker 1.0.0 has a build for linux/amd64
// and one for linux/arm64. A real part on a real cloud (over TLS from a
// private CA given inline in the bootstrap file) gets the build for
// the platform it runs on (which the cloud knows from the part's status),
// unpacks it and runs it; the build for the other platform, a program that
// only says it is the wrong one, is never run. Run natively it is the amd64
// build; under qemu (TestArm64UnderQemu) the arm64 one, its module
// started through the emulator as every child of an emulated test is.
func TestPackageForThePartsPlatform(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the blinker module")
	}
	// The ELF machine of each architecture a part runs on.
	want, ok := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[runtime.GOARCH]
	if !ok {
		t.Skipf("parts run on amd64 and arm64, not %s", runtime.GOARCH)
	}
	ctx := context.Background()
	platform := "linux/" + runtime.GOARCH
	other := "linux/arm64"
	if runtime.GOARCH == "arm64" {
		other = "linux/amd64"
	}
	own, wrong := t.TempDir(), t.TempDir()
	for _, dir := range []string{own, wrong} {
		if err := os.Mkdir(filepath.Join(dir, "bin"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Built for this test's own architecture: arm64 under the emulator,
	// where the go command itself runs natively.
	build := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(own, "bin", "blinker"), "./examples/modules/blinker")
	build.Dir = ".."
	build.Env = append(os.Environ(), "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build for %s: %v\n%s", platform, err, out)
	}
	if err := os.WriteFile(filepath.Join(wrong, "bin", "blinker"), []byte("#!/bin/sh\necho the "+other+" build >&2\nexit 2\n"), 0o755); err != nil {
		t.Fatal(err)
	}

	// The cloud's certificate is from a private CA that the bootstrap file
	// carries inline, as `outpost part bootstrap` writes it: packages are
	// downloaded over the same trust as the sync itself.
	cl := cloudtest.New(t, cloudtest.Options{TLS: true, Sync: partsync.Options{PollInterval: 200 * time.Millisecond}})
	cp := cl.Provision(t, cloudtest.PartOptions{Config: &configv1.RobotConfig{LogLevel: "info"}})
	caPEM, err := os.ReadFile(cl.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	cp.Bootstrap.CaFile, cp.Bootstrap.CaPem = "", string(caPEM)
	admin := cl.Admin(t)
	// The other platform's build first, so a cloud that took the first
	// build of a version would hand the part the wrong one.
	cl.UploadPackage(t, cp.OrgID, "blinker", "1.0.0", "module", other, wrong)
	cl.UploadPackage(t, cp.OrgID, "blinker", "1.0.0", "module", platform, own)

	p := &part{Dir: t.TempDir()}
	p.DataDir, p.RunDir = filepath.Join(p.Dir, "data"), filepath.Join(p.Dir, "run")
	p.BootPath = cp.WriteBootstrap(t, p.Dir)
	r := run(t, p, clock.NewReal(), func(o *Options) { o.SyncInterval = 200 * time.Millisecond })
	defer func() {
		if t.Failed() {
			t.Log(tail(r.stderr.String()))
		}
	}()
	// The package is issued once the cloud knows where the part runs, so
	// what is checked is which build it picks, not when it learns the
	// platform.
	cloudtest.Eventually(t, "the cloud knows the part runs on "+platform, func() error {
		res, err := admin.Machine.GetMachineStatus(ctx, connect.NewRequest(&fleetv1.GetMachineStatusRequest{MachineId: cp.MachineID}))
		if err != nil {
			return err
		}
		for _, ps := range res.Msg.GetParts() {
			if ps.GetPart().GetId() == cp.ID && ps.GetStatus().GetPlatform() == platform {
				return nil
			}
		}
		return fmt.Errorf("machine status %v", res.Msg)
	})
	// The module's command line as qemutest.Command makes it: the program
	// itself natively, the emulator running it under qemu.
	exe := qemutest.Command("${packages.blinker}/bin/blinker")
	attrs, _ := structpb.NewStruct(map[string]any{"led_path": filepath.Join(t.TempDir(), "brightness")})
	cl.SetMachineConfig(t, cp.MachineID, &configv1.RobotConfig{
		LogLevel:   "info",
		Packages:   []*configv1.PackageRef{{Name: "blinker", Package: cp.OrgID + "/blinker", Version: "1.0.0"}},
		Modules:    []*configv1.Module{{Name: "acme", Executable: exe.Path, Args: exe.Args[1:]}},
		Components: []*configv1.Component{{Name: "status-led", Type: component.TypeGeneric, Model: "acme:blinker", Attributes: attrs}},
	})
	// Each step waits on its own: downloading and verifying the package
	// takes longest, several times longer under the emulator.
	wantDir := filepath.Join("versions", cp.OrgID, "blinker", "1.0.0-"+strings.ReplaceAll(platform, "/", "-"))
	cloudtest.Eventually(t, "the part switches to blinker 1.0.0 for "+platform, func() error {
		st, err := packageState(p)
		if err != nil {
			return err
		}
		if cur, _ := st["blinker"]["current"].(map[string]any); cur["dir"] != wantDir {
			return fmt.Errorf("package state %v, want the current version in %s", st["blinker"], wantDir)
		}
		return nil
	})
	cloudtest.Eventually(t, "blinker runs from its package", ledRunning(r))
	cloudtest.Eventually(t, "the cloud sees the part run 1.0.0 for "+platform, func() error {
		res, err := admin.Package.GetRolloutStatus(ctx, connect.NewRequest(&fleetv1.GetRolloutStatusRequest{OrgId: cp.OrgID, Name: "blinker"}))
		if err != nil {
			return err
		}
		for _, pr := range res.Msg.GetParts() {
			if st := pr.GetStatus(); pr.GetPartId() == cp.ID && pr.GetPlatform() == platform && st.GetRunningVersion() == "1.0.0" && st.GetState() == "running" {
				return nil
			}
		}
		return fmt.Errorf("rollout %v", res.Msg)
	})
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}

	// What runs is the build for this platform, unpacked where its
	// version and platform say.
	st, err := packageState(p)
	if err != nil {
		t.Fatal(err)
	}
	cur, _ := st["blinker"]["current"].(map[string]any)
	dir, _ := cur["dir"].(string)
	if dir != wantDir {
		t.Fatalf("the part runs blinker from %q, want %q (state %v)", dir, wantDir, st["blinker"])
	}
	bin, err := elf.Open(filepath.Join(p.DataDir, "packages", dir, "bin", "blinker"))
	if err != nil {
		t.Fatalf("the unpacked blinker is not the %s build: %v", platform, err)
	}
	defer bin.Close()
	if bin.Machine != want {
		t.Fatalf("the unpacked blinker is built for %v, want %v", bin.Machine, want)
	}
	if s := r.stderr.String(); strings.Contains(s, "the "+other+" build") {
		t.Fatalf("the %s build ran:\n%s", other, tail(s))
	}
}
