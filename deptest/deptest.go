// Package deptest checks a module's package boundaries, as tests: who may
// import a module (the store engine), what a binary may link, which of a
// program's packages may listen on the network, and which packages must do
// no I/O. It reads the package graph with `go list -deps -json` and, for the
// rules about what code does rather than what it imports, the source with
// go/parser; and which packages are leaves, importing only a few of the
// module's packages. Outpost's own boundaries are Outpost(); its test runs them over
// this module, and over a synthetic module in testdata that breaks each one.
package deptest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
)

// Package is what the rules read of one package in `go list -json`.
type Package struct {
	ImportPath   string
	Name         string
	Dir          string
	Standard     bool
	GoFiles      []string
	CgoFiles     []string
	Imports      []string
	TestImports  []string
	XTestImports []string
	// Deps are every package the package links, its tests aside.
	Deps   []string
	Module *struct {
		Path string
		Main bool
		Dir  string
	}
}

// Graph is a module's packages and every package they link, by import path.
type Graph struct {
	// Module is the main module's path, and Dir its folder.
	Module, Dir string
	// Packages holds the module's packages and their dependencies.
	Packages map[string]*Package
}

// Load lists the packages of the module in dir, with their dependencies.
// env is added to the go command's environment (GOPROXY=off for a module
// that must not fetch anything).
func Load(ctx context.Context, dir string, env ...string) (*Graph, error) {
	cmd := exec.CommandContext(ctx, "go", "list", "-deps", "-json", "./...")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list in %s: %w: %s", dir, err, strings.TrimSpace(stderr.String()))
	}
	g := &Graph{Packages: map[string]*Package{}}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p Package
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("decode go list's output: %w", err)
		}
		if p.Module != nil && p.Module.Main {
			g.Module, g.Dir = p.Module.Path, p.Module.Dir
		}
		g.Packages[p.ImportPath] = &p
	}
	if g.Module == "" {
		return nil, fmt.Errorf("go list in %s: no package of the main module", dir)
	}
	return g, nil
}

// path is the import path of a package named relative to the module.
func (g *Graph) path(rel string) string { return g.Module + "/" + rel }

// rel names a package relative to the module, as rules and violations do.
func (g *Graph) rel(path string) string {
	if r, ok := strings.CutPrefix(path, g.Module+"/"); ok {
		return r
	}
	return path
}

// inModule reports whether p is one of the main module's packages.
func inModule(p *Package) bool { return p.Module != nil && p.Module.Main }

// lookup returns the module's package rel, or an error saying a rule names a
// package the module does not have (a rule about a renamed package would
// otherwise pass without checking anything).
func (g *Graph) lookup(rel string) (*Package, error) {
	p, ok := g.Packages[g.path(rel)]
	if !ok || !inModule(p) {
		return nil, fmt.Errorf("a rule names %s, which %s does not have: update the rule", rel, g.Module)
	}
	return p, nil
}

// lookupAll is lookup for each of rels, as a set of import paths.
func (g *Graph) lookupAll(rels []string) (map[string]bool, error) {
	set := map[string]bool{}
	for _, rel := range rels {
		p, err := g.lookup(rel)
		if err != nil {
			return nil, err
		}
		set[p.ImportPath] = true
	}
	return set, nil
}

// within reports whether path is prefix or one of its subpackages.
func within(path, prefix string) bool {
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}

// Violation is one boundary crossed.
type Violation struct {
	// Rule is "import", "link", "listen", "pure" or "leaf".
	Rule string
	// Package is the package at fault, relative to the module.
	Package string
	// What it does, with where when the source says.
	What string
	// Why the rule exists.
	Why string
}

// String is the violation as one line of a test failure.
func (v Violation) String() string {
	return fmt.Sprintf("%s: %s: %s (%s)", v.Rule, v.Package, v.What, v.Why)
}

