// Package config validates a robot part's configuration (outpost.config.v1).
//
// The fleet cloud checks a config before it signs it and the daemon checks it
// again before it applies it; both call Validate, so they can never disagree
// about what is valid. The package imports only the generated schema, so the
// cloud does not pull in the robot runtime to use it.
//
// Every problem is reported with the path of the field at fault, for example
// `components[2].depends_on[0]: unknown component "arm"`, and all problems
// are reported at once, so an admin fixes a config in one round.
package config

import (
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// Bounds of a config. They keep one bad config from exhausting a Pi.
const (
	MaxComponents     = 1000
	MaxModules        = 100
	MaxProcesses      = 100
	MaxCaptures       = 1000
	MaxSyncFolders    = 100
	MaxNameLen        = 64
	MaxFrequencyHz    = 1000
	MaxPriority       = 255
	MaxStopTimeout    = 10 * time.Minute
	MaxQuietPeriod    = time.Hour
	MaxCommandTimeout = time.Hour
	MaxTags           = 32
	MaxTagLen         = 256
	// MaxConfigBytes bounds an encoded config handed to Parse.
	MaxConfigBytes = 4 << 20
)

// The slowest capture: its period must fit a time.Duration exactly, since a
// frequency near zero would otherwise overflow into a 1 ns busy loop.
const (
	// MaxCapturePeriod bounds the time between two reads of a capture.
	MaxCapturePeriod = 7 * 24 * time.Hour
	// MinFrequencyHz is the lowest capture frequency: one read per MaxCapturePeriod.
	MinFrequencyHz = float64(time.Second) / float64(MaxCapturePeriod)
)

// Built-in model names. A model with a colon ("acme:servo") is served by a
// module and is checked when the module's handshake declares it.
const (
	ModelFake    = "fake"
	ModelSystem  = "system"
	ModelCommand = "command"
)

// Capture methods, and the component types that have them.
const (
	MethodReadings = "readings"
	MethodImage    = "image"
	MethodIsMoving = "is_moving"
	MethodStatus   = "status"
)

var (
	nameRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	modelRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*:[a-z0-9][a-z0-9_.-]*$`)
	envRE   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// builtinModels says which built-in models exist for which types.
var builtinModels = map[string][]configv1.ComponentType{
	ModelFake: {
		configv1.ComponentType_COMPONENT_TYPE_MOTOR, configv1.ComponentType_COMPONENT_TYPE_BASE,
		configv1.ComponentType_COMPONENT_TYPE_SENSOR, configv1.ComponentType_COMPONENT_TYPE_CAMERA,
		configv1.ComponentType_COMPONENT_TYPE_GENERIC,
	},
	ModelSystem:  {configv1.ComponentType_COMPONENT_TYPE_SENSOR},
	ModelCommand: {configv1.ComponentType_COMPONENT_TYPE_SENSOR},
}

// methodTypes says which component types have each capture method; nil
// means every type.
var methodTypes = map[string][]configv1.ComponentType{
	MethodReadings: {configv1.ComponentType_COMPONENT_TYPE_SENSOR},
	MethodImage:    {configv1.ComponentType_COMPONENT_TYPE_CAMERA},
	MethodIsMoving: {configv1.ComponentType_COMPONENT_TYPE_MOTOR},
	MethodStatus:   nil,
}

// TypeName is the lower-case name of a component type ("motor", ...).
func TypeName(t configv1.ComponentType) string {
	return strings.ToLower(strings.TrimPrefix(t.String(), "COMPONENT_TYPE_"))
}

// IsModuleModel reports whether a model is served by a module rather than
// built in.
func IsModuleModel(model string) bool { return strings.Contains(model, ":") }

// FieldError is one problem, at a field path.
type FieldError struct {
	Path string
	Msg  string
}

func (e *FieldError) Error() string { return e.Path + ": " + e.Msg }

// Error is every problem of a config. errors.As finds it; its Error lists
// them one per line.
type Error struct {
	Problems []*FieldError
}

func (e *Error) Error() string {
	msgs := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		msgs[i] = p.Error()
	}
	return "invalid config: " + strings.Join(msgs, "; ")
}

// Unwrap exposes each problem to errors.Is and errors.As.
func (e *Error) Unwrap() []error {
	out := make([]error, len(e.Problems))
	for i, p := range e.Problems {
		out[i] = p
	}
	return out
}

type checker struct{ problems []*FieldError }

func (c *checker) addf(path, format string, args ...any) {
	c.problems = append(c.problems, &FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// Validate checks a config and returns nil or an *Error listing every
// problem with its field path.
func Validate(cfg *configv1.RobotConfig) error {
	if cfg == nil {
		return &Error{Problems: []*FieldError{{Path: "config", Msg: "missing"}}}
	}
	c := &checker{}
	types := c.components(cfg)
	c.modules(cfg)
	c.processes(cfg)
	c.captures(cfg, types)
	c.syncFolders(cfg)
	c.remotes(cfg)
	c.packages(cfg)
	c.placements(cfg)
	c.maintenance(cfg)
	if cfg.GetStoreBudget() != nil {
		b := cfg.GetStoreBudget()
		if b.GetMaxBytes() != 0 && b.GetMaxBytes() < 1<<20 {
			c.addf("store_budget.max_bytes", "%d bytes is under the 1 MiB minimum", b.GetMaxBytes())
		}
	}
	switch strings.ToLower(cfg.GetLogLevel()) {
	case "", "debug", "info", "warn", "warning", "error":
	default:
		c.addf("log_level", "%q: want one of debug, info, warn, error", cfg.GetLogLevel())
	}
	if len(c.problems) == 0 {
		return nil
	}
	return &Error{Problems: c.problems}
}

func (c *checker) name(path, kind, name string) bool {
	switch {
	case name == "":
		c.addf(path, "%s is empty", kind)
	case len(name) > MaxNameLen:
		c.addf(path, "%s is %d characters, at most %d", kind, len(name), MaxNameLen)
	case !nameRE.MatchString(name):
		c.addf(path, "%s %q: use letters, digits, '.', '-' and '_', starting with a letter or digit", kind, name)
	default:
		return true
	}
	return false
}

func (c *checker) components(cfg *configv1.RobotConfig) map[string]configv1.ComponentType {
	comps := cfg.GetComponents()
	if len(comps) > MaxComponents {
		c.addf("components", "%d components, at most %d", len(comps), MaxComponents)
		return nil
	}
	types := make(map[string]configv1.ComponentType, len(comps))
	first := make(map[string]int, len(comps))
	for i, comp := range comps {
		p := fmt.Sprintf("components[%d]", i)
		if c.name(p+".name", "name", comp.GetName()) {
			if j, dup := first[comp.GetName()]; dup {
				c.addf(p+".name", "duplicate name %q (also components[%d])", comp.GetName(), j)
			} else {
				first[comp.GetName()] = i
				types[comp.GetName()] = comp.GetType()
			}
		}
		typ := comp.GetType()
		if _, ok := configv1.ComponentType_name[int32(typ)]; !ok || typ == configv1.ComponentType_COMPONENT_TYPE_UNSPECIFIED {
			c.addf(p+".type", "missing or unknown type: want motor, base, sensor, camera or generic")
		}
		c.model(p, comp, len(cfg.GetModules()) > 0)
	}
	for i, comp := range comps {
		seen := map[string]bool{}
		for j, dep := range comp.GetDependsOn() {
			p := fmt.Sprintf("components[%d].depends_on[%d]", i, j)
			switch {
			case dep == comp.GetName():
				c.addf(p, "%q depends on itself", dep)
			case seen[dep]:
				c.addf(p, "%q listed twice", dep)
			default:
				if _, ok := first[dep]; !ok {
					c.addf(p, "unknown component %q", dep)
				}
			}
			seen[dep] = true
		}
	}
	c.cycles(comps, first)
	return types
}

func (c *checker) model(p string, comp *configv1.Component, haveModules bool) {
	model := comp.GetModel()
	if IsModuleModel(model) {
		if !modelRE.MatchString(model) {
			c.addf(p+".model", "module model %q: want \"namespace:model\" in lower case", model)
		} else if !haveModules {
			c.addf(p+".model", "model %q is served by a module, and no module is configured", model)
		}
		return
	}
	okTypes, ok := builtinModels[model]
	if !ok {
		c.addf(p+".model", "unknown model %q: want fake, system, command, or \"namespace:model\" from a module", model)
		return
	}
	typeOK := false
	for _, t := range okTypes {
		typeOK = typeOK || t == comp.GetType()
	}
	if !typeOK {
		c.addf(p+".model", "model %q has no %s", model, TypeName(comp.GetType()))
		return
	}
	attrs := comp.GetAttributes().GetFields()
	switch model {
	case ModelCommand:
		cmd := attrs["command"]
		if cmd == nil || cmd.GetStringValue() == "" {
			c.addf(p+".attributes.command", "the command sensor needs a command (a string)")
		}
		if a, ok := attrs["args"]; ok {
			if a.GetListValue() == nil {
				c.addf(p+".attributes.args", "want a list of strings")
			} else {
				for k, v := range a.GetListValue().GetValues() {
					if _, isStr := v.GetKind().(*structpb.Value_StringValue); !isStr {
						c.addf(fmt.Sprintf("%s.attributes.args[%d]", p, k), "want a string")
					}
				}
			}
		}
		if t, ok := attrs["timeout"]; ok {
			d, err := time.ParseDuration(t.GetStringValue())
			if err != nil || d <= 0 || d > MaxCommandTimeout {
				c.addf(p+".attributes.timeout", "%v: want a duration such as \"5s\", above 0 and at most %v", t.AsInterface(), MaxCommandTimeout)
			}
		}
	case ModelSystem:
		if d, ok := attrs["disk_path"]; ok && !filepath.IsAbs(d.GetStringValue()) {
			c.addf(p+".attributes.disk_path", "want an absolute path")
		}
	}
}

// cycles reports each dependency cycle once, at the edge that closes it.
func (c *checker) cycles(comps []*configv1.Component, index map[string]int) {
	const (
		unvisited = iota
		onStack
		done
	)
	state := make([]int, len(comps))
	var stack []string
	var visit func(i int)
	visit = func(i int) {
		state[i] = onStack
		stack = append(stack, comps[i].GetName())
		for j, dep := range comps[i].GetDependsOn() {
			k, ok := index[dep]
			if !ok || dep == comps[i].GetName() {
				continue // reported above
			}
			switch state[k] {
			case unvisited:
				visit(k)
			case onStack:
				start := 0
				for s, n := range stack {
					if n == dep {
						start = s
					}
				}
				cycle := append(append([]string{}, stack[start:]...), dep)
				c.addf(fmt.Sprintf("components[%d].depends_on[%d]", i, j), "dependency cycle %s", strings.Join(cycle, " -> "))
			}
		}
		stack = stack[:len(stack)-1]
		state[i] = done
	}
	for i := range comps {
		if state[i] == unvisited && index[comps[i].GetName()] == i {
			visit(i)
		}
	}
}

func (c *checker) modules(cfg *configv1.RobotConfig) {
	mods := cfg.GetModules()
	if len(mods) > MaxModules {
		c.addf("modules", "%d modules, at most %d", len(mods), MaxModules)
		return
	}
	seen := map[string]int{}
	for i, m := range mods {
		p := fmt.Sprintf("modules[%d]", i)
		if c.name(p+".name", "name", m.GetName()) {
			// Names are per part: each part runs its own modules.
			key := m.GetPart() + "\x00" + m.GetName()
			if j, dup := seen[key]; dup {
				c.addf(p+".name", "duplicate name %q (also modules[%d])", m.GetName(), j)
			} else {
				seen[key] = i
			}
		}
		if !absOrPackage(m.GetExecutable()) {
			c.addf(p+".executable", "%q: want an absolute path or one in a package (${packages.NAME}/...)", m.GetExecutable())
		}
		c.env(p+".env", m.GetEnv())
	}
}

func (c *checker) env(p string, env map[string]string) {
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !envRE.MatchString(k) {
			c.addf(fmt.Sprintf("%s[%q]", p, k), "not a valid environment variable name")
		}
		if strings.ContainsRune(env[k], 0) {
			c.addf(fmt.Sprintf("%s[%q]", p, k), "value contains a NUL byte")
		}
	}
}

func (c *checker) processes(cfg *configv1.RobotConfig) {
	procs := cfg.GetProcesses()
	if len(procs) > MaxProcesses {
		c.addf("processes", "%d processes, at most %d", len(procs), MaxProcesses)
		return
	}
	seen := map[string]int{}
	for i, pr := range procs {
		p := fmt.Sprintf("processes[%d]", i)
		if c.name(p+".id", "id", pr.GetId()) {
			key := pr.GetPart() + "\x00" + pr.GetId()
			if j, dup := seen[key]; dup {
				c.addf(p+".id", "duplicate id %q (also processes[%d])", pr.GetId(), j)
			} else {
				seen[key] = i
			}
		}
		if pr.GetCommand() == "" {
			c.addf(p+".command", "empty")
		} else if strings.ContainsRune(pr.GetCommand(), 0) {
			c.addf(p+".command", "contains a NUL byte")
		}
		for j, a := range pr.GetArgs() {
			if strings.ContainsRune(a, 0) {
				c.addf(fmt.Sprintf("%s.args[%d]", p, j), "contains a NUL byte")
			}
		}
		c.env(p+".env", pr.GetEnv())
		if wd := pr.GetWorkingDir(); wd != "" && !absOrPackage(wd) {
			c.addf(p+".working_dir", "%q: want an absolute path or one in a package (${packages.NAME}/...)", wd)
		}
		if _, ok := configv1.RestartPolicy_name[int32(pr.GetRestart())]; !ok {
			c.addf(p+".restart", "unknown restart policy %d: want always, on-failure or never", pr.GetRestart())
		}
		if st := pr.GetStopTimeout(); st != nil {
			if err := st.CheckValid(); err != nil || st.AsDuration() <= 0 || st.AsDuration() > MaxStopTimeout {
				c.addf(p+".stop_timeout", "want above 0 and at most %v", MaxStopTimeout)
			}
		}
	}
}

func (c *checker) tags(p string, tags []string) {
	if len(tags) > MaxTags {
		c.addf(p, "%d tags, at most %d", len(tags), MaxTags)
		return
	}
	for i, t := range tags {
		if t == "" || len(t) > MaxTagLen {
			c.addf(fmt.Sprintf("%s[%d]", p, i), "want 1 to %d characters", MaxTagLen)
		}
	}
}

func (c *checker) captures(cfg *configv1.RobotConfig, types map[string]configv1.ComponentType) {
	caps := cfg.GetCaptures()
	if len(caps) > MaxCaptures {
		c.addf("captures", "%d captures, at most %d", len(caps), MaxCaptures)
		return
	}
	seen := map[string]int{}
	for i, cp := range caps {
		p := fmt.Sprintf("captures[%d]", i)
		typ, known := types[cp.GetComponent()]
		if !known {
			c.addf(p+".component", "unknown component %q", cp.GetComponent())
		}
		okTypes, knownMethod := methodTypes[cp.GetMethod()]
		switch {
		case !knownMethod:
			c.addf(p+".method", "unknown method %q: want readings, image, is_moving or status", cp.GetMethod())
		case known && okTypes != nil && okTypes[0] != typ:
			c.addf(p+".method", "a %s has no %s", TypeName(typ), cp.GetMethod())
		}
		key := cp.GetComponent() + "\x00" + cp.GetMethod()
		if j, dup := seen[key]; dup {
			c.addf(p, "duplicate capture of %s.%s (also captures[%d])", cp.GetComponent(), cp.GetMethod(), j)
		} else {
			seen[key] = i
		}
		// The negated comparisons also catch NaN.
		if f := cp.GetFrequencyHz(); !(f >= MinFrequencyHz) || !(f <= MaxFrequencyHz) {
			c.addf(p+".frequency_hz", "%v: want from %.3g (one read every %v) to %d", f, MinFrequencyHz, MaxCapturePeriod, MaxFrequencyHz)
		}
		c.tags(p+".tags", cp.GetTags())
		if cp.GetPriority() > MaxPriority {
			c.addf(p+".priority", "%d: at most %d", cp.GetPriority(), MaxPriority)
		}
	}
}

func (c *checker) syncFolders(cfg *configv1.RobotConfig) {
	folders := cfg.GetSyncFolders()
	if len(folders) > MaxSyncFolders {
		c.addf("sync_folders", "%d folders, at most %d", len(folders), MaxSyncFolders)
		return
	}
	var clean []string
	for i, f := range folders {
		p := fmt.Sprintf("sync_folders[%d]", i)
		if !filepath.IsAbs(f.GetPath()) {
			c.addf(p+".path", "%q: want an absolute path", f.GetPath())
			clean = append(clean, "")
			continue
		}
		cp := filepath.Clean(f.GetPath())
		for j, other := range clean {
			if other == "" || folders[j].GetPart() != f.GetPart() {
				continue // each part watches its own disk
			}
			// Nested folders would take the same file twice.
			if cp == other || strings.HasPrefix(cp, other+string(filepath.Separator)) || strings.HasPrefix(other, cp+string(filepath.Separator)) || other == "/" || cp == "/" {
				c.addf(p+".path", "%q overlaps sync_folders[%d] %q", f.GetPath(), j, folders[j].GetPath())
			}
		}
		clean = append(clean, cp)
		if q := f.GetQuietPeriod(); q != nil {
			if err := q.CheckValid(); err != nil || q.AsDuration() <= 0 || q.AsDuration() > MaxQuietPeriod {
				c.addf(p+".quiet_period", "want above 0 and at most %v", MaxQuietPeriod)
			}
		}
		c.tags(p+".tags", f.GetTags())
		if f.GetPriority() > MaxPriority {
			c.addf(p+".priority", "%d: at most %d", f.GetPriority(), MaxPriority)
		}
	}
}

// Parse decodes a binary-encoded config (as signed by the cloud) and
// validates it.
func Parse(b []byte) (*configv1.RobotConfig, error) {
	if len(b) > MaxConfigBytes {
		return nil, fmt.Errorf("decode config: %d bytes, at most %d", len(b), MaxConfigBytes)
	}
	cfg := &configv1.RobotConfig{}
	if err := proto.Unmarshal(b, cfg); err != nil {
		return nil, fmt.Errorf("decode config: %w", err)
	}
	if err := Validate(cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

// ParseJSON decodes a config written as protobuf JSON (what an admin edits)
// and validates it. Unknown fields are refused so typos do not pass silently.
func ParseJSON(b []byte) (*configv1.RobotConfig, error) {
	if len(b) > MaxConfigBytes {
		return nil, fmt.Errorf("decode config: %d bytes, at most %d", len(b), MaxConfigBytes)
	}
	cfg := &configv1.RobotConfig{}
	if err := protojson.Unmarshal(b, cfg); err != nil {
		return nil, fmt.Errorf("decode config JSON: %w", err)
	}
	if err := Validate(cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}
