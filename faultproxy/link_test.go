package faultproxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outpost-robotics/outpost/clock"
)

func TestParseLink(t *testing.T) {
	tests := []struct {
		in   string
		want Link
	}{
		{"10mbit,50ms", Link{Up: 10e6, Down: 10e6, Delay: 25 * time.Millisecond}},
		{" 10Mbit , 50ms ", Link{Up: 10e6, Down: 10e6, Delay: 25 * time.Millisecond}},
		{"10mbit/50mbit,600ms", Link{Up: 10e6, Down: 50e6, Delay: 300 * time.Millisecond}},
		{"1.5mbit", Link{Up: 1.5e6, Down: 1.5e6}},
		{"800kbit/unlimited", Link{Up: 800e3}},
		{"1gbit,0s", Link{Up: 1e9, Down: 1e9}},
		{"unlimited,2h", Link{Delay: MaxDelay}},
		{"9600bit", Link{Up: 9600, Down: 9600}},
	}
	for _, tt := range tests {
		got, err := ParseLink(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseLink(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			continue
		}
		// What String writes, ParseLink reads back.
		if again, err := ParseLink(got.String()); err != nil || again != got {
			t.Errorf("ParseLink(%q) = %+v, %v; want %+v", got.String(), again, err, got)
		}
	}
	for _, bad := range []string{
		"", ",50ms", "10", "10mb", "mbit", "0mbit", "-1mbit", "0.1bit", "nanmbit", "infgbit",
		"1e30gbit", "2000gbit", "10mbit,", "10mbit,-50ms", "10mbit,3h", "10mbit,abc",
		"10mbit/", "/10mbit", "10mbit/20mbit/30mbit", "10mbit,50ms,1s", "0x10mbit,50ms,",
		"10mbit," + strings.Repeat("9", 40) + "h",
	} {
		if l, err := ParseLink(bad); err == nil {
			t.Errorf("ParseLink(%q) = %+v, want an error", bad, l)
		}
	}
}

func FuzzParseLink(f *testing.F) {
	for _, s := range []string{"10mbit,50ms", "10mbit/50mbit,600ms", "unlimited,2h", "1e30gbit", "-1bit,-1s", "0x1p3kbit"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseLink(s)
		if err != nil {
			return
		}
		if err := l.validate(); err != nil {
			t.Fatalf("ParseLink(%q) returned a link it refuses: %v", s, err)
		}
		if again, err := ParseLink(l.String()); err != nil || again != l {
			t.Fatalf("%q: String %q reads back as %+v, %v", s, l.String(), again, err)
		}
	})
}

