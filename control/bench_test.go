package control

import (
	"context"
	"math"
	"net/http"
	"os"
	"runtime/metrics"
	"slices"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/structpb"

	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/control/v1/controlv1connect"
	"github.com/outpost-robotics/outpost/cputime"
	"github.com/outpost-robotics/outpost/credential"
)

// BenchmarkControlRPC measures a component command (DoCommand, audited,
// machine.control) end to end: over loopback gRPC (TLS, HTTP/2) and over a
// WebRTC data channel, one client and 100 concurrent clients. The clients
// run in this process, on the part's cores.
//
// The closed-loop cases send each call as soon as the last one returned:
// with 100 clients they measure queueing, p99 ≈ clients × CPU per call
// (client and part) ÷ cores. The "-50hz" cases are the load the goal is
// about: 100 clients each sending at a fixed control rate (open loop,
// 5,000 calls/s in all), whose latency counts from when a call was due,
// so a part that falls behind shows it rather than slowing the clients.
// The clients' start phases are spread evenly over the period, as
// independent tools' are not locked to each other; the "-inphase" cases
// start them all at once, a burst of 100 calls every period, as the worst
// case.
//
// It reports p50 and p99 latency (and p50-µs-sent, p99-µs-sent: from when
// a call was sent rather than due, without a client's lateness in waking
// from its sleep, which the runtime's timers on an idle process round up
// to the millisecond), ns/op (which, with concurrency, is the
// inverse of throughput; with a fixed rate, the rate's) and cpu-µs/call,
// the CPU time this process spent per call: client and part together, and
// from runtime/metrics the GC's cycles, CPU share and longest pause and how
// long runnable goroutines waited for a thread (sched-p99, sched-p99.9),
// to tell a latency tail made by collection from one made by scheduling. The
// part's share is its goroutines' in a CPU profile: they carry the label
// side=part (go tool pprof -tagfocus side=part).
//
// With OUTPOST_CONTROL_PART_CPUS set to a CPU list (such as 0), the part
// runs in a child process pinned to those CPUs and the clients on the
// machine's other CPUs, as when the clients are other machines: then
// cpu-µs/call is the clients' alone, part-cpu-µs/call the part process's
// CPU time per call and part-sys-µs/call the kernel's share of it (on
// loopback a sender's share includes the receiving side's network stack);
// OUTPOST_CONTROL_PART_CPUPROFILE names a file for the part process's CPU
// profile.
func BenchmarkControlRPC(b *testing.B) {
	cmd, _ := structpb.NewStruct(map[string]any{"move": 1})
	req := func() *connect.Request[controlv1.DoCommandRequest] {
		return connect.NewRequest(&controlv1.DoCommandRequest{Name: "arm", Command: cmd})
	}
	grpcClient := func(d *dialer, key string, _ int) controlv1connect.ComponentServiceClient {
		// Each client has its own connection, as separate laptops would.
		tr := d.client.Transport.(*http.Transport).Clone()
		return d.authed(&http.Client{Transport: tr}, "https://"+d.addr, key, connect.WithGRPC()).comp
	}
	var rtcMu sync.Mutex
	rtcSessions := map[*dialer][]controlv1connect.ComponentServiceClient{}
	rtcClient := func(d *dialer, key string, i int) controlv1connect.ComponentServiceClient {
		// 100 concurrent clients over WebRTC share 20 sessions (5 calls in
		// flight on each): 100 pion peers would measure ICE, not the API.
		rtcMu.Lock()
		defer rtcMu.Unlock()
		if s := rtcSessions[d]; i < len(s) {
			return s[i]
		}
		c, _, err := d.webrtc(context.Background(), key)
		if err != nil {
			b.Fatal(err)
		}
		rtcSessions[d] = append(rtcSessions[d], c.comp)
		return c.comp
	}
	for _, tc := range []struct {
		name    string
		clients int
		client  func(d *dialer, key string, i int) controlv1connect.ComponentServiceClient
		session func(i int) int
		// hz is each client's call rate; 0 is a closed loop.
		hz int
		// inPhase starts every client at the same instant, so all of them
		// call at once every period: the worst case, not the field's.
		inPhase bool
	}{
		{"grpc", 1, grpcClient, func(i int) int { return i }, 0, false},
		{"webrtc", 1, rtcClient, func(i int) int { return i }, 0, false},
		{"grpc-100clients", 100, grpcClient, func(i int) int { return i }, 0, false},
		{"webrtc-100clients", 100, rtcClient, func(i int) int { return i % 20 }, 0, false},
		{"grpc-100clients-50hz", 100, grpcClient, func(i int) int { return i }, 50, false},
		{"webrtc-100clients-50hz", 100, rtcClient, func(i int) int { return i % 20 }, 50, false},
		{"grpc-100clients-10hz", 100, grpcClient, func(i int) int { return i }, 10, false},
		{"webrtc-100clients-10hz", 100, rtcClient, func(i int) int { return i % 20 }, 10, false},
		{"grpc-100clients-10hz-inphase", 100, grpcClient, func(i int) int { return i }, 10, true},
		{"webrtc-100clients-10hz-inphase", 100, rtcClient, func(i int) int { return i % 20 }, 10, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var (
				d    *dialer
				key  string
				part *partProcess // nil when the part is in this process
			)
			if cpus := os.Getenv(partCPUsEnv); cpus != "" {
				part = startPartProcess(b, cpus)
				d, key = &part.dialer, part.key
			} else {
				e := newEnv(b)
				e.srv.opts.MaxSessions = 64
				d, key = &e.dialer, e.creds.key(opKey)
			}
			cs := make([]controlv1connect.ComponentServiceClient, tc.clients)
			for i := range cs {
				cs[i] = tc.client(d, key, tc.session(i))
			}
			call := func(i int) error {
				_, err := cs[i].DoCommand(context.Background(), req())
				return err
			}
			warm(b, tc.clients, call)
			var cpu0 cputime.Proc
			if part != nil {
				cpu0 = part.cpu(b)
			}
			drive(b, load{clients: tc.clients, hz: tc.hz, inPhase: tc.inPhase}, call)
			if part != nil && b.N > 0 {
				cpu := part.cpu(b)
				b.ReportMetric(float64((cpu.CPU-cpu0.CPU).Microseconds())/float64(b.N), "part-cpu-µs/call")
				b.ReportMetric(float64((cpu.System-cpu0.System).Microseconds())/float64(b.N), "part-sys-µs/call")
			}
		})
	}
}

