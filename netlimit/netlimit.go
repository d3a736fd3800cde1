// Package netlimit bounds what one client can hold of an HTTP server: how
// many connections are open, how long headers and a request body may take
// to arrive, how long an idle keep-alive connection stays, and how large
// the headers may be.
//
// The body limit is a deadline on reading the request body only, kept by a
// handler wrapper's timer and set on the connection through
// http.ResponseController only to cut a body that is late, so long polls
// and server streams (a relay's NextOffer, a followed log) answer as late
// as they need to, while a client that sends its body slowly to keep a
// connection (slowloris) is cut off.
package netlimit

import (
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/outpost-robotics/outpost/clock"
)

// Limits bound a server. A zero field takes the value of d.
type Limits struct {
	// MaxConns is how many connections are served at once; more wait in
	// the listen backlog until one closes.
	MaxConns int
	// ReadHeaderTimeout is how long a request's headers (and a TLS
	// handshake) may take.
	ReadHeaderTimeout time.Duration
	// BodyTimeout is how long a request body may take, plus one second
	// for every MinBodyRate bytes read, so a large upload on a slow link
	// still arrives while a stalled one does not hold its connection.
	BodyTimeout time.Duration
	// MinBodyRate is the slowest rate, in bytes per second, a body is
	// given time for beyond BodyTimeout.
	MinBodyRate int
	// IdleTimeout is how long a keep-alive connection may wait for its
	// next request.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's headers.
	MaxHeaderBytes int
}

// Defaults are the limits of a server that says nothing else: generous
// for a robot on a cellular link, small enough that a few slow clients
// cannot hold a server.
func Defaults() Limits {
	return Limits{
		MaxConns:          1024,
		ReadHeaderTimeout: 10 * time.Second,
		BodyTimeout:       30 * time.Second,
		MinBodyRate:       4 << 10,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
}

// WithDefaults fills every zero field from d.
func (l Limits) WithDefaults() Limits {
	d := Defaults()
	or := func(v, d int) int {
		if v > 0 {
			return v
		}
		return d
	}
	ord := func(v, d time.Duration) time.Duration {
		if v > 0 {
			return v
		}
		return d
	}
	return Limits{
		MaxConns:          or(l.MaxConns, d.MaxConns),
		ReadHeaderTimeout: ord(l.ReadHeaderTimeout, d.ReadHeaderTimeout),
		BodyTimeout:       ord(l.BodyTimeout, d.BodyTimeout),
		MinBodyRate:       or(l.MinBodyRate, d.MinBodyRate),
		IdleTimeout:       ord(l.IdleTimeout, d.IdleTimeout),
		MaxHeaderBytes:    or(l.MaxHeaderBytes, d.MaxHeaderBytes),
	}
}

// Apply sets srv's timeouts and header limit and wraps its handler with
// the body deadline. The listener srv serves must come from Listener.
func (l Limits) Apply(srv *http.Server) {
	l = l.WithDefaults()
	srv.ReadHeaderTimeout = l.ReadHeaderTimeout
	srv.IdleTimeout = l.IdleTimeout
	srv.MaxHeaderBytes = l.MaxHeaderBytes
	srv.Handler = l.Handler(srv.Handler)
}

// Listener caps the connections served from ln at MaxConns: Accept waits
// while that many are open. A connection it returns has a NetConn method
// giving the one ln accepted, for peer credentials on a Unix socket.
func (l Limits) Listener(ln net.Listener) net.Listener {
	return &listener{Listener: ln, sem: make(chan struct{}, l.WithDefaults().MaxConns), done: make(chan struct{})}
}

type listener struct {
	net.Listener
	sem       chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

func (l *listener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &conn{Conn: c, release: func() { <-l.sem }}, nil
}

func (l *listener) Close() error {
	err := l.Listener.Close()
	l.closeOnce.Do(func() { close(l.done) })
	return err
}

// conn gives its slot back when closed.
type conn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// NetConn returns the connection the listener accepted.
func (c *conn) NetConn() net.Conn { return c.Conn }

// Handler wraps h so that reading a request's body fails once it has
// taken longer than BodyTimeout plus one second per MinBodyRate bytes.
//
// The deadline is kept by a timer, not set on the connection: a body that
// is read whole before BodyTimeout (every small request's) never touches
// the connection's deadline, which on HTTP/2 is a message to the
// connection's serve loop for each set, extension and clear. Only when the
// timer finds the body late does it set the connection's read deadline, to
// the moment that has passed, which fails the read in progress and every
// later one as a deadline the poller saw pass would have.
func (l Limits) Handler(h http.Handler) http.Handler {
	l = l.WithDefaults()
	// Network deadlines are wall-clock times by nature (the poller
	// measures them), so the machine's clock, never a fake one.
	clk := clock.NewReal()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			h.ServeHTTP(w, r)
			return
		}
		b := &body{ReadCloser: r.Body, rc: http.NewResponseController(w), start: clk.Now(), lim: l, clk: clk}
		b.mu.Lock()
		// A wall-clock timer for the same reason as clk: what it bounds is
		// the network's.
		b.timer = time.AfterFunc(l.BodyTimeout, b.expire)
		b.mu.Unlock()
		r.Body = b
		h.ServeHTTP(w, r)
		b.finish()
	})
}

// body keeps a request body's deadline. While the handler reads, a timer
// checks the deadline when it would fall, and moves it on by the bytes read
// since; the connection's deadline is set only to cut a body that is late.
// On HTTP/1.1 the server keeps reading the connection while the handler
// runs, to notice a client that goes away, so a deadline left set would end
// a long poll's context: a body read to its end leaves none. A body left
// unread gets its deadline set on the connection when the handler returns,
// which then bounds the server discarding the rest of it.
type body struct {
	io.ReadCloser
	rc    *http.ResponseController
	start time.Time
	lim   Limits
	clk   clock.Clock

	mu    sync.Mutex
	timer *time.Timer
	read  int64
	// done is set once the body was read to its end; cut once its deadline
	// was set on the connection; finished once the handler returned, after
	// which the response controller may no longer be used.
	done, cut, finished bool
}

// deadline is when the body must have arrived, given what was read of it.
func (b *body) deadline() time.Time {
	extra := time.Duration(b.read) * time.Second / time.Duration(b.lim.MinBodyRate)
	return b.start.Add(b.lim.BodyTimeout + extra)
}

// expire runs on the timer's goroutine: it cuts the body if its deadline
// has passed and otherwise waits for the deadline the bytes read since
// have moved it to.
func (b *body) expire() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done || b.cut || b.finished {
		return
	}
	d := b.deadline()
	if wait := d.Sub(b.clk.Now()); wait > 0 {
		b.timer.Reset(wait)
		return
	}
	// A writer without deadlines (a test recorder) reads without one.
	if b.rc.SetReadDeadline(d) == nil {
		b.cut = true
	}
}

// finish runs once the handler returned.
func (b *body) finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.finished = true
	b.timer.Stop()
	if !b.done && !b.cut {
		_ = b.rc.SetReadDeadline(b.deadline())
	}
}

func (b *body) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return n, err
	}
	b.read += int64(n)
	if errors.Is(err, io.EOF) {
		b.done = true
		b.timer.Stop()
		if b.cut && !b.finished {
			// The timer cut the body as its last bytes arrived.
			_ = b.rc.SetReadDeadline(time.Time{})
		}
	}
	return n, err
}
