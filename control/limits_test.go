package control

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"

	"connectrpc.com/connect"

	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/control/v1/controlv1connect"
	"github.com/outpost-robotics/outpost/controlclient"
	"github.com/outpost-robotics/outpost/netlimit"
	"github.com/outpost-robotics/outpost/netlimit/netlimittest"
)

// shortLimits let a test see slow clients cut off.
var shortLimits = netlimit.Limits{MaxConns: 4, ReadHeaderTimeout: 300 * time.Millisecond, BodyTimeout: 300 * time.Millisecond,
	MinBodyRate: 100, IdleTimeout: time.Second}

// TestSlowClientsCannotHoldThePort: slow clients take every connection of
// the control port, some sending their body slowly over TLS and some never
// finishing the TLS handshake; the part cuts them all off, a field tech's
// call is answered, and a followed log keeps streaming past the body
// timeout.
func TestSlowClientsCannotHoldThePort(t *testing.T) {
	e := newEnvWith(t, func(o *Options) { o.Limits = shortLimits })
	conf, err := controlclient.PinnedTLSConfig(e.srv.Fingerprint())
	if err != nil {
		t.Fatal(err)
	}
	conf.NextProtos = []string{"http/1.1"}
	waitClosed := netlimittest.Slowloris(t, shortLimits.MaxConns, controlv1connect.ControlServiceStatusProcedure, func() (net.Conn, error) {
		return tls.Dial("tcp", e.addr, conf)
	})
	var silent []net.Conn
	for range shortLimits.MaxConns {
		c, err := net.Dial("tcp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		silent = append(silent, c)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := e.grpc(e.creds.key(ownerKey))
	if _, err := c.control.Status(ctx, connect.NewRequest(&controlv1.StatusRequest{})); err != nil {
		t.Fatalf("a field tech's call behind slow clients: %v", err)
	}

	live := make(chan *controlv1.LogEntry, 1)
	e.logs.setLive(live)
	// The stream answers with its first entry.
	live <- &controlv1.LogEntry{Message: "first"}
	stream, err := c.control.FollowLogs(ctx, connect.NewRequest(&controlv1.FollowLogsRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	if !stream.Receive() || stream.Msg().GetEntry().GetMessage() != "first" {
		t.Fatalf("followed log: %v", stream.Err())
	}
	// Past every read limit, the stream still delivers.
	<-time.After(4 * shortLimits.BodyTimeout)
	live <- &controlv1.LogEntry{Message: "still here"}
	if !stream.Receive() || stream.Msg().GetEntry().GetMessage() != "still here" {
		t.Fatalf("followed log after the body timeout: %v", stream.Err())
	}

	waitClosed()
	deadline := time.Now().Add(time.Minute)
	for i, c := range silent {
		_ = c.SetReadDeadline(deadline)
		if _, err := io.Copy(io.Discard, c); err != nil {
			t.Errorf("client %d that never started TLS: the part kept its connection open: %v", i, err)
		}
	}
}
