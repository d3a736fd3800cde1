package daemon

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/controlclient"
)

// TestAnnouncesItsControlPort runs the daemon announcing on loopback only
// (nothing leaves this machine) and finds it with the discovery the CLI's
// `outpost robot discover` uses.
func TestAnnouncesItsControlPort(t *testing.T) {
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Skip("no interface named lo")
	}
	p := newPart(t)
	r := run(t, p, clock.NewFake(epoch), func(o *Options) { o.MDNSInterface = "lo" })
	ep := <-r.ready
	_, port, _ := net.SplitHostPort(ep.Control)
	want := "127.0.0.1:" + port
	for range 3 { // the announcer may still be joining the group
		parts, err := controlclient.DiscoverOn(context.Background(), lo, 500*time.Millisecond)
		if err != nil {
			t.Skipf("no multicast on loopback here: %v", err)
		}
		for _, pt := range parts {
			if pt.PartID == "part-1" && pt.Addr == want {
				if _, err := strconv.Atoi(port); err != nil || pt.Fingerprint == "" {
					t.Fatalf("announced %+v", pt)
				}
				return
			}
		}
	}
	t.Skip("heard nothing on loopback: multicast may not loop back here (records are tested in control)")
}