// load is how a benchmark's clients call: how many, each at what rate (0
// for a closed loop), and whether they all start at the same instant.
type load struct {
	clients int
	hz      int
	inPhase bool
}

// warm makes each client's first call, so that connection set-up is not
// measured.
func warm(b *testing.B, clients int, call func(i int) error) {
	for i := range clients {
		if err := call(i); err != nil {
			b.Fatal(err)
		}
	}
}

// drive makes b.N calls, shared among l.clients goroutines, client i
// calling call(i), and reports what BenchmarkControlRPC documents: CPU per
// call, the runtime's GC and scheduling figures, and p50 and p99 latency
// from when each call was due and from when it was sent.
func drive(b *testing.B, l load, call func(i int) error) {
	lat := make([][]time.Duration, l.clients)
	// sent is each call's latency from when it was sent: the
	// part's answer without the client's own lateness in waking.
	sent := make([][]time.Duration, l.clients)
	rt0 := readRuntime()
	cpu0 := cputime.Self(b)
	b.ResetTimer()
	var wg sync.WaitGroup
	start := time.Now()
	for i := range l.clients {
		n := b.N / l.clients
		if i < b.N%l.clients {
			n++
		}
		lat[i] = make([]time.Duration, 0, n)
		sent[i] = make([]time.Duration, 0, n)
		wg.Go(func() {
			var period time.Duration
			due := start
			if l.hz > 0 {
				// The clients' calls are spread over the period, as
				// independent clients' would be.
				period = time.Second / time.Duration(l.hz)
				if !l.inPhase {
					due = start.Add(period * time.Duration(i) / time.Duration(l.clients))
				}
			}
			for range n {
				if period > 0 {
					time.Sleep(time.Until(due))
				} else {
					due = time.Now()
				}
				t := time.Now()
				if err := call(i); err != nil {
					b.Error(err)
					return
				}
				lat[i] = append(lat[i], time.Since(due))
				sent[i] = append(sent[i], time.Since(t))
				due = due.Add(period)
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	if b.N > 0 {
		b.ReportMetric(float64((cputime.Self(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/call")
		readRuntime().since(rt0).report(b)
	}
	for _, l := range []struct {
		lat  [][]time.Duration
		unit string
	}{{lat, "µs"}, {sent, "µs-sent"}} {
		all := slices.Concat(l.lat...)
		slices.Sort(all)
		if len(all) > 0 {
			b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-"+l.unit)
			b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-"+l.unit)
		}
	}
}

// runtimeSample is what the runtime says about collection and scheduling,
// to tell a latency tail made by the GC from one made by the scheduler.
type runtimeSample struct {
	gcCycles                   uint64
	gcCPU, assistCPU, totalCPU float64
	gcPauses, schedLatency     histogram
}

// histogram is a copy of a runtime/metrics histogram.
type histogram struct {
	counts  []uint64
	buckets []float64
}

func readRuntime() runtimeSample {
	s := []metrics.Sample{
		{Name: "/gc/cycles/total:gc-cycles"},
		{Name: "/cpu/classes/gc/total:cpu-seconds"},
		{Name: "/cpu/classes/gc/mark/assist:cpu-seconds"},
		{Name: "/cpu/classes/total:cpu-seconds"},
		{Name: "/sched/pauses/total/gc:seconds"},
		{Name: "/sched/latencies:seconds"},
	}
	metrics.Read(s)
	hist := func(v metrics.Value) histogram {
		h := v.Float64Histogram()
		return histogram{counts: slices.Clone(h.Counts), buckets: slices.Clone(h.Buckets)}
	}
	return runtimeSample{
		gcCycles:     s[0].Value.Uint64(),
		gcCPU:        s[1].Value.Float64(),
		assistCPU:    s[2].Value.Float64(),
		totalCPU:     s[3].Value.Float64(),
		gcPauses:     hist(s[4].Value),
		schedLatency: hist(s[5].Value),
	}
}

// since is what happened between before and s.
func (s runtimeSample) since(before runtimeSample) runtimeSample {
	sub := func(h, b histogram) histogram {
		d := histogram{counts: slices.Clone(h.counts), buckets: h.buckets}
		for i := range d.counts {
			d.counts[i] -= b.counts[i]
		}
		return d
	}
	return runtimeSample{
		gcCycles:     s.gcCycles - before.gcCycles,
		gcCPU:        s.gcCPU - before.gcCPU,
		assistCPU:    s.assistCPU - before.assistCPU,
		totalCPU:     s.totalCPU - before.totalCPU,
		gcPauses:     sub(s.gcPauses, before.gcPauses),
		schedLatency: sub(s.schedLatency, before.schedLatency),
	}
}

// quantile is the upper bound of the bucket holding the q-quantile (its
// lower bound for the last, unbounded bucket), in microseconds.
func (h histogram) quantile(q float64) float64 {
	var total uint64
	for _, c := range h.counts {
		total += c
	}
	if total == 0 {
		return 0
	}
	want := uint64(math.Ceil(q * float64(total)))
	var sum uint64
	for i, c := range h.counts {
		sum += c
		if sum >= want {
			if math.IsInf(h.buckets[i+1], 1) {
				return h.buckets[i] * 1e6
			}
			return h.buckets[i+1] * 1e6
		}
	}
	return 0
}

// report adds the GC's cycles, its share of the process's CPU (and
// assists' share), its longest pause, and how long runnable goroutines
// waited for a thread (p99 and p99.9 of the runtime's histogram).
func (s runtimeSample) report(b *testing.B) {
	b.ReportMetric(float64(s.gcCycles), "gc-cycles")
	if s.totalCPU > 0 {
		b.ReportMetric(100*s.gcCPU/s.totalCPU, "gc-cpu-%")
		b.ReportMetric(100*s.assistCPU/s.totalCPU, "assist-cpu-%")
	}
	b.ReportMetric(s.gcPauses.quantile(1), "gc-pause-max-µs")
	b.ReportMetric(s.schedLatency.quantile(0.99), "sched-p99-µs")
	b.ReportMetric(s.schedLatency.quantile(0.999), "sched-p99.9-µs")
}

// BenchmarkAuthorize is the authorization share of a call: authenticating
// the credential (a proof verified once, then found in the policy's cache),
// finding the policy of the current bundle, and the rbac decision, for an
// API key and for a user session.
func BenchmarkAuthorize(b *testing.B) {
	e := newEnv(b)
	rl := e.srv.auth.rules[controlv1connect.ComponentServiceSensorReadingsProcedure] // not audited: the decision alone
	cn := &conn{transport: TransportGRPC, peer: "127.0.0.1:1"}
	for _, tc := range []struct{ name, auth string }{
		{"apikey", e.creds.key(opKey)},
		{"token", e.creds.token(opUser, tokenKID, e.creds.signer, t0)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			a, proof := e.headers(tc.auth)
			h := http.Header{}
			h.Set("Authorization", a)
			h.Set(credential.ProofHeader, proof)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.srv.auth.authorize(ctx, cn, presentedOf(h), rl); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkForwardedCall measures what the main part's forwarding adds to
// a component call (MotorSetPower, machine.control) on loopback: the same
// call to the second part directly, and through the main part, which
// decides it, forwards it over the mutually pinned TLS link, and has the
// second part decide it again. It reports p50 and p99 latency of each and
// the p50 the forwarding adds.
func BenchmarkForwardedCall(b *testing.B) {
	mainEnv, second := twoParts(b)
	req := func() *connect.Request[controlv1.MotorSetPowerRequest] {
		return connect.NewRequest(&controlv1.MotorSetPowerRequest{Name: "wheel", Power: 0.5})
	}
	var p50 [2]time.Duration
	for i, tc := range []struct {
		name string
		e    *env
	}{{"direct", second}, {"forwarded", mainEnv}} {
		b.Run(tc.name, func(b *testing.B) {
			c := tc.e.grpc(tc.e.creds.key(opKey)).comp
			if _, err := c.MotorSetPower(context.Background(), req()); err != nil { // warm the connections
				b.Fatal(err)
			}
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				if _, err := c.MotorSetPower(context.Background(), req()); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			slices.Sort(lat)
			p50[i] = lat[len(lat)/2]
			b.ReportMetric(float64(p50[i].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
			if i == 1 && p50[0] > 0 {
				b.ReportMetric(float64((p50[1] - p50[0]).Microseconds()), "added-p50-µs")
			}
		})
	}
}