// Rules are a module's package boundaries. Packages are named relative to
// the module ("cache", "cmd/outpost"), and each must exist.
type Rules struct {
	Imports []ImportRule
	Links   []LinkRule
	Listen  []ListenRule
	Pure    []PureRule
	Leaves  []LeafRule
}

// ImportRule limits who may import Path (or a subpackage of it).
type ImportRule struct {
	Path string
	// Only may import it, in their code or their tests.
	Only []string
	Why  string
}

// LinkRule forbids Main, a binary or a package binaries are built from, to
// link Path (or a subpackage) at all.
type LinkRule struct {
	Main, Path, Why string
}

// ListenRule allows only the packages in Only, among the module's packages
// that Main links, to listen on the network (see listenAPIs for how).
type ListenRule struct {
	Main string
	Only []string
	Why  string
}

// PureRule says Package does no I/O: it and the module packages in Also
// import only the standard packages in Std (and each other), link no other
// package outside the standard library, and call none of fmt's printing
// and scanning functions or the print builtins.
type PureRule struct {
	Package string
	Also    []string
	Std     []string
	Why     string
}

// LeafRule says Package imports, of the module's packages, only those
// within Only (a package, or a folder of packages such as "api/gen"), in its
// code and its tests. What those link is their own rules' business: the
// rule keeps a shared package from growing a dependency on either of the
// sides that share it.
type LeafRule struct {
	Package string
	Only    []string
	Why     string
}

