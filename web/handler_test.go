package web_test

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/outpost-robotics/outpost/web"
)

// get fetches path from h with the given Accept-Encoding (none when empty),
// as a browser would, and returns the response and its raw body.
func get(t *testing.T, h http.Handler, method, path, acceptEncoding string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	if acceptEncoding != "" {
		req.Header.Set("Accept-Encoding", acceptEncoding)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	resp := w.Result()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func gunzip(tb testing.TB, b []byte) []byte {
	tb.Helper()
	r, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		tb.Fatalf("gunzip: %v", err)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		tb.Fatalf("gunzip: %v", err)
	}
	return out
}

func newHandler(t *testing.T, cfg web.Config) *web.Handler {
	t.Helper()
	h, err := web.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// assetRE finds the entry point's references to assets.
var assetRE = regexp.MustCompile(`(?:href|src)="(/[^"]*assets/[^"]+)"`)

// TestSecurityHeaders: every answer, page, asset or error, carries the CSP
// and its companions.
func TestSecurityHeaders(t *testing.T) {
	h := newHandler(t, web.Config{App: web.AppFleet})
	js, _ := h.AssetURL("js/app.js")
	for _, tc := range []struct{ method, path string }{
		{"GET", "/"}, {"GET", "/machines/m1/config"}, {"GET", js}, {"GET", "/assets/js/app.000000000000.js"},
		{"GET", "/favicon.ico"}, {"POST", "/"}, {"HEAD", "/"},
	} {
		resp, _ := get(t, h, tc.method, tc.path, "")
		for name, want := range map[string]string{
			"Content-Security-Policy": web.CSP,
			"X-Content-Type-Options":  "nosniff",
			"Referrer-Policy":         "no-referrer",
			"X-Frame-Options":         "DENY",
		} {
			if got := resp.Header.Get(name); got != want {
				t.Errorf("%s %s: %s = %q, want %q", tc.method, tc.path, name, got, want)
			}
		}
	}
	for _, must := range []string{"default-src 'self'", "script-src 'self'", "style-src 'self'", "connect-src 'self'",
		"img-src 'self' data: blob:", "frame-ancestors 'none'", "object-src 'none'", "base-uri 'none'"} {
		if !strings.Contains(web.CSP, must) {
			t.Errorf("CSP lacks %q", must)
		}
	}
	if strings.Contains(web.CSP, "unsafe-") {
		t.Errorf("CSP allows something unsafe: %s", web.CSP)
	}
}

// TestEntryAndAssets: the entry point is revalidated every time and names
// every asset by a fingerprint of the bytes served there, which are cached
// for a year; modules import each other by fingerprinted names too.
func TestEntryAndAssets(t *testing.T) {
	h := newHandler(t, web.Config{App: web.AppFleet, Title: `Acme <Robots> & "Co"`})
	resp, body := get(t, h, "GET", "/", "")
	if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != web.CacheEntry || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d, Cache-Control %q, Content-Type %q", resp.StatusCode, resp.Header.Get("Cache-Control"), resp.Header.Get("Content-Type"))
	}
	if bytes.Contains(body, []byte("<Robots>")) || !bytes.Contains(body, []byte("Acme &lt;Robots&gt; &amp; &#34;Co&#34;")) {
		t.Errorf("the title is not escaped in the page:\n%s", body)
	}
	if bytes.Contains(body, []byte("<script>")) || bytes.Contains(body, []byte(" style=")) || bytes.Contains(body, []byte(" on")) && regexp.MustCompile(` on[a-z]+=`).Match(body) {
		t.Errorf("the entry point has inline script or style:\n%s", body)
	}
	refs := assetRE.FindAllSubmatch(body, -1)
	if len(refs) < 4 { // icon, css, app.js and its imports
		t.Fatalf("the entry point references %d assets:\n%s", len(refs), body)
	}
	nameRE := regexp.MustCompile(`\.([0-9a-f]{12})\.[a-z]+$`)
	seen := map[string]bool{}
	check := func(url string) {
		if seen[url] {
			return
		}
		seen[url] = true
		resp, b := get(t, h, "GET", url, "")
		if resp.StatusCode != 200 {
			t.Errorf("GET %s: %d", url, resp.StatusCode)
			return
		}
		if got := resp.Header.Get("Cache-Control"); got != web.CacheImmutable {
			t.Errorf("GET %s: Cache-Control %q, want %q", url, got, web.CacheImmutable)
		}
		m := nameRE.FindStringSubmatch(url)
		sum := sha256.Sum256(b)
		if m == nil || m[1] != hex.EncodeToString(sum[:])[:12] {
			t.Errorf("%s does not carry the hash of its bytes (%x)", url, sum[:6])
		}
		if strings.HasSuffix(url, ".js") {
			// Every sibling import is by a fingerprinted name that is served.
			for _, imp := range regexp.MustCompile(`from '\./([^']+)'`).FindAllSubmatch(b, -1) {
				if !nameRE.Match(imp[1]) {
					t.Errorf("%s imports %s, which is not fingerprinted", url, imp[1])
				}
				if _, ok := h.AssetURL("js/" + regexp.MustCompile(`\.[0-9a-f]{12}`).ReplaceAllString(string(imp[1]), "")); !ok {
					t.Errorf("%s imports %s, which is not an asset", url, imp[1])
				}
			}
		}
	}
	for _, r := range refs {
		check(string(r[1]))
	}
	for _, a := range h.Assets()[1:] {
		check(a.URL)
	}
}

// TestCompression: gzip when the browser accepts it, by the rules of
// Accept-Encoding's q-values; identity otherwise; each answer says which
// and varies on the header.
func TestCompression(t *testing.T) {
	h := newHandler(t, web.Config{App: web.AppFleet})
	js, _ := h.AssetURL("js/connect.js")
	_, plain := get(t, h, "GET", js, "")
	for _, tc := range []struct {
		accept string
		gzip   bool
	}{
		{"gzip, deflate, br, zstd", true},
		{"GZIP", true},
		{"*", true},
		{"gzip;q=0.5, identity;q=1", true},
		{"gzip;q=0", false},
		{"*;q=0", false},
		{"gzip;q=0, *", false},
		{"br, zstd", false},
		{"identity", false},
		{"gzip;q=2", false},
		{"gzip;q=bogus", false},
		{"gzip;level=9", false},
		{",,;;", false},
		{"", false},
	} {
		resp, b := get(t, h, "GET", js, tc.accept)
		if resp.Header.Get("Vary") != "Accept-Encoding" {
			t.Errorf("%q: Vary %q", tc.accept, resp.Header.Get("Vary"))
		}
		gz := resp.Header.Get("Content-Encoding") == "gzip"
		if gz != tc.gzip {
			t.Errorf("Accept-Encoding %q: Content-Encoding %q, want gzip %v", tc.accept, resp.Header.Get("Content-Encoding"), tc.gzip)
			continue
		}
		if gz {
			if len(b) >= len(plain) {
				t.Errorf("gzip is not smaller: %d >= %d", len(b), len(plain))
			}
			b = gunzip(t, b)
		}
		if !bytes.Equal(b, plain) {
			t.Errorf("Accept-Encoding %q: the body differs", tc.accept)
		}
	}
}

// TestRoutes: pages get the entry point, unknown files 404, only reads are
// served, and ETags revalidate the entry point.
func TestRoutes(t *testing.T) {
	h := newHandler(t, web.Config{App: web.AppFleet})
	_, index := get(t, h, "GET", "/", "")
	for _, tc := range []struct {
		method, path string
		status       int
		index        bool
	}{
		{"GET", "/", 200, true},
		{"GET", "/machines/m1/config", 200, true},
		{"GET", "/org", 200, true},
		{"HEAD", "/", 200, false},
		{"GET", "/favicon.ico", 404, false},
		{"GET", "/assets/js/app.js", 404, false},
		{"GET", "/assets/", 404, false},
		{"GET", "/assets/js/app.000000000000.js", 404, false},
		{"GET", "/robots.txt", 404, false},
		{"POST", "/", 405, false},
		{"PUT", "/assets/js/app.js", 405, false},
	} {
		resp, b := get(t, h, tc.method, tc.path, "")
		if resp.StatusCode != tc.status {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, resp.StatusCode, tc.status)
		}
		if tc.index != bytes.Equal(b, index) {
			t.Errorf("%s %s: entry point served %v, want %v", tc.method, tc.path, !tc.index, tc.index)
		}
		if tc.status == 404 && resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s %s: a 404 is cacheable: %q", tc.method, tc.path, resp.Header.Get("Cache-Control"))
		}
	}
	for _, enc := range []string{"", "gzip"} {
		resp, _ := get(t, h, "GET", "/", enc)
		etag := resp.Header.Get("ETag")
		if etag == "" {
			t.Fatal("no ETag on the entry point")
		}
		if again, b := get(t, h, "GET", "/", enc, "If-None-Match", etag); again.StatusCode != 304 || len(b) != 0 {
			t.Errorf("If-None-Match %s (%q): %d with %d bytes, want 304", etag, enc, again.StatusCode, len(b))
		}
		if again, _ := get(t, h, "GET", "/", enc, "If-None-Match", `"other", W/`+etag); again.StatusCode != 304 {
			t.Errorf("If-None-Match list with %s: %d, want 304", etag, again.StatusCode)
		}
		if again, _ := get(t, h, "GET", "/", enc, "If-None-Match", `"stale"`); again.StatusCode != 200 {
			t.Errorf("a stale If-None-Match: %d, want 200", again.StatusCode)
		}
	}
}

