package robot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/config"
	"github.com/outpost-robotics/outpost/robot/builtin"
	"github.com/outpost-robotics/outpost/robot/component"
	"github.com/outpost-robotics/outpost/robot/module"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/protobuf/types/known/structpb"
)

// The test binary doubles as a module: run with envTestModule=1 it serves
// test models instead of running tests.
const envTestModule = "OUTPOST_ROBOT_TEST_MODULE"

func TestMain(m *testing.M) {
	if os.Getenv(envTestModule) == "1" {
		runTestModule()
		return
	}
	os.Exit(m.Run())
}

func runTestModule() {
	fakes := component.NewRegistry()
	if err := builtin.Register(fakes, builtin.Options{Clock: clock.NewReal()}); err != nil {
		panic(err)
	}
	asFake := func(ctx context.Context, cfg *configv1.Component, deps component.Deps) (component.Component, error) {
		c := &configv1.Component{Name: cfg.GetName(), Type: cfg.GetType(), Model: "fake", Attributes: cfg.GetAttributes()}
		return fakes.Build(ctx, c, deps)
	}
	crasher := func(ctx context.Context, cfg *configv1.Component, deps component.Deps) (component.Component, error) {
		c, err := asFake(ctx, cfg, deps)
		return crashing{c}, err
	}
	fmt.Println("test module up")
	module.Main(
		module.Model{Type: component.TypeMotor, Name: "test:motor", New: asFake},
		module.Model{Type: component.TypeGeneric, Name: "test:crasher", New: crasher},
	)
}

// crashing exits the module when told {"crash": true}.
type crashing struct{ component.Component }

func (c crashing) DoCommand(ctx context.Context, cmd map[string]any) (map[string]any, error) {
	if cmd["crash"] == true {
		fmt.Println("crasher: crashing on request")
		os.Exit(3)
	}
	return c.Component.DoCommand(ctx, cmd)
}

// recorder wraps the fake models and records builds, stops and closes.
type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) add(e string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.events
	r.events = nil
	return out
}

type recorded struct {
	component.Motor
	name string
	rec  *recorder
}

func (c *recorded) Stop(ctx context.Context) error {
	c.rec.add("stop " + c.name)
	return c.Motor.Stop(ctx)
}

func (c *recorded) Close(ctx context.Context) error {
	c.rec.add("close " + c.name)
	return c.Motor.Close(ctx)
}

type env struct {
	t   *testing.T
	ctx context.Context
	clk *clock.Fake
	rec *recorder
	r   *Robot
	log *observer.ObservedLogs
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	clk := clock.NewFake(time.Unix(1_700_000_000, 0))
	fakes := component.NewRegistry()
	if err := builtin.Register(fakes, builtin.Options{Clock: clk}); err != nil {
		t.Fatal(err)
	}
	// The motor "fake" records what happens to it; other types are plain.
	rec := &recorder{}
	reg := component.NewRegistry()
	for _, m := range fakes.Models() {
		ctor, _ := fakes.Lookup(m.Type, m.Name)
		if m.Type == component.TypeMotor && m.Name == "fake" {
			ctor = func(ctx context.Context, cfg *configv1.Component, deps component.Deps) (component.Component, error) {
				rec.add("build " + cfg.GetName())
				c, err := fakes.Build(ctx, cfg, deps)
				if err != nil {
					return nil, err
				}
				return &recorded{Motor: c.(component.Motor), name: cfg.GetName(), rec: rec}, nil
			}
		}
		if err := reg.Register(m.Type, m.Name, ctor); err != nil {
			t.Fatal(err)
		}
	}
	core, logs := observer.New(zapcore.DebugLevel)
	// Socket paths must stay under 108 bytes: t.TempDir can be long.
	sockDir, err := os.MkdirTemp("", "outpost-robot")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	r, err := New(Options{Clock: clk, Log: zap.New(core), Registry: reg, SocketDir: sockDir, ModuleStartTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close(context.Background()) })
	return &env{t: t, ctx: ctx, clk: clk, rec: rec, r: r, log: logs}
}

