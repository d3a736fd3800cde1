package cloud_test

import (
	"context"
	"net"
	"net/http"
	"testing"

	"connectrpc.com/connect"
	"go.uber.org/zap"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1/fleetv1connect"
	"github.com/outpost-robotics/outpost/cloud"
	"github.com/outpost-robotics/outpost/cloud/cloudtest"
	"github.com/outpost-robotics/outpost/version"
)

// TestServeAnswersEveryProtocol runs the real server on loopback and calls it
// with Connect, gRPC (HTTP/2 cleartext) and gRPC-Web clients.
func TestServeAnswersEveryProtocol(t *testing.T) {
	e := newEnv(t)
	url := "http://" + serve(t, e, "", "")
	h2c := &http.Client{Transport: &http.Transport{Protocols: unencryptedHTTP2()}}
	clients := map[string]fleetv1connect.ServerServiceClient{
		"connect":      fleetv1connect.NewServerServiceClient(http.DefaultClient, url),
		"connect-json": fleetv1connect.NewServerServiceClient(http.DefaultClient, url, connect.WithProtoJSON()),
		"grpc":         fleetv1connect.NewServerServiceClient(h2c, url, connect.WithGRPC()),
		"grpc-web":     fleetv1connect.NewServerServiceClient(http.DefaultClient, url, connect.WithGRPCWeb()),
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
	// An authenticated call over gRPC too.
	c := fleetv1connect.NewAuthServiceClient(h2c, url, connect.WithGRPC(), connect.WithInterceptors(cloudtest.CloudAuth(e.adminToken, e.clk.Now)))
	who, err := c.WhoAmI(context.Background(), connect.NewRequest(&fleetv1.WhoAmIRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if !who.Msg.GetAdmin() || who.Msg.GetEmail() != cloud.AdminEmail {
		t.Fatalf("whoami %v", who.Msg)
	}
}

func unencryptedHTTP2() *http.Protocols {
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	return p
}

// serve serves e's cloud again as outpost-cloud serve does (cloud.Serve:
// HTTP/1.1 and HTTP/2, cleartext without a certificate), on loopback until
// the test ends, and returns its host:port.
func serve(t *testing.T, e *env, certFile, keyFile string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cloud.Serve(ctx, ln, e.Server.Handler(), certFile, keyFile, zap.NewNop()) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return ln.Addr().String()
}
