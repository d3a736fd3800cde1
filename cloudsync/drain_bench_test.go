package cloudsync_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/cache"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/cloud/cloudtest"
	"github.com/outpost-robotics/outpost/cloudsync"
)

// readingsCapture is one ~1 KiB capture of a part's sensors, as JSON: the
// bulk of what a robot's backlog holds (images travel as blobs).
func readingsCapture(rng *rand.Rand, seq int) []byte {
	var data []byte
	data = append(data, '[')
	for i := range 6 {
		if i > 0 {
			data = append(data, ',')
		}
		data = fmt.Appendf(data, `{"sensor":"imu%d","accel":[%.4f,%.4f,%.4f],"gyro":[%.4f,%.4f,%.4f],"temp_c":%.2f,"seq":%d}`,
			i, rng.NormFloat64(), rng.NormFloat64(), 9.81+rng.NormFloat64()/10, rng.NormFloat64(), rng.NormFloat64(), rng.NormFloat64(), 35+rng.Float64()*10, seq)
	}
	data = append(data, ']')
	b, _ := proto.Marshal(&syncv1.Capture{Component: "imu", Method: "readings", Tags: []string{"site-a"}, Priority: 5, Data: data, MimeType: "application/json"})
	return b
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// BenchmarkBacklogDrain drains a backlog of captures from a real store to
// the real outpost-cloud in process (cloudtest) on loopback. The
// backlog is 1 GiB; set OUTPOST_DRAIN_MB for a shorter run,
// OUTPOST_DRAIN_INFLIGHT to compare Options.InFlight settings (1 is the
// one-batch-at-a-time drain), and OUTPOST_DRAIN_RTT_MS to put that much
// round-trip time between the part and the cloud, as a robot's uplink
// has. Run it with -benchtime 1x. CPU seconds are the whole process's: the
// part's and the cloud's side together.
func BenchmarkBacklogDrain(b *testing.B) {
	mb := 1024
	if v, err := strconv.Atoi(os.Getenv("OUTPOST_DRAIN_MB")); err == nil && v > 0 {
		mb = v
	}
	inFlight, _ := strconv.Atoi(os.Getenv("OUTPOST_DRAIN_INFLIGHT"))
	rttMS, _ := strconv.Atoi(os.Getenv("OUTPOST_DRAIN_RTT_MS"))
	// The timer is managed by drainOnce (filling the store is not timed),
	// which b.Loop does not allow.
	for range b.N {
		raw, wire, secs, cpu := drainOnce(b, int64(mb)<<20, inFlight, time.Duration(rttMS)*time.Millisecond)
		plain := plainPost(b, raw)
		b.ReportMetric(float64(raw)/1e6/secs, "MB/s")
		b.ReportMetric(cpu/(float64(raw)/1e9), "cpu-s/GB")
		b.ReportMetric(float64(wire)/float64(raw), "wire/raw")
		b.ReportMetric((float64(raw)/secs)/plain, "ratio-to-plain-POST")
		b.ReportMetric(plain/1e6, "plain-POST-MB/s")
	}
}

// drainOnce fills a store with size bytes of captures (untimed) and drains
// it with inFlight uploads at once (0: the default) over a path with rtt
// round-trip time; it returns the payload bytes, the bytes on the wire, and
// the drain's wall and CPU seconds.
func drainOnce(b *testing.B, size int64, inFlight int, rtt time.Duration) (raw, wire int64, secs, cpu float64) {
	b.StopTimer()
	ctx := context.Background()
	clk := clock.NewReal()
	store, err := cache.Open(ctx, b.TempDir(), cache.Options{Clock: clk, GCInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	rng := rand.New(rand.NewPCG(7, 7))
	batch := make([]cache.Record, 0, 256)
	for seq := 0; raw < size; seq++ {
		p := readingsCapture(rng, seq)
		raw += int64(len(p))
		batch = append(batch, cache.Record{Payload: p, Priority: 5})
		if len(batch) == cap(batch) || raw >= size {
			if _, err := store.AppendBatch(ctx, cache.StreamCaptures, batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}

	cloud := cloudtest.New(b, cloudtest.Options{Clock: clk})
	url := cloud.URL
	if rtt > 0 {
		url = slowPath(b, url, rtt)
	}
	part := cloud.Provision(b, cloudtest.PartOptions{CloudURL: url})
	client, err := cloudsync.NewClient(cloudsync.ClientOptions{CloudURL: part.CloudURL, PartID: part.ID, PartSecret: part.Secret})
	if err != nil {
		b.Fatal(err)
	}
	offline := cloudsync.NewOfflineClock(clk, cache.OfflineClock{})
	s, err := cloudsync.New(cloudsync.Options{
		Store: store, Client: client, Clock: clk, Offline: offline,
		Trust:      cloudsync.NewTrust(part.ID, part.Keys, offline),
		CycleBytes: 64 << 20, CycleTimeout: time.Minute,
		InFlight: inFlight,
	})
	if err != nil {
		b.Fatal(err)
	}

	wire0, cpu0, t0 := cloud.WireBytes(), cpuSeconds(), time.Now()
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
	secs, cpu = time.Since(t0).Seconds(), cpuSeconds()-cpu0
	if st, _ := store.Stats(ctx, cache.StreamCaptures); st.Count != 0 {
		b.Fatalf("%d captures left after the drain", st.Count)
	}
	if n := cloud.Ingested(b, part.ID)["captures"]; int64(n.Bytes) < raw || n.Conflicts != 0 {
		b.Fatalf("the cloud holds %d bytes of %d (%d conflicting records)", n.Bytes, raw, n.Conflicts)
	}
	return raw, cloud.WireBytes() - wire0, secs, cpu
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

// plainPost sends size bytes as 1 MiB POST bodies to a handler that reads and
// discards them, on the same loopback: the transfer with nothing else, the
// yardstick for the drain. It returns bytes per second.
func plainPost(b *testing.B, size int64) float64 {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer srv.Close()
	body := bytes.Repeat([]byte("x"), 1<<20)
	t0 := time.Now()
	for sent := int64(0); sent < size; sent += int64(len(body)) {
		res, err := srv.Client().Post(srv.URL, "application/octet-stream", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			b.Fatal(errors.New(res.Status))
		}
	}
	return float64(size) / time.Since(t0).Seconds()
}
