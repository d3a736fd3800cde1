package builtin

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"image/png"
	"sync"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	"github.com/outpost-robotics/outpost/robot/component"
)

// Fake models answer deterministically from their own state. Two attributes
// steer them in tests: "fail_build" (a string) makes construction fail with
// that message, and a sensor's "readings" (an object) is returned as its
// readings next to a call counter.

func fakeBuildErr(cfg *configv1.Component) error {
	if v, ok := cfg.GetAttributes().GetFields()["fail_build"]; ok {
		return errors.New(v.GetStringValue())
	}
	return nil
}

// fake is the part every fake model shares.
type fake struct {
	mu       sync.Mutex
	name     string
	commands int
	stopped  int
	closed   bool
}

func (f *fake) Status(context.Context) (map[string]any, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return map[string]any{"name": f.name, "commands": float64(f.commands), "stops": float64(f.stopped)}, nil
}

func (f *fake) DoCommand(_ context.Context, cmd map[string]any) (map[string]any, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.commands++
	return map[string]any{"echo": cmd}, nil
}

func (f *fake) Stop(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stopped++
	return nil
}

func (f *fake) Close(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	return nil
}

func newFakeGeneric(_ context.Context, cfg *configv1.Component, _ component.Deps) (component.Component, error) {
	if err := fakeBuildErr(cfg); err != nil {
		return nil, err
	}
	return &fake{name: cfg.GetName()}, nil
}

// FakeMotor is the fake motor: SetPower and GoFor with revolutions 0 make it
// move until Stop; GoFor with revolutions moves it that far at once.
type FakeMotor struct {
	fake
	power    float64
	position float64
	moving   bool
}

func newFakeMotor(_ context.Context, cfg *configv1.Component, _ component.Deps) (component.Component, error) {
	if err := fakeBuildErr(cfg); err != nil {
		return nil, err
	}
	return &FakeMotor{fake: fake{name: cfg.GetName()}}, nil
}

// SetPower sets power; non-zero power moves it.
func (m *FakeMotor) SetPower(_ context.Context, power float64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.power, m.moving = power, power != 0
	return nil
}

// GoFor moves revolutions at once, or starts moving when revolutions is 0.
func (m *FakeMotor) GoFor(_ context.Context, rpm, revolutions float64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if revolutions == 0 {
		m.moving = rpm != 0
		return nil
	}
	if rpm < 0 {
		revolutions = -revolutions
	}
	m.position += revolutions
	return nil
}

// IsMoving reports whether it moves.
func (m *FakeMotor) IsMoving(context.Context) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.moving, nil
}

// Stop stops it.
func (m *FakeMotor) Stop(ctx context.Context) error {
	m.mu.Lock()
	m.power, m.moving = 0, false
	m.mu.Unlock()
	return m.fake.Stop(ctx)
}

// Status adds power, position and motion.
func (m *FakeMotor) Status(ctx context.Context) (map[string]any, error) {
	st, _ := m.fake.Status(ctx)
	m.mu.Lock()
	defer m.mu.Unlock()
	st["power"], st["position"], st["moving"] = m.power, m.position, m.moving
	return st, nil
}

// FakeBase is the fake base: it keeps the velocity it was given.
type FakeBase struct {
	fake
	linear, angular component.Vector
}

func newFakeBase(_ context.Context, cfg *configv1.Component, _ component.Deps) (component.Component, error) {
	if err := fakeBuildErr(cfg); err != nil {
		return nil, err
	}
	return &FakeBase{fake: fake{name: cfg.GetName()}}, nil
}

// SetVelocity keeps the velocity.
func (b *FakeBase) SetVelocity(_ context.Context, linear, angular component.Vector) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.linear, b.angular = linear, angular
	return nil
}

// Stop zeroes the velocity.
func (b *FakeBase) Stop(ctx context.Context) error {
	b.mu.Lock()
	b.linear, b.angular = component.Vector{}, component.Vector{}
	b.mu.Unlock()
	return b.fake.Stop(ctx)
}

// Status adds the velocity.
func (b *FakeBase) Status(ctx context.Context) (map[string]any, error) {
	st, _ := b.fake.Status(ctx)
	b.mu.Lock()
	defer b.mu.Unlock()
	st["linear_y"], st["angular_z"] = b.linear.Y, b.angular.Z
	st["moving"] = b.linear != (component.Vector{}) || b.angular != (component.Vector{})
	return st, nil
}

// FakeSensor is the fake sensor: its readings are its "readings" attribute
// plus "count", the number of calls so far.
type FakeSensor struct {
	fake
	fixed map[string]any
	count int
}

func newFakeSensor(_ context.Context, cfg *configv1.Component, _ component.Deps) (component.Component, error) {
	if err := fakeBuildErr(cfg); err != nil {
		return nil, err
	}
	fixed := cfg.GetAttributes().GetFields()["readings"].GetStructValue().AsMap()
	return &FakeSensor{fake: fake{name: cfg.GetName()}, fixed: fixed}, nil
}

// Readings returns the fixed readings and the call count.
func (s *FakeSensor) Readings(context.Context) (map[string]any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.count++
	out := make(map[string]any, len(s.fixed)+1)
	for k, v := range s.fixed {
		out[k] = v
	}
	out["count"] = float64(s.count)
	return out, nil
}

// FakeCamera is the fake camera: an 8x8 PNG whose grey level is the frame
// number.
type FakeCamera struct {
	fake
	frame uint8
}

func newFakeCamera(_ context.Context, cfg *configv1.Component, _ component.Deps) (component.Component, error) {
	if err := fakeBuildErr(cfg); err != nil {
		return nil, err
	}
	return &FakeCamera{fake: fake{name: cfg.GetName()}}, nil
}

// Image returns the next frame as PNG, whatever mime asked for.
func (c *FakeCamera) Image(context.Context, string) ([]byte, string, error) {
	c.mu.Lock()
	c.frame++
	g := c.frame
	c.mu.Unlock()
	img := image.NewGray(image.Rect(0, 0, 8, 8))
	for i := range img.Pix {
		img.Pix[i] = color.Gray{Y: g}.Y
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, "", err
	}
	return buf.Bytes(), "image/png", nil
}
