package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/outpost-robotics/outpost/api/codec"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1/syncv1connect"
	"github.com/outpost-robotics/outpost/cache"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/cputime"
)

// benchCloud is the least cloud that keeps sync running: it answers pulls
// with its time and a 1 s interval, and acknowledges every upload.
type benchCloud struct {
	syncv1connect.UnimplementedSyncServiceHandler
	captures atomic.Int64
	missed   atomic.Int64 // ticks the poller skipped, from the captures' "missed"
}

func (c *benchCloud) Pull(context.Context, *connect.Request[syncv1.PullRequest]) (*connect.Response[syncv1.PullResponse], error) {
	return connect.NewResponse(&syncv1.PullResponse{ServerTime: timestamppb.Now(), PollInterval: durationpb.New(time.Second)}), nil
}

func (c *benchCloud) Upload(_ context.Context, req *connect.Request[syncv1.UploadRequest]) (*connect.Response[syncv1.UploadResponse], error) {
	rs := req.Msg.GetRecords()
	if len(rs) == 0 {
		return connect.NewResponse(&syncv1.UploadResponse{}), nil
	}
	if req.Msg.GetStream() == string(cache.StreamCaptures) {
		c.captures.Add(int64(len(rs)))
		for _, r := range rs {
			var cp syncv1.Capture
			var m struct{ Missed int64 }
			if proto.Unmarshal(r.GetPayload(), &cp) == nil && json.Unmarshal(cp.GetData(), &m) == nil {
				c.missed.Add(m.Missed)
			}
		}
	}
	return connect.NewResponse(&syncv1.UploadResponse{AckedThrough: rs[len(rs)-1].GetSeq()}), nil
}

func (c *benchCloud) ReportStatus(context.Context, *connect.Request[syncv1.ReportStatusRequest]) (*connect.Response[syncv1.ReportStatusResponse], error) {
	return connect.NewResponse(&syncv1.ReportStatusResponse{}), nil
}

// child is outpostd running as a child process.
type child struct {
	cmd    *exec.Cmd
	ready  time.Duration // from exec to READY=1
	stderr *syncBuffer
	notify string // the READY=1 message, with its status line
}

// startChild runs bin on p with a fake NOTIFY_SOCKET and waits for READY=1.
func startChild(b *testing.B, bin string, p *part) *child {
	b.Helper()
	sock := filepath.Join(b.TempDir(), "notify.sock")
	ns, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		b.Fatal(err)
	}
	defer ns.Close()
	args := []string{"--config", p.BootPath, "--data-dir", p.DataDir, "--runtime-dir", p.RunDir, "--listen", "127.0.0.1:0", "--metrics", "-", "--mdns", "-", "--log-level", "warn"}
	// A slow disk, as an SD card's flush: every synced write of the store
	// waits this long more.
	if d := os.Getenv("OUTPOSTD_BENCH_FSYNC_DELAY"); d != "" {
		args = append(args, "--fault-fsync-delay", d)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock)
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 4096)
	for {
		_ = ns.SetReadDeadline(time.Now().Add(time.Minute))
		n, err := ns.Read(buf)
		if err != nil {
			_ = cmd.Process.Kill()
			b.Fatalf("no READY from outpostd: %v\n%s", err, tail(stderr.String()))
		}
		if strings.HasPrefix(string(buf[:n]), "READY=1") {
			return &child{cmd: cmd, ready: time.Since(start), stderr: stderr, notify: string(buf[:n])}
		}
	}
}

// rss reads VmRSS or VmHWM of the child, in MB.
func (c *child) mem(b *testing.B, field string) float64 {
	b.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb / 1024
		}
	}
	b.Fatalf("no %s in /proc/%d/status", field, c.cmd.Process.Pid)
	return 0
}

// cpuSeconds is the child's user and system CPU time so far.
func (c *child) cpuSeconds(b *testing.B) float64 {
	b.Helper()
	p, err := cputime.Read(c.cmd.Process.Pid)
	if err != nil {
		b.Fatal(err)
	}
	return p.CPU.Seconds()
}

func (c *child) stop(b *testing.B) {
	b.Helper()
	_ = c.cmd.Process.Signal(os.Interrupt)
	if err := c.cmd.Wait(); err != nil {
		b.Fatalf("outpostd after SIGINT: %v\n%s", err, tail(c.stderr.String()))
	}
}

