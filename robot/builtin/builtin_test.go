package builtin

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/robot/component"
	"google.golang.org/protobuf/types/known/structpb"
)

func registry(t *testing.T, clk clock.Clock) *component.Registry {
	t.Helper()
	reg := component.NewRegistry()
	if err := Register(reg, Options{Clock: clk, ProcRoot: "testdata/proc", SysRoot: "testdata/sys"}); err != nil {
		t.Fatal(err)
	}
	return reg
}

func build(t *testing.T, reg *component.Registry, typ component.Type, model string, attrs map[string]any) component.Component {
	t.Helper()
	s, err := structpb.NewStruct(attrs)
	if err != nil {
		t.Fatal(err)
	}
	c, err := reg.Build(context.Background(), &configv1.Component{Name: "c", Type: typ, Model: model, Attributes: s}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestFakes(t *testing.T) {
	ctx := context.Background()
	reg := registry(t, clock.NewFake(time.Unix(0, 0)))
	m := build(t, reg, component.TypeMotor, "fake", nil).(component.Motor)
	if err := m.SetPower(ctx, 0.5); err != nil {
		t.Fatal(err)
	}
	if moving, _ := m.IsMoving(ctx); !moving {
		t.Error("motor at power 0.5 not moving")
	}
	if err := m.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if moving, _ := m.IsMoving(ctx); moving {
		t.Error("stopped motor moving")
	}
	_ = m.GoFor(ctx, -60, 2)
	if st, _ := m.Status(ctx); st["position"] != -2.0 {
		t.Errorf("position after GoFor(-60, 2) = %v, want -2", st["position"])
	}

	s := build(t, reg, component.TypeSensor, "fake", map[string]any{"readings": map[string]any{"temp": 21.5}}).(component.Sensor)
	for want := 1.0; want <= 3; want++ {
		r, err := s.Readings(ctx)
		if err != nil || r["count"] != want || r["temp"] != 21.5 {
			t.Fatalf("readings = %v, %v; want count %v and temp 21.5", r, err, want)
		}
	}
	cam := build(t, reg, component.TypeCamera, "fake", nil).(component.Camera)
	img, mime, err := cam.Image(ctx, "")
	if err != nil || mime != "image/png" || len(img) < 8 || string(img[1:4]) != "PNG" {
		t.Fatalf("image = %d bytes %q, %v", len(img), mime, err)
	}
	b := build(t, reg, component.TypeBase, "fake", nil).(component.Base)
	_ = b.SetVelocity(ctx, component.Vector{Y: 100}, component.Vector{Z: 10})
	if st, _ := b.Status(ctx); st["moving"] != true {
		t.Errorf("base status %v, want moving", st)
	}
	g := build(t, reg, component.TypeGeneric, "fake", nil)
	res, err := g.DoCommand(ctx, map[string]any{"blink": true})
	if err != nil || res["echo"].(map[string]any)["blink"] != true {
		t.Fatalf("do command = %v, %v", res, err)
	}

	_, err = reg.Build(ctx, &configv1.Component{Name: "x", Type: component.TypeMotor, Model: "fake",
		Attributes: must(structpb.NewStruct(map[string]any{"fail_build": "no driver"}))}, nil)
	if err == nil || !strings.Contains(err.Error(), "no driver") {
		t.Fatalf("fail_build: %v", err)
	}
	if _, err := reg.Build(ctx, &configv1.Component{Name: "x", Type: component.TypeMotor, Model: "warp"}, nil); !errors.Is(err, component.ErrUnknownModel) {
		t.Fatalf("unknown model: %v", err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestSystemSensor(t *testing.T) {
	reg := registry(t, clock.NewFake(time.Unix(0, 0)))
	s := build(t, reg, component.TypeSensor, "system", map[string]any{"disk_path": t.TempDir()}).(component.Sensor)
	r, err := s.Readings(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{
		"load_1m": 0.52, "load_15m": 0.59, "mem_total_bytes": 3884852 * 1024,
		"mem_used_fraction": 0.5, "uptime_s": 12345.67, "cpu_temp_c": 51.5,
	}
	for k, v := range want {
		got, ok := r[k].(float64)
		if !ok || math.Abs(got-v) > 0.001 {
			t.Errorf("%s = %v, want %v", k, r[k], v)
		}
	}
	if r["disk_total_bytes"].(float64) <= 0 {
		t.Errorf("disk_total_bytes = %v", r["disk_total_bytes"])
	}
	// The real /proc and /sys of the test machine: readable, without fixtures.
	real := component.NewRegistry()
	if err := Register(real, Options{Clock: clock.NewFake(time.Unix(0, 0))}); err != nil {
		t.Fatal(err)
	}
	rs := build(t, real, component.TypeSensor, "system", nil).(component.Sensor)
	if r, err := rs.Readings(context.Background()); err != nil || r["uptime_s"].(float64) <= 0 {
		t.Fatalf("real system readings = %v, %v", r, err)
	}
}

func TestCommandSensor(t *testing.T) {
	tests := []struct {
		name    string
		script  string
		want    map[string]any
		wantErr string
		hang    bool
	}{
		{name: "json", script: `echo '{"distance_mm": 412, "ok": true}'`, want: map[string]any{"distance_mm": 412.0, "ok": true}},
		{name: "garbage", script: `echo 'hello, not json'`, wantErr: `output is not a JSON object (invalid character 'h' looking for beginning of value); it began "hello, not json\n"`},
		{name: "array", script: `echo '[1,2]'`, wantErr: "output is not a JSON object"},
		{name: "exit non-zero", script: `echo 'sensor unplugged' >&2; exit 3`, wantErr: `exited with exit status 3; stderr: "sensor unplugged"`},
		{name: "hang", script: `sleep 1000 & sleep 1000; wait`, hang: true, wantErr: "command timed out after 2s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := clock.NewFake(time.Unix(0, 0))
			reg := registry(t, clk)
			s := build(t, reg, component.TypeSensor, "command", map[string]any{
				"command": "/bin/sh", "args": []any{"-c", tt.script}, "timeout": "2s",
			}).(component.Sensor)
			type result struct {
				r   map[string]any
				err error
			}
			done := make(chan result, 1)
			go func() {
				r, err := s.Readings(context.Background())
				done <- result{r, err}
			}()
			if tt.hang {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if err := clk.BlockUntil(ctx, 1); err != nil {
					t.Fatal(err)
				}
				clk.Advance(2 * time.Second)
			}
			res := <-done
			if tt.wantErr != "" {
				if res.err == nil || !strings.Contains(res.err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", res.err, tt.wantErr)
				}
				if tt.hang && !errors.Is(res.err, ErrCommandTimeout) {
					t.Fatalf("err = %v, want ErrCommandTimeout", res.err)
				}
				return
			}
			if res.err != nil {
				t.Fatal(res.err)
			}
			for k, v := range tt.want {
				if res.r[k] != v {
					t.Errorf("%s = %v, want %v", k, res.r[k], v)
				}
			}
		})
	}
}
