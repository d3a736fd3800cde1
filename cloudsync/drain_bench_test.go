package cloudsync_test

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/cache"
	"github.com/outpost-robotics/outpost/capture/capturetest"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/cloud/cloudtest"
	"github.com/outpost-robotics/outpost/cloudsync"
	"github.com/outpost-robotics/outpost/cputime"
	"github.com/outpost-robotics/outpost/faultproxy"
	"github.com/outpost-robotics/outpost/qemutest"
	"github.com/outpost-robotics/outpost/signed"
)

// readingsCapture is one ~1 KiB capture of a part's sensors, as JSON: the
// bulk of what a robot's backlog holds.
func readingsCapture(rng *rand.Rand, seq int) []byte {
	data := capturetest.Readings(rng, seq)
	b, _ := proto.Marshal(&syncv1.Capture{Component: "imu", Method: "readings", Tags: []string{"site-a"}, Priority: 5, Data: data, MimeType: "application/json"})
	return b
}

// imageCapture is one 64 KB camera frame: random bytes, as incompressible
// as a JPEG.
func imageCapture(rng *rand.Rand, _ int) []byte {
	data := make([]byte, 64<<10)
	for i := 0; i < len(data); i += 8 {
		v := rng.Uint64()
		for j := range 8 {
			data[i+j] = byte(v >> (8 * j))
		}
	}
	b, _ := proto.Marshal(&syncv1.Capture{Component: "camera", Method: "frame", Tags: []string{"site-a"}, Priority: 5, Data: data, MimeType: "image/jpeg"})
	return b
}

// BenchmarkBacklogDrain drains a backlog of captures from a real store to
// the real outpost-cloud (cloudtest) on loopback, for ~1 KiB JSON readings
// and for incompressible 64 KB images. The cloud runs in a child process
// (TestDrainCloudHalf), so each side's CPU is its own process's:
// part-cpu-s/GB is this process's during the drain, cloud-cpu-s/GB the
// child's. Beside the drain, in the same run, two baselines move the same
// kind of bytes in the same batch sizes with as many requests in flight:
// a plain HTTP POST to a handler that appends each body to a file and
// fsyncs before answering (the durable baseline, the floor for any
// receiver that promises durability) and one to a handler that discards it.
//
// The backlog is 1 GiB of each kind; set OUTPOST_DRAIN_MB for a shorter
// run, OUTPOST_DRAIN_INFLIGHT to compare Options.InFlight settings,
// OUTPOST_DRAIN_CYCLE_MB to set Options.CycleBytes (64 MiB by default), and
// OUTPOST_DRAIN_RTT_MS to put that much round-trip time between the part
// and the cloud. OUTPOST_DRAIN_PROFILE=DIR writes a CPU profile of each
// side's drain into DIR (part-KIND.pprof, cloud-KIND.pprof). The variants
// KIND-shaped drain a smaller backlog over a shaped link (see
// benchShapedDrain). Run it with -benchtime 1x.
func BenchmarkBacklogDrain(b *testing.B) {
	mb := 1024
	if v, err := strconv.Atoi(os.Getenv("OUTPOST_DRAIN_MB")); err == nil && v > 0 {
		mb = v
	}
	inFlight, _ := strconv.Atoi(os.Getenv("OUTPOST_DRAIN_INFLIGHT"))
	rttMS, _ := strconv.Atoi(os.Getenv("OUTPOST_DRAIN_RTT_MS"))
	kinds := []drainKind{{"readings", readingsCapture}, {"images", imageCapture}}
	for _, kind := range kinds {
		b.Run(kind.name, func(b *testing.B) {
			// The timer is managed by drainOnce (filling the store is not
			// timed), which b.Loop does not allow.
			for range b.N {
				d := drainOnce(b, kind.name, kind.gen, int64(mb)<<20, inFlight, time.Duration(rttMS)*time.Millisecond, nil)
				gb := float64(d.raw) / 1e9
				rate := float64(d.raw) / d.secs
				durable := postBaseline(b, kind.gen, d.raw, d.inFlight, true)
				plain := postBaseline(b, kind.gen, d.raw, d.inFlight, false)
				b.ReportMetric(rate/1e6, "MB/s")
				b.ReportMetric(d.partCPU/gb, "part-cpu-s/GB")
				b.ReportMetric(d.cloudCPU/gb, "cloud-cpu-s/GB")
				b.ReportMetric(float64(d.wire)/float64(d.raw), "wire/raw")
				b.ReportMetric(durable/1e6, "durable-POST-MB/s")
				b.ReportMetric(rate/durable, "ratio-to-durable-POST")
				b.ReportMetric(plain/1e6, "plain-POST-MB/s")
				b.ReportMetric(rate/plain, "ratio-to-plain-POST")
			}
		})
	}
	benchShapedDrain(b, kinds, inFlight)
}

