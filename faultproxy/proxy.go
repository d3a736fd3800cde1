// Package faultproxy is an HTTP proxy for tests that does to requests what a
// field network does to them: 5xx answers, connection resets before and after
// the upstream saw the request, responses that never come, truncated and
// slow bodies, requests delivered twice, and a cloud that goes away and comes
// back. It is shared by the sync tests and the reliability suite, so that the
// daemon is tested against the real cloud through a bad network rather than
// against a fake cloud.
//
// It speaks HTTP/1.1 only: resets need the raw connection, and the part's
// sync client uses the Connect protocol, which is plain HTTP.
package faultproxy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Fault is what the proxy does to one request.
type Fault int

// The faults. "Before" faults never reach the upstream; "after" faults reach
// it, so the upstream acted on the request but the client cannot know.
const (
	Pass          Fault = iota // forward and answer faithfully
	Status503                  // answer 503 with Retry-After: 1, before the upstream
	Status429                  // answer 429 with Retry-After: 1, before the upstream
	ResetBefore                // reset the connection without forwarding
	ResetAfter                 // forward, then reset instead of answering
	HangAfter                  // forward, then never answer (the client's deadline ends it)
	TruncateAfter              // forward, then send half the body and close
	SlowAfter                  // forward, then trickle the body in small pieces
	Duplicate                  // forward twice, answer with the second answer
	numFaults
)

var faultNames = [...]string{"pass", "503", "429", "reset-before", "reset-after", "hang-after", "truncate-after", "slow-after", "duplicate"}

// String names the fault for test output.
func (f Fault) String() string {
	if f < 0 || f >= numFaults {
		return fmt.Sprintf("fault(%d)", int(f))
	}
	return faultNames[f]
}

// Decider chooses the fault for the n-th request (from 1).
type Decider func(n int64, r *http.Request) Fault

// Script returns a Decider that applies faults in order, then passes.
func Script(faults ...Fault) Decider {
	return func(n int64, _ *http.Request) Fault {
		if int(n) <= len(faults) {
			return faults[n-1]
		}
		return Pass
	}
}

// Random returns a Decider that picks a fault for each request with the
// given probabilities (the rest pass), from a seeded source so a failing run
// can be replayed.
func Random(seed uint64, probs map[Fault]float64) Decider {
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	order := make([]Fault, 0, len(probs))
	for f := Fault(0); f < numFaults; f++ {
		if probs[f] > 0 {
			order = append(order, f)
		}
	}
	return func(int64, *http.Request) Fault {
		mu.Lock()
		x := rng.Float64()
		mu.Unlock()
		for _, f := range order {
			if x < probs[f] {
				return f
			}
			x -= probs[f]
		}
		return Pass
	}
}

// Proxy forwards requests on a loopback port to an upstream, with faults.
type Proxy struct {
	upstream *url.URL
	client   *http.Client
	ln       net.Listener
	srv      *http.Server

	decide atomic.Pointer[Decider]
	down   atomic.Bool
	n      atomic.Int64

	// ctx ends with the proxy, and with it every shaped connection.
	ctx                context.Context
	cancel             context.CancelFunc
	shaper             atomic.Pointer[shaper] // nil: unshaped
	upBytes, downBytes atomic.Int64

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	counts [numFaults]int64
	closed chan struct{}
	hung   chan struct{}
}

// New starts a proxy on 127.0.0.1 in front of upstream (a base URL such as
// http://127.0.0.1:8080). A nil decide passes everything.
func New(upstream string, decide Decider) (*Proxy, error) {
	u, err := url.Parse(upstream)
	if err != nil {
		return nil, fmt.Errorf("parse upstream %q: %w", upstream, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for the fault proxy: %w", err)
	}
	p := &Proxy{
		upstream: u,
		client:   &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}},
		ln:       ln,
		conns:    make(map[net.Conn]struct{}),
		closed:   make(chan struct{}),
		hung:     make(chan struct{}, 64),
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.SetDecider(decide)
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	p.srv = &http.Server{Handler: p, Protocols: protocols, ConnState: p.track}
	go func() { _ = p.srv.Serve(shapedListener{Listener: ln, p: p}) }()
	return p, nil
}

// URL is the proxy's base URL, to give the client instead of the upstream's.
func (p *Proxy) URL() string { return "http://" + p.ln.Addr().String() }

// SetDecider replaces the fault plan; nil passes everything.
func (p *Proxy) SetDecider(d Decider) {
	if d == nil {
		d = func(int64, *http.Request) Fault { return Pass }
	}
	p.decide.Store(&d)
}

