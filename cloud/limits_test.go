package cloud_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1/syncv1connect"
	"github.com/outpost-robotics/outpost/cloud/cloudtest"
	"github.com/outpost-robotics/outpost/netlimit"
	"github.com/outpost-robotics/outpost/netlimit/netlimittest"
)

// TestSlowClientsCannotHoldTheCloud: twice as many slow clients as the
// cloud serves connections send the part sync API a body slowly, or
// headers that never end; the cloud cuts them all off, and the fleet API
// and a part's sync are served.
func TestSlowClientsCannotHoldTheCloud(t *testing.T) {
	lim := netlimit.Limits{MaxConns: 4, ReadHeaderTimeout: 300 * time.Millisecond, BodyTimeout: 300 * time.Millisecond,
		MinBodyRate: 100, IdleTimeout: time.Second}
	e := newEnvWith(t, cloudtest.Options{Limits: lim})
	f := newFleet(t, e)
	p := e.part(t, f.boot)
	addr := strings.TrimPrefix(e.URL, "http://")
	waitClosed := netlimittest.Slowloris(t, 2*lim.MaxConns, syncv1connect.SyncServiceUploadProcedure, func() (net.Conn, error) {
		return net.Dial("tcp", addr)
	})

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := e.client("").Server.GetServerInfo(ctx, connect.NewRequest(&fleetv1.GetServerInfoRequest{})); err != nil {
		t.Fatalf("the fleet API behind slow clients: %v", err)
	}
	p.pull(t)
	waitClosed()
}