// TestSetLinkRefusesImpossibleLinks: a link that cannot exist is refused
// and the proxy stays as it was; a zero rate is no limit, not a dead link.
func TestSetLinkRefusesImpossibleLinks(t *testing.T) {
	up, _, _ := upstream(t)
	p, err := New(up.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for _, l := range []Link{
		{Up: -1},
		{Down: -8e6},
		{Up: 1e13},
		{Delay: -time.Millisecond},
		{Delay: MaxDelay + 1},
		{Delay: 1<<63 - 1},
	} {
		if err := p.SetLink(l); err == nil {
			t.Errorf("SetLink(%+v) succeeded", l)
		}
		if p.shaper.Load() != nil {
			t.Fatalf("a refused link %+v is in force", l)
		}
	}
	if err := p.SetLink(Link{Delay: time.Millisecond}); err != nil || p.shaper.Load() == nil {
		t.Fatalf("a link with only a delay: %v", err)
	}
	if err := p.SetLink(Link{}); err != nil || p.shaper.Load() != nil {
		t.Fatalf("the zero link still shapes: %v", err)
	}
}

// run moves the fake clock from one deadline of the link to the next until
// ctx ends, checking at each stop that what crossed in each direction is
// within what its token bucket allows: burst plus rate times the time
// passed. It returns the fake time that passed.
func run(ctx context.Context, t *testing.T, clk *clock.Fake, p *Proxy, link Link) time.Duration {
	t.Helper()
	allowed := func(bits int64, d time.Duration) float64 {
		if bits == 0 {
			return 1 << 62
		}
		lim := limiter(bits)
		return float64(lim.Burst()) + float64(bits)/8*d.Seconds() + 1
	}
	start := clk.Uptime()
	for clk.BlockUntil(ctx, 1) == nil {
		up, down := p.LinkBytes()
		d := clk.Uptime() - start
		if float64(up) > allowed(link.Up, d) || float64(down) > allowed(link.Down, d) {
			t.Fatalf("after %v: %d bytes up and %d down crossed a %v link", d, up, down, link)
		}
		next, ok := clk.NextDeadline()
		if ok {
			clk.Advance(next)
		}
	}
	return clk.Uptime() - start
}

// TestLinkPacesBytes: N bytes through a link of R bit/s cross no faster
// than the token bucket lets them, in either direction, and connections
// share the link; the fake clock measures time, so no figure depends on how
// loaded the machine is.
func TestLinkPacesBytes(t *testing.T) {
	const rate = 80_000 // 10 kB/s: 200-byte chunks, a bucket of 200 bytes
	tests := []struct {
		name       string
		link       Link
		req, res   int // body sizes
		conns      int
		wantPaced  func(up, down int64) int64 // the bytes the bucket paced
		exactClock bool                       // one sender at a time: the clock's total is exact
	}{
		{"upload", Link{Up: rate}, 20_000, 10, 1, func(up, _ int64) int64 { return up }, true},
		{"download", Link{Down: rate}, 10, 20_000, 1, func(_, down int64) int64 { return down }, true},
		{"two uploads share the link", Link{Up: rate}, 10_000, 10, 2, func(up, _ int64) int64 { return up }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n, _ := io.Copy(io.Discard, r.Body)
				if n != int64(tt.req) {
					http.Error(w, "short body", http.StatusBadRequest)
					return
				}
				_, _ = w.Write(bytes.Repeat([]byte("r"), tt.res))
			}))
			defer srv.Close()
			p, err := New(srv.URL, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			clk := clock.NewFake(time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC))
			tt.link.Clock = clk
			if err := p.SetLink(tt.link); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			errs := make(chan error, tt.conns)
			for range tt.conns {
				wg.Go(func() {
					client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
					res, err := client.Post(p.URL()+"/x", "application/octet-stream", bytes.NewReader(bytes.Repeat([]byte("q"), tt.req)))
					if err != nil {
						errs <- err
						return
					}
					defer res.Body.Close()
					body, err := io.ReadAll(res.Body)
					if err == nil && (res.StatusCode != http.StatusOK || len(body) != tt.res) {
						err = errors.New(res.Status + ": " + string(body[:min(len(body), 100)]))
					}
					errs <- err
				})
			}
			go func() { wg.Wait(); cancel() }()
			elapsed := run(ctx, t, clk, p, tt.link)
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			up, down := p.LinkBytes()
			if min(up, down) == 0 || up < int64(tt.conns*tt.req) || down < int64(tt.conns*tt.res) {
				t.Fatalf("%d bytes up and %d down for %d requests of %d bytes and answers of %d", up, down, tt.conns, tt.req, tt.res)
			}
			// The bucket starts full, then lets rate/8 bytes a second through:
			// the last byte crossed when the rest of the bytes had been paid for.
			paced := tt.wantPaced(up, down)
			burst := limiter(rate).Burst()
			want := time.Duration(float64(paced-int64(burst)) / (rate / 8) * float64(time.Second))
			t.Logf("%d bytes up, %d down; %d paced in %v of the link's clock", up, down, paced, elapsed)
			if elapsed < want-time.Millisecond || (tt.exactClock && elapsed > want+time.Millisecond) {
				t.Fatalf("%d bytes crossed a %d bit/s link in %v of the link's clock, want %v", paced, rate, elapsed, want)
			}
		})
	}
}