// SetDown partitions (true) or heals (false) the network. While down, every
// open connection is cut and every new request is reset before it reaches
// the upstream.
func (p *Proxy) SetDown(down bool) {
	p.down.Store(down)
	if !down {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		resetConn(c)
	}
}

// Count returns how many requests met fault f.
func (p *Proxy) Count(f Fault) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts[f]
}

// Hung delivers one value each time a request starts hanging (HangAfter),
// after the upstream answered it: a test on a fake clock can then move the
// client's deadline instead of waiting for it.
func (p *Proxy) Hung() <-chan struct{} { return p.hung }

// Requests returns how many requests the proxy has seen.
func (p *Proxy) Requests() int64 { return p.n.Load() }

// Close stops the proxy and cuts every connection.
func (p *Proxy) Close() error {
	close(p.closed)
	p.cancel()
	p.client.CloseIdleConnections()
	return p.srv.Close()
}

func (p *Proxy) track(c net.Conn, s http.ConnState) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch s {
	case http.StateNew:
		p.conns[c] = struct{}{}
	case http.StateHijacked, http.StateClosed:
		delete(p.conns, c)
	}
}

// ServeHTTP applies the fault chosen for this request.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := p.n.Add(1)
	fault := (*p.decide.Load())(n, r)
	if p.down.Load() {
		fault = ResetBefore
	}
	p.mu.Lock()
	p.counts[fault]++
	p.mu.Unlock()

	// The whole body is read first so it can be forwarded twice.
	body, err := io.ReadAll(r.Body)
	if err != nil {
		hijackReset(w)
		return
	}
	switch fault {
	case Status503, Status429:
		code := http.StatusServiceUnavailable
		if fault == Status429 {
			code = http.StatusTooManyRequests
		}
		w.Header().Set("Retry-After", "1")
		http.Error(w, "fault injected: "+fault.String(), code)
		return
	case ResetBefore:
		hijackReset(w)
		return
	}

	res, resBody, err := p.forward(r, body)
	if err == nil && fault == Duplicate {
		res, resBody, err = p.forward(r, body)
	}
	if err != nil {
		http.Error(w, "fault proxy: upstream: "+err.Error(), http.StatusBadGateway)
		return
	}
	switch fault {
	case ResetAfter:
		hijackReset(w)
		return
	case HangAfter:
		select {
		case p.hung <- struct{}{}:
		default: // nobody is listening; the hang goes on all the same
		}
		select {
		case <-r.Context().Done():
		case <-p.closed:
		}
		hijackReset(w)
		return
	}
	for k, vs := range res.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.Header().Set("Content-Length", fmt.Sprint(len(resBody)))
	w.WriteHeader(res.StatusCode)
	switch fault {
	case TruncateAfter:
		_, _ = w.Write(resBody[:len(resBody)/2])
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		hijackReset(w)
	case SlowAfter:
		for chunk := range slices.Chunk(resBody, 64) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
			if f, ok := w.(http.Flusher); ok {
				f.Flush()
			}
			// A real pause: this is the network being slow, not logic
			// waiting, and no test result depends on its length.
			select {
			case <-time.After(time.Millisecond):
			case <-r.Context().Done():
				return
			}
		}
	default:
		_, _ = w.Write(resBody)
	}
}

func (p *Proxy) forward(r *http.Request, body []byte) (*http.Response, []byte, error) {
	u := *p.upstream
	u.Path = r.URL.Path
	u.RawQuery = r.URL.RawQuery
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	defer cancel()
	go func() {
		select {
		case <-p.closed:
			cancel()
		case <-ctx.Done():
		}
	}()
	out, err := http.NewRequestWithContext(ctx, r.Method, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, nil, fmt.Errorf("build upstream request: %w", err)
	}
	out.Header = r.Header.Clone()
	out.ContentLength = int64(len(body))
	res, err := p.client.Do(out)
	if err != nil {
		return nil, nil, fmt.Errorf("forward %s: %w", r.URL.Path, err)
	}
	defer res.Body.Close()
	resBody, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, nil, fmt.Errorf("read upstream answer to %s: %w", r.URL.Path, err)
	}
	return res, resBody, nil
}

// hijackReset cuts the client's connection with a TCP reset.
func hijackReset(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		// Only HTTP/1.1 connections can be cut; the proxy serves nothing else.
		http.Error(w, "fault proxy: cannot reset this connection", http.StatusBadGateway)
		return
	}
	c, _, err := hj.Hijack()
	if err != nil {
		return
	}
	resetConn(c)
}

func resetConn(c net.Conn) {
	if sc, ok := c.(*shapedConn); ok {
		sc.reset()
		return
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // close with RST, not FIN
	}
	_ = c.Close()
}
