package component_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"connectrpc.com/connect"
	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/control/v1/controlv1connect"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/robot/builtin"
	"github.com/outpost-robotics/outpost/robot/component"
)

type comps map[string]struct {
	c   component.Component
	typ component.Type
}

func (m comps) Component(name string) (component.Component, component.Type, error) {
	e, ok := m[name]
	if !ok {
		return nil, 0, fmt.Errorf("%w %q", component.ErrNotFound, name)
	}
	return e.c, e.typ, nil
}

func (m comps) Resources() []*controlv1.ResourceStatus { return nil }

// TestRoundTrip drives every type of fake through Server and Remote over
// connect, as the daemon drives a module's components.
func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	reg := component.NewRegistry()
	if err := builtin.Register(reg, builtin.Options{Clock: clock.NewFake(time.Unix(0, 0))}); err != nil {
		t.Fatal(err)
	}
	if err := reg.Register(component.TypeMotor, "fake", nil); err == nil {
		t.Fatal("registering a model twice succeeded")
	}
	set := comps{}
	for _, typ := range []component.Type{component.TypeMotor, component.TypeBase, component.TypeSensor, component.TypeCamera, component.TypeGeneric} {
		name := typ.String()
		c, err := reg.Build(ctx, &configv1.Component{Name: name, Type: typ, Model: "fake"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		set[name] = struct {
			c   component.Component
			typ component.Type
		}{c, typ}
	}
	mux := http.NewServeMux()
	mux.Handle(controlv1connect.NewComponentServiceHandler(component.NewServer(set)))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	client := controlv1connect.NewComponentServiceClient(srv.Client(), srv.URL)
	remote := func(typ component.Type) component.Component { return component.NewRemote(client, typ, typ.String()) }

	m := remote(component.TypeMotor).(component.Motor)
	if err := m.SetPower(ctx, 0.3); err != nil {
		t.Fatal(err)
	}
	if moving, err := m.IsMoving(ctx); err != nil || !moving {
		t.Fatalf("is moving %v %v", moving, err)
	}
	if err := m.GoFor(ctx, 60, 3); err != nil {
		t.Fatal(err)
	}
	if st, err := m.Status(ctx); err != nil || st["position"] != 3.0 {
		t.Fatalf("status %v %v", st, err)
	}
	if err := m.SetPower(ctx, 2); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("power 2: %v", err)
	}
	b := remote(component.TypeBase).(component.Base)
	if err := b.SetVelocity(ctx, component.Vector{Y: 200}, component.Vector{Z: -30}); err != nil {
		t.Fatal(err)
	}
	if err := b.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if st, _ := b.Status(ctx); st["moving"] != false || st["stops"] != 1.0 {
		t.Fatalf("base status %v", st)
	}
	if r, err := remote(component.TypeSensor).(component.Sensor).Readings(ctx); err != nil || r["count"] != 1.0 {
		t.Fatalf("readings %v %v", r, err)
	}
	if img, mime, err := remote(component.TypeCamera).(component.Camera).Image(ctx, "image/jpeg"); err != nil || mime != "image/png" || len(img) == 0 {
		t.Fatalf("image %d %q %v", len(img), mime, err)
	}
	if res, err := remote(component.TypeGeneric).DoCommand(ctx, map[string]any{"x": []any{1.0, "two"}}); err != nil || res["echo"].(map[string]any)["x"].([]any)[1] != "two" {
		t.Fatalf("do command %v %v", res, err)
	}
	// A sensor call on a motor, and an unknown name.
	wrong := component.NewRemote(client, component.TypeSensor, component.TypeMotor.String()).(component.Sensor)
	if _, err := wrong.Readings(ctx); connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Fatalf("readings of a motor: %v", err)
	}
	if err := component.NewRemote(client, component.TypeGeneric, "ghost").Stop(ctx); connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("unknown: %v", err)
	}
	if _, err := reg.Build(ctx, &configv1.Component{Name: "x", Type: component.TypeCamera, Model: "system"}, nil); !errors.Is(err, component.ErrUnknownModel) {
		t.Fatalf("system camera: %v", err)
	}
}