// TestBasePath: mounted below a path, the handler serves only there and the
// page's URLs and config say so.
func TestBasePath(t *testing.T) {
	h := newHandler(t, web.Config{App: web.AppConsole, BasePath: "/console/", PartID: "p1", Fingerprint: strings.Repeat("ab", 32)})
	resp, body := get(t, h, "GET", "/console/", "")
	if resp.StatusCode != 200 {
		t.Fatalf("GET /console/: %d", resp.StatusCode)
	}
	for _, r := range assetRE.FindAllSubmatch(body, -1) {
		if !bytes.HasPrefix(r[1], []byte("/console/assets/")) {
			t.Errorf("asset %s is not under the base path", r[1])
		}
	}
	if !bytes.Contains(body, []byte(`&#34;basePath&#34;:&#34;/console/&#34;`)) || !bytes.Contains(body, []byte(`&#34;partId&#34;:&#34;p1&#34;`)) {
		t.Errorf("the config does not reach the page:\n%s", body)
	}
	if resp, _ := get(t, h, "GET", "/other", ""); resp.StatusCode != 404 {
		t.Errorf("GET /other outside the base path: %d", resp.StatusCode)
	}
}

// TestConfigRefused: a config that cannot be served is an error.
func TestConfigRefused(t *testing.T) {
	for _, cfg := range []web.Config{
		{},
		{App: "admin"},
		{App: web.AppFleet, BasePath: "console/"},
		{App: web.AppFleet, BasePath: "/console"},
		{App: web.AppFleet, BasePath: "/a/../b/"},
		{App: web.AppFleet, BasePath: "//"},
	} {
		if _, err := web.New(cfg); err == nil {
			t.Errorf("New(%+v) accepted it", cfg)
		}
	}
}