// drainKind is one kind of capture a backlog holds.
type drainKind struct {
	name string
	gen  func(*rand.Rand, int) []byte
}

// drained is what one drain measured.
type drained struct {
	raw, wire         int64 // payload bytes; bytes on the wire
	secs              float64
	partCPU, cloudCPU float64 // CPU seconds of each process during the drain
	inFlight          int     // the uploads in flight per stream
	linkUp            int64   // bytes up a shaped link, headers included
}

// drainOnce fills a store with size bytes of captures from gen (untimed)
// and drains it with inFlight uploads at once (0: the default) over a path
// with rtt round-trip time, or over a shaped link unless link is nil, to a
// cloud in a child process.
func drainOnce(b *testing.B, kind string, gen func(*rand.Rand, int) []byte, size int64, inFlight int, rtt time.Duration, link *shapedLink) drained {
	b.StopTimer()
	ctx := context.Background()
	clk := clock.NewReal()
	store, err := cache.Open(ctx, b.TempDir(), cache.Options{Clock: clk, GCInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	var d drained
	rng := rand.New(rand.NewPCG(7, 7))
	batch := make([]cache.Record, 0, 256)
	for seq := 0; d.raw < size; seq++ {
		p := gen(rng, seq)
		d.raw += int64(len(p))
		batch = append(batch, cache.Record{Payload: p, Priority: 5})
		if len(batch) == cap(batch) || d.raw >= size {
			if _, err := store.AppendBatch(ctx, cache.StreamCaptures, batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}

	settle(b, clk)

	profile := os.Getenv("OUTPOST_DRAIN_PROFILE")
	cloud := startCloudHalf(b, profile, kind)
	url := cloud.url
	if rtt > 0 {
		url = slowPath(b, url, rtt)
	}
	var proxy *faultproxy.Proxy
	batchBytes := 0 // cloudsync's default
	if link != nil {
		proxy = shapedPath(b, url, link.Link)
		url = proxy.URL()
		batchBytes = link.batchBytes
	}
	client, err := cloudsync.NewClient(cloudsync.ClientOptions{CloudURL: url, PartID: cloud.part.ID, PartSecret: cloud.part.Secret})
	if err != nil {
		b.Fatal(err)
	}
	offline := cloudsync.NewOfflineClock(clk, cache.OfflineClock{})
	opts := cloudsync.Options{
		Store: store, Client: client, Clock: clk, Offline: offline,
		Trust: cloudsync.NewTrust(cloud.part.ID, cloud.part.Keys, offline),
		// A cycle moves up to 64 MB unless OUTPOST_DRAIN_CYCLE_MB says
		// otherwise (the daemon's is 8 MiB); on a loaded machine 64 MB
		// has taken over a minute, and a cut cycle fails the benchmark.
		CycleBytes: cycleBytes(), CycleTimeout: 10 * time.Minute,
		InFlight: inFlight, BatchBytes: batchBytes,
	}
	s, err := cloudsync.New(opts)
	if err != nil {
		b.Fatal(err)
	}
	d.inFlight = inFlight
	if d.inFlight == 0 {
		d.inFlight = cloudsync.DefaultInFlight
	}

	if profile != "" {
		stop := cputime.Profile(b, filepath.Join(profile, "part-"+kind+".pprof"))
		defer stop()
	}
	before := cloud.stats(b, "start")
	var linkUp0 int64
	if proxy != nil {
		linkUp0, _ = proxy.LinkBytes()
	}
	cpu0, t0 := cputime.Self(b).Seconds(), time.Now()
	b.StartTimer()
	for {
		res := s.Cycle(ctx)
		if res.Err != nil {
			b.Fatal(res.Err)
		}
		if res.Uploaded[cache.StreamCaptures] == 0 {
			break
		}
	}
	b.StopTimer()
	d.secs, d.partCPU = time.Since(t0).Seconds(), cputime.Self(b).Seconds()-cpu0
	if proxy != nil {
		up, _ := proxy.LinkBytes()
		d.linkUp = up - linkUp0
	}
	after := cloud.stats(b, "stop")
	d.cloudCPU, d.wire = after.CPU-before.CPU, after.Wire-before.Wire
	if st, _ := store.Stats(ctx, cache.StreamCaptures); st.Count != 0 {
		b.Fatalf("%d captures left after the drain", st.Count)
	}
	if after.Bytes < d.raw || after.Conflicts != 0 {
		b.Fatalf("the cloud holds %d bytes of %d (%d conflicting records)", after.Bytes, d.raw, after.Conflicts)
	}
	return d
}

// cycleBytes is the drain's Options.CycleBytes: OUTPOST_DRAIN_CYCLE_MB,
// or 64 MiB.
func cycleBytes() int {
	if v, err := strconv.Atoi(os.Getenv("OUTPOST_DRAIN_CYCLE_MB")); err == nil && v > 0 {
		return v << 20
	}
	return 64 << 20
}

// settle waits until this process is idle: Badger compacting what the
// fill wrote is the cost of capturing, which a robot pays as it captures,
// not of draining, so the drain's CPU figure must not include it. It gives
// up after two minutes and measures anyway.
func settle(b *testing.B, clk clock.Clock) {
	ctx := context.Background()
	for range 240 {
		cpu0, t0 := cputime.Self(b).Seconds(), clk.Now()
		if err := clk.Sleep(ctx, 500*time.Millisecond); err != nil {
			b.Fatal(err)
		}
		if cputime.Self(b).Seconds()-cpu0 < 0.02*clk.Now().Sub(t0).Seconds() {
			return
		}
	}
	b.Log("the store's background work did not settle in two minutes")
}

// cloudHalf is the cloud of BenchmarkBacklogDrain in its child process.
type cloudHalf struct {
	url   string
	part  cloudtest.Part
	child *qemutest.Child
}

// halfHello is the child's first line: where it serves and the part it
// provisioned.
type halfHello struct {
	URL, PartID, PartSecret string
	Bootstrap               []byte // protojson of the bootstrap file
}

// halfStats is the child's answer to a command: its process CPU seconds,
// the bytes its listener read, and what it holds of the part's captures.
type halfStats struct {
	CPU              float64
	Wire             int64
	Bytes, Conflicts int64
}

const halfPrefix = "drain-cloud: "

// startCloudHalf runs TestDrainCloudHalf in a child process of this test
// binary and waits for its hello; the child ends when the benchmark does.
func startCloudHalf(b *testing.B, profileDir, kind string) *cloudHalf {
	env := []string{"OUTPOST_DRAIN_CLOUD=1"}
	if profileDir != "" {
		env = append(env, "OUTPOST_DRAIN_CLOUD_PROFILE="+filepath.Join(profileDir, "cloud-"+kind+".pprof"))
	}
	c := &cloudHalf{child: qemutest.StartChild(b, "TestDrainCloudHalf", env...)}
	b.Cleanup(func() { c.child.Stop(b) }) // its stdin closes: the child's cue to end
	var hello halfHello
	c.read(b, &hello)
	boot := &syncv1.Bootstrap{}
	if err := protojson.Unmarshal(hello.Bootstrap, boot); err != nil {
		b.Fatal(err)
	}
	keys, err := signed.KeysFromProto(boot.GetCloudKeys())
	if err != nil {
		b.Fatal(err)
	}
	c.url = hello.URL
	c.part = cloudtest.Part{ID: hello.PartID, Secret: hello.PartSecret, CloudURL: hello.URL, Keys: keys, Bootstrap: boot}
	return c
}

// read decodes the child's next line of its own into v, passing over what
// the test framework prints.
func (c *cloudHalf) read(b *testing.B, v any) {
	for {
		l, ok := c.child.Next()
		if !ok {
			b.Fatal("the cloud's process ended")
		}
		if line, ok := strings.CutPrefix(l, halfPrefix); ok {
			if err := json.Unmarshal([]byte(line), v); err != nil {
				b.Fatal(err)
			}
			return
		}
	}
}

// stats sends cmd ("start" begins its profile, "stop" ends it) and returns
// the child's answer.
func (c *cloudHalf) stats(b *testing.B, cmd string) halfStats {
	c.child.Send(b, cmd)
	var s halfStats
	c.read(b, &s)
	return s
}

// TestDrainCloudHalf is the cloud of BenchmarkBacklogDrain, which runs it
// in a child process so that the CPU the cloud spends is told apart from
// the part's. It provisions one part, says so on stdout, and answers each
// line on stdin with its figures until stdin closes.
func TestDrainCloudHalf(t *testing.T) {
	if os.Getenv("OUTPOST_DRAIN_CLOUD") == "" {
		t.Skip("the cloud half of BenchmarkBacklogDrain, which runs it in a child process")
	}
	cloud := cloudtest.New(t, cloudtest.Options{DiscardLog: true})
	part := cloud.Provision(t, cloudtest.PartOptions{})
	boot, err := protojson.Marshal(part.Bootstrap)
	if err != nil {
		t.Fatal(err)
	}
	say := func(v any) {
		line, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Printf("%s%s\n", halfPrefix, line)
	}
	say(halfHello{URL: cloud.URL, PartID: part.ID, PartSecret: part.Secret, Bootstrap: boot})
	var stop func()
	defer func() {
		if stop != nil {
			stop()
		}
	}()
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch in.Text() {
		case "start":
			if path := os.Getenv("OUTPOST_DRAIN_CLOUD_PROFILE"); path != "" {
				stop = cputime.Profile(t, path)
			}
		case "stop":
			if stop != nil {
				stop()
				stop = nil
			}
		}
		n := cloud.Ingested(t, part.ID)["captures"]
		say(halfStats{CPU: cputime.Self(t).Seconds(), Wire: cloud.WireBytes(), Bytes: int64(n.Bytes), Conflicts: int64(n.Conflicts)})
	}
}

// slowPath serves a reverse proxy to upstream that holds each request for
// rtt before forwarding it: the round trip of a robot's uplink, whose
// bandwidth is left out. The pause is real, as a network's is; no result
// depends on its length being exact.
func slowPath(b *testing.B, upstream string, rtt time.Duration) string {
	target, err := url.Parse(upstream)
	if err != nil {
		b.Fatal(err)
	}
	rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(target) }}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(rtt):
		case <-r.Context().Done():
			return
		}
		rp.ServeHTTP(w, r)
	}))
	b.Cleanup(srv.Close)
	return srv.URL
}

