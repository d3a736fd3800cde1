package web

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"path"
	"regexp"
	"slices"
	"strings"
)

// static holds the front end's sources: index.html (a template the handler
// fills), the ES modules under js/ and the style sheets under css/. Nothing
// is built outside Go: New fingerprints, rewrites and compresses them.
//
//go:embed static
var static embed.FS

// entry is the HTML entry point's name in static.
const entry = "index.html"

// hashLen is how many hex digits of an asset's SHA-256 its URL carries:
// 48 bits, so two versions of one file never share a name in practice.
const hashLen = 12

// Encodings the handler serves. Only gzip: at these files' sizes zstd
// (klauspost/compress, best level) came out 1 to 3 % larger than gzip's
// best for every asset, and its encoder costs ~60 ms and several MiB of
// heap to set up, which a part serving its console should not pay.
const (
	encGzip     = "gzip"
	encIdentity = "identity"
)

// asset is one file as served: its bytes, precompressed forms and headers.
type asset struct {
	// name is the source's path in static ("js/app.js").
	name string
	// url is where it is served, fingerprinted ("/assets/js/app.3f2a9c1b7d0e.js").
	url string
	// typ is its Content-Type.
	typ string
	// etag is a strong validator of the identity bytes.
	etag string
	// bodies holds the identity bytes and each smaller compressed form.
	bodies map[string][]byte
	// deps are the modules a module imports, by source name.
	deps []string
}

// size returns the bytes sent for enc, falling back to identity.
func (a *asset) body(enc string) []byte {
	if b, ok := a.bodies[enc]; ok {
		return b
	}
	return a.bodies[encIdentity]
}

// importRE finds a module's relative imports of its siblings: static
// (`from './x.js'`, `import './x.js'`) and dynamic (`import('./x.js')`).
// The front end imports only siblings in js/, so a specifier is a bare file
// name; anything else relative is refused by buildAssets.
var importRE = regexp.MustCompile(`((?:\bfrom|\bimport)\s*\(?\s*)(["'])\./([A-Za-z0-9_-]+\.js)(["'])`)

// relativeRE finds every relative specifier, to refuse those importRE does
// not rewrite (a path into another folder would escape fingerprinting).
var relativeRE = regexp.MustCompile(`(?:\bfrom|\bimport)\s*\(?\s*["']\.\.?/`)

// buildAssets reads every file of fsys except the entry, rewrites each
// module's imports to its dependencies' fingerprinted names (so a module's
// hash covers what it imports) and compresses each once.
func buildAssets(fsys fs.FS, prefix string, gz *gzipper) (map[string]*asset, error) {
	src := map[string][]byte{}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || p == entry {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		src[p] = b
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the front end's files: %w", err)
	}
	out := map[string]*asset{}
	visiting := map[string]bool{}
	var build func(name string) (*asset, error)
	build = func(name string) (*asset, error) {
		if a := out[name]; a != nil {
			return a, nil
		}
		if visiting[name] {
			return nil, fmt.Errorf("%s imports itself through its dependencies: the front end's modules must not import in a cycle", name)
		}
		visiting[name] = true
		defer delete(visiting, name)
		b, ok := src[name]
		if !ok {
			return nil, fmt.Errorf("no file %s", name)
		}
		var deps []string
		if path.Ext(name) == ".js" {
			var err error
			if b, deps, err = rewriteImports(name, b, build); err != nil {
				return nil, err
			}
		}
		a, err := newAsset(name, fingerprinted(prefix, name, b), b, gz)
		if err != nil {
			return nil, err
		}
		a.deps = deps
		out[name] = a
		return a, nil
	}
	names := make([]string, 0, len(src))
	for n := range src {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if _, err := build(n); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// rewriteImports replaces each sibling import of module name with the
// sibling's fingerprinted file name; it returns the siblings imported.
func rewriteImports(name string, b []byte, build func(string) (*asset, error)) ([]byte, []string, error) {
	if n := len(relativeRE.FindAll(b, -1)); n != len(importRE.FindAll(b, -1)) {
		return nil, nil, fmt.Errorf("%s: every relative import must be a sibling module written './name.js'", name)
	}
	var failed error
	var deps []string
	out := importRE.ReplaceAllFunc(b, func(m []byte) []byte {
		sub := importRE.FindSubmatch(m)
		if string(sub[2]) != string(sub[4]) {
			failed = fmt.Errorf("%s: mismatched quotes in %s", name, m)
			return m
		}
		depName := path.Join(path.Dir(name), string(sub[3]))
		dep, err := build(depName)
		if err != nil {
			failed = fmt.Errorf("%s imports %s: %w", name, sub[3], err)
			return m
		}
		if !slices.Contains(deps, depName) {
			deps = append(deps, depName)
		}
		return fmt.Appendf(nil, "%s%s./%s%s", sub[1], sub[2], path.Base(dep.url), sub[4])
	})
	return out, deps, failed
}

// fingerprinted returns the URL of name with content b: the hash goes
// before the extension, so the type stays recognisable.
func fingerprinted(prefix, name string, b []byte) string {
	sum := sha256.Sum256(b)
	ext := path.Ext(name)
	return prefix + "assets/" + strings.TrimSuffix(name, ext) + "." + hex.EncodeToString(sum[:])[:hashLen] + ext
}

// newAsset compresses b and keeps each encoding that is smaller.
func newAsset(name, url string, b []byte, gz *gzipper) (*asset, error) {
	typ := mime.TypeByExtension(path.Ext(name))
	switch path.Ext(name) {
	case ".js":
		typ = "text/javascript; charset=utf-8"
	case ".html":
		typ = "text/html; charset=utf-8"
	case ".css":
		typ = "text/css; charset=utf-8"
	case ".svg":
		typ = "image/svg+xml"
	}
	if typ == "" {
		return nil, fmt.Errorf("%s: no media type known for its extension", name)
	}
	sum := sha256.Sum256(b)
	a := &asset{name: name, url: url, typ: typ, etag: `"` + hex.EncodeToString(sum[:16]) + `"`, bodies: map[string][]byte{encIdentity: b}}
	z, err := gz.compress(b)
	if err != nil {
		return nil, fmt.Errorf("gzip %s: %w", name, err)
	}
	if len(z) < len(b) {
		a.bodies[encGzip] = z
	}
	return a, nil
}

// gzipper compresses every file of the front end with one gzip writer:
// at the best level each new writer allocates most of a megabyte, which a
// part preparing its console should not pay a dozen times.
type gzipper struct {
	w   *gzip.Writer
	buf bytes.Buffer
}

func (g *gzipper) compress(b []byte) ([]byte, error) {
	g.buf.Reset()
	if g.w == nil {
		w, err := gzip.NewWriterLevel(&g.buf, gzip.BestCompression)
		if err != nil {
			return nil, err
		}
		g.w = w
	} else {
		g.w.Reset(&g.buf)
	}
	if _, err := g.w.Write(b); err != nil {
		return nil, err
	}
	if err := g.w.Close(); err != nil {
		return nil, err
	}
	return bytes.Clone(g.buf.Bytes()), nil
}
