package daemon

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/outpost-robotics/outpost/api/codec"
	"github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1/syncv1connect"
	"github.com/outpost-robotics/outpost/web"
)

// buildOutpostd builds a stripped outpostd with the build tags given.
func buildOutpostd(b *testing.B, tags string) string {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "outpostd")
	build := exec.Command("go", "build", "-trimpath", "-tags", tags, "-ldflags", "-s -w", "-o", bin, "./cmd/outpostd")
	build.Dir = ".."
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build outpostd: %v\n%s", err, out)
	}
	return bin
}

var reControlAddr = regexp.MustCompile(`control on (127\.0\.0\.1:[0-9]+)`)

// BenchmarkConsoleCost measures what the part's console costs the robot
// (docs/PERFORMANCE.md): the stripped binary's growth against a build
// without it (-tags noconsole), the idle RSS of the two, and the RSS the
// console adds once its page and every asset were served. It builds
// outpostd twice, so it runs only when OUTPOSTD_BENCH is set. Use
// -benchtime 1x.
func BenchmarkConsoleCost(b *testing.B) {
	if os.Getenv("OUTPOSTD_BENCH") == "" {
		b.Skip("set OUTPOSTD_BENCH=1: builds outpostd twice")
	}
	with, without := buildOutpostd(b, ""), buildOutpostd(b, "noconsole")
	idle := envDuration("OUTPOSTD_BENCH_IDLE", 5*time.Second)
	mux := http.NewServeMux()
	mux.Handle(syncv1connect.NewSyncServiceHandler(&benchCloud{}, codec.HandlerOption()))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	h, err := web.New(web.Config{App: web.AppConsole, Fingerprint: "x"})
	if err != nil {
		b.Fatal(err)
	}
	for range b.N {
		fw, err := os.Stat(with)
		if err != nil {
			b.Fatal(err)
		}
		fo, err := os.Stat(without)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(fw.Size()-fo.Size())/1024, "binary_delta_KB")

		rss := func(bin string, open bool) (idleMB, warmMB, servedMB float64) {
			p := newPartOf(b, srv.URL)
			p.hold(b, time.Now(), sensorConfig(1, "s1"))
			c := startChild(b, bin, p)
			defer c.stop(b)
			time.Sleep(idle) // a benchmark of time passing: not logic
			idleMB = c.mem(b, "VmRSS")
			if !open {
				return idleMB, 0, 0
			}
			m := reControlAddr.FindStringSubmatch(c.notify)
			if m == nil {
				b.Fatalf("no control address in %q", c.notify)
			}
			// Only the served bytes matter here, not who is served: the
			// certificate is not checked.
			hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // measuring, not trusting
			// A call of the control API first: what any TLS client costs
			// (the handshake, the connection) is not the console's.
			res, err := hc.Post("https://"+m[1]+"/outpost.control.v1.ControlService/Health", "application/json", strings.NewReader("{}"))
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			time.Sleep(idle)
			warmMB = c.mem(b, "VmRSS")
			for _, a := range h.Assets() {
				for _, enc := range []string{"gzip", ""} {
					req, _ := http.NewRequest(http.MethodGet, "https://"+m[1]+a.URL, nil)
					if enc != "" {
						req.Header.Set("Accept-Encoding", enc)
					}
					res, err := hc.Do(req)
					if err != nil {
						b.Fatal(err)
					}
					_, _ = io.Copy(io.Discard, res.Body)
					res.Body.Close()
					if res.StatusCode != http.StatusOK {
						b.Fatalf("GET %s: %d", a.URL, res.StatusCode)
					}
				}
			}
			time.Sleep(idle)
			servedMB = c.mem(b, "VmRSS")
			hc.CloseIdleConnections()
			return idleMB, warmMB, servedMB
		}
		withIdle, withWarm, withServed := rss(with, true)
		withoutIdle, _, _ := rss(without, false)
		b.ReportMetric(withIdle, "idle_rss_MB")
		b.ReportMetric(withIdle-withoutIdle, "idle_rss_delta_MB")
		b.ReportMetric(withWarm-withIdle, "first_tls_call_rss_delta_MB")
		b.ReportMetric(withServed-withWarm, "served_rss_delta_MB")
		var size, gz int
		for _, a := range h.Assets() {
			size, gz = size+a.Size, gz+a.Gzip
		}
		b.ReportMetric(float64(size+gz)/1024, "assets_in_memory_KB")
	}
}
