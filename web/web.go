// Package web is Outpost's front end: the fleet web app that outpost-cloud
// serves and the console a part's outpostd serves, from one set of files.
// The files are plain ES modules and CSS embedded in the binary; nothing is
// built outside Go. New fingerprints them (a hash in each file name, so
// they are cached for a year), rewrites the modules' imports and the HTML
// entry point to those names, and compresses each file once, with gzip.
// The handler serves them under a strict Content-Security-Policy: scripts
// and styles only from the page's own origin, never inline.
//
// The page calls the same Connect RPCs as the CLI, with Connect's JSON
// encoding over fetch, and reaches a part's control plane over a WebRTC
// data channel with the framing of package controlwire. It decides nothing:
// every call is decided by the server's authorizer, and a control the page
// hides is a convenience.
package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io/fs"
	"net/http"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// App names which front end a page is.
type App string

const (
	// AppFleet is the fleet web app, served by outpost-cloud.
	AppFleet App = "fleet"
	// AppConsole is a part's own console, served by outpostd.
	AppConsole App = "console"
)

// Config tells the page where it is. It is written into the HTML entry
// point as JSON in a <meta> element (no inline script), which the page
// reads at start.
type Config struct {
	// App is the front end to show. Required.
	App App `json:"app"`
	// Title names the deployment in the header and the window title, such
	// as the cloud's name or the part's name; empty means "Outpost".
	Title string `json:"title,omitempty"`
	// BasePath is the path the handler is mounted at, ending in "/"; empty
	// means "/". Asset URLs and the page's API calls are under it.
	BasePath string `json:"basePath"`
	// Version is the server's version string, shown in the footer.
	Version string `json:"version,omitempty"`
	// PartID is, on a console, the part's id.
	PartID string `json:"partId,omitempty"`
	// Fingerprint is, on a console, the SHA-256 of the part's TLS
	// certificate (controlwire.Fingerprint), shown before sign-in so a
	// technician can compare it with the fleet app's SECURITY tab and
	// `outpost robot trust` before typing anything.
	Fingerprint string `json:"fingerprint,omitempty"`
	// SyncIntervalSeconds is, on the fleet app, how often parts sync with
	// the cloud: a part not seen for a few intervals is shown offline.
	SyncIntervalSeconds int `json:"syncIntervalSeconds,omitempty"`
}

// CSP is the Content-Security-Policy of every response: nothing from
// another origin, no inline script or style (so no injected markup can
// run), no plugins, no framing, and Trusted Types so that assigning a
// string to innerHTML and its kin throws instead of parsing markup.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; " +
	"connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; " +
	"frame-ancestors 'none'; require-trusted-types-for 'script'; trusted-types 'none'"

// Cache-Control values.
const (
	// CacheImmutable is for fingerprinted assets: their URL changes with
	// their content.
	CacheImmutable = "public, max-age=31536000, immutable"
	// CacheEntry is for the HTML entry point: always revalidated (its ETag
	// makes that a 304), so a new release's asset names are seen at once.
	CacheEntry = "no-cache"
)

// Handler serves the front end. It is safe for concurrent use and holds
// everything in memory from New on: serving does no I/O and no compression.
type Handler struct {
	cfg    Config
	assets map[string]*asset // by URL path
	byName map[string]*asset // by source name
	index  *asset
	gz     *gzipper // for the entry, then dropped
}

// New prepares the front end for cfg: it fingerprints and compresses the
// embedded files and fills the entry point with their names and cfg.
func New(cfg Config) (*Handler, error) {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	return newHandler(cfg, sub)
}

// entryModule is the module the entry point loads.
const entryModule = "js/app.js"

func newHandler(cfg Config, fsys fs.FS) (*Handler, error) {
	switch cfg.App {
	case AppFleet, AppConsole:
	default:
		return nil, fmt.Errorf("web: app %q: want %q or %q", cfg.App, AppFleet, AppConsole)
	}
	if cfg.BasePath == "" {
		cfg.BasePath = "/"
	}
	if !strings.HasPrefix(cfg.BasePath, "/") || !strings.HasSuffix(cfg.BasePath, "/") || path.Clean(cfg.BasePath+"x") != cfg.BasePath+"x" {
		return nil, fmt.Errorf("web: base path %q: want a clean absolute path ending in /", cfg.BasePath)
	}
	if cfg.Title == "" {
		cfg.Title = "Outpost"
	}
	gz := &gzipper{}
	byName, err := buildAssets(fsys, cfg.BasePath, gz)
	if err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	h := &Handler{cfg: cfg, byName: byName, assets: map[string]*asset{}, gz: gz}
	for _, a := range byName {
		h.assets[a.url] = a
	}
	if h.byName[entryModule] == nil {
		return nil, fmt.Errorf("web: no entry module %s", entryModule)
	}
	if h.index, err = h.renderEntry(fsys); err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	h.gz = nil
	return h, nil
}

