// Package component defines the component APIs every model implements, the
// registry of models, and the two ends of the component contract
// (outpost.control.v1.ComponentService): Server serves components over
// connect-go, and Remote turns a served component back into a Go value. The
// daemon uses both ends for modules, and the control plane uses Server for
// field techs, so a built-in model and a model in a module look the same.
package component

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
)

// Type is a component's API.
type Type = configv1.ComponentType

// The component types.
const (
	TypeMotor   = configv1.ComponentType_COMPONENT_TYPE_MOTOR
	TypeBase    = configv1.ComponentType_COMPONENT_TYPE_BASE
	TypeSensor  = configv1.ComponentType_COMPONENT_TYPE_SENSOR
	TypeCamera  = configv1.ComponentType_COMPONENT_TYPE_CAMERA
	TypeGeneric = configv1.ComponentType_COMPONENT_TYPE_GENERIC
)

// Component is what every type has. Generic components are exactly this.
type Component interface {
	// Status returns model-specific state as JSON-like values.
	Status(ctx context.Context) (map[string]any, error)
	// DoCommand runs a model-specific command.
	DoCommand(ctx context.Context, cmd map[string]any) (map[string]any, error)
	// Stop brings the component to a safe state (a motor stops turning). It
	// must be safe to call at any time, more than once.
	Stop(ctx context.Context) error
	// Close releases what the component holds. The runtime calls Stop first.
	Close(ctx context.Context) error
}

// Motor turns.
type Motor interface {
	Component
	// SetPower sets power from -1 to 1.
	SetPower(ctx context.Context, power float64) error
	// GoFor turns revolutions at rpm; revolutions 0 means until stopped.
	GoFor(ctx context.Context, rpm, revolutions float64) error
	// IsMoving reports whether the motor turns.
	IsMoving(ctx context.Context) (bool, error)
}

// Vector is a three-axis value.
type Vector struct{ X, Y, Z float64 }

// Base moves the robot.
type Base interface {
	Component
	// SetVelocity sets linear (mm/s) and angular (deg/s) velocity.
	SetVelocity(ctx context.Context, linear, angular Vector) error
}

// Sensor reads values.
type Sensor interface {
	Component
	// Readings returns named readings as JSON-like values.
	Readings(ctx context.Context) (map[string]any, error)
}

// Camera takes images.
type Camera interface {
	Component
	// Image returns one encoded image and its MIME type; mime is a wish and
	// may be empty.
	Image(ctx context.Context, mime string) ([]byte, string, error)
}

// Implements reports whether c has the API of typ.
func Implements(typ Type, c Component) bool {
	switch typ {
	case TypeMotor:
		_, ok := c.(Motor)
		return ok
	case TypeBase:
		_, ok := c.(Base)
		return ok
	case TypeSensor:
		_, ok := c.(Sensor)
		return ok
	case TypeCamera:
		_, ok := c.(Camera)
		return ok
	case TypeGeneric:
		return c != nil
	}
	return false
}

// Deps are the running components a component declared in depends_on, by
// name.
type Deps map[string]Component

// Constructor builds a component from its config. ctx bounds construction
// only; a component that needs a background context makes its own.
type Constructor func(ctx context.Context, cfg *configv1.Component, deps Deps) (Component, error)

// Model names a model of a type.
type Model struct {
	Type Type
	Name string
}

func (m Model) String() string { return fmt.Sprintf("%s/%s", m.Type, m.Name) }

// ErrUnknownModel is returned by Registry.Build for an unregistered model.
var ErrUnknownModel = errors.New("unknown model")

// Registry maps models to constructors. It is a value, not a global, so a
// test or a module has exactly the models it registered. It is safe for
// concurrent use.
type Registry struct {
	mu     sync.RWMutex
	models map[Model]Constructor
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{models: map[Model]Constructor{}} }

// Register adds a model; registering one twice is an error.
func (r *Registry) Register(typ Type, name string, ctor Constructor) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := Model{typ, name}
	if _, dup := r.models[m]; dup {
		return fmt.Errorf("register model %s: already registered", m)
	}
	r.models[m] = ctor
	return nil
}

// Lookup returns the constructor of a model.
func (r *Registry) Lookup(typ Type, name string) (Constructor, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	c, ok := r.models[Model{typ, name}]
	return c, ok
}

// Models lists the registered models, sorted.
func (r *Registry) Models() []Model {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]Model, 0, len(r.models))
	for m := range r.models {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Type != out[j].Type {
			return out[i].Type < out[j].Type
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// Build constructs a component and checks it has its type's API.
func (r *Registry) Build(ctx context.Context, cfg *configv1.Component, deps Deps) (Component, error) {
	ctor, ok := r.Lookup(cfg.GetType(), cfg.GetModel())
	if !ok {
		return nil, fmt.Errorf("build %q: %w %s", cfg.GetName(), ErrUnknownModel, Model{cfg.GetType(), cfg.GetModel()})
	}
	c, err := ctor(ctx, cfg, deps)
	if err != nil {
		return nil, fmt.Errorf("build %q (model %s): %w", cfg.GetName(), cfg.GetModel(), err)
	}
	if !Implements(cfg.GetType(), c) {
		_ = c.Close(ctx)
		return nil, fmt.Errorf("build %q: model %s does not implement %s", cfg.GetName(), cfg.GetModel(), cfg.GetType())
	}
	return c, nil
}
