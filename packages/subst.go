package packages

import (
	"regexp"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
)

// NotReady stands for the directory of a package the part has no version
// of yet: no such directory exists.
const NotReady = "/nonexistent/outpost-package-not-downloaded-yet"

// placeholderRE is "${packages.NAME}".
var placeholderRE = regexp.MustCompile(`\$\{packages\.([A-Za-z0-9_.-]+)\}`)

// Substitute returns a copy of cfg in which "${packages.NAME}" in module
// executables and args, process commands, args and working directories,
// and component attribute strings stands for dirs[NAME], the directory of
// the version the part runs. A name without a directory (not downloaded
// yet, or rolled back with nothing to fall back to) stays as it is, so the
// resource fails to start with the placeholder in its error. uses lists,
// per package name, the resources that name it ("module/NAME",
// "process/ID", "component/NAME"): what a new version restarts and what
// decides whether it came up.
func Substitute(cfg *configv1.RobotConfig, dirs map[string]string) (out *configv1.RobotConfig, uses map[string][]string) {
	out = proto.Clone(cfg).(*configv1.RobotConfig)
	uses = map[string][]string{}
	var seen map[string]bool
	sub := func(s string) string {
		return placeholderRE.ReplaceAllStringFunc(s, func(ph string) string {
			name := placeholderRE.FindStringSubmatch(ph)[1]
			seen[name] = true
			if dir, ok := dirs[name]; ok {
				return dir
			}
			return NotReady + "/" + name
		})
	}
	record := func(key string) {
		for name := range seen {
			uses[name] = append(uses[name], key)
		}
	}
	for _, m := range out.GetModules() {
		seen = map[string]bool{}
		m.Executable = sub(m.GetExecutable())
		for i, a := range m.GetArgs() {
			m.Args[i] = sub(a)
		}
		record("module/" + m.GetName())
	}
	for _, p := range out.GetProcesses() {
		seen = map[string]bool{}
		p.Command = sub(p.GetCommand())
		for i, a := range p.GetArgs() {
			p.Args[i] = sub(a)
		}
		p.WorkingDir = sub(p.GetWorkingDir())
		record("process/" + p.GetId())
	}
	for _, c := range out.GetComponents() {
		seen = map[string]bool{}
		if c.GetAttributes() != nil {
			subStruct(c.GetAttributes(), sub)
		}
		record("component/" + c.GetName())
	}
	return out, uses
}

func subStruct(s *structpb.Struct, sub func(string) string) {
	for k, v := range s.GetFields() {
		s.Fields[k] = subValue(v, sub)
	}
}

func subValue(v *structpb.Value, sub func(string) string) *structpb.Value {
	switch k := v.GetKind().(type) {
	case *structpb.Value_StringValue:
		return structpb.NewStringValue(sub(k.StringValue))
	case *structpb.Value_StructValue:
		subStruct(k.StructValue, sub)
	case *structpb.Value_ListValue:
		for i, e := range k.ListValue.GetValues() {
			k.ListValue.Values[i] = subValue(e, sub)
		}
	}
	return v
}
