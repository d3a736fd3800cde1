// Package netlimittest holds slow clients (slowloris) for tests of servers
// served within netlimit's limits.
package netlimittest

import (
	"io"
	"net"
	"testing"
	"time"
)

// Slowloris opens n connections with dial; on each it starts a request and
// then stalls: even ones send headers and the first bytes of a large body,
// odd ones headers that never end. It returns a function that waits until
// the server has closed every one of them, and fails tb for each it keeps
// open past a minute (a server that cuts slow clients off does so in its
// body or header timeout).
func Slowloris(tb testing.TB, n int, path string, dial func() (net.Conn, error)) (waitClosed func()) {
	tb.Helper()
	var conns []net.Conn
	for i := range n {
		c, err := dial()
		if err != nil {
			tb.Fatalf("netlimittest: dial slow client %d: %v", i, err)
		}
		tb.Cleanup(func() { c.Close() })
		start := "POST " + path + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/proto\r\nContent-Length: 1000000\r\n\r\nfirst bytes"
		if i%2 == 1 {
			start = "POST " + path + " HTTP/1.1\r\nHost: x\r\nX-Slow: "
		}
		if _, err := io.WriteString(c, start); err != nil {
			tb.Fatalf("netlimittest: slow client %d: %v", i, err)
		}
		conns = append(conns, c)
	}
	return func() {
		tb.Helper()
		// The server answers with an error or not at all, then closes; the
		// deadline only bounds a server that does not.
		deadline := time.Now().Add(time.Minute)
		for i, c := range conns {
			_ = c.SetReadDeadline(deadline)
			if _, err := io.Copy(io.Discard, c); err != nil {
				tb.Errorf("netlimittest: slow client %d: the server kept its connection open: %v", i, err)
			}
		}
	}
}
