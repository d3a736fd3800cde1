package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/outpost-robotics/outpost/controlclient"
)

// TestPickDiscovered covers how `outpost robot console` chooses among the
// parts heard by mDNS: the one part, the part named, and clear errors for
// none, an unknown name, several, and a hostile announced id.
func TestPickDiscovered(t *testing.T) {
	a := controlclient.DiscoveredPart{PartID: "part-a", Addr: "192.0.2.1:8443"}
	b := controlclient.DiscoveredPart{PartID: "part-b", Addr: "192.0.2.2:8443"}
	evil := controlclient.DiscoveredPart{PartID: "evil\x1b[2J", Addr: "192.0.2.3:8443"}
	for _, tc := range []struct {
		name   string
		parts  []controlclient.DiscoveredPart
		partID string
		addr   string
		errHas []string
	}{
		{"the one part", []controlclient.DiscoveredPart{a}, "", a.Addr, nil},
		{"the part named", []controlclient.DiscoveredPart{a, b}, "part-b", b.Addr, nil},
		{"none", nil, "", "", []string{"no part answered", "3s", "--robot HOST:PORT"}},
		{"an unknown name", []controlclient.DiscoveredPart{a}, "part-z", "", []string{"no part part-z answered", "--robot"}},
		{"several", []controlclient.DiscoveredPart{a, b}, "", "", []string{"several parts answered", "part-a at 192.0.2.1:8443", "part-b at 192.0.2.2:8443"}},
		{"a hostile id is shown escaped", []controlclient.DiscoveredPart{a, evil}, "", "", []string{"several parts answered"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, err := pickDiscovered(tc.parts, tc.partID, 3*time.Second)
			if addr != tc.addr {
				t.Errorf("address %q, want %q", addr, tc.addr)
			}
			if tc.errHas == nil {
				if err != nil {
					t.Fatalf("error %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, s := range tc.errHas {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
			if strings.ContainsRune(err.Error(), '\x1b') {
				t.Errorf("error %q carries a terminal escape from the network", err)
			}
		})
	}
}
