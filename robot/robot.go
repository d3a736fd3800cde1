// Package robot is the running machine: it turns a validated config
// (outpost.config.v1) into running components, modules and sidecar
// processes, and a new config into the smallest change to them.
//
// Apply validates first and refuses an invalid config whole, leaving the
// running one alone. It then computes what changed and touches only that: a
// component is rebuilt when its own config, a dependency, or its module
// changed; processes are restarted only when their own config changed. It
// builds in depends_on order, and a component that fails to build fails alone
// (with its dependents), recorded with the reason in the status that Apply
// returns and Resources reports.
package robot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/control/v1/controlv1connect"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/config"
	"github.com/outpost-robotics/outpost/logging"
	"github.com/outpost-robotics/outpost/robot/component"
	"github.com/outpost-robotics/outpost/robot/proc"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
)

// DefaultModuleStartTimeout bounds a module's handshake after it starts.
const DefaultModuleStartTimeout = 30 * time.Second

// Options are the runtime's collaborators.
type Options struct {
	Clock clock.Clock
	Log   *zap.Logger
	// Registry holds the built-in models (see package builtin).
	Registry *component.Registry
	// SocketDir is where module sockets are made; it must exist and be
	// private to the daemon (the daemon's runtime directory).
	SocketDir string
	// ModuleStartTimeout bounds each module handshake; 0 means the default.
	ModuleStartTimeout time.Duration
	// Level, when set, follows the config's log_level.
	Level *zap.AtomicLevel
	// ProcessOptions tune restart backoff for processes and modules; Clock,
	// Log and OnEvent are set by the runtime.
	ProcessOptions proc.Options
}

// Robot is the running machine. Its methods are safe for concurrent use;
// Apply calls are serialised. It serves ComponentService itself (through the
// embedded component.Server), so the control plane mounts it directly.
type Robot struct {
	*component.Server

	opts Options
	log  *zap.Logger

	applyMu sync.Mutex // one Apply (or Close) at a time

	mu      sync.Mutex // guards the maps and cfg
	cfg     *configv1.RobotConfig
	comps   map[string]*compEntry
	modules map[string]*moduleEntry
	procs   map[string]*procEntry
	closed  bool
}

type compEntry struct {
	cfg    *configv1.Component
	comp   component.Component // nil when it failed
	err    error
	module string // the module serving it, if any
}

type procEntry struct {
	cfg *configv1.Process
	sup *proc.Supervisor
}

// New returns a robot running nothing.
func New(opts Options) (*Robot, error) {
	if opts.Clock == nil || opts.Registry == nil {
		return nil, errors.New("robot: Clock and Registry are required")
	}
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	if opts.ModuleStartTimeout <= 0 {
		opts.ModuleStartTimeout = DefaultModuleStartTimeout
	}
	r := &Robot{
		opts: opts, log: opts.Log,
		cfg:   &configv1.RobotConfig{},
		comps: map[string]*compEntry{}, modules: map[string]*moduleEntry{}, procs: map[string]*procEntry{},
	}
	r.Server = component.NewServer(r)
	return r, nil
}

var _ controlv1connect.ComponentServiceHandler = (*Robot)(nil)

// Result is what an Apply did.
type Result struct {
	// Built, Removed and Kept name components: built (new or rebuilt, even
	// if building failed), removed, and left running untouched.
	Built, Removed, Kept []string
	// Resources is the state of every resource after the apply.
	Resources []*controlv1.ResourceStatus
}

// Failed returns the resources that failed, by name, with why.
func (r *Result) Failed() map[string]string {
	out := map[string]string{}
	for _, s := range r.Resources {
		if s.GetState() == controlv1.ResourceState_RESOURCE_STATE_FAILED {
			out[s.GetName()] = s.GetError()
		}
	}
	return out
}

// ErrClosed is returned by Apply after Close.
var ErrClosed = errors.New("robot is shut down")