// renderEntry fills index.html: asset names, the config and the title. The
// entry is a small template of its own (no html/template: its reflection
// would keep every method of the binary it is linked into, a megabyte
// more in outpostd): {{.ConfigJSON}}, {{.Config.Title}}, {{asset "NAME"}}
// and one {{range modules}}...{{.}}...{{end}}, each value HTML-escaped (the
// entry places them in text and in quoted attributes only).
func (h *Handler) renderEntry(fsys fs.FS) (*asset, error) {
	src, err := fs.ReadFile(fsys, entry)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", entry, err)
	}
	cfgJSON, err := json.Marshal(h.cfg)
	if err != nil {
		return nil, fmt.Errorf("encode the page's config: %w", err)
	}
	out := string(src)
	// modulepreload: the browser fetches the module graph at once instead
	// of level by level.
	if m := rangeRE.FindStringSubmatchIndex(out); m != nil {
		body := out[m[2]:m[3]]
		var b strings.Builder
		for _, u := range h.modules() {
			b.WriteString(strings.ReplaceAll(body, "{{.}}", html.EscapeString(u)))
		}
		out = out[:m[0]] + b.String() + out[m[1]:]
	}
	var missing []string
	out = assetRE.ReplaceAllStringFunc(out, func(m string) string {
		name := assetRE.FindStringSubmatch(m)[1]
		a := h.byName[name]
		if a == nil {
			missing = append(missing, name)
			return ""
		}
		return html.EscapeString(a.url)
	})
	out = strings.NewReplacer("{{.ConfigJSON}}", html.EscapeString(string(cfgJSON)), "{{.Config.Title}}", html.EscapeString(h.cfg.Title)).Replace(out)
	if len(missing) > 0 {
		return nil, fmt.Errorf("%s names assets that do not exist: %s", entry, strings.Join(missing, ", "))
	}
	if i := strings.Index(out, "{{"); i >= 0 {
		return nil, fmt.Errorf("%s: unknown template action at byte %d", entry, i)
	}
	return newAsset(entry, h.cfg.BasePath, []byte(out), h.gz)
}

var (
	rangeRE = regexp.MustCompile(`(?s)\{\{range modules\}\}(.*?)\{\{end\}\}`)
	assetRE = regexp.MustCompile(`\{\{asset "([A-Za-z0-9_./-]+)"\}\}`)
)

// modules lists what the entry module imports, directly or not.
func (h *Handler) modules() []string {
	seen := map[string]bool{}
	var walk func(name string)
	walk = func(name string) {
		for _, d := range h.byName[name].deps {
			if !seen[d] {
				seen[d] = true
				walk(d)
			}
		}
	}
	walk(entryModule)
	var out []string
	for d := range seen {
		out = append(out, h.byName[d].url)
	}
	slices.Sort(out)
	return out
}

// AssetURL returns the fingerprinted URL of a file of the front end, by
// its source name ("js/connect.js"); false when there is no such file.
func (h *Handler) AssetURL(name string) (string, bool) {
	a := h.byName[name]
	if a == nil {
		return "", false
	}
	return a.url, true
}

// Asset describes one file the handler serves.
type Asset struct {
	// Name is the source's name ("js/app.js"); the entry point is "index.html".
	Name string
	// URL is where it is served.
	URL string
	// Size is its uncompressed size, and Gzip its size as sent to a
	// browser that accepts gzip (equal to Size when compressing does not help).
	Size, Gzip int
}

// Assets lists every file served, the entry point first then by name, with
// its sizes.
func (h *Handler) Assets() []Asset {
	out := []Asset{assetInfo(h.index)}
	names := make([]string, 0, len(h.byName))
	for n := range h.byName {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		out = append(out, assetInfo(h.byName[n]))
	}
	return out
}