// FuzzServe: whatever path and headers a client sends, the handler answers
// with one of its statuses and, for a 200, the bytes of the encoding it
// names.
func FuzzServe(f *testing.F) {
	h, err := web.New(web.Config{App: web.AppFleet})
	if err != nil {
		f.Fatal(err)
	}
	js, _ := h.AssetURL("js/app.js")
	f.Add("/", "gzip", "")
	f.Add(js, "gzip;q=0.001, *;q=0", `"x"`)
	f.Add("/assets/../index.html", "*;q=1.0000", "*")
	f.Add("/a.b/c", "gzip;q=", "W/")
	f.Fuzz(func(t *testing.T, path, accept, match string) {
		req := httptest.NewRequest("GET", "/", nil)
		req.URL.Path = path
		req.Header.Set("Accept-Encoding", accept)
		req.Header.Set("If-None-Match", match)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		switch w.Code {
		case 200:
			if w.Header().Get("Content-Encoding") == "gzip" {
				if _, err := gzip.NewReader(bytes.NewReader(w.Body.Bytes())); err != nil {
					t.Fatalf("a gzip answer that does not gunzip: %v", err)
				}
			}
		case 304, 404:
		default:
			t.Fatalf("GET %q: status %d", path, w.Code)
		}
		if w.Header().Get("Content-Security-Policy") != web.CSP {
			t.Fatal("an answer without the CSP")
		}
	})
}
