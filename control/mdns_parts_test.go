package control

import (
	"context"
	"maps"
	"net"
	"strconv"
	"strings"
	"testing"

	"connectrpc.com/connect"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	"github.com/outpost-robotics/outpost/controlwire"
)

func TestMatchHeard(t *testing.T) {
	pin1, pin2 := strings.Repeat("ab", 32), strings.Repeat("cd", 32)
	parts := []*configv1.MachinePart{
		{Id: "p1", Name: "rover", Main: true, Fingerprint: pin1},
		{Id: "p2", Name: "camera-pi", Fingerprint: pin2},
		{Id: "p3", Name: "new-pi"}, // has reported no certificate yet
	}
	for _, tc := range []struct {
		name  string
		heard []controlwire.Announcement
		want  map[string][]string
	}{
		{"another part, pinned fingerprint", []controlwire.Announcement{{PartID: "p2", Fingerprint: pin2, Addr: "192.0.2.2:8443"}}, map[string][]string{"p2": {"192.0.2.2:8443"}}},
		{"fingerprint in upper case with colons", []controlwire.Announcement{{PartID: "p2", Fingerprint: colons(strings.ToUpper(pin2)), Addr: "192.0.2.2:8443"}}, map[string][]string{"p2": {"192.0.2.2:8443"}}},
		{"no fingerprint announced: the pin decides at dial", []controlwire.Announcement{{PartID: "p2", Addr: "192.0.2.2:8443"}}, map[string][]string{"p2": {"192.0.2.2:8443"}}},
		{"two addresses, one twice", []controlwire.Announcement{{PartID: "p2", Addr: "[2001:db8::2]:8443"}, {PartID: "p2", Addr: "192.0.2.2:8443"}, {PartID: "p2", Addr: "192.0.2.2:8443"}},
			map[string][]string{"p2": {"192.0.2.2:8443", "[2001:db8::2]:8443"}}},
		{"this part itself", []controlwire.Announcement{{PartID: "p1", Fingerprint: pin1, Addr: "192.0.2.1:8443"}}, map[string][]string{}},
		{"a part of another machine", []controlwire.Announcement{{PartID: "p9", Addr: "192.0.2.9:8443"}}, map[string][]string{}},
		{"no part id", []controlwire.Announcement{{Addr: "192.0.2.9:8443"}}, map[string][]string{}},
		{"another certificate than the pin", []controlwire.Announcement{{PartID: "p2", Fingerprint: pin1, Addr: "192.0.2.66:8443"}}, map[string][]string{}},
		{"a fingerprint that is not one", []controlwire.Announcement{{PartID: "p2", Fingerprint: "zz", Addr: "192.0.2.66:8443"}}, map[string][]string{}},
		{"a part with no pin yet", []controlwire.Announcement{{PartID: "p3", Addr: "192.0.2.3:8443"}}, map[string][]string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := matchHeard(parts, "p1", tc.heard); !maps.EqualFunc(got, tc.want, func(a, b []string) bool { return strings.Join(a, ",") == strings.Join(b, ",") }) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestForwardToHeardAddress: a part whose address the signed document does
// not hold (it never reported one) is reached at the address the main part
// heard on the LAN; an address heard for it that another part answers on is
// refused by the pin.
func TestForwardToHeardAddress(t *testing.T) {
	mainPart, second := twoParts(t)
	stranger := newEnv(t)
	mainPart.config.mu.Lock()
	parts := mainPart.config.state.Parts
	parts[1].Addresses = nil
	mainPart.config.mu.Unlock()
	call := func() error {
		_, err := mainPart.grpc(mainPart.creds.key(opKey)).comp.MotorSetPower(context.Background(),
			connect.NewRequest(&controlv1.MotorSetPowerRequest{Name: "wheel", Power: 0.2}))
		return err
	}
	if err := call(); connect.CodeOf(err) != connect.CodeUnavailable || !strings.Contains(err.Error(), `part "camera-pi" (part/p2)`) {
		t.Fatalf("with no address known: %v", err)
	}
	mainPart.srv.Heard("p2", []string{stranger.addr})
	if err := call(); err == nil || !strings.Contains(err.Error(), "pins") {
		t.Fatalf("another part answering at the heard address: %v", err)
	}
	mainPart.srv.Heard("p2", []string{second.addr})
	if err := call(); err != nil {
		t.Fatalf("at the heard address: %v", err)
	}
}

// TestBrowseParts announces the second part on loopback and has the main
// part browse for it there; where loopback carries no multicast it skips
// (TestMatchHeard and TestForwardToHeardAddress cover the rest).
func TestBrowseParts(t *testing.T) {
	if testing.Short() {
		t.Skip("multicast")
	}
	lo := loopbackInterface(t)
	mainPart, second := twoParts(t)
	_, port, _ := net.SplitHostPort(second.addr)
	p, _ := strconv.Atoi(port)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Announce(ctx, Announcement{PartID: "p2", Port: p, Fingerprint: second.srv.Fingerprint(), HostName: "camera-pi.local",
			IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Interface: lo}, nil)
	}()
	defer func() { cancel(); <-done }()
	if err := mainPart.srv.browseOnce(context.Background(), lo); err != nil {
		t.Skipf("no multicast here: %v", err)
	}
	mainPart.srv.peers.mu.Lock()
	got := mainPart.srv.peers.found["p2"]
	mainPart.srv.peers.mu.Unlock()
	if len(got) == 0 {
		t.Skip("no multicast here: nothing heard on loopback")
	}
	if got[0] != second.addr {
		t.Fatalf("heard %v, want %s", got, second.addr)
	}
}

func FuzzMatchHeard(f *testing.F) {
	f.Add("p2", strings.Repeat("cd", 32), "192.0.2.2:8443")
	f.Add("", "", "")
	f.Add("p1", "zz:zz", "\xff")
	parts := []*configv1.MachinePart{{Id: "p1", Main: true, Fingerprint: strings.Repeat("ab", 32)}, {Id: "p2", Fingerprint: strings.Repeat("cd", 32)}}
	f.Fuzz(func(t *testing.T, id, fp, addr string) {
		got := matchHeard(parts, "p1", []controlwire.Announcement{{PartID: id, Fingerprint: fp, Addr: addr}})
		for k := range got {
			if k != "p2" {
				t.Fatalf("kept %q, which is not another part of the machine", k)
			}
		}
	})
}
