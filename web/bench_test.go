package web_test

import (
	"net/http/httptest"
	"testing"

	"github.com/outpost-robotics/outpost/web"
)

// shellBytes fetches the entry point and every asset it names, as a
// browser accepting gzip does, and returns the bytes sent.
func shellBytes(tb testing.TB, h *web.Handler) int {
	tb.Helper()
	n := 0
	fetch := func(path string) []byte {
		req := httptest.NewRequest("GET", path, nil)
		req.Header.Set("Accept-Encoding", "gzip, deflate, br, zstd")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			tb.Fatalf("GET %s: %d", path, w.Code)
		}
		n += w.Body.Len()
		return w.Body.Bytes()
	}
	index := gunzip(tb, fetch("/"))
	for _, r := range assetRE.FindAllSubmatch(index, -1) {
		fetch(string(r[1]))
	}
	return n
}

// BenchmarkShellBytes reports the compressed bytes of everything the
// shell's first load fetches (goal: at most 150 KB), and the time to serve
// them all.
func BenchmarkShellBytes(b *testing.B) {
	h, err := web.New(web.Config{App: web.AppFleet})
	if err != nil {
		b.Fatal(err)
	}
	var n int
	for b.Loop() {
		n = shellBytes(b, h)
	}
	b.ReportMetric(float64(n), "bytes")
}

// TestShellBytes holds the size goal in every test run.
func TestShellBytes(t *testing.T) {
	h, err := web.New(web.Config{App: web.AppFleet})
	if err != nil {
		t.Fatal(err)
	}
	n := shellBytes(t, h)
	t.Logf("the shell loads %d bytes compressed", n)
	if n > 150<<10 {
		t.Errorf("the shell loads %d bytes compressed; the goal is at most 150 KB", n)
	}
}
