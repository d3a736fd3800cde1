// Command blinker is an example Outpost module: a generic component model,
// "acme:blinker", that switches an LED through the kernel's LED class
// (/sys/class/leds/NAME/brightness, from the "led_path" attribute).
//
// Configure it with a module {"name": "acme", "executable": "/path/to/blinker"}
// and a component {"type": "COMPONENT_TYPE_GENERIC", "model": "acme:blinker"}.
package main

import (
	"context"
	"os"
	"sync"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	"github.com/outpost-robotics/outpost/robot/component"
	"github.com/outpost-robotics/outpost/robot/module"
)

type blinker struct {
	mu   sync.Mutex
	path string // brightness file; empty keeps the state in memory only
	on   bool
}

func (b *blinker) set(on bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.on = on
	if b.path == "" {
		return nil
	}
	v := "0"
	if on {
		v = "1"
	}
	return os.WriteFile(b.path, []byte(v), 0o644)
}

func (b *blinker) Status(context.Context) (map[string]any, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return map[string]any{"on": b.on}, nil
}

// DoCommand takes {"on": true|false}.
func (b *blinker) DoCommand(ctx context.Context, cmd map[string]any) (map[string]any, error) {
	if on, ok := cmd["on"].(bool); ok {
		if err := b.set(on); err != nil {
			return nil, err
		}
	}
	return b.Status(ctx)
}

// Stop turns the LED off: the safe state.
func (b *blinker) Stop(context.Context) error  { return b.set(false) }
func (b *blinker) Close(context.Context) error { return nil }

func newBlinker(_ context.Context, cfg *configv1.Component, _ component.Deps) (component.Component, error) {
	return &blinker{path: cfg.GetAttributes().GetFields()["led_path"].GetStringValue()}, nil
}

func main() {
	module.Main(module.Model{Type: component.TypeGeneric, Name: "acme:blinker", New: newBlinker})
}