// Check runs every rule over g. An error is a rule that names a package g
// does not have, or source that does not parse.
func (r Rules) Check(g *Graph) ([]Violation, error) {
	var out []Violation
	for _, err := range []error{
		checkAll(g, r.Imports, &out),
		checkAll(g, r.Links, &out),
		checkAll(g, r.Listen, &out),
		checkAll(g, r.Pure, &out),
		checkAll(g, r.Leaves, &out),
	} {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// checkAll appends what each rule finds to out.
func checkAll[R interface {
	check(*Graph) ([]Violation, error)
}](g *Graph, rules []R, out *[]Violation) error {
	for _, rule := range rules {
		v, err := rule.check(g)
		if err != nil {
			return err
		}
		*out = append(*out, v...)
	}
	return nil
}

func (r ImportRule) check(g *Graph) ([]Violation, error) {
	allowed, err := g.lookupAll(r.Only)
	if err != nil {
		return nil, err
	}
	var out []Violation
	for _, p := range sortedPackages(g) {
		if !inModule(p) || allowed[p.ImportPath] {
			continue
		}
		for _, set := range []struct {
			how     string
			imports []string
		}{{"imports", p.Imports}, {"imports in its tests", append(slices.Clone(p.TestImports), p.XTestImports...)}} {
			for _, imp := range uniq(set.imports) {
				if within(imp, r.Path) {
					out = append(out, Violation{Rule: "import", Package: g.rel(p.ImportPath), What: set.how + " " + imp, Why: r.Why})
				}
			}
		}
	}
	return out, nil
}

func (r LinkRule) check(g *Graph) ([]Violation, error) {
	main, err := g.lookup(r.Main)
	if err != nil {
		return nil, err
	}
	n := 0
	for _, dep := range main.Deps {
		if within(dep, r.Path) {
			n++
		}
	}
	if n == 0 {
		return nil, nil
	}
	// One violation, through the shortest chain: cutting it is the fix.
	what := "links " + r.Path + " through " + g.chain(main, func(path string) bool { return within(path, r.Path) })
	if n > 1 {
		what += fmt.Sprintf(" (%d of its packages)", n)
	}
	return []Violation{{Rule: "link", Package: r.Main, What: what, Why: r.Why}}, nil
}

// chain is the shortest import chain from p to a package for which found
// is true, for a message that says what to cut.
func (g *Graph) chain(p *Package, found func(path string) bool) string {
	prev := map[string]string{p.ImportPath: ""}
	queue := []string{p.ImportPath}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		if found(cur) {
			var path []string
			for at := cur; at != ""; at = prev[at] {
				path = append(path, g.rel(at))
			}
			slices.Reverse(path)
			return strings.Join(path, " → ")
		}
		if q := g.Packages[cur]; q != nil {
			for _, imp := range q.Imports {
				if _, seen := prev[imp]; !seen {
					prev[imp] = cur
					queue = append(queue, imp)
				}
			}
		}
	}
	return "?"
}

func (r ListenRule) check(g *Graph) ([]Violation, error) {
	main, err := g.lookup(r.Main)
	if err != nil {
		return nil, err
	}
	allowed, err := g.lookupAll(r.Only)
	if err != nil {
		return nil, err
	}
	var out []Violation
	for _, path := range append([]string{main.ImportPath}, main.Deps...) {
		p := g.Packages[path]
		if p == nil || !inModule(p) || allowed[path] {
			continue
		}
		found, err := g.listens(p)
		if err != nil {
			return nil, err
		}
		for _, what := range found {
			out = append(out, Violation{Rule: "listen", Package: g.rel(path), What: what, Why: r.Why})
		}
	}
	return out, nil
}

func (r PureRule) check(g *Graph) ([]Violation, error) {
	p, err := g.lookup(r.Package)
	if err != nil {
		return nil, err
	}
	checked, err := g.lookupAll(r.Also)
	if err != nil {
		return nil, err
	}
	checked[p.ImportPath] = true
	std := map[string]bool{}
	for _, s := range r.Std {
		std[s] = true
	}
	var out []Violation
	add := func(pkg, what string) {
		out = append(out, Violation{Rule: "pure", Package: g.rel(pkg), What: what, Why: r.Why})
	}
	for _, dep := range p.Deps {
		if q := g.Packages[dep]; q != nil && !q.Standard && !checked[dep] {
			add(p.ImportPath, "links "+g.rel(dep)+", outside the standard library, through "+g.chain(p, func(path string) bool { return path == dep }))
		}
	}
	for _, path := range sortedKeys(checked) {
		q := g.Packages[path]
		for _, imp := range q.Imports {
			if dep := g.Packages[imp]; dep != nil && dep.Standard && !std[imp] {
				add(path, "imports "+imp+", a standard package that is not on its list")
			}
		}
		found, err := g.doesIO(q)
		if err != nil {
			return nil, err
		}
		for _, what := range found {
			add(path, what)
		}
	}
	return out, nil
}

func (r LeafRule) check(g *Graph) ([]Violation, error) {
	p, err := g.lookup(r.Package)
	if err != nil {
		return nil, err
	}
	allowed := []string{p.ImportPath}
	for _, rel := range r.Only {
		path := g.path(rel)
		if !slices.ContainsFunc(sortedPackages(g), func(q *Package) bool { return inModule(q) && within(q.ImportPath, path) }) {
			return nil, fmt.Errorf("a rule names %s, which %s does not have: update the rule", rel, g.Module)
		}
		allowed = append(allowed, path)
	}
	var out []Violation
	for _, set := range []struct {
		how     string
		imports []string
	}{{"imports", p.Imports}, {"imports in its tests", append(slices.Clone(p.TestImports), p.XTestImports...)}} {
		for _, imp := range uniq(set.imports) {
			q := g.Packages[imp]
			if q == nil || !inModule(q) || slices.ContainsFunc(allowed, func(a string) bool { return within(imp, a) }) {
				continue
			}
			out = append(out, Violation{Rule: "leaf", Package: r.Package, What: set.how + " " + g.rel(imp), Why: r.Why})
		}
	}
	return out, nil
}

func sortedPackages(g *Graph) []*Package {
	var out []*Package
	for _, k := range sortedKeys(g.Packages) {
		out = append(out, g.Packages[k])
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func uniq(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return slices.Compact(s)
}
