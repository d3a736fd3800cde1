package controlclient

import (
	"net"
	"testing"

	"github.com/hashicorp/mdns"
	"github.com/outpost-robotics/outpost/controlwire"
)

func TestBrowseParsing(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   *mdns.ServiceEntry
		want DiscoveredPart
		ok   bool
	}{
		{"v4", &mdns.ServiceEntry{Name: "outpost-p1." + controlwire.MDNSService + ".local.", AddrV4: net.IPv4(192, 0, 2, 7), Port: 8443, InfoFields: []string{"v=1", "part=p1", "sha256=ff"}},
			DiscoveredPart{Instance: "outpost-p1", Addr: "192.0.2.7:8443", PartID: "p1", Fingerprint: "ff"}, true},
		{"v6", &mdns.ServiceEntry{Name: "x", AddrV6IPAddr: &net.IPAddr{IP: net.ParseIP("fd00::7")}, Port: 8443},
			DiscoveredPart{Instance: "x", Addr: "[fd00::7]:8443"}, true},
		{"no address", &mdns.ServiceEntry{Name: "x", Port: 8443}, DiscoveredPart{}, false},
		{"bad port", &mdns.ServiceEntry{Name: "x", AddrV4: net.IPv4(192, 0, 2, 7), Port: 70000}, DiscoveredPart{}, false},
		{"nil", nil, DiscoveredPart{}, false},
	} {
		got, ok := partOf(tc.in)
		if ok != tc.ok || got != tc.want {
			t.Errorf("%s: got %+v %v, want %+v %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}