func (e *env) apply(cfg *configv1.RobotConfig) *Result {
	e.t.Helper()
	res, err := e.r.Apply(e.ctx, cfg)
	if err != nil {
		e.t.Fatalf("apply: %v", err)
	}
	return res
}

func motor(name string, deps ...string) *configv1.Component {
	return &configv1.Component{Name: name, Type: component.TypeMotor, Model: "fake", DependsOn: deps}
}

func attrs(m map[string]any) *structpb.Struct {
	s, err := structpb.NewStruct(m)
	if err != nil {
		panic(err)
	}
	return s
}

func TestApplyDiff(t *testing.T) {
	e := newEnv(t)
	sensor := &configv1.Component{Name: "s", Type: component.TypeSensor, Model: "fake"}
	// base is listed first but depends on the wheels: they must come first.
	cfg := &configv1.RobotConfig{Components: []*configv1.Component{motor("base", "left", "right"), motor("left"), motor("right"), sensor}}

	t.Run("add in dependency order", func(t *testing.T) {
		res := e.apply(cfg)
		if want := []string{"left", "right", "base", "s"}; !slices.Equal(res.Built, want) {
			t.Fatalf("built %v, want %v", res.Built, want)
		}
		if got, want := e.rec.take(), []string{"build left", "build right", "build base"}; !slices.Equal(got, want) {
			t.Fatalf("events %v, want %v", got, want)
		}
		if len(res.Failed()) != 0 {
			t.Fatalf("failed: %v", res.Failed())
		}
	})

	t.Run("same config touches nothing", func(t *testing.T) {
		right, _, _ := e.r.Component("right")
		res := e.apply(cfg)
		if len(res.Built) != 0 || len(res.Removed) != 0 || len(res.Kept) != 4 {
			t.Fatalf("result %+v", res)
		}
		if ev := e.rec.take(); len(ev) != 0 {
			t.Fatalf("events %v", ev)
		}
		if again, _, _ := e.r.Component("right"); again != right {
			t.Fatal("right was rebuilt")
		}
	})

	t.Run("change rebuilds it and its dependents only", func(t *testing.T) {
		right, _, _ := e.r.Component("right")
		cfg.Components[1] = motor("left")
		cfg.Components[1].Attributes = attrs(map[string]any{"gear": 2.0})
		res := e.apply(cfg)
		if want := []string{"left", "base"}; !slices.Equal(res.Built, want) {
			t.Fatalf("built %v, want %v", res.Built, want)
		}
		// Torn down dependents first, built dependencies first.
		want := []string{"stop base", "close base", "stop left", "close left", "build left", "build base"}
		if got := e.rec.take(); !slices.Equal(got, want) {
			t.Fatalf("events %v, want %v", got, want)
		}
		if again, _, _ := e.r.Component("right"); again != right {
			t.Fatal("right was rebuilt")
		}
	})

	t.Run("remove", func(t *testing.T) {
		cfg.Components = cfg.Components[:3] // drop the sensor
		cfg.Components = slices.DeleteFunc(cfg.Components, func(c *configv1.Component) bool { return c.GetName() == "right" })
		cfg.Components[0].DependsOn = []string{"left"}
		res := e.apply(cfg)
		slices.Sort(res.Removed)
		if want := []string{"right", "s"}; !slices.Equal(res.Removed, want) {
			t.Fatalf("removed %v, want %v", res.Removed, want)
		}
		if _, _, err := e.r.Component("s"); !errors.Is(err, component.ErrNotFound) {
			t.Fatalf("removed sensor still found: %v", err)
		}
		// base's depends_on changed, so it is rebuilt; right is gone.
		want := []string{"stop base", "close base", "stop right", "close right", "build base"}
		if got := e.rec.take(); !slices.Equal(got, want) {
			t.Fatalf("events %v, want %v", got, want)
		}
	})

	t.Run("one failing component among good ones", func(t *testing.T) {
		bad := motor("bad")
		bad.Attributes = attrs(map[string]any{"fail_build": "no driver on /dev/ttyUSB0"})
		next := &configv1.RobotConfig{Components: []*configv1.Component{
			motor("left"), motor("base", "left"), bad, motor("arm", "bad"), motor("good"),
		}}
		next.Components[0].Attributes = attrs(map[string]any{"gear": 2.0})
		res := e.apply(next)
		failed := res.Failed()
		if len(failed) != 2 || !strings.Contains(failed["bad"], "no driver on /dev/ttyUSB0") || !strings.Contains(failed["arm"], `dependency "bad" is not running`) {
			t.Fatalf("failed %v", failed)
		}
		for _, name := range []string{"left", "base", "good"} {
			if _, _, err := e.r.Component(name); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
		if _, _, err := e.r.Component("bad"); err == nil || !strings.Contains(err.Error(), "failed to start") {
			t.Errorf("bad: %v", err)
		}
		e.rec.take()
		// Applying again retries the failed ones only.
		res = e.apply(next)
		if want := []string{"bad", "arm"}; !slices.Equal(res.Built, want) {
			t.Fatalf("re-apply built %v, want %v", res.Built, want)
		}
		cfg = next
	})

	t.Run("invalid config is refused whole", func(t *testing.T) {
		e.rec.take()
		before := e.r.Config()
		invalid := &configv1.RobotConfig{Components: []*configv1.Component{motor("x", "ghost")}}
		_, err := e.r.Apply(e.ctx, invalid)
		var cerr *config.Error
		if !errors.As(err, &cerr) || !strings.Contains(err.Error(), `components[0].depends_on[0]: unknown component "ghost"`) {
			t.Fatalf("apply invalid = %v", err)
		}
		if e.r.Config() != before || len(e.rec.take()) != 0 {
			t.Fatal("an invalid config changed the robot")
		}
		if _, _, err := e.r.Component("left"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("restart rebuilds everything from the same config", func(t *testing.T) {
		before, _, _ := e.r.Component("left")
		cfgBefore := e.r.Config()
		if err := e.r.Restart(e.ctx); err != nil {
			t.Fatal(err)
		}
		after, _, err := e.r.Component("left")
		if err != nil || after == before || e.r.Config() != cfgBefore {
			t.Fatalf("after restart: %v, same instance %v", err, after == before)
		}
		got := e.rec.take()
		if !slices.Contains(got, "close left") || got[len(got)-1] != "build good" {
			t.Fatalf("restart events %v", got)
		}
	})

	t.Run("stop all, then close", func(t *testing.T) {
		if failed, err := e.r.StopAll(e.ctx); err != nil || len(failed) != 0 {
			t.Fatal(failed, err)
		}
		// Dependents stop before what they depend on.
		if got, want := e.rec.take(), []string{"stop good", "stop base", "stop left"}; !slices.Equal(got, want) {
			t.Fatalf("events %v, want %v", got, want)
		}
		if err := e.r.Close(e.ctx); err != nil {
			t.Fatal(err)
		}
		got := e.rec.take()
		for _, want := range []string{"close good", "close base", "close left"} {
			if !slices.Contains(got, want) {
				t.Errorf("close events %v lack %q", got, want)
			}
		}
		if _, err := e.r.Apply(e.ctx, cfg); !errors.Is(err, ErrClosed) {
			t.Fatalf("apply after close = %v", err)
		}
	})
}

func TestOrder(t *testing.T) {
	comps := []*configv1.Component{motor("d", "c"), motor("c", "b", "a"), motor("b", "a"), motor("a"), motor("z")}
	var got []string
	for _, c := range Order(comps) {
		got = append(got, c.GetName())
	}
	if want := []string{"a", "b", "c", "d", "z"}; !slices.Equal(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
}

func TestApplyProcesses(t *testing.T) {
	e := newEnv(t)
	p := &configv1.Process{Id: "rec", Command: "/bin/sh", Args: []string{"-c", "exec sleep 1000"}, Restart: configv1.RestartPolicy_RESTART_POLICY_NEVER}
	other := &configv1.Process{Id: "other", Command: "/bin/sh", Args: []string{"-c", "exec sleep 1000"}}
	e.apply(&configv1.RobotConfig{Processes: []*configv1.Process{p, other}})
	e.r.mu.Lock()
	first, otherSup := e.r.procs["rec"].sup, e.r.procs["other"].sup
	e.r.mu.Unlock()

	p.Args = []string{"-c", "exec sleep 999"}
	e.apply(&configv1.RobotConfig{Processes: []*configv1.Process{p, other}})
	<-first.Done() // the changed process was stopped...
	e.r.mu.Lock()
	second, otherNow := e.r.procs["rec"].sup, e.r.procs["other"].sup
	e.r.mu.Unlock()
	if second == first || otherNow != otherSup {
		t.Fatal("want rec restarted and other untouched")
	}
	res := e.apply(&configv1.RobotConfig{Processes: []*configv1.Process{other}})
	<-second.Done() // ...and a removed one too
	if len(res.Resources) != 1 || res.Resources[0].GetName() != "other" || res.Resources[0].GetKind() != controlv1.ResourceKind_RESOURCE_KIND_PROCESS {
		t.Fatalf("resources %v", res.Resources)
	}
}

func TestModuleCrashIsRestartedAndReattached(t *testing.T) {
	e := newEnv(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cfg := &configv1.RobotConfig{
		Modules: []*configv1.Module{{Name: "testmod", Executable: exe, Env: map[string]string{envTestModule: "1"}}},
		Components: []*configv1.Component{
			{Name: "crasher", Type: component.TypeGeneric, Model: "test:crasher"},
			{Name: "arm", Type: component.TypeMotor, Model: "test:motor"},
			{Name: "nobody", Type: component.TypeMotor, Model: "test:absent"},
			{Name: "wheel", Type: component.TypeMotor, Model: "fake", DependsOn: []string{"arm"}},
		},
	}
	res := e.apply(cfg)
	failed := res.Failed()
	if len(failed) != 1 || !strings.Contains(failed["nobody"], `no module serves model "test:absent" for a motor`) {
		t.Fatalf("failed %v", failed)
	}
	arm, _, err := e.r.Component("arm")
	if err != nil {
		t.Fatal(err)
	}
	if err := arm.(component.Motor).SetPower(e.ctx, 0.5); err != nil {
		t.Fatal(err)
	}
	if moving, err := arm.(component.Motor).IsMoving(e.ctx); err != nil || !moving {
		t.Fatalf("is moving = %v, %v", moving, err)
	}

	// Crash the module through one of its components.
	crasher, _, _ := e.r.Component("crasher")
	if _, err := crasher.DoCommand(e.ctx, map[string]any{"crash": true}); err == nil {
		t.Fatal("crash command returned no error")
	}
	// The supervisor waits out its backoff on the fake clock, then restarts.
	if err := e.clk.BlockUntil(e.ctx, 1); err != nil {
		t.Fatal(err)
	}
	d, _ := e.clk.NextDeadline()
	e.clk.Advance(d)
	if err := e.r.WaitModule(e.ctx, "testmod", 1); err != nil {
		t.Fatal(err)
	}
	// The same component values work again: the module has them back, in
	// their initial state.
	if moving, err := arm.(component.Motor).IsMoving(e.ctx); err != nil || moving {
		t.Fatalf("after restart is moving = %v, %v; want a fresh, stopped motor", moving, err)
	}
	if res, err := crasher.DoCommand(e.ctx, map[string]any{"hello": "again"}); err != nil || res["echo"] == nil {
		t.Fatalf("do command after restart = %v, %v", res, err)
	}
	var mod *controlv1.ResourceStatus
	for _, s := range e.r.Resources() {
		if s.GetKind() == controlv1.ResourceKind_RESOURCE_KIND_MODULE {
			mod = s
		}
	}
	if mod.GetState() != controlv1.ResourceState_RESOURCE_STATE_RUNNING || mod.GetRestarts() != 1 {
		t.Fatalf("module status %v", mod)
	}
	// Its output went into the logs, tagged with the module.
	if logs := e.log.FilterMessage("crasher: crashing on request").All(); len(logs) != 1 || logs[0].ContextMap()["module"] != "testmod" {
		t.Fatalf("module output not logged: %v", logs)
	}

	// The component contract over connect: wrong type and unknown names.
	srv := e.r // serves ComponentService itself
	_, err = srv.MotorIsMoving(e.ctx, connect.NewRequest(&controlv1.MotorIsMovingRequest{Name: "crasher"}))
	if connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Fatalf("motor call on a generic: %v", err)
	}
	_, err = srv.Stop(e.ctx, connect.NewRequest(&controlv1.StopRequest{Name: "ghost"}))
	if connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("unknown component: %v", err)
	}
	_, err = srv.Stop(e.ctx, connect.NewRequest(&controlv1.StopRequest{Name: "nobody"}))
	if connect.CodeOf(err) != connect.CodeUnavailable || !strings.Contains(err.Error(), "failed to start") {
		t.Fatalf("failed component: %v", err)
	}

	// Removing the module removes its socket and fails its components.
	cfg.Modules = nil
	cfg.Components = cfg.Components[3:]
	cfg.Components[0].DependsOn = nil
	e.apply(cfg)
	if entries, _ := os.ReadDir(e.r.opts.SocketDir); len(entries) != 0 {
		t.Fatalf("socket left behind: %v", entries)
	}
}

func TestModuleThatCannotStart(t *testing.T) {
	e := newEnv(t)
	level := zap.NewAtomicLevel()
	e.r.opts.Level = &level
	res := e.apply(&configv1.RobotConfig{
		LogLevel:   "debug",
		Modules:    []*configv1.Module{{Name: "broken", Executable: "/nonexistent/module"}},
		Components: []*configv1.Component{{Name: "arm", Type: component.TypeMotor, Model: "acme:arm"}, motor("wheel")},
	})
	failed := res.Failed()
	if !strings.Contains(failed["broken"], "module exited") || !strings.Contains(failed["broken"], "/nonexistent/module") {
		t.Fatalf("module status: %v", failed)
	}
	if !strings.Contains(failed["arm"], `no module serves model "acme:arm"`) || !strings.Contains(failed["arm"], "failed modules: [broken") {
		t.Fatalf("component status: %v", failed)
	}
	if _, _, err := e.r.Component("wheel"); err != nil {
		t.Fatalf("a broken module stopped a built-in component: %v", err)
	}
	if level.Level() != zapcore.DebugLevel {
		t.Fatalf("log level %v, want debug from the config", level.Level())
	}
}

// TestCrashLoopIsFailed: a process that keeps crashing is reported failed,
// whether caught running between crashes or waiting to restart, so the
// part's status counts it; a process that stays up is running.
func TestCrashLoopIsFailed(t *testing.T) {
	e := newEnv(t)
	crashy := &configv1.Process{Id: "crashy", Command: "/bin/sh", Args: []string{"-c", "exit 3"}, Restart: configv1.RestartPolicy_RESTART_POLICY_ALWAYS}
	steady := &configv1.Process{Id: "steady", Command: "/bin/sh", Args: []string{"-c", "exec sleep 1000"}}
	e.apply(&configv1.RobotConfig{Processes: []*configv1.Process{crashy, steady}})
	state := func(name string) *controlv1.ResourceStatus {
		for _, r := range e.r.Resources() {
			if r.GetName() == name {
				return r
			}
		}
		t.Fatalf("no resource %q", name)
		return nil
	}
	for range 20 {
		if st := state("crashy"); st.GetState() == controlv1.ResourceState_RESOURCE_STATE_FAILED {
			if !strings.Contains(st.GetError(), "crash loop") || !strings.Contains(st.GetError(), "exit status 3") {
				t.Errorf("a crash loop's error: %q", st.GetError())
			}
			if st := state("steady"); st.GetState() != controlv1.ResourceState_RESOURCE_STATE_RUNNING {
				t.Errorf("the steady process: %v", st)
			}
			return
		}
		// Each crash waits out its backoff on the fake clock.
		if err := e.clk.BlockUntil(e.ctx, 1); err != nil {
			t.Fatal(err)
		}
		if d, ok := e.clk.NextDeadline(); ok {
			e.clk.Advance(d)
		}
	}
	t.Fatalf("a crash-looping process is %v", state("crashy"))
}
