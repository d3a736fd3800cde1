package cloud

import (
	"context"
	"net/http"
	"testing"

	"connectrpc.com/connect"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1/fleetv1connect"
	"github.com/outpost-robotics/outpost/authz"
	"github.com/outpost-robotics/outpost/rbac"
	"github.com/outpost-robotics/outpost/version"
)

// TestServeAnswersEveryProtocol runs the real server on loopback and calls it
// with Connect, gRPC (HTTP/2 cleartext) and gRPC-Web clients.
func TestServeAnswersEveryProtocol(t *testing.T) {
	e := newEnv(t)
	h2c := &http.Client{Transport: &http.Transport{Protocols: unencryptedHTTP2()}}
	clients := map[string]fleetv1connect.ServerServiceClient{
		"connect":      fleetv1connect.NewServerServiceClient(http.DefaultClient, e.url),
		"connect-json": fleetv1connect.NewServerServiceClient(http.DefaultClient, e.url, connect.WithProtoJSON()),
		"grpc":         fleetv1connect.NewServerServiceClient(h2c, e.url, connect.WithGRPC()),
		"grpc-web":     fleetv1connect.NewServerServiceClient(http.DefaultClient, e.url, connect.WithGRPCWeb()),
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
	c := fleetv1connect.NewAuthServiceClient(h2c, e.url, connect.WithGRPC(), connect.WithInterceptors(e.bearer(e.adminToken)))
	who, err := c.WhoAmI(context.Background(), connect.NewRequest(&fleetv1.WhoAmIRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	if !who.Msg.GetAdmin() || who.Msg.GetEmail() != AdminEmail {
		t.Fatalf("whoami %v", who.Msg)
	}
}

func unencryptedHTTP2() *http.Protocols {
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	return p
}

// TestEveryRPCDeclaresARule is the contract's guard: every method of every
// fleet service has an (outpost.authz.v1.rule) the interceptor understands.
func TestEveryRPCDeclaresARule(t *testing.T) {
	rules, err := rulesFor(Services()...)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, sd := range Services() {
		n += sd.Methods().Len()
	}
	if len(rules) != n || n < 40 {
		t.Fatalf("%d rules for %d methods", len(rules), n)
	}
	for proc, r := range rules {
		if r.Marker != authz.NoMarker {
			continue
		}
		for _, rf := range r.Resources {
			switch rf.Kind {
			case "scope", "invite", "apikey":
				continue
			}
			if !accepts(r.Action, mustKind(t, rf.Kind)) {
				t.Errorf("%s: %s cannot name a %s (field %s)", proc, r.Action, rf.Kind, rf.Field.Name())
			}
		}
	}
}

func mustKind(t *testing.T, k string) rbac.ResourceKind {
	t.Helper()
	kind, err := rbac.ParseResourceKind(k)
	if err != nil {
		t.Fatal(err)
	}
	return kind
}
