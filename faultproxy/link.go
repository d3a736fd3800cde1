package faultproxy

import (
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/outpost-robotics/outpost/clock"
)

// Link is the shape of the network between the client and the proxy: a
// robot's uplink, which has a bandwidth in each direction and a delay. The
// zero Link is loopback, unshaped.
//
// Shaping applies to the bytes of each connection as they stream, not to
// whole requests: a 1 MB body at 10 Mbit/s arrives over 0.8 s, its first
// bytes Delay after they were sent, as on a real wire. The bandwidth of
// each direction is one token bucket shared by every connection, as the
// connections of one uplink share it.
type Link struct {
	// Up and Down are the bandwidths, in bits per second, from the client
	// to the proxy and back; 0 is unlimited.
	Up, Down int64
	// Delay is the one-way delay of each direction, so a round trip takes
	// twice Delay; at most MaxDelay.
	Delay time.Duration
	// Clock paces the link; nil is the machine's clock. A test may give a
	// fake clock to assert on bytes passed per unit of time; the machine's
	// clock is the right one for pacing a real socket, as the wire it
	// stands for is real too.
	Clock clock.Clock
}

// MaxDelay bounds Link.Delay: an hour is longer than any uplink takes, and
// a bound keeps deadlines far from overflowing.
const MaxDelay = time.Hour

// maxRate bounds Link.Up and Link.Down: a terabit a second is faster than
// loopback, so nothing is lost by refusing more.
const maxRate = 1e12

const (
	// chunkSize is the most a shaped connection moves per token wait.
	chunkSize = 16 << 10
	// burstTime is how much of the link's rate the token bucket holds: it
	// lets a pacer that woke late catch up, which a loaded machine needs to
	// keep a link full, while a link left idle can never send more than
	// this much faster than its rate.
	burstTime = 20 * time.Millisecond
	// queueChunks bounds the chunks a direction holds on their way, so a
	// receiver that stops reading stops the sender, as TCP's window does.
	queueChunks = 1024
)

// shaped reports whether l shapes anything.
func (l Link) shaped() bool { return l.Up > 0 || l.Down > 0 || l.Delay > 0 }

// validate refuses a link that cannot exist.
func (l Link) validate() error {
	switch {
	case l.Up < 0 || l.Down < 0:
		return fmt.Errorf("faultproxy: link bandwidth %d/%d bit/s is negative", l.Up, l.Down)
	case l.Up > maxRate || l.Down > maxRate:
		return fmt.Errorf("faultproxy: link bandwidth %d/%d bit/s is above %g", l.Up, l.Down, float64(maxRate))
	case l.Delay < 0:
		return fmt.Errorf("faultproxy: link delay %v is negative", l.Delay)
	case l.Delay > MaxDelay:
		return fmt.Errorf("faultproxy: link delay %v is above %v", l.Delay, MaxDelay)
	}
	return nil
}

// String writes l as ParseLink reads it.
func (l Link) String() string {
	bits := func(n int64) string {
		if n == 0 {
			return "unlimited"
		}
		return formatRate(n)
	}
	s := bits(l.Up)
	if l.Down != l.Up {
		s += "/" + bits(l.Down)
	}
	return s + "," + (2 * l.Delay).String()
}

