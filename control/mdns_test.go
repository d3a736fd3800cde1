package control

import (
	"context"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/outpost-robotics/outpost/controlclient"
	"github.com/outpost-robotics/outpost/controlwire"
)

// The sandbox this was written in has no multicast route, so the tests
// check the records an announcement answers with and the parsing of
// browse answers; TestAnnounceAndDiscover runs the real thing where
// multicast works and skips otherwise.

func testAnnouncement() Announcement {
	return Announcement{PartID: "p1", Port: controlwire.DefaultPort, Fingerprint: strings.Repeat("ab", 32), HostName: "robot-7.local", IPs: []net.IP{net.IPv4(192, 0, 2, 7)}}
}

func TestAnnouncementRecords(t *testing.T) {
	z, err := testAnnouncement().zone()
	if err != nil {
		t.Fatal(err)
	}
	ptr := z.Records(dns.Question{Name: controlwire.MDNSService + ".local.", Qtype: dns.TypePTR, Qclass: dns.ClassINET})
	if len(ptr) == 0 {
		t.Fatal("no answer to a browse for " + controlwire.MDNSService)
	}
	var sawPTR, sawSRV, sawTXT, sawA bool
	for _, rr := range ptr {
		switch r := rr.(type) {
		case *dns.PTR:
			sawPTR = r.Ptr == "outpost-p1."+controlwire.MDNSService+".local."
		case *dns.SRV:
			sawSRV = r.Port == controlwire.DefaultPort && r.Target == "robot-7.local."
		case *dns.TXT:
			sawTXT = slices.Contains(r.Txt, "part=p1") && slices.Contains(r.Txt, "sha256="+strings.Repeat("ab", 32))
		case *dns.A:
			sawA = r.A.Equal(net.IPv4(192, 0, 2, 7))
		}
	}
	if !sawPTR || !sawSRV || !sawTXT || !sawA {
		t.Fatalf("records %v: PTR %v SRV %v TXT %v A %v", ptr, sawPTR, sawSRV, sawTXT, sawA)
	}
	if _, err := (Announcement{Port: 1}).zone(); err == nil {
		t.Fatal("an announcement without a part id")
	}
}

// TestAnnounceAndDiscover announces and browses on the loopback interface
// only: tests send nothing beyond this machine. Where loopback carries no
// multicast it skips; the records and the parsing are covered above.
func TestAnnounceAndDiscover(t *testing.T) {
	if testing.Short() {
		t.Skip("multicast")
	}
	lo := loopbackInterface(t)
	a := testAnnouncement()
	a.IPs = []net.IP{net.IPv4(127, 0, 0, 1)}
	a.Interface = lo
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Announce(ctx, a, nil) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Logf("announce: %v", err)
		}
	}()
	parts, err := controlclient.DiscoverOn(context.Background(), lo, 500*time.Millisecond)
	if err != nil || len(parts) == 0 {
		t.Skipf("no multicast here (%v, %d parts heard): records and parsing are covered above", err, len(parts))
	}
	// Every process on this machine shares loopback multicast: other
	// tests' parts may answer too. Ours must be among them, exactly.
	for _, p := range parts {
		if p.PartID == "p1" {
			if p.Addr != "127.0.0.1:8443" || p.Fingerprint != a.Fingerprint {
				t.Fatalf("heard p1 as %+v", p)
			}
			return
		}
	}
	t.Fatalf("p1 not among the parts heard: %+v", parts)
}

func loopbackInterface(t *testing.T) *net.Interface {
	t.Helper()
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for i := range ifs {
		if ifs[i].Flags&net.FlagLoopback != 0 && ifs[i].Flags&net.FlagUp != 0 {
			return &ifs[i]
		}
	}
	t.Skip("no loopback interface")
	return nil
}
