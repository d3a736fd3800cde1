package config

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"google.golang.org/protobuf/types/known/structpb"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	"github.com/outpost-robotics/outpost/pkgformat"
)

// MaxPackages bounds a machine's package references.
const MaxPackages = 32

// Version selectors of a package reference besides a pinned version.
const (
	// VersionLatest follows the newest version uploaded.
	VersionLatest = "latest"
	// TagPrefix starts a selector that follows a tag ("tag:stable").
	TagPrefix = "tag:"
)

// packageRefRE matches "${packages.NAME}" in a string; NAME is checked
// against the machine's package names, so anything up to '}' is taken.
var packageRefRE = regexp.MustCompile(`\$\{packages\.([^}]*)\}`)

// ParsePackage splits a reference's "ORG_ID/NAME" and checks both halves.
func ParsePackage(ref string) (orgID, name string, err error) {
	orgID, name, ok := strings.Cut(ref, "/")
	if !ok || orgID == "" || len(orgID) > MaxNameLen || !nameRE.MatchString(orgID) {
		return "", "", fmt.Errorf("%q: want ORG_ID/NAME", ref)
	}
	if err := pkgformat.ValidName(name); err != nil {
		return "", "", err
	}
	return orgID, name, nil
}

// ParseVersionSelector reads a reference's version: "" or "latest" (the
// newest version), "tag:TAG", or a pinned MAJOR.MINOR.PATCH[-PRE]. It
// returns the selector's kind ("latest", "tag" or "version") and value.
func ParseVersionSelector(v string) (kind, value string, err error) {
	switch {
	case v == "" || v == VersionLatest:
		return VersionLatest, "", nil
	case strings.HasPrefix(v, TagPrefix):
		tag := strings.TrimPrefix(v, TagPrefix)
		if err := pkgformat.ValidTag(tag); err != nil {
			return "", "", err
		}
		return "tag", tag, nil
	}
	if err := pkgformat.ValidVersion(v); err != nil {
		return "", "", fmt.Errorf("%w, or latest, or tag:TAG", err)
	}
	return "version", v, nil
}

// PackageRefs returns the NAMEs of the "${packages.NAME}" references in s,
// in order.
func PackageRefs(s string) []string {
	var out []string
	for _, m := range packageRefRE.FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	return out
}

// ExpandPackages replaces every "${packages.NAME}" in s with dirs[NAME],
// the directory the part unpacked that package into; a name dirs lacks is
// an error.
func ExpandPackages(s string, dirs map[string]string) (string, error) {
	var missing []string
	out := packageRefRE.ReplaceAllStringFunc(s, func(m string) string {
		name := packageRefRE.FindStringSubmatch(m)[1]
		d, ok := dirs[name]
		if !ok {
			missing = append(missing, name)
			return m
		}
		return d
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("no package named %q in place", missing[0])
	}
	return out, nil
}

// absOrPackage reports whether a path is absolute, or starts with a
// package reference (whose directory is absolute on the part).
func absOrPackage(p string) bool {
	return strings.HasPrefix(p, "/") || strings.HasPrefix(p, "${packages.") && packageRefRE.FindStringIndex(p)[0] == 0
}

// packages checks a config's package references (part of Validate): each
// name unique on its part, "ORG_ID/NAME", a version selector; and every
// "${packages.NAME}" names a package of the config.
func (c *checker) packages(cfg *configv1.RobotConfig) {
	refs := cfg.GetPackages()
	if len(refs) > MaxPackages {
		c.addf("packages", "%d packages, at most %d", len(refs), MaxPackages)
		return
	}
	seen := map[string]int{}
	for i, r := range refs {
		p := fmt.Sprintf("packages[%d]", i)
		if c.name(p+".name", "name", r.GetName()) {
			key := r.GetPart() + "\x00" + r.GetName()
			if j, dup := seen[key]; dup {
				c.addf(p+".name", "duplicate name %q (also packages[%d])", r.GetName(), j)
			} else {
				seen[key] = i
			}
		}
		if _, _, err := ParsePackage(r.GetPackage()); err != nil {
			c.addf(p+".package", "%v", err)
		}
		if _, _, err := ParseVersionSelector(r.GetVersion()); err != nil {
			c.addf(p+".version", "%v", err)
		}
	}
	names := map[string]bool{}
	for _, r := range refs {
		names[r.GetName()] = true
	}
	eachPackageUse(cfg, func(path, _, s string) {
		for _, n := range PackageRefs(s) {
			if !names[n] {
				c.addf(path, "${packages.%s}: no package named %q in packages", n, n)
			}
		}
	})
}

// placedPackages checks, for a machine's config, that every package
// reference names a package placed on the same part as the entry using it
// (part of ValidateMachine; on maps an entry's part to its placement).
func (c *checker) placedPackages(cfg *configv1.RobotConfig, on func(string) string) {
	placed := map[string][]string{}
	for _, r := range cfg.GetPackages() {
		placed[on(r.GetPart())] = append(placed[on(r.GetPart())], r.GetName())
	}
	eachPackageUse(cfg, func(path, part, s string) {
		here := on(part)
		for _, n := range PackageRefs(s) {
			if !slices.Contains(placed[here], n) && slices.ContainsFunc(cfg.GetPackages(), func(r *configv1.PackageRef) bool { return r.GetName() == n }) {
				c.addf(path, "${packages.%s}: package %q is not placed on part %q, where this runs", n, n, here)
			}
		}
	})
}

// eachPackageUse calls f with the path, part and value of every string a
// package reference may appear in: module executables and args, process
// commands, args and working directories, component attribute strings.
func eachPackageUse(cfg *configv1.RobotConfig, f func(path, part, s string)) {
	for i, m := range cfg.GetModules() {
		f(fmt.Sprintf("modules[%d].executable", i), m.GetPart(), m.GetExecutable())
		for j, a := range m.GetArgs() {
			f(fmt.Sprintf("modules[%d].args[%d]", i, j), m.GetPart(), a)
		}
	}
	for i, p := range cfg.GetProcesses() {
		f(fmt.Sprintf("processes[%d].command", i), p.GetPart(), p.GetCommand())
		for j, a := range p.GetArgs() {
			f(fmt.Sprintf("processes[%d].args[%d]", i, j), p.GetPart(), a)
		}
		f(fmt.Sprintf("processes[%d].working_dir", i), p.GetPart(), p.GetWorkingDir())
	}
	for i, comp := range cfg.GetComponents() {
		fields := comp.GetAttributes().GetFields()
		for _, k := range slices.Sorted(maps.Keys(fields)) {
			eachString(fmt.Sprintf("components[%d].attributes.%s", i, k), fields[k], func(path, s string) { f(path, comp.GetPart(), s) })
		}
	}
}

// eachString calls f with every string in an attribute value, nested ones
// included, bounded in depth as protobuf bounds decoding.
func eachString(path string, v *structpb.Value, f func(path, s string)) {
	var walk func(path string, v *structpb.Value, depth int)
	walk = func(path string, v *structpb.Value, depth int) {
		if depth > 100 {
			return
		}
		switch x := v.GetKind().(type) {
		case *structpb.Value_StringValue:
			f(path, x.StringValue)
		case *structpb.Value_ListValue:
			for i, e := range x.ListValue.GetValues() {
				walk(fmt.Sprintf("%s[%d]", path, i), e, depth+1)
			}
		case *structpb.Value_StructValue:
			fields := x.StructValue.GetFields()
			for _, k := range slices.Sorted(maps.Keys(fields)) {
				walk(path+"."+k, fields[k], depth+1)
			}
		}
	}
	walk(path, v, 0)
}