// Config returns the running config (do not modify it).
func (r *Robot) Config() *configv1.RobotConfig {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cfg
}

// Apply makes cfg the running config. It returns an error, and changes
// nothing, only when cfg is invalid (a *config.Error) or the robot is
// closed; resources that fail to start are reported in the Result.
func (r *Robot) Apply(ctx context.Context, cfg *configv1.RobotConfig) (*Result, error) {
	if err := config.Validate(cfg); err != nil {
		r.log.Warn("config refused; the running config stays", zap.Error(err))
		return nil, fmt.Errorf("apply config: %w", err)
	}
	r.applyMu.Lock()
	defer r.applyMu.Unlock()
	return r.apply(ctx, proto.Clone(cfg).(*configv1.RobotConfig))
}

// apply does Apply's work; the caller holds applyMu.
func (r *Robot) apply(ctx context.Context, cfg *configv1.RobotConfig) (*Result, error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, ErrClosed
	}
	old := r.cfg
	r.mu.Unlock()

	res := &Result{}
	// Modules whose config changed or vanished are restarted; every
	// component they serve is rebuilt.
	oldMods := map[string]*configv1.Module{}
	for _, m := range old.GetModules() {
		oldMods[m.GetName()] = m
	}
	newMods := map[string]*configv1.Module{}
	for _, m := range cfg.GetModules() {
		newMods[m.GetName()] = m
	}
	modChanged := map[string]bool{}
	for name, m := range oldMods {
		if n, ok := newMods[name]; !ok || !proto.Equal(m, n) {
			modChanged[name] = true
		}
	}

	// Which components to rebuild: in dependency order, a component is
	// rebuilt when it is new, its config changed, it failed last time, its
	// module changed, or anything it depends on is rebuilt.
	r.mu.Lock()
	rebuild := map[string]bool{}
	for _, c := range Order(cfg.GetComponents()) {
		e, ok := r.comps[c.GetName()]
		switch {
		case !ok, e.comp == nil, !proto.Equal(e.cfg, c), e.module != "" && modChanged[e.module]:
			rebuild[c.GetName()] = true
		default:
			for _, d := range c.GetDependsOn() {
				if rebuild[d] {
					rebuild[c.GetName()] = true
				}
			}
		}
	}
	keep := map[string]bool{}
	for _, c := range cfg.GetComponents() {
		if !rebuild[c.GetName()] {
			keep[c.GetName()] = true
			res.Kept = append(res.Kept, c.GetName())
		}
	}
	// Tear down what is not kept, dependents before their dependencies.
	oldOrder := Order(old.GetComponents())
	var teardown []*compEntry
	for i := len(oldOrder) - 1; i >= 0; i-- {
		name := oldOrder[i].GetName()
		if e, ok := r.comps[name]; ok && !keep[name] {
			teardown = append(teardown, e)
			delete(r.comps, name)
			if _, inNew := findComponent(cfg, name); !inNew {
				res.Removed = append(res.Removed, name)
			}
		}
	}
	r.mu.Unlock()
	for _, e := range teardown {
		r.closeComponent(ctx, e)
	}

	// Modules: stop the changed and removed ones, start the new and changed.
	for name := range modChanged {
		r.stopModule(ctx, name)
	}
	for _, m := range cfg.GetModules() {
		r.mu.Lock()
		_, running := r.modules[m.GetName()]
		r.mu.Unlock()
		if !running {
			r.startModule(ctx, m)
		}
	}

	// Build in dependency order.
	for _, c := range Order(cfg.GetComponents()) {
		if !rebuild[c.GetName()] {
			continue
		}
		res.Built = append(res.Built, c.GetName())
		e := r.build(ctx, c)
		r.mu.Lock()
		r.comps[c.GetName()] = e
		r.mu.Unlock()
	}

	r.applyProcesses(ctx, old, cfg)
	if r.opts.Level != nil {
		if lvl, err := logging.ParseLevel(cfg.GetLogLevel()); err == nil {
			r.opts.Level.SetLevel(lvl)
		}
	}

	r.mu.Lock()
	r.cfg = cfg
	r.mu.Unlock()
	res.Resources = r.Resources()
	r.log.Debug("config applied", zap.Strings("built", res.Built), zap.Strings("removed", res.Removed), zap.Int("kept", len(res.Kept)), zap.Int("failed", len(res.Failed())))
	return res, nil
}

