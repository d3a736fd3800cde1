package web_test

import (
	"net/http/httptest"
	"strings"
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

// robotPageFiles are the robot page's own files; the page loads them with
// the shell (app.js imports robot.js, so the entry point preloads them).
var robotPageFiles = []string{"css/robot.css", "js/diff.js", "js/robot.js", "js/robot_config.js", "js/robot_control.js", "js/robot_data.js", "js/robot_logs.js"}

// BenchmarkRobotPageBytes reports the compressed bytes of everything the
// robot page's first load fetches (the shell with the robot page's
// modules: goal at most 150 KB), and of the robot page's own files.
func BenchmarkRobotPageBytes(b *testing.B) {
	h, err := web.New(web.Config{App: web.AppFleet})
	if err != nil {
		b.Fatal(err)
	}
	var n int
	for b.Loop() {
		n = shellBytes(b, h)
	}
	b.ReportMetric(float64(n), "bytes")
	b.ReportMetric(float64(robotOwnBytes(b, h)), "robot-bytes")
}

// robotOwnBytes sums the gzip sizes of the robot page's own files, and
// checks that the entry point preloads each.
func robotOwnBytes(tb testing.TB, h *web.Handler) int {
	tb.Helper()
	byName := map[string]web.Asset{}
	for _, a := range h.Assets() {
		byName[a.Name] = a
	}
	idx := httptest.NewRecorder()
	h.ServeHTTP(idx, httptest.NewRequest("GET", "/machines/m1/control", nil))
	n := 0
	for _, f := range robotPageFiles {
		a, ok := byName[f]
		if !ok {
			tb.Fatalf("no asset %s", f)
		}
		if !strings.Contains(idx.Body.String(), `"`+a.URL+`"`) {
			tb.Errorf("the robot page's entry point does not load or preload %s", f)
		}
		n += a.Gzip
	}
	return n
}

// TestRobotPageBytes holds the size goal for the robot page's first load.
func TestRobotPageBytes(t *testing.T) {
	h, err := web.New(web.Config{App: web.AppFleet})
	if err != nil {
		t.Fatal(err)
	}
	n, own := shellBytes(t, h), robotOwnBytes(t, h)
	t.Logf("the robot page loads %d bytes compressed, %d of them its own files", n, own)
	if n > 150<<10 {
		t.Errorf("the robot page loads %d bytes compressed; the goal is at most 150 KB", n)
	}
}
