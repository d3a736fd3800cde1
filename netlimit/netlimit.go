// Package netlimit bounds what one client can hold of an HTTP server: how
// many connections are open, how long headers and a request body may take
// to arrive, how long an idle keep-alive connection stays, and how large
// the headers may be.
//
// The body limit is a deadline on reading the request body only, set by a
// handler wrapper through http.ResponseController and cleared once the
// body is read, so long polls and server streams (a relay's NextOffer, a
// followed log) answer as late as they need to, while a client that sends
// its body slowly to keep a connection (slowloris) is cut off.
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
		rc := http.NewResponseController(w)
		start := clk.Now()
		if err := rc.SetReadDeadline(start.Add(l.BodyTimeout)); err != nil {
			// A writer without deadlines (a test recorder) reads without one.
			h.ServeHTTP(w, r)
			return
		}
		r.Body = &body{ReadCloser: r.Body, rc: rc, start: start, lim: l}
		h.ServeHTTP(w, r)
	})
}

// body extends the read deadline as bytes arrive and clears it at the end
// of the body: on HTTP/1.1 the server keeps reading the connection while
// the handler runs, to notice a client that goes away, and a deadline left
// set would end a long poll's context. A body left unread keeps its
// deadline, which then bounds the server discarding the rest of it.
type body struct {
	io.ReadCloser
	rc    *http.ResponseController
	start time.Time
	lim   Limits

	mu   sync.Mutex
	read int64
	done bool
}

func (b *body) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.done {
		return n, err
	}
	b.read += int64(n)
	switch {
	case errors.Is(err, io.EOF):
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	case err == nil && n > 0:
		extra := time.Duration(b.read) * time.Second / time.Duration(b.lim.MinBodyRate)
		_ = b.rc.SetReadDeadline(b.start.Add(b.lim.BodyTimeout + extra))
	}
	return n, err
}
