package control

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/structpb"

	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/control/v1/controlv1connect"
	"github.com/outpost-robotics/outpost/credential"
)

// BenchmarkControlRPC measures a component command (DoCommand, audited,
// machine.control) end to end: over loopback gRPC (TLS, HTTP/2) and over a
// WebRTC data channel, one client and 100 concurrent clients. It reports
// p50 and p99 latency besides ns/op (which, with concurrency, is the
// inverse of throughput).
func BenchmarkControlRPC(b *testing.B) {
	cmd, _ := structpb.NewStruct(map[string]any{"move": 1})
	req := func() *connect.Request[controlv1.DoCommandRequest] {
		return connect.NewRequest(&controlv1.DoCommandRequest{Name: "arm", Command: cmd})
	}
	grpcClient := func(e *env, _ int) controlv1connect.ComponentServiceClient {
		// Each client has its own connection, as separate laptops would.
		tr := e.client.Transport.(*http.Transport).Clone()
		return e.authed(&http.Client{Transport: tr}, "https://"+e.addr, e.creds.key(opKey), connect.WithGRPC()).comp
	}
	var rtcMu sync.Mutex
	rtcSessions := map[*env][]controlv1connect.ComponentServiceClient{}
	rtcClient := func(e *env, i int) controlv1connect.ComponentServiceClient {
		// 100 concurrent clients over WebRTC share 20 sessions (5 calls in
		// flight on each): 100 pion peers would measure ICE, not the API.
		rtcMu.Lock()
		defer rtcMu.Unlock()
		if s := rtcSessions[e]; i < len(s) {
			return s[i]
		}
		c, _, err := e.webrtc(context.Background(), e.creds.key(opKey))
		if err != nil {
			b.Fatal(err)
		}
		rtcSessions[e] = append(rtcSessions[e], c.comp)
		return c.comp
	}
	for _, tc := range []struct {
		name    string
		clients int
		client  func(e *env, i int) controlv1connect.ComponentServiceClient
		session func(i int) int
	}{
		{"grpc", 1, grpcClient, func(i int) int { return i }},
		{"webrtc", 1, rtcClient, func(i int) int { return i }},
		{"grpc-100clients", 100, grpcClient, func(i int) int { return i }},
		{"webrtc-100clients", 100, rtcClient, func(i int) int { return i % 20 }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			e := newEnv(b)
			e.srv.opts.MaxSessions = 64
			cs := make([]controlv1connect.ComponentServiceClient, tc.clients)
			for i := range cs {
				cs[i] = tc.client(e, tc.session(i))
				if _, err := cs[i].DoCommand(context.Background(), req()); err != nil { // warm the connection
					b.Fatal(err)
				}
			}
			lat := make([][]time.Duration, tc.clients)
			b.ResetTimer()
			var wg sync.WaitGroup
			for i := range cs {
				n := b.N / tc.clients
				if i < b.N%tc.clients {
					n++
				}
				wg.Go(func() {
					for range n {
						start := time.Now()
						if _, err := cs[i].DoCommand(context.Background(), req()); err != nil {
							b.Error(err)
							return
						}
						lat[i] = append(lat[i], time.Since(start))
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			all := slices.Concat(lat...)
			slices.Sort(all)
			if len(all) > 0 {
				b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
				b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
			}
		})
	}
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
