package cloudsync_test

import (
	"os"
	"strconv"
	"testing"

	"github.com/outpost-robotics/outpost/faultproxy"
)

// benchShapedDrain runs BenchmarkBacklogDrain's KIND-shaped variants: the
// drain over a robot's uplink, by default 10 Mbit/s each way with a 50 ms
// round trip, through the fault proxy's link shaping, which paces the bytes
// of every connection as a wire would. On such a link the drain must be
// link-bound: the link busy all the time (link-utilisation, bytes up the
// link per second over its capacity, near 1), so compressible readings
// drain faster than the link's own rate (MB/s, of payload) and images,
// which are not run through the encoder, at the link's rate.
//
// OUTPOST_DRAIN_LINK sets the link (faultproxy.ParseLink: "10mbit,50ms";
// "off" skips the variants), OUTPOST_DRAIN_LINK_MB the backlog (by default
// about 20 s of the link's time: 25 MB of images, 100 MB of readings at
// 10 Mbit/s), OUTPOST_DRAIN_LINK_BATCH_KB the part's BatchBytes, and
// OUTPOST_DRAIN_INFLIGHT the uploads in flight (by default shapedInFlight).
func benchShapedDrain(b *testing.B, kinds []drainKind, inFlight int) {
	spec := os.Getenv("OUTPOST_DRAIN_LINK")
	if spec == "off" {
		return
	}
	if spec == "" {
		spec = "10mbit,50ms"
	}
	l, err := faultproxy.ParseLink(spec)
	if err != nil {
		b.Fatal(err)
	}
	if l.Up == 0 {
		b.Fatalf("OUTPOST_DRAIN_LINK=%s: the shaped drain needs an upload rate", spec)
	}
	mb := 0
	if v, err := strconv.Atoi(os.Getenv("OUTPOST_DRAIN_LINK_MB")); err == nil && v > 0 {
		mb = v
	}
	if inFlight == 0 {
		inFlight = shapedInFlight
	}
	link := &shapedLink{Link: l}
	if v, err := strconv.Atoi(os.Getenv("OUTPOST_DRAIN_LINK_BATCH_KB")); err == nil && v > 0 {
		link.batchBytes = v << 10
	}
	for _, kind := range kinds {
		b.Run(kind.name+"-shaped", func(b *testing.B) {
			size := int64(mb) << 20
			if size == 0 {
				// About 20 s of the link: readings compress about 4 times.
				size = int64(20 * float64(l.Up) / 8)
				if kind.name == "readings" {
					size *= 4
				}
			}
			for range b.N {
				d := drainOnce(b, kind.name+"-shaped", kind.gen, size, inFlight, 0, link)
				wire := float64(d.linkUp) / d.secs
				b.ReportMetric(float64(d.raw)/d.secs/1e6, "MB/s")
				b.ReportMetric(wire/1e6, "wire-MB/s")
				b.ReportMetric(wire/(float64(link.Up)/8), "link-utilisation")
				b.ReportMetric(float64(link.Up)/8/1e6, "link-MB/s")
				b.ReportMetric(float64(d.wire)/float64(d.raw), "wire/raw")
				b.ReportMetric(d.partCPU/(float64(d.raw)/1e9), "part-cpu-s/GB")
				b.ReportMetric(float64(d.inFlight), "in-flight")
			}
		})
	}
}

// shapedInFlight is the uploads a part keeps in flight on the shaped link
// unless OUTPOST_DRAIN_INFLIGHT says otherwise: cloudsync's default. With
// 2, a drain of readings on a machine whose CPUs are shared, as a robot's
// are, leaves the link idle a sixth to two fifths of the time: uploads in flight share the link, so they finish together, and the
// link then waits for the cloud to store them, the answers to come back and
// the part to read and encode the next batches (docs/PERFORMANCE.md, "The
// drain on a shaped link").
const shapedInFlight = 8

// shapedLink is the link of a shaped drain and the batch size the part
// uses on it (0: cloudsync's default).
type shapedLink struct {
	faultproxy.Link
	batchBytes int
}

// shapedPath serves the fault proxy, passing every request, in front of
// upstream over link.
func shapedPath(b *testing.B, upstream string, link faultproxy.Link) *faultproxy.Proxy {
	p, err := faultproxy.New(upstream, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = p.Close() })
	if err := p.SetLink(link); err != nil {
		b.Fatal(err)
	}
	return p
}