// shapedPair returns a shaped connection as the proxy's server sees it, the
// client's end of its socket, and what ends the connection as the proxy's
// end does.
func shapedPair(t *testing.T, link Link) (srv *shapedConn, client net.Conn, end context.CancelFunc) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	raw := <-accepted
	if raw == nil {
		t.Fatal("accept failed")
	}
	ctx, cancel := context.WithCancel(context.Background())
	var up, down atomic.Int64
	srv = newShaper(link, &up, &down).shape(ctx, raw)
	t.Cleanup(func() {
		cancel()
		srv.reset()
		client.Close()
	})
	return srv, client, cancel
}

// TestLinkDelaysEachDirection: bytes written at one end arrive at the
// other exactly Delay later on the link's clock, and not a moment before.
func TestLinkDelaysEachDirection(t *testing.T) {
	const delay = 25 * time.Millisecond
	clk := clock.NewFake(time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC))
	srv, client, _ := shapedPair(t, Link{Delay: delay, Clock: clk})
	tests := []struct {
		name string
		from net.Conn
		to   net.Conn
	}{
		{"up", client, srv},
		{"down", srv, client},
	}
	ctx := context.Background()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := make(chan []byte, 1)
			go func() {
				buf := make([]byte, 16)
				n, _ := tt.to.Read(buf)
				got <- buf[:n]
			}()
			if _, err := tt.from.Write([]byte("hello")); err != nil {
				t.Fatal(err)
			}
			// The bytes are on the wire when their delivery is armed.
			if err := clk.BlockUntil(ctx, 1); err != nil {
				t.Fatal(err)
			}
			if next, _ := clk.NextDeadline(); next != delay {
				t.Fatalf("delivery due in %v, want %v", next, delay)
			}
			clk.Advance(delay - time.Nanosecond)
			select {
			case b := <-got:
				t.Fatalf("%q arrived before the link's delay had passed", b)
			default:
			}
			clk.Advance(time.Nanosecond)
			if b := <-got; string(b) != "hello" {
				t.Fatalf("got %q, want hello", b)
			}
		})
	}
}

// TestHugeDelayDoesNotWedgeClose: bytes held for the longest delay a link
// may have are dropped when the proxy closes, and the client's request
// fails instead of waiting an hour.
func TestHugeDelayDoesNotWedgeClose(t *testing.T) {
	up, seen, _ := upstream(t)
	p, err := New(up.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	clk := clock.NewFake(time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC))
	if err := p.SetLink(Link{Up: 1, Down: 1, Delay: MaxDelay, Clock: clk}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		res, err := http.Post(p.URL()+"/x", "text/plain", strings.NewReader("hello"))
		if err == nil {
			res.Body.Close()
		}
		done <- err
	}()
	// The request is held by the link (its pace or its delay).
	if err := clk.BlockUntil(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err == nil {
		t.Fatal("a request held for an hour by a closed proxy succeeded")
	}
	if seen.Load() != 0 {
		t.Fatal("the upstream saw a request that never crossed the link")
	}
}

// TestClientThatStopsReadingDoesNotHoldTheServer: a client that reads
// nothing fills the link's queue and its socket; when the proxy ends, the
// server's write behind them fails rather than waiting for ever.
func TestClientThatStopsReadingDoesNotHoldTheServer(t *testing.T) {
	srv, _, end := shapedPair(t, Link{Down: 1e9})
	wrote := make(chan error, 1)
	go func() {
		// More than the queue, the socket's buffers and the client's hold.
		big := make([]byte, 1<<20)
		for {
			if _, err := srv.Write(big); err != nil {
				wrote <- err
				return
			}
		}
	}()
	end()
	if err := <-wrote; err == nil {
		t.Fatal("the server's write did not fail")
	}
}