func assetInfo(a *asset) Asset {
	return Asset{Name: a.name, URL: a.url, Size: len(a.body(encIdentity)), Gzip: len(a.body(encGzip))}
}

// securityHeaders are set on every response.
func securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", CSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=(), usb=()")
}

// ServeHTTP serves the fingerprinted assets under BasePath + "assets/", and
// the entry point for BasePath and every page path below it (the page routes
// itself), so a link to a page works when opened directly. Only GET and
// HEAD are served; anything under assets/ that is not an asset, and any
// path whose last segment has a dot, is 404.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w.Header())
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "the front end is read with GET", http.StatusMethodNotAllowed)
		return
	}
	p := r.URL.Path
	if !strings.HasPrefix(p, h.cfg.BasePath) && p+"/" != h.cfg.BasePath {
		h.notFound(w)
		return
	}
	if a := h.assets[p]; a != nil {
		h.serve(w, r, a, CacheImmutable)
		return
	}
	rest := strings.TrimPrefix(p, h.cfg.BasePath)
	if strings.HasPrefix(rest, "assets/") || (rest != "" && strings.Contains(path.Base(rest), ".")) {
		h.notFound(w)
		return
	}
	h.serve(w, r, h.index, CacheEntry)
}

func (h *Handler) notFound(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	http.Error(w, "not found", http.StatusNotFound)
}

// serve writes a in the best encoding the client accepts.
func (h *Handler) serve(w http.ResponseWriter, r *http.Request, a *asset, cache string) {
	hd := w.Header()
	hd.Set("Content-Type", a.typ)
	hd.Set("Cache-Control", cache)
	hd.Set("Vary", "Accept-Encoding")
	enc := negotiate(r.Header.Values("Accept-Encoding"), a)
	etag := a.etag
	if enc != encIdentity {
		hd.Set("Content-Encoding", enc)
		etag = strings.TrimSuffix(etag, `"`) + "-" + enc + `"`
	}
	hd.Set("ETag", etag)
	if match := r.Header.Get("If-None-Match"); match != "" && etagMatches(match, etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	b := a.body(enc)
	hd.Set("Content-Length", fmt.Sprint(len(b)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(b)
	}
}

// etagMatches reports whether an If-None-Match list names etag (weak
// comparison, as RFC 9110 asks for If-None-Match).
func etagMatches(list, etag string) bool {
	for t := range strings.SplitSeq(list, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == etag {
			return true
		}
	}
	return false
}

// negotiate picks the encoding to send: gzip when the client accepts it
// with a non-zero quality and a holds it; else identity.
func negotiate(values []string, a *asset) string {
	q := acceptedEncodings(values)
	for _, enc := range []string{encGzip} {
		if _, have := a.bodies[enc]; !have {
			continue
		}
		if w, ok := q[enc]; ok && w > 0 {
			return enc
		}
		if w, ok := q["*"]; ok && w > 0 {
			if _, named := q[enc]; !named {
				return enc
			}
		}
	}
	return encIdentity
}

// errBadQuality is a q-value that is not a number from 0 to 1.
var errBadQuality = errors.New("bad quality value")

// acceptedEncodings parses Accept-Encoding into encoding → quality; an
// entry that does not parse is ignored (treated as not accepted).
func acceptedEncodings(values []string) map[string]float64 {
	out := map[string]float64{}
	for _, v := range values {
		for item := range strings.SplitSeq(v, ",") {
			name, params, _ := strings.Cut(item, ";")
			name = strings.ToLower(strings.TrimSpace(name))
			if name == "" {
				continue
			}
			q := 1.0
			if params != "" {
				var err error
				if q, err = parseQuality(params); err != nil {
					continue
				}
			}
			out[name] = q
		}
	}
	return out
}

// parseQuality reads "q=0.5" (RFC 9110: 0 to 1, at most three decimals).
func parseQuality(params string) (float64, error) {
	k, v, ok := strings.Cut(strings.TrimSpace(params), "=")
	if !ok || strings.ToLower(strings.TrimSpace(k)) != "q" {
		return 0, errBadQuality
	}
	v = strings.TrimSpace(v)
	if len(v) == 0 || len(v) > 5 {
		return 0, errBadQuality
	}
	q, err := strconv.ParseFloat(v, 64)
	if err != nil || q < 0 || q > 1 {
		return 0, errBadQuality
	}
	return q, nil
}
