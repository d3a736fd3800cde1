package cloud

import (
	"context"
	"net"
	"net/http"
	"testing"

	"connectrpc.com/connect"
	"go.uber.org/zap/zaptest"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1/fleetv1connect"
	"github.com/outpost-robotics/outpost/version"
)

// TestServeAnswersEveryProtocol runs the real server on loopback and calls it
// with Connect, gRPC (HTTP/2 cleartext) and gRPC-Web clients.
func TestServeAnswersEveryProtocol(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, Handler(), "", "", zaptest.NewLogger(t)) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})

	h2c := &http.Client{Transport: &http.Transport{Protocols: unencryptedHTTP2()}}
	base := "http://" + ln.Addr().String()
	clients := map[string]fleetv1connect.ServerServiceClient{
		"connect":  fleetv1connect.NewServerServiceClient(http.DefaultClient, base),
		"grpc":     fleetv1connect.NewServerServiceClient(h2c, base, connect.WithGRPC()),
		"grpc-web": fleetv1connect.NewServerServiceClient(http.DefaultClient, base, connect.WithGRPCWeb()),
	}
	for name, c := range clients {
		t.Run(name, func(t *testing.T) {
			res, err := c.GetServerInfo(context.Background(), connect.NewRequest(&fleetv1.GetServerInfoRequest{}))
			if err != nil {
				t.Fatal(err)
			}
			if res.Msg.GetVersion() != version.Version || res.Msg.GetCommit() != version.Commit {
				t.Fatalf("got %v", res.Msg)
			}
		})
	}
}

func unencryptedHTTP2() *http.Protocols {
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	return p
}