// BenchmarkDaemon measures the real outpostd binary against its goals
// (docs/PERFORMANCE.md):
// stripped size, start to READY with an empty store and with a 1 GB
// backlog, and resident memory idle and under 1,000 captures/s with sync
// running. It builds the binary and writes 1 GB, so it runs only when
// OUTPOSTD_BENCH is set (scripts/bench-daemon). Use -benchtime 1x;
// OUTPOSTD_BENCH_FSYNC_DELAY (a duration) makes the store's disk slow.
func BenchmarkDaemon(b *testing.B) {
	if os.Getenv("OUTPOSTD_BENCH") == "" {
		b.Skip("set OUTPOSTD_BENCH=1 (scripts/bench-daemon): builds outpostd and writes 1 GB")
	}
	bin := filepath.Join(b.TempDir(), "outpostd")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "./cmd/outpostd")
	build.Dir = ".."
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build outpostd: %v\n%s", err, out)
	}
	fi, err := os.Stat(bin)
	if err != nil {
		b.Fatal(err)
	}
	idle := envDuration("OUTPOSTD_BENCH_IDLE", 10*time.Second)
	load := envDuration("OUTPOSTD_BENCH_LOAD", 20*time.Second)
	backlogMB := envInt("OUTPOSTD_BENCH_BACKLOG_MB", 1024)

	cloud := &benchCloud{}
	mux := http.NewServeMux()
	mux.Handle(syncv1connect.NewSyncServiceHandler(cloud, codec.HandlerOption()))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	for range b.N {
		b.ReportMetric(float64(fi.Size())/(1<<20), "binary_MB")

		// Empty store, no config: start to READY, then idle.
		p := newPartOf(b, srv.URL)
		c := startChild(b, bin, p)
		b.ReportMetric(float64(c.ready.Microseconds())/1000, "ready_empty_ms")
		c.stop(b)

		// A small config (two sensors at 1 Hz), idle with sync running.
		p.hold(b, time.Now(), sensorConfig(1, "s1", "s2"))
		c = startChild(b, bin, p)
		time.Sleep(idle) // a benchmark of time passing: not logic
		b.ReportMetric(c.mem(b, "VmRSS"), "idle_rss_MB")
		// The binary's own pages (text, read-only data) apart from the
		// heap and stacks: what the binary's size costs a robot.
		b.ReportMetric(c.mem(b, "RssFile"), "idle_rss_file_MB")
		b.ReportMetric(c.mem(b, "RssAnon"), "idle_rss_anon_MB")

		// 1,000 captures/s (four sensors at 250 Hz) with sync uploading.
		c.stop(b)
		p.hold(b, time.Now(), sensorConfig(250, "s1", "s2", "s3", "s4"))
		c = startChild(b, bin, p)
		before, missedBefore := cloud.captures.Load(), cloud.missed.Load()
		var peak float64
		cpu0 := c.cpuSeconds(b)
		t0 := time.Now()
		for time.Since(t0) < load {
			time.Sleep(time.Second)
			peak = max(peak, c.mem(b, "VmRSS"))
		}
		elapsed := time.Since(t0)
		cpu := c.cpuSeconds(b) - cpu0
		b.ReportMetric(peak, "load_rss_MB")
		b.ReportMetric(c.mem(b, "VmHWM"), "load_hwm_MB")
		// The final sync at stop uploads what the last cycle left, so the
		// cloud then holds everything captured.
		c.stop(b)
		b.ReportMetric(float64(cloud.captures.Load()-before)/elapsed.Seconds(), "captured_uploaded/s")
		// outpostd's CPU from READY to the end of the load, of one core,
		// and per capture: reads, queueing, syncs, upload, the GC, and
		// what the start leaves to do (Badger's compactions).
		b.ReportMetric(100*cpu/elapsed.Seconds(), "load_cpu_%")
		b.ReportMetric(1e6*cpu/float64(max(cloud.captures.Load()-before, 1)), "cpu-µs/capture")
		b.ReportMetric(float64(cloud.missed.Load()-missedBefore), "missed_ticks")

		// A backlog of backlogMB of captures: start to READY.
		fill(b, p, backlogMB)
		c = startChild(b, bin, p)
		b.ReportMetric(float64(c.ready.Microseconds())/1000, "ready_backlog_ms")
		b.ReportMetric(c.mem(b, "VmRSS"), "ready_backlog_rss_MB")
		b.ReportMetric(float64(backlogMB), "backlog_MB")
		c.stop(b)
	}
}

// fill appends mb MB of 64 KB captures to p's store.
func fill(b *testing.B, p *part, mb int) {
	b.Helper()
	ctx := context.Background()
	st, err := cache.Open(ctx, filepath.Join(p.DataDir, "store"), cache.Options{Clock: clock.NewReal(), GCInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	payload := []byte(`{"kind":"method","component":"cam","method":"image","data":"` + strings.Repeat("x", 64<<10-64) + `"}`)
	batch := make([]cache.Record, 16) // 1 MB per commit
	for i := range batch {
		batch[i] = cache.Record{Payload: payload, Priority: 5}
	}
	for range mb {
		if _, err := st.AppendBatch(ctx, cache.StreamCaptures, batch); err != nil {
			b.Fatal(err)
		}
	}
}

func envDuration(name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(name)); err == nil {
		return d
	}
	return def
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return n
	}
	return def
}
