package config

import (
	"cmp"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	"google.golang.org/protobuf/proto"
)

// Bounds of a machine's parts and remotes.
const (
	MaxParts       = 64
	MaxRemotes     = 32
	MaxAddresses   = 16
	MaxAddressLen  = 261 // a 253-byte host name, a colon and a port
	MaxKeyIDLength = 64
)

var (
	fingerprintRE = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)
	keyIDRE       = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
)

// NormalizeFingerprint returns a certificate fingerprint as 64 lower-case
// hex digits, accepting colons between bytes, or an error.
func NormalizeFingerprint(fp string) (string, error) {
	s := strings.ReplaceAll(fp, ":", "")
	if !fingerprintRE.MatchString(s) {
		return "", fmt.Errorf("want a SHA-256 fingerprint: 64 hex digits (colons allowed)")
	}
	return strings.ToLower(s), nil
}

// CheckAddress checks a HOST:PORT address, such as a part reports for its
// control plane.
func CheckAddress(a string) error {
	if len(a) > MaxAddressLen {
		return fmt.Errorf("%d characters, at most %d", len(a), MaxAddressLen)
	}
	host, port, err := net.SplitHostPort(a)
	if err != nil || host == "" || strings.ContainsAny(host, "/ \x00") {
		return fmt.Errorf("%q: want HOST:PORT", a)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q: want a port from 1 to 65535", a)
	}
	return nil
}

// remotes checks a config's remotes (part of Validate).
func (c *checker) remotes(cfg *configv1.RobotConfig) {
	rs := cfg.GetRemotes()
	if len(rs) > MaxRemotes {
		c.addf("remotes", "%d remotes, at most %d", len(rs), MaxRemotes)
		return
	}
	seen := map[string]int{}
	for i, r := range rs {
		p := fmt.Sprintf("remotes[%d]", i)
		if c.name(p+".name", "name", r.GetName()) {
			if j, dup := seen[r.GetName()]; dup {
				c.addf(p+".name", "duplicate name %q (also remotes[%d])", r.GetName(), j)
			} else {
				seen[r.GetName()] = i
			}
		}
		if err := CheckAddress(r.GetAddress()); err != nil {
			c.addf(p+".address", "%v", err)
		}
		if _, err := NormalizeFingerprint(r.GetFingerprint()); err != nil {
			c.addf(p+".fingerprint", "%v", err)
		}
		if k := r.GetApiKeyId(); k == "" || len(k) > MaxKeyIDLength || !keyIDRE.MatchString(k) {
			c.addf(p+".api_key_id", "want the id of an API key (letters, digits, '-' and '_', at most %d)", MaxKeyIDLength)
		}
	}
}

// placements checks the part fields of a config on their own: each is a
// valid name (part of Validate). Which names exist is ValidateMachine's.
func (c *checker) placements(cfg *configv1.RobotConfig) {
	each(cfg, func(path, part string) {
		if part != "" {
			c.name(path, "part", part)
		}
	})
}

// each calls f with the path and part of every placed entry of cfg.
func each(cfg *configv1.RobotConfig, f func(path, part string)) {
	for i, x := range cfg.GetComponents() {
		f(fmt.Sprintf("components[%d].part", i), x.GetPart())
	}
	for i, x := range cfg.GetModules() {
		f(fmt.Sprintf("modules[%d].part", i), x.GetPart())
	}
	for i, x := range cfg.GetProcesses() {
		f(fmt.Sprintf("processes[%d].part", i), x.GetPart())
	}
	for i, x := range cfg.GetCaptures() {
		f(fmt.Sprintf("captures[%d].part", i), x.GetPart())
	}
	for i, x := range cfg.GetSyncFolders() {
		f(fmt.Sprintf("sync_folders[%d].part", i), x.GetPart())
	}
	for i, x := range cfg.GetPackages() {
		f(fmt.Sprintf("packages[%d].part", i), x.GetPart())
	}
}

// ValidateParts checks a machine's list of parts, as a signed config
// document carries it: ids and names present, no two parts claiming one id
// or one name, exactly one main part, fingerprints and addresses well
// formed.
func ValidateParts(parts []*configv1.MachinePart) error {
	c := &checker{}
	c.parts(parts)
	if len(c.problems) == 0 {
		return nil
	}
	return &Error{Problems: c.problems}
}

