package controlwire

import (
	"net"
	"testing"

	"github.com/hashicorp/mdns"
)

// TestReadAnnouncement: what a browse answer says, and answers without an
// address or a usable port refused.
func TestReadAnnouncement(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   *mdns.ServiceEntry
		want Announcement
		ok   bool
	}{
		{"v4", &mdns.ServiceEntry{Name: "outpost-p1." + MDNSService + ".local.", AddrV4: net.IPv4(192, 0, 2, 7), Port: 8443, InfoFields: []string{"v=1", "part=p1", "sha256=ff"}},
			Announcement{Instance: "outpost-p1", Addr: "192.0.2.7:8443", PartID: "p1", Fingerprint: "ff"}, true},
		{"v6", &mdns.ServiceEntry{Name: "x", AddrV6IPAddr: &net.IPAddr{IP: net.ParseIP("fd00::7")}, Port: 8443},
			Announcement{Instance: "x", Addr: "[fd00::7]:8443"}, true},
		{"no address", &mdns.ServiceEntry{Name: "x", Port: 8443}, Announcement{}, false},
		{"bad port", &mdns.ServiceEntry{Name: "x", AddrV4: net.IPv4(192, 0, 2, 7), Port: 70000}, Announcement{}, false},
		{"nil", nil, Announcement{}, false},
		{"port 0", &mdns.ServiceEntry{AddrV4: net.IPv4(192, 0, 2, 2)}, Announcement{}, false},
		{"a bare key", &mdns.ServiceEntry{AddrV6IPAddr: &net.IPAddr{IP: net.ParseIP("2001:db8::2")}, Port: 1, InfoFields: []string{"part"}}, Announcement{Addr: "[2001:db8::2]:1"}, true},
	} {
		got, ok := ReadAnnouncement(tc.in)
		if ok != tc.ok || got != tc.want {
			t.Errorf("%s: got %+v %v, want %+v %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}