func findComponent(cfg *configv1.RobotConfig, name string) (*configv1.Component, bool) {
	for _, c := range cfg.GetComponents() {
		if c.GetName() == name {
			return c, true
		}
	}
	return nil, false
}

// build constructs one component; its dependencies are already built.
func (r *Robot) build(ctx context.Context, c *configv1.Component) *compEntry {
	e := &compEntry{cfg: c}
	deps := component.Deps{}
	r.mu.Lock()
	for _, d := range c.GetDependsOn() {
		de := r.comps[d]
		if de == nil || de.comp == nil {
			e.err = fmt.Errorf("dependency %q is not running", d)
			break
		}
		deps[d] = de.comp
	}
	r.mu.Unlock()
	if e.err == nil {
		if config.IsModuleModel(c.GetModel()) {
			e.comp, e.module, e.err = r.buildOnModule(ctx, c)
		} else {
			e.comp, e.err = r.opts.Registry.Build(ctx, c, deps)
		}
	}
	if e.err != nil {
		r.log.Error("component failed to start", zap.String("component", c.GetName()), zap.String("model", c.GetModel()), zap.Error(e.err))
	} else {
		r.log.Info("component started", zap.String("component", c.GetName()), zap.String("model", c.GetModel()))
	}
	return e
}

func (r *Robot) closeComponent(ctx context.Context, e *compEntry) {
	if e.comp == nil {
		return
	}
	name := e.cfg.GetName()
	if err := e.comp.Stop(ctx); err != nil {
		r.log.Warn("component stop failed", zap.String("component", name), zap.Error(err))
	}
	if err := e.comp.Close(ctx); err != nil {
		r.log.Warn("component close failed", zap.String("component", name), zap.Error(err))
	}
	if e.module != "" {
		r.removeFromModule(ctx, e.module, name)
	}
}

// Order returns components sorted so that each comes after everything it
// depends on; among independent components, config order is kept. Unknown
// dependencies are ignored (Validate reports them), and components in a
// cycle come last in config order.
func Order(comps []*configv1.Component) []*configv1.Component {
	index := map[string]int{}
	for i, c := range comps {
		if _, dup := index[c.GetName()]; !dup {
			index[c.GetName()] = i
		}
	}
	indeg := make([]int, len(comps))
	users := make([][]int, len(comps))
	for i, c := range comps {
		for _, d := range c.GetDependsOn() {
			if j, ok := index[d]; ok && j != i {
				indeg[i]++
				users[j] = append(users[j], i)
			}
		}
	}
	var out []*configv1.Component
	done := make([]bool, len(comps))
	for len(out) < len(comps) {
		progressed := false
		for i := range comps {
			if !done[i] && indeg[i] == 0 {
				done[i] = true
				progressed = true
				out = append(out, comps[i])
				for _, u := range users[i] {
					indeg[u]--
				}
				break // restart the scan so config order wins among the ready
			}
		}
		if !progressed {
			for i := range comps {
				if !done[i] {
					done[i] = true
					out = append(out, comps[i])
				}
			}
		}
	}
	return out
}

// Component finds a running component (component.Finder).
func (r *Robot) Component(name string) (component.Component, component.Type, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.comps[name]
	if !ok {
		return nil, 0, fmt.Errorf("%w %q", component.ErrNotFound, name)
	}
	if e.comp == nil {
		return nil, 0, fmt.Errorf("component %q failed to start: %w", name, e.err)
	}
	return e.comp, e.cfg.GetType(), nil
}