func (c *checker) parts(parts []*configv1.MachinePart) {
	if len(parts) > MaxParts {
		c.addf("parts", "%d parts, at most %d", len(parts), MaxParts)
		return
	}
	ids, names := map[string]int{}, map[string]int{}
	mains := 0
	for i, p := range parts {
		path := fmt.Sprintf("parts[%d]", i)
		if id := p.GetId(); id == "" || len(id) > MaxKeyIDLength || !keyIDRE.MatchString(id) {
			c.addf(path+".id", "want a part id (letters, digits, '-' and '_', at most %d)", MaxKeyIDLength)
		} else if j, dup := ids[id]; dup {
			c.addf(path+".id", "part %q is also parts[%d]", id, j)
		} else {
			ids[id] = i
		}
		if c.name(path+".name", "name", p.GetName()) {
			if j, dup := names[p.GetName()]; dup {
				c.addf(path+".name", "two parts claim the name %q (also parts[%d])", p.GetName(), j)
			} else {
				names[p.GetName()] = i
			}
		}
		if p.GetMain() {
			mains++
		}
		if fp := p.GetFingerprint(); fp != "" {
			if _, err := NormalizeFingerprint(fp); err != nil {
				c.addf(path+".fingerprint", "%v", err)
			}
		}
		if len(p.GetAddresses()) > MaxAddresses {
			c.addf(path+".addresses", "%d addresses, at most %d", len(p.GetAddresses()), MaxAddresses)
		} else {
			for j, a := range p.GetAddresses() {
				if err := CheckAddress(a); err != nil {
					c.addf(fmt.Sprintf("%s.addresses[%d]", path, j), "%v", err)
				}
			}
		}
		if len(p.GetComponents()) > MaxComponents {
			c.addf(path+".components", "%d components, at most %d", len(p.GetComponents()), MaxComponents)
			continue
		}
		for j, pc := range p.GetComponents() {
			c.name(fmt.Sprintf("%s.components[%d].name", path, j), "name", pc.GetName())
		}
	}
	if len(parts) > 0 && mains != 1 {
		c.addf("parts", "%d main parts: a machine has exactly one", mains)
	}
}

// mainName is the name of the main part in parts, or "".
func mainName(parts []*configv1.MachinePart) string {
	for _, p := range parts {
		if p.GetMain() {
			return p.GetName()
		}
	}
	return ""
}

// ValidateMachine checks a machine's whole config against its parts: the
// config itself (Validate), the parts (ValidateParts), and the placement of
// each entry: its part exists, a component depends only on components of
// its own part, a module model is served by a module on the component's
// part, and a capture runs where its component does.
func ValidateMachine(cfg *configv1.RobotConfig, parts []*configv1.MachinePart) error {
	var problems []*FieldError
	main := mainName(parts)
	// Checked as placed: an entry without a part is the main part's, so it
	// and one naming the main part are one part's entries (names per part,
	// nested sync folders).
	if err := Validate(placed(cfg, main)); err != nil {
		problems = append(problems, err.(*Error).Problems...)
	}
	c := &checker{}
	c.parts(parts)
	known := map[string]bool{}
	var names []string
	for _, p := range parts {
		known[p.GetName()] = true
		names = append(names, p.GetName())
	}
	each(cfg, func(path, part string) {
		if part != "" && !known[part] {
			c.addf(path, "unknown part %q: the machine's parts are %s", part, strings.Join(quoteAll(names), ", "))
		}
	})
	on := func(part string) string {
		if part == "" {
			return main
		}
		return part
	}
	compPart := map[string]string{}
	for _, comp := range cfg.GetComponents() {
		compPart[comp.GetName()] = on(comp.GetPart())
	}
	modules := map[string]bool{}
	for _, m := range cfg.GetModules() {
		modules[on(m.GetPart())] = true
	}
	for i, comp := range cfg.GetComponents() {
		here := on(comp.GetPart())
		for j, dep := range comp.GetDependsOn() {
			if there, ok := compPart[dep]; ok && there != here {
				c.addf(fmt.Sprintf("components[%d].depends_on[%d]", i, j), "%q runs on part %q, not on %q: a component depends only on components of its own part", dep, there, here)
			}
		}
		if IsModuleModel(comp.GetModel()) && len(cfg.GetModules()) > 0 && !modules[here] {
			c.addf(fmt.Sprintf("components[%d].model", i), "model %q is served by a module, and no module runs on part %q", comp.GetModel(), here)
		}
	}
	for i, cp := range cfg.GetCaptures() {
		there, ok := compPart[cp.GetComponent()]
		if ok && cp.GetPart() != "" && on(cp.GetPart()) != there {
			c.addf(fmt.Sprintf("captures[%d].part", i), "%q runs on part %q: a capture runs where its component does", cp.GetComponent(), there)
		}
	}
	c.placedPackages(cfg, on)
	problems = append(problems, c.problems...)
	if len(problems) == 0 {
		return nil
	}
	return &Error{Problems: problems}
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strconv.Quote(s)
	}
	return out
}

