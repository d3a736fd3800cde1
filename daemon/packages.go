package daemon

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"

	"go.uber.org/zap"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	"github.com/outpost-robotics/outpost/config"
	"github.com/outpost-robotics/outpost/packages"
	"github.com/outpost-robotics/outpost/robot/component"
)

// packageUses is, per package name, the resources the running config
// points at it ("module/NAME", "process/ID", "component/NAME"): what
// decides whether a new version came up.
type packageUses struct {
	mu   sync.Mutex
	uses map[string][]string
}

func (u *packageUses) set(uses map[string][]string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.uses = uses
}

func (u *packageUses) of(name string) []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.uses[name]
}

// startPackages opens the package cache under the data folder. Its
// versions are in place before the cached config is applied, so a part
// that starts offline runs the packages it ran. The budget is the store's:
// packages get as many bytes again, and the same free disk stays free.
func (d *daemon) startPackages(ctx context.Context) error {
	m, err := packages.New(packages.Options{
		Dir:      filepath.Join(d.o.DataDir, "packages"),
		Keys:     d.boot.Keys,
		Fetcher:  &d.syncLoop,
		Budget:   packages.Budget{MaxBytes: d.budget.MaxBytes, MinFreeBytes: d.budget.MinFreeBytes},
		Clock:    d.clk,
		Logger:   d.log.Named("packages"),
		Deadline: d.o.PackageDeadline,
		Allowed:  d.maintenanceAllows,
		Health:   d.packageHealth,
		OnChange: d.packagesChanged,
	})
	if err != nil {
		return fmt.Errorf("open the package cache: %w", err)
	}
	d.pkgs = m
	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.Run(pctx)
	}()
	// Stops before the robot: a switch in progress must not apply a
	// config to a robot that is stopping.
	d.stops.push("stop package downloads", func(context.Context) error {
		cancel()
		<-done
		return nil
	})
	return nil
}

// packagesChanged applies the running config again with the package
// directories of the versions that run now: a module or process whose
// path changed restarts on the new version.
func (d *daemon) packagesChanged(ctx context.Context) {
	state := d.applied.current()
	if state.Config == nil || d.applied.isExpired() {
		return
	}
	if _, err := d.apply(ctx, state); err != nil {
		d.log.Error("the config could not be applied with the new package versions", zap.Error(err))
		return
	}
	d.log.Info("config applied with new package versions")
}

// maintenanceAllows is the maintenance window's say on a switch now,
// reading its sensor when it names one.
func (d *daemon) maintenanceAllows(ctx context.Context, mw *configv1.MaintenanceWindow) (bool, string) {
	var readings map[string]any
	if mw.GetSensor() != "" {
		if c, _, err := d.robot.Component(mw.GetSensor()); err == nil {
			if s, ok := c.(component.Sensor); ok {
				rctx, cancel := d.timeout(ctx, robotStopTimeout)
				readings, _ = s.Readings(rctx)
				cancel()
			}
		}
	}
	return config.Allowed(mw, offlineTime{Clock: d.clk, offline: d.offline}.Now(), readings)
}

// packageHealth is how the resources that use a package do: failed as
// soon as one failed, up once all run.
func (d *daemon) packageHealth(name string) packages.Health {
	want := map[string]bool{}
	for _, k := range d.pkgUses.of(name) {
		want[k] = true
	}
	h := packages.Health{Up: true}
	var why []string
	for _, r := range d.robot.Resources() {
		key := strings.TrimPrefix(strings.ToLower(r.GetKind().String()), "resource_kind_") + "/" + r.GetName()
		if !want[key] {
			continue
		}
		switch r.GetState() {
		case controlv1.ResourceState_RESOURCE_STATE_RUNNING:
		case controlv1.ResourceState_RESOURCE_STATE_FAILED:
			h.Failed, h.Up = true, false
			why = append(why, key+": "+r.GetError())
		default:
			h.Up = false
			why = append(why, key+": "+strings.TrimPrefix(strings.ToLower(r.GetState().String()), "resource_state_"))
		}
	}
	h.Err = strings.Join(why, "; ")
	return h
}
