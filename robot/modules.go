package robot

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sort"
	"sync"
	"time"

	"connectrpc.com/connect"
	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/robot/component"
	"github.com/outpost-robotics/outpost/robot/module"
	"github.com/outpost-robotics/outpost/robot/proc"
	"go.uber.org/zap"
)

// moduleEntry is one running module. The daemon owns the listening socket
// and hands it to every run of the module as fd 3, so the socket exists
// before the module does, and calls made while it restarts wait in the
// listen queue instead of failing to connect.
type moduleEntry struct {
	cfg    *configv1.Module
	lis    *net.UnixListener
	file   *os.File
	client *module.Client
	sup    *proc.Supervisor
	ctx    context.Context // ends when the module is stopped
	cancel context.CancelFunc

	mu       sync.Mutex
	models   map[component.Model]bool
	err      error // why the last attach failed
	attached int   // which run (restart count) the last attach succeeded for; -1 none
	changed  chan struct{}
	// abort ends a handshake in progress when the module exits, so a
	// module that cannot start fails the apply at once, not at the timeout.
	abort context.CancelCauseFunc
	// down is why the module's last run ended, nil while it runs.
	down error
}

func (m *moduleEntry) setAttach(models map[component.Model]bool, run int, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		m.err = err
	} else {
		m.models, m.attached, m.err = models, run, nil
	}
	close(m.changed)
	m.changed = make(chan struct{})
}

func (m *moduleEntry) serves(model component.Model) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.models[model]
}

func (m *moduleEntry) status() *controlv1.ResourceStatus {
	var ps proc.Status
	if m.sup != nil {
		ps = m.sup.Status()
	}
	st := procStatus(controlv1.ResourceKind_RESOURCE_KIND_MODULE, m.cfg.GetName(), ps)
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.err != nil:
		st.State, st.Error = controlv1.ResourceState_RESOURCE_STATE_FAILED, m.err.Error()
	case st.State == controlv1.ResourceState_RESOURCE_STATE_RUNNING && m.attached != ps.Restarts:
		// Running, but not yet handshaken since its last restart.
		st.State = controlv1.ResourceState_RESOURCE_STATE_RESTARTING
	}
	return st
}

// withClockTimeout is context.WithTimeout on the injected clock.
func withClockTimeout(ctx context.Context, clk clock.Clock, d time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	t := clk.NewTimer(d)
	go func() {
		select {
		case <-t.C():
			cancel(fmt.Errorf("timed out after %v: %w", d, context.DeadlineExceeded))
		case <-ctx.Done():
		}
	}()
	return ctx, func() { t.Stop(); cancel(context.Canceled) }
}

// startModule starts a module and waits for its first handshake. A module
// that fails is still recorded, so its status says why.
func (r *Robot) startModule(ctx context.Context, cfg *configv1.Module) {
	name := cfg.GetName()
	log := r.log.With(zap.String("module", name))
	mctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m := &moduleEntry{cfg: cfg, ctx: mctx, cancel: cancel, attached: -1, changed: make(chan struct{})}
	path := r.socketPath(name)
	var l net.Listener
	err := errors.New("no socket directory configured (robot.Options.SocketDir)")
	if r.opts.SocketDir != "" {
		removeStale(path)
		l, err = net.Listen("unix", path)
	}
	if err == nil {
		m.lis = l.(*net.UnixListener)
		m.file, err = m.lis.File()
	}
	if err != nil {
		m.err = fmt.Errorf("make socket %s: %w", path, err)
		log.Error("module failed", zap.Error(m.err))
		r.mu.Lock()
		r.modules[name] = m
		r.mu.Unlock()
		return
	}
	m.client = module.Dial(path)
	spec := proc.Spec{
		ID: name, Command: cfg.GetExecutable(), Args: cfg.GetArgs(), Restart: proc.Always,
		Env:        []string{module.EnvSocket + "=" + path, module.EnvFD + "=3"},
		ExtraFiles: []*os.File{m.file},
	}
	for _, k := range sortedKeys(cfg.GetEnv()) {
		spec.Env = append(spec.Env, k+"="+cfg.GetEnv()[k])
	}
	opts := r.procOptions("module", name)
	opts.OnEvent = func(ev proc.Event) {
		// A restarted module has lost its components: handshake again and
		// add them back. Not on this goroutine: it must not block the
		// supervisor.
		m.mu.Lock()
		switch ev.Kind {
		case proc.EventStarted:
			m.down = nil
		case proc.EventExited:
			// Connections to the dead run are useless; calls made until
			// the restart wait in the socket's listen queue.
			m.client.Close()
			m.down = fmt.Errorf("module exited: %w", orClean(ev.Err))
			if m.abort != nil {
				m.abort(m.down)
			}
		}
		m.mu.Unlock()
		if ev.Kind == proc.EventStarted && ev.Restarts > 0 {
			go r.attach(m, ev.Restarts)
		}
	}
	r.mu.Lock()
	m.sup = proc.Start(spec, opts)
	r.modules[name] = m
	r.mu.Unlock()
	models, err := r.handshake(ctx, m)
	if err != nil {
		log.Error("module handshake failed", zap.Error(err))
	}
	m.setAttach(models, 0, err)
}