// Split gives each part its share of a machine's config, keyed by part
// name: the components, modules, processes, sync folders and packages placed on it
// (the main part's when unplaced), the captures of its components, and
// the store budget and log level, which hold for every part. Remotes are
// the main part's. It also fills each part's list of placed components
// (parts are changed in place). Entries on an unknown part go to no part;
// ValidateMachine refuses such a config before it is written.
func Split(cfg *configv1.RobotConfig, parts []*configv1.MachinePart) map[string]*configv1.RobotConfig {
	main := mainName(parts)
	on := func(part string) string {
		if part == "" {
			return main
		}
		return part
	}
	out := make(map[string]*configv1.RobotConfig, len(parts))
	byName := map[string]*configv1.MachinePart{}
	for _, p := range parts {
		share := &configv1.RobotConfig{StoreBudget: cfg.GetStoreBudget(), LogLevel: cfg.GetLogLevel()}
		if p.GetMain() {
			share.Remotes = cfg.GetRemotes()
		}
		out[p.GetName()] = share
		byName[p.GetName()] = p
		p.Components = nil
	}
	compPart := map[string]string{}
	for _, x := range cfg.GetComponents() {
		part := on(x.GetPart())
		compPart[x.GetName()] = part
		if s := out[part]; s != nil {
			s.Components = append(s.Components, x)
			byName[part].Components = append(byName[part].Components, &configv1.PlacedComponent{Name: x.GetName(), Type: x.GetType()})
		}
	}
	for _, x := range cfg.GetModules() {
		if s := out[on(x.GetPart())]; s != nil {
			s.Modules = append(s.Modules, x)
		}
	}
	for _, x := range cfg.GetProcesses() {
		if s := out[on(x.GetPart())]; s != nil {
			s.Processes = append(s.Processes, x)
		}
	}
	for _, x := range cfg.GetCaptures() {
		if s := out[compPart[x.GetComponent()]]; s != nil {
			s.Captures = append(s.Captures, x)
		}
	}
	for _, x := range cfg.GetSyncFolders() {
		if s := out[on(x.GetPart())]; s != nil {
			s.SyncFolders = append(s.SyncFolders, x)
		}
	}
	for _, x := range cfg.GetPackages() {
		if s := out[on(x.GetPart())]; s != nil {
			s.Packages = append(s.Packages, x)
		}
	}
	for name, s := range out {
		out[name] = proto.Clone(s).(*configv1.RobotConfig)
	}
	return out
}

// placed is cfg with every entry without a part placed on main.
func placed(cfg *configv1.RobotConfig, main string) *configv1.RobotConfig {
	if main == "" {
		return cfg
	}
	cfg = proto.CloneOf(cfg)
	for _, x := range cfg.GetComponents() {
		x.Part = cmp.Or(x.Part, main)
	}
	for _, x := range cfg.GetModules() {
		x.Part = cmp.Or(x.Part, main)
	}
	for _, x := range cfg.GetProcesses() {
		x.Part = cmp.Or(x.Part, main)
	}
	for _, x := range cfg.GetSyncFolders() {
		x.Part = cmp.Or(x.Part, main)
	}
	for _, x := range cfg.GetPackages() {
		x.Part = cmp.Or(x.Part, main)
	}
	return cfg
}
