package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/robot"
	"github.com/outpost-robotics/outpost/robot/builtin"
	"github.com/outpost-robotics/outpost/robot/component"
	"google.golang.org/protobuf/types/known/structpb"
)

// TestBlinkerModule builds the module as CI would, runs it under the robot
// runtime, and drives its LED through the component contract.
func TestBlinkerModule(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bin := filepath.Join(t.TempDir(), "blinker")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	clk := clock.NewReal()
	reg := component.NewRegistry()
	if err := builtin.Register(reg, builtin.Options{Clock: clk}); err != nil {
		t.Fatal(err)
	}
	sockets, err := os.MkdirTemp("", "blinker")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(sockets)
	r, err := robot.New(robot.Options{Clock: clk, Registry: reg, SocketDir: sockets})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)

	led := filepath.Join(t.TempDir(), "brightness")
	attrs, _ := structpb.NewStruct(map[string]any{"led_path": led})
	res, err := r.Apply(ctx, &configv1.RobotConfig{
		Modules:    []*configv1.Module{{Name: "acme", Executable: bin}},
		Components: []*configv1.Component{{Name: "status-led", Type: component.TypeGeneric, Model: "acme:blinker", Attributes: attrs}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if f := res.Failed(); len(f) != 0 {
		t.Fatalf("failed: %v", f)
	}
	c, _, err := r.Component("status-led")
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.DoCommand(ctx, map[string]any{"on": true})
	if err != nil || got["on"] != true {
		t.Fatalf("turn on: %v, %v", got, err)
	}
	if b, _ := os.ReadFile(led); string(b) != "1" {
		t.Fatalf("brightness %q after on, want 1", b)
	}
	// Shutting the robot down stops the LED safely.
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(led); string(b) != "0" {
		t.Fatalf("brightness %q after shutdown, want 0", b)
	}
}