func formatRate(n int64) string {
	for _, u := range []struct {
		name string
		v    int64
	}{{"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}} {
		if n%u.v == 0 {
			return strconv.FormatInt(n/u.v, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10) + "bit"
}

// ParseLink reads a link written as RATE[/RATE][,RTT]: "10mbit,50ms" is
// 10 Mbit/s each way and a 50 ms round trip (25 ms each way);
// "10mbit/50mbit,600ms" sends 10 Mbit/s up and 50 Mbit/s down. A rate is a
// number with a unit, bit, kbit, mbit or gbit (per second, powers of ten),
// or "unlimited"; RTT is a Go duration. The result has no Clock.
func ParseLink(s string) (Link, error) {
	rates, rtt, hasRTT := strings.Cut(strings.TrimSpace(s), ",")
	up, down, asym := strings.Cut(rates, "/")
	var l Link
	var err error
	if l.Up, err = parseRate(up); err != nil {
		return Link{}, fmt.Errorf("faultproxy: link %q: %w", s, err)
	}
	l.Down = l.Up
	if asym {
		if l.Down, err = parseRate(down); err != nil {
			return Link{}, fmt.Errorf("faultproxy: link %q: %w", s, err)
		}
	}
	if hasRTT {
		d, err := time.ParseDuration(strings.TrimSpace(rtt))
		if err != nil {
			return Link{}, fmt.Errorf("faultproxy: link %q: round trip: %w", s, err)
		}
		if d < 0 || d > 2*MaxDelay {
			return Link{}, fmt.Errorf("faultproxy: link %q: round trip %v is outside 0 to %v", s, d, 2*MaxDelay)
		}
		l.Delay = d / 2
	}
	if err := l.validate(); err != nil {
		return Link{}, err
	}
	return l, nil
}

func parseRate(s string) (int64, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "unlimited" {
		return 0, nil
	}
	// Longest suffix first: "mbit" ends in "bit" too.
	units := [...]struct {
		suffix string
		scale  float64
	}{{"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}, {"bit", 1}}
	for _, u := range units {
		num, ok := strings.CutSuffix(s, u.suffix)
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(num, 64)
		if err != nil {
			return 0, fmt.Errorf("rate %q: %w", s, err)
		}
		v *= u.scale
		if math.IsNaN(v) || v < 1 || v > maxRate {
			return 0, fmt.Errorf("rate %q is outside 1 bit/s to %g bit/s", s, float64(maxRate))
		}
		return int64(v), nil
	}
	return 0, fmt.Errorf("rate %q has no unit (bit, kbit, mbit, gbit)", s)
}

// shaper is one Link in force: the token buckets of its two directions and
// the clock that paces them.
type shaper struct {
	link     Link
	clk      clock.Clock
	up, down *rate.Limiter // nil: unlimited
	upBytes  *atomic.Int64
	dnBytes  *atomic.Int64
	// reserve makes reading the clock and reserving one step: a limiter
	// given an instant older than its last one moves back to it, and
	// then credits the time since again, so two connections whose
	// reads and reservations interleave would cross faster than the link.
	reserve sync.Mutex
}

func newShaper(l Link, up, down *atomic.Int64) *shaper {
	s := &shaper{link: l, clk: l.Clock, upBytes: up, dnBytes: down}
	if s.clk == nil {
		s.clk = clock.NewReal()
	}
	s.up, s.down = limiter(l.Up), limiter(l.Down)
	return s
}

// limiter returns a token bucket of bits bit/s, in bytes, or nil for an
// unlimited direction.
func limiter(bits int64) *rate.Limiter {
	if bits <= 0 {
		return nil
	}
	perSec := float64(bits) / 8
	burst := int(min(max(perSec*burstTime.Seconds(), 1), 1<<30))
	return rate.NewLimiter(rate.Limit(perSec), burst)
}

// now is the clock's uptime as the instant the limiter counts in: uptime
// never jumps, as the wall clock may.
func (s *shaper) now() time.Time { return time.Unix(0, 0).Add(s.clk.Uptime()) }

// chunk is how much a direction moves per token wait: no more than the
// bucket holds, so a slow link trickles rather than jumps.
func chunk(lim *rate.Limiter) int {
	if lim == nil {
		return chunkSize
	}
	return min(chunkSize, lim.Burst())
}

// pace waits until lim lets n bytes on the wire.
func (s *shaper) pace(ctx context.Context, lim *rate.Limiter, n int) error {
	if lim == nil {
		return ctx.Err()
	}
	s.reserve.Lock()
	now := s.now()
	r := lim.ReserveN(now, n)
	s.reserve.Unlock()
	return s.clk.Sleep(ctx, r.DelayFrom(now))
}

// piece is bytes on the wire and the uptime at which they arrive.
type piece struct {
	b  []byte
	at time.Duration
}

// shapedConn is a client's connection as the proxy's HTTP server sees it:
// the server reads and writes one end of a pipe, and four goroutines move
// bytes between the other end and the client's socket through the link,
// each direction paced by its token bucket and then held for the delay.
// The pipe gives the server the deadlines it needs.
type shapedConn struct {
	net.Conn // the server's end of the pipe
	raw      net.Conn
	cancel   context.CancelFunc
	once     sync.Once
}

// shape puts raw behind the link; ctx ends with the proxy.
func (s *shaper) shape(ctx context.Context, raw net.Conn) *shapedConn {
	ctx, cancel := context.WithCancel(ctx)
	srvEnd, linkEnd := net.Pipe()
	c := &shapedConn{Conn: srvEnd, raw: raw, cancel: cancel}
	// A client that stops reading must not hold a delivery, nor the
	// server's writes behind it, past the proxy's end (or a reset):
	// closing the socket ends the delivery's write, and closing the pipe
	// the server's.
	context.AfterFunc(ctx, func() {
		_ = raw.Close()
		_ = linkEnd.Close()
	})
	up := make(chan piece, queueChunks)
	down := make(chan piece, queueChunks)
	// Up: the client's socket onto the wire, then off the wire to the server.
	go s.send(ctx, raw, up, s.up, s.upBytes)
	go func() {
		s.deliver(ctx, up, linkEnd)
		// The client is done sending or gone: the server reads EOF.
		_ = linkEnd.Close()
	}()
	// Down: what the server writes onto the wire, then to the client.
	go s.send(ctx, linkEnd, down, s.down, s.dnBytes)
	go func() {
		s.deliver(ctx, down, raw)
		// The server closed its end and all it wrote has arrived.
		_ = raw.Close()
		cancel()
	}()
	return c
}

// send reads from src and puts the bytes on the wire in chunks as lim
// allows, each due at the far end after the delay; it closes out when src
// ends.
func (s *shaper) send(ctx context.Context, src io.Reader, out chan<- piece, lim *rate.Limiter, count *atomic.Int64) {
	defer close(out)
	size := chunk(lim)
	for {
		buf := make([]byte, size)
		n, err := src.Read(buf)
		if n > 0 {
			if s.pace(ctx, lim, n) != nil {
				return
			}
			count.Add(int64(n))
			select {
			case out <- piece{b: buf[:n], at: s.clk.Uptime() + s.link.Delay}:
			case <-ctx.Done():
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// deliver writes each piece to dst when it is due, until in closes, dst
// fails or ctx ends.
func (s *shaper) deliver(ctx context.Context, in <-chan piece, dst io.Writer) {
	for p := range in {
		if s.clk.Sleep(ctx, p.at-s.clk.Uptime()) != nil {
			return
		}
		if _, err := dst.Write(p.b); err != nil {
			return
		}
	}
}

// LocalAddr is the proxy's end of the client's socket.
func (c *shapedConn) LocalAddr() net.Addr { return c.raw.LocalAddr() }

// RemoteAddr is the client's end of its socket.
func (c *shapedConn) RemoteAddr() net.Addr { return c.raw.RemoteAddr() }

// Close ends the server's side; what it wrote still crosses the link
// before the client's socket closes.
func (c *shapedConn) Close() error { return c.Conn.Close() }

// reset cuts the client's socket at once with a TCP reset, dropping what
// is on the wire.
func (c *shapedConn) reset() {
	c.once.Do(func() {
		resetConn(c.raw) // first: once the context ends, the socket closes without a reset
		c.cancel()
		_ = c.Conn.Close()
	})
}

// shapedListener puts each connection it accepts behind the proxy's link
// in force at the time, if any.
type shapedListener struct {
	net.Listener
	p *Proxy
}

func (l shapedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if s := l.p.shaper.Load(); s != nil {
		return s.shape(l.p.ctx, c), nil
	}
	return c, nil
}

// SetLink shapes the connections the proxy accepts from now on (those open
// keep the link they started with); the zero Link stops shaping. A client
// that keeps connections alive should set the link before its first
// request. Counters of LinkBytes go on across links.
func (p *Proxy) SetLink(l Link) error {
	if err := l.validate(); err != nil {
		return err
	}
	if !l.shaped() {
		p.shaper.Store(nil)
		return nil
	}
	p.shaper.Store(newShaper(l, &p.upBytes, &p.downBytes))
	return nil
}

// LinkBytes returns the bytes that crossed a shaped link up (client to
// proxy) and down, headers included: what a link's utilisation is
// measured by.
func (p *Proxy) LinkBytes() (up, down int64) { return p.upBytes.Load(), p.downBytes.Load() }
