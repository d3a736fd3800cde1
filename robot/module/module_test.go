package module_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"connectrpc.com/connect"
	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/robot/builtin"
	"github.com/outpost-robotics/outpost/robot/component"
	"github.com/outpost-robotics/outpost/robot/module"
)

// TestServeStandalone runs a module by hand (socket path in the
// environment) and talks to it as the daemon does.
func TestServeStandalone(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir, err := os.MkdirTemp("", "mod")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "m.sock")
	t.Setenv(module.EnvFD, "")
	t.Setenv(module.EnvSocket, sock)
	l, err := module.Listener()
	if err != nil {
		t.Fatal(err)
	}
	fakes := component.NewRegistry()
	if err := builtin.Register(fakes, builtin.Options{Clock: clock.NewFake(time.Unix(0, 0))}); err != nil {
		t.Fatal(err)
	}
	sensor := func(ctx context.Context, cfg *configv1.Component, deps component.Deps) (component.Component, error) {
		return fakes.Build(ctx, &configv1.Component{Name: cfg.GetName(), Type: cfg.GetType(), Model: "fake"}, deps)
	}
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() {
		served <- module.ServeListener(sctx, l, module.Model{Type: component.TypeSensor, Name: "acme:thermo", New: sensor})
	}()

	c := module.Dial(sock)
	defer c.Close()
	hs, err := c.Module.Handshake(ctx, connect.NewRequest(&controlv1.HandshakeRequest{}))
	if err != nil || len(hs.Msg.GetModels()) != 1 || hs.Msg.GetModels()[0].GetModel() != "acme:thermo" {
		t.Fatalf("handshake %v %v", hs, err)
	}
	add := func(model string) error {
		_, err := c.Module.AddComponent(ctx, connect.NewRequest(&controlv1.AddComponentRequest{Config: &configv1.Component{Name: "t", Type: component.TypeSensor, Model: model}}))
		return err
	}
	if err := add("acme:other"); connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("unknown model: %v", err)
	}
	if err := add("acme:thermo"); err != nil {
		t.Fatal(err)
	}
	r, err := component.NewRemote(c.Components, component.TypeSensor, "t").(component.Sensor).Readings(ctx)
	if err != nil || r["count"] != 1.0 {
		t.Fatalf("readings %v %v", r, err)
	}
	if _, err := c.Module.RemoveComponent(ctx, connect.NewRequest(&controlv1.RemoveComponentRequest{Name: "t"})); err != nil {
		t.Fatal(err)
	}
	if _, err := component.NewRemote(c.Components, component.TypeSensor, "t").Status(ctx); connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("removed component: %v", err)
	}
	stop()
	if err := <-served; err != nil {
		t.Fatal(err)
	}
}

func TestListenerErrors(t *testing.T) {
	t.Setenv(module.EnvFD, "two")
	if _, err := module.Listener(); err == nil {
		t.Fatal("bad fd accepted")
	}
}
