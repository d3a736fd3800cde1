// Package builtin holds the models every part has without a module: fake
// models of every type (deterministic, for tests and the demo), the system
// sensor (the part's own health from /proc and /sys) and the command sensor
// (a program whose JSON output is the readings).
package builtin

import (
	"fmt"

	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/config"
	"github.com/outpost-robotics/outpost/robot/component"
)

// Options configures the built-in models.
type Options struct {
	// Clock times the command sensor's timeout and stamps readings.
	Clock clock.Clock
	// ProcRoot and SysRoot are where the system sensor reads /proc and /sys;
	// empty means the real ones. Tests point them at fixtures.
	ProcRoot, SysRoot string
}

// Register adds every built-in model to reg.
func Register(reg *component.Registry, opts Options) error {
	if opts.Clock == nil {
		return fmt.Errorf("register built-in models: no clock")
	}
	if opts.ProcRoot == "" {
		opts.ProcRoot = "/proc"
	}
	if opts.SysRoot == "" {
		opts.SysRoot = "/sys"
	}
	regs := []struct {
		typ  component.Type
		name string
		ctor component.Constructor
	}{
		{component.TypeMotor, config.ModelFake, newFakeMotor},
		{component.TypeBase, config.ModelFake, newFakeBase},
		{component.TypeSensor, config.ModelFake, newFakeSensor},
		{component.TypeCamera, config.ModelFake, newFakeCamera},
		{component.TypeGeneric, config.ModelFake, newFakeGeneric},
		{component.TypeSensor, config.ModelSystem, systemSensorCtor(opts)},
		{component.TypeSensor, config.ModelCommand, commandSensorCtor(opts)},
	}
	for _, r := range regs {
		if err := reg.Register(r.typ, r.name, r.ctor); err != nil {
			return err
		}
	}
	return nil
}