// handshake asks the module for its models.
func (r *Robot) handshake(ctx context.Context, m *moduleEntry) (map[component.Model]bool, error) {
	ctx, cancel := withClockTimeout(ctx, r.opts.Clock, r.opts.ModuleStartTimeout)
	defer cancel()
	ctx, abort := context.WithCancelCause(ctx)
	m.mu.Lock()
	m.abort = abort
	if m.down != nil {
		abort(m.down) // it already exited
	}
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		m.abort = nil
		m.mu.Unlock()
		abort(nil)
	}()
	res, err := m.client.Module.Handshake(ctx, connect.NewRequest(&controlv1.HandshakeRequest{}))
	if err != nil {
		if cause := context.Cause(ctx); cause != nil {
			err = fmt.Errorf("%w (%w)", err, cause)
		}
		return nil, fmt.Errorf("handshake with module %s: %w", m.cfg.GetName(), err)
	}
	models := map[component.Model]bool{}
	var names []string
	for _, md := range res.Msg.GetModels() {
		models[component.Model{Type: md.GetType(), Name: md.GetModel()}] = true
		names = append(names, md.GetModel())
	}
	sort.Strings(names)
	r.log.Info("module handshake", zap.String("module", m.cfg.GetName()), zap.Strings("models", names))
	return models, nil
}

// attach re-handshakes a restarted module and adds its components back.
func (r *Robot) attach(m *moduleEntry, run int) {
	ctx := m.ctx
	models, err := r.handshake(ctx, m)
	if err != nil {
		if ctx.Err() == nil {
			r.log.Error("module reattach failed", zap.String("module", m.cfg.GetName()), zap.Error(err))
			m.setAttach(nil, run, err)
		}
		return
	}
	r.mu.Lock()
	var comps []*configv1.Component
	for _, c := range Order(r.cfg.GetComponents()) {
		if e := r.comps[c.GetName()]; e != nil && e.module == m.cfg.GetName() {
			comps = append(comps, e.cfg)
		}
	}
	r.mu.Unlock()
	var errs []error
	for _, c := range comps {
		if _, err := m.client.Module.AddComponent(ctx, connect.NewRequest(&controlv1.AddComponentRequest{Config: c})); err != nil {
			errs = append(errs, fmt.Errorf("reattach %q: %w", c.GetName(), err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		r.log.Error("module components not reattached", zap.String("module", m.cfg.GetName()), zap.Error(err))
		m.setAttach(nil, run, err)
		return
	}
	r.log.Info("module components reattached", zap.String("module", m.cfg.GetName()), zap.Int("components", len(comps)))
	// Marked attached only now that its components are back.
	m.setAttach(models, run, nil)
}

// WaitModule waits until module name is attached (handshaken, components
// added) after at least restarts restarts, or ctx ends. The daemon uses it
// in status; tests use it to follow a restart without sleeping.
func (r *Robot) WaitModule(ctx context.Context, name string, restarts int) error {
	for {
		r.mu.Lock()
		m := r.modules[name]
		r.mu.Unlock()
		if m == nil {
			return fmt.Errorf("no module %q", name)
		}
		m.mu.Lock()
		ok, ch, err := m.attached >= restarts, m.changed, m.err
		m.mu.Unlock()
		if ok && err == nil {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("wait for module %q: %w (last error: %v)", name, ctx.Err(), err)
			}
			return fmt.Errorf("wait for module %q: %w", name, ctx.Err())
		}
	}
}

// buildOnModule adds a component to the module that declared its model.
func (r *Robot) buildOnModule(ctx context.Context, c *configv1.Component) (component.Component, string, error) {
	want := component.Model{Type: c.GetType(), Name: c.GetModel()}
	r.mu.Lock()
	var m *moduleEntry
	var failed []string
	for _, name := range sortedKeys(r.modules) {
		e := r.modules[name]
		if e.serves(want) {
			m = e
			break
		}
		e.mu.Lock()
		if e.err != nil {
			failed = append(failed, fmt.Sprintf("%s (%v)", name, e.err))
		}
		e.mu.Unlock()
	}
	r.mu.Unlock()
	if m == nil {
		err := fmt.Errorf("no module serves model %q for a %s", c.GetModel(), typeName(c.GetType()))
		if len(failed) > 0 {
			err = fmt.Errorf("%w; failed modules: %v", err, failed)
		}
		return nil, "", err
	}
	if _, err := m.client.Module.AddComponent(ctx, connect.NewRequest(&controlv1.AddComponentRequest{Config: c})); err != nil {
		return nil, "", fmt.Errorf("module %s: add component: %w", m.cfg.GetName(), err)
	}
	return component.NewRemote(m.client.Components, c.GetType(), c.GetName()), m.cfg.GetName(), nil
}

func orClean(err error) error {
	if err == nil {
		return errors.New("exit status 0")
	}
	return err
}

func typeName(t component.Type) string {
	switch t {
	case component.TypeMotor:
		return "motor"
	case component.TypeBase:
		return "base"
	case component.TypeSensor:
		return "sensor"
	case component.TypeCamera:
		return "camera"
	}
	return "generic component"
}

func (r *Robot) removeFromModule(ctx context.Context, mod, name string) {
	r.mu.Lock()
	m := r.modules[mod]
	r.mu.Unlock()
	if m == nil || m.client == nil {
		return
	}
	if _, err := m.client.Module.RemoveComponent(ctx, connect.NewRequest(&controlv1.RemoveComponentRequest{Name: name})); err != nil {
		r.log.Debug("remove component from module", zap.String("module", mod), zap.String("component", name), zap.Error(err))
	}
}

// stopModule stops a module and removes its socket.
func (r *Robot) stopModule(ctx context.Context, name string) {
	r.mu.Lock()
	m := r.modules[name]
	delete(r.modules, name)
	r.mu.Unlock()
	if m == nil {
		return
	}
	m.cancel()
	if m.sup != nil {
		if err := m.sup.Stop(ctx); err != nil {
			r.log.Warn("module stop", zap.String("module", name), zap.Error(err))
		}
	}
	if m.client != nil {
		m.client.Close()
	}
	if m.file != nil {
		m.file.Close()
	}
	if m.lis != nil {
		m.lis.Close() // also unlinks the socket
	}
	r.log.Info("module stopped", zap.String("module", name))
}
