package netlimit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/outpost-robotics/outpost/cputime"
	"github.com/outpost-robotics/outpost/netlimit/netlimittest"
)

// testLimits are short enough that a test sees slow clients cut off.
var testLimits = Limits{MaxConns: 4, ReadHeaderTimeout: 300 * time.Millisecond, BodyTimeout: 300 * time.Millisecond,
	MinBodyRate: 100, IdleTimeout: time.Second}

// serve runs h behind lim on loopback, over HTTP/1.1 and unencrypted
// HTTP/2, and returns its address.
func serve(tb testing.TB, lim Limits, h http.Handler) string {
	tb.Helper()
	return serveWith(tb, lim, h, true)
}

// serveWith is serve, with lim's handler wrapper (the body limit) only if
// limitBody.
func serveWith(tb testing.TB, lim Limits, h http.Handler, limitBody bool) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := &http.Server{Handler: h, Protocols: new(http.Protocols)}
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	lim.Apply(srv)
	if !limitBody {
		srv.Handler = h
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lim.Listener(ln)) }()
	tb.Cleanup(func() {
		srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			tb.Error(err)
		}
	})
	return ln.Addr().String()
}

// echo answers with the length of the body it read.
var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusRequestTimeout)
		return
	}
	fmt.Fprintf(w, "read %d", len(b))
})

func client(h2c bool) *http.Client {
	tr := &http.Transport{Protocols: new(http.Protocols)}
	if h2c {
		tr.Protocols.SetUnencryptedHTTP2(true)
	} else {
		tr.Protocols.SetHTTP1(true)
	}
	// Generous: on a loaded machine the server may take a while, but a
	// server held by slow clients never answers.
	return &http.Client{Transport: tr, Timeout: time.Minute}
}

func post(t *testing.T, c *http.Client, url string, body io.Reader) string {
	t.Helper()
	res, err := c.Post(url, "application/octet-stream", body)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %s %s", url, res.Status, b)
	}
	return string(b)
}

// TestSlowClientsCannotHoldTheServer: twice as many clients as the server
// has connections send their headers or their body slowly and then stall;
// the server cuts every one of them off, and a normal client is served.
func TestSlowClientsCannotHoldTheServer(t *testing.T) {
	addr := serve(t, testLimits, echo)
	waitClosed := netlimittest.Slowloris(t, 2*testLimits.MaxConns, "/", func() (net.Conn, error) { return net.Dial("tcp", addr) })
	for _, h2c := range []bool{false, true} {
		if got := post(t, client(h2c), "http://"+addr+"/", strings.NewReader("hello")); got != "read 5" {
			t.Errorf("normal client (h2c %v) got %q", h2c, got)
		}
	}
	waitClosed()
}

// TestLongPollOutlivesBodyTimeout: a handler that answers long after its
// body was read (a relay's long poll, a followed log) is not cut off by
// the body deadline, on HTTP/1.1 and HTTP/2, and its context stays alive.
func TestLongPollOutlivesBodyTimeout(t *testing.T) {
	addr := serve(t, testLimits, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusRequestTimeout)
			return
		}
		// Hold the answer past every limit that concerns reading.
		select {
		case <-time.After(4 * max(testLimits.BodyTimeout, testLimits.ReadHeaderTimeout)):
		case <-r.Context().Done():
			http.Error(w, "context ended: "+context.Cause(r.Context()).Error(), http.StatusServiceUnavailable)
			return
		}
		w.(http.Flusher).Flush()
		fmt.Fprint(w, "answered")
	}))
	for _, h2c := range []bool{false, true} {
		if got := post(t, client(h2c), "http://"+addr+"/", strings.NewReader("offer?")); got != "answered" {
			t.Errorf("long poll (h2c %v) got %q", h2c, got)
		}
	}
}

// TestSlowSteadyUploadArrives: a body that takes longer than BodyTimeout
// but keeps coming at above MinBodyRate is read whole.
func TestSlowSteadyUploadArrives(t *testing.T) {
	addr := serve(t, testLimits, echo)
	pr, pw := io.Pipe()
	go func() {
		piece := bytes.Repeat([]byte("x"), 100)
		deadline := time.Now().Add(3 * testLimits.BodyTimeout)
		for time.Now().Before(deadline) {
			if _, err := pw.Write(piece); err != nil {
				return
			}
			time.Sleep(testLimits.BodyTimeout / 10)
		}
		pw.Close()
	}()
	got := post(t, client(false), "http://"+addr+"/", pr)
	if !strings.HasPrefix(got, "read ") || got == "read 0" {
		t.Errorf("steady upload got %q", got)
	}
}