// postBaseline sends size bytes of gen's captures as HTTP POST bodies of
// the drain's batch size (records up to 1 MiB of payload, as cloudsync's
// default BatchBytes), inFlight requests at once, on the same loopback, to
// a handler that appends each body to a file and fsyncs it before
// answering (durable) or reads and discards it. The bodies cycle through a
// pool of 16 batches. It returns bytes per second.
func postBaseline(b *testing.B, gen func(*rand.Rand, int) []byte, size int64, inFlight int, durable bool) float64 {
	var bodies [][]byte
	rng := rand.New(rand.NewPCG(8, 8))
	for seq := 0; len(bodies) < 16; {
		var body []byte
		for n := 0; n < 4000; n++ {
			p := gen(rng, seq)
			seq++
			if len(body)+len(p) > 1<<20 && len(body) > 0 {
				break
			}
			body = append(body, p...)
		}
		bodies = append(bodies, body)
	}
	f, err := os.Create(filepath.Join(b.TempDir(), "baseline"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !durable {
			_, _ = io.Copy(io.Discard, r.Body)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if _, err := f.Write(body); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if err := f.Sync(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	}))
	defer srv.Close()
	var (
		next  sync.Mutex
		i     int
		sent  int64
		wg    sync.WaitGroup
		errMu sync.Mutex
		first error
	)
	take := func() []byte {
		next.Lock()
		defer next.Unlock()
		if sent >= size {
			return nil
		}
		body := bodies[i%len(bodies)]
		i++
		sent += int64(len(body))
		return body
	}
	t0 := time.Now()
	for range inFlight {
		wg.Go(func() {
			for body := take(); body != nil; body = take() {
				res, err := srv.Client().Post(srv.URL, "application/octet-stream", bytes.NewReader(body))
				if err == nil {
					_, _ = io.Copy(io.Discard, res.Body)
					res.Body.Close()
					if res.StatusCode != http.StatusOK {
						err = errors.New(res.Status)
					}
				}
				if err != nil {
					errMu.Lock()
					first = cmp.Or(first, err)
					errMu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	if first != nil {
		b.Fatal(first)
	}
	return float64(sent) / time.Since(t0).Seconds()
}