// Resources reports every component, module and process (component.Finder).
func (r *Robot) Resources() []*controlv1.ResourceStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*controlv1.ResourceStatus
	names := sortedKeys(r.comps)
	for _, n := range names {
		e := r.comps[n]
		st := &controlv1.ResourceStatus{Kind: controlv1.ResourceKind_RESOURCE_KIND_COMPONENT, Name: n, State: controlv1.ResourceState_RESOURCE_STATE_RUNNING,
			ComponentType: e.cfg.GetType(), Model: e.cfg.GetModel()}
		if e.comp == nil {
			st.State, st.Error = controlv1.ResourceState_RESOURCE_STATE_FAILED, e.err.Error()
		}
		out = append(out, st)
	}
	for _, n := range sortedKeys(r.modules) {
		out = append(out, r.modules[n].status())
	}
	for _, n := range sortedKeys(r.procs) {
		out = append(out, procStatus(controlv1.ResourceKind_RESOURCE_KIND_PROCESS, n, r.procs[n].sup.Status()))
	}
	return out
}

func procStatus(kind controlv1.ResourceKind, name string, ps proc.Status) *controlv1.ResourceStatus {
	st := &controlv1.ResourceStatus{Kind: kind, Name: name, Restarts: uint32(ps.Restarts)}
	switch ps.State {
	case proc.StateRunning, proc.StateStarting:
		st.State = controlv1.ResourceState_RESOURCE_STATE_RUNNING
	case proc.StateBackoff:
		st.State = controlv1.ResourceState_RESOURCE_STATE_RESTARTING
	case proc.StateExited:
		st.State = controlv1.ResourceState_RESOURCE_STATE_STOPPED
	default:
		st.State = controlv1.ResourceState_RESOURCE_STATE_STOPPED
	}
	if ps.LastErr != nil {
		st.Error = ps.LastErr.Error()
		if ps.State == proc.StateExited {
			st.State = controlv1.ResourceState_RESOURCE_STATE_FAILED
		}
	}
	// A crash loop is a failure whatever the moment caught: between two
	// crashes the process is briefly running or waiting to restart, and
	// reporting that would hide it from the fleet's failing count.
	if ps.Failures >= proc.CrashLoop && ps.State != proc.StateStopping && ps.State != proc.StateStopped {
		st.State = controlv1.ResourceState_RESOURCE_STATE_FAILED
		st.Error = fmt.Sprintf("crash loop: %d failed runs in a row, the last: %s", ps.Failures, st.Error)
	}
	return st
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// StopAll brings every running component to a safe state, dependents first,
// without removing anything: what the daemon does when its config expires,
// and the control plane's StopAll. It returns the components that failed to
// stop, with why; the error is only for an ended ctx.
func (r *Robot) StopAll(ctx context.Context) (map[string]string, error) {
	r.mu.Lock()
	order := Order(r.cfg.GetComponents())
	var comps []component.Component
	var names []string
	for i := len(order) - 1; i >= 0; i-- {
		if e := r.comps[order[i].GetName()]; e != nil && e.comp != nil {
			comps = append(comps, e.comp)
			names = append(names, order[i].GetName())
		}
	}
	r.mu.Unlock()
	failed := map[string]string{}
	for i, c := range comps {
		if err := c.Stop(ctx); err != nil {
			failed[names[i]] = err.Error()
			r.log.Error("component did not stop", zap.String("component", names[i]), zap.Error(err))
		}
	}
	return failed, ctx.Err()
}

// Close stops every component safely, closes them, and stops modules and
// processes. The robot refuses Apply afterwards. The error names the
// components that did not stop.
func (r *Robot) Close(ctx context.Context) error {
	r.applyMu.Lock()
	defer r.applyMu.Unlock()
	err := r.teardown(ctx)
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	return err
}

// Restart stops everything (components safely, modules, processes) and
// starts the running config again from scratch.
func (r *Robot) Restart(ctx context.Context) error {
	r.applyMu.Lock()
	defer r.applyMu.Unlock()
	cfg := r.Config()
	if err := r.teardown(ctx); err != nil {
		r.log.Warn("restart: some components did not stop", zap.Error(err))
	}
	_, err := r.apply(ctx, cfg)
	return err
}

// teardown stops and removes everything, leaving an empty running config;
// the caller holds applyMu.
func (r *Robot) teardown(ctx context.Context) error {
	failed, err := r.StopAll(ctx)
	if len(failed) > 0 {
		err = errors.Join(err, fmt.Errorf("components did not stop: %v", failed))
	}
	r.mu.Lock()
	order := Order(r.cfg.GetComponents())
	var teardown []*compEntry
	for i := len(order) - 1; i >= 0; i-- {
		if e := r.comps[order[i].GetName()]; e != nil {
			teardown = append(teardown, e)
		}
	}
	r.comps = map[string]*compEntry{}
	mods := sortedKeys(r.modules)
	r.mu.Unlock()
	for _, e := range teardown {
		r.closeComponent(ctx, e)
	}
	for _, m := range mods {
		r.stopModule(ctx, m)
	}
	r.applyProcesses(ctx, r.Config(), &configv1.RobotConfig{})
	r.mu.Lock()
	r.cfg = &configv1.RobotConfig{}
	r.mu.Unlock()
	return err
}

func procSpec(p *configv1.Process) proc.Spec {
	spec := proc.Spec{ID: p.GetId(), Command: p.GetCommand(), Args: p.GetArgs(), Dir: p.GetWorkingDir()}
	for _, k := range sortedKeys(p.GetEnv()) {
		spec.Env = append(spec.Env, k+"="+p.GetEnv()[k])
	}
	switch p.GetRestart() {
	case configv1.RestartPolicy_RESTART_POLICY_ON_FAILURE:
		spec.Restart = proc.OnFailure
	case configv1.RestartPolicy_RESTART_POLICY_NEVER:
		spec.Restart = proc.Never
	default:
		spec.Restart = proc.Always
	}
	if p.GetStopTimeout() != nil {
		spec.StopTimeout = p.GetStopTimeout().AsDuration()
	}
	return spec
}

func (r *Robot) procOptions(kind, name string) proc.Options {
	o := r.opts.ProcessOptions
	o.Clock, o.Log = r.opts.Clock, r.log.With(zap.String(kind, name))
	o.OnEvent = nil
	return o
}

// applyProcesses stops removed and changed processes (concurrently, each
// within its stop timeout) and starts new and changed ones.
func (r *Robot) applyProcesses(ctx context.Context, old, cfg *configv1.RobotConfig) {
	want := map[string]*configv1.Process{}
	for _, p := range cfg.GetProcesses() {
		want[p.GetId()] = p
	}
	r.mu.Lock()
	var stopping []*procEntry
	for id, e := range r.procs {
		if n, ok := want[id]; !ok || !proto.Equal(n, e.cfg) {
			stopping = append(stopping, e)
			delete(r.procs, id)
		}
	}
	r.mu.Unlock()
	var wg sync.WaitGroup
	for _, e := range stopping {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := e.sup.Stop(ctx); err != nil {
				r.log.Warn("process stop", zap.String("process", e.cfg.GetId()), zap.Error(err))
			}
		}()
	}
	wg.Wait()
	for _, p := range cfg.GetProcesses() {
		r.mu.Lock()
		_, running := r.procs[p.GetId()]
		if !running {
			r.procs[p.GetId()] = &procEntry{cfg: p, sup: proc.Start(procSpec(p), r.procOptions("process", p.GetId()))}
		}
		r.mu.Unlock()
	}
}

// socketPath is where a module's socket lives. Unix socket paths are short
// (108 bytes), so a long module name is refused by Listen with a clear error.
func (r *Robot) socketPath(name string) string {
	return filepath.Join(r.opts.SocketDir, name+".sock")
}

func removeStale(path string) {
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		_ = os.Remove(path)
	}
}