// TestStalledBodyIsRefused: a body that stops arriving fails to read, and
// the handler sees a timeout rather than waiting for ever.
func TestStalledBodyIsRefused(t *testing.T) {
	addr := serve(t, testLimits, echo)
	for _, h2c := range []bool{false, true} {
		pr, pw := io.Pipe()
		go func() { pw.Write([]byte("start")) }() // and then nothing
		res, err := client(h2c).Post("http://"+addr+"/", "application/octet-stream", pr)
		if err != nil {
			t.Fatalf("stalled body (h2c %v): %v, want the handler's answer", h2c, err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(b), "timeout") {
			t.Errorf("stalled body (h2c %v): %s %s, want 408 with a timeout", h2c, res.Status, b)
		}
		pw.Close()
	}
}

// TestTricklingBodyIsCut: a body that keeps coming, but slower than
// MinBodyRate, is cut once it is later than its deadline (BodyTimeout and
// the time its bytes earned), on HTTP/1.1 and HTTP/2, and the handler sees
// a timeout; a normal request on a new connection is served after it.
func TestTricklingBodyIsCut(t *testing.T) {
	addr := serve(t, testLimits, echo)
	for _, tc := range []struct {
		name string
		h2c  bool
	}{{"http1", false}, {"h2c", true}} {
		t.Run(tc.name, func(t *testing.T) {
			pr, pw := io.Pipe()
			stop := make(chan struct{})
			defer close(stop)
			go func() {
				// 2 bytes each tenth of BodyTimeout: a fifth of MinBodyRate
				// (100 B/s), so the body falls behind its deadline for good.
				for {
					if _, err := pw.Write([]byte("xx")); err != nil {
						return
					}
					select {
					case <-stop:
						pw.Close()
						return
					case <-time.After(testLimits.BodyTimeout / 10):
					}
				}
			}()
			res, err := client(tc.h2c).Post("http://"+addr+"/", "application/octet-stream", pr)
			if err != nil {
				t.Fatalf("trickling body: %v, want the handler's answer", err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(b), "timeout") {
				t.Errorf("trickling body: %s %s, want 408 with a timeout", res.Status, b)
			}
			if got := post(t, client(tc.h2c), "http://"+addr+"/", strings.NewReader("hello")); got != "read 5" {
				t.Errorf("normal client after it got %q", got)
			}
		})
	}
}

// TestBodyReadWholeLeavesNoDeadline: on HTTP/1.1 and HTTP/2, a body read to
// its end before BodyTimeout and a handler that then writes its answer in
// pieces past every read limit: the connection is not cut, the context
// stays alive, and the same connection serves the next request.
func TestBodyReadWholeLeavesNoDeadline(t *testing.T) {
	addr := serve(t, testLimits, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusRequestTimeout)
			return
		}
		for range 4 {
			select {
			case <-time.After(testLimits.BodyTimeout):
			case <-r.Context().Done():
				return
			}
			fmt.Fprint(w, ".")
			w.(http.Flusher).Flush()
		}
	}))
	for _, h2c := range []bool{false, true} {
		c := client(h2c)
		for i := range 2 {
			if got := post(t, c, "http://"+addr+"/", strings.NewReader("cmd")); got != "...." {
				t.Errorf("h2c %v, request %d: got %q, want four pieces", h2c, i, got)
			}
		}
	}
}

// TestUnreadBodyIsBounded: a handler that answers without reading a body
// that then stalls leaves the server discarding it only until the body's
// deadline: the connection is closed, not held.
func TestUnreadBodyIsBounded(t *testing.T) {
	addr := serve(t, testLimits, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "not read")
	}))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nfirst bytes"); err != nil {
		t.Fatal(err)
	}
	// The server answers and then closes; the deadline only bounds a
	// server that does not.
	_ = c.SetReadDeadline(time.Now().Add(time.Minute))
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("the server kept the connection open: %v (read %q)", err, b)
	}
	if !strings.Contains(string(b), "not read") {
		t.Errorf("got %q, want the handler's answer", b)
	}
}

// BenchmarkSmallBody is what the body limit costs a call whose body
// arrives whole with its request (a command's): small POSTs over one
// HTTP/2 (h2c) and one HTTP/1.1 connection on loopback, with and without
// the limit's handler, reporting the process's CPU per request.
func BenchmarkSmallBody(b *testing.B) {
	for _, tc := range []struct {
		name    string
		h2c     bool
		limited bool
	}{{"h2c", true, true}, {"h2c-nolimit", true, false}, {"http1", false, true}, {"http1-nolimit", false, false}} {
		b.Run(tc.name, func(b *testing.B) {
			addr := serveWith(b, Limits{}, echo, tc.limited)
			c := client(tc.h2c)
			body := bytes.Repeat([]byte("c"), 200)
			b.ReportAllocs()
			cpu0 := cputime.Self(b)
			for b.Loop() {
				res, err := c.Post("http://"+addr+"/", "application/proto", bytes.NewReader(body))
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
			}
			b.ReportMetric(float64((cputime.Self(b)-cpu0).Nanoseconds())/float64(b.N)/1e3, "cpu-µs/op")
		})
	}
}
