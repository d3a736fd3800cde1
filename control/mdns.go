package control

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/mdns"
	"go.uber.org/zap"
)

// MDNSService is the DNS-SD service type parts announce on the LAN.
//
// The library is github.com/hashicorp/mdns: it answers DNS-SD (PTR, SRV,
// TXT, A/AAAA) and browses, on miekg/dns, and it resolves from the module
// proxy here; grandcat/zeroconf, libp2p/zeroconf and brutella/dnssd do not
// (403), and pion/mdns (already in pion's graph) answers only A queries for
// .local names, not service records.
const MDNSService = "_outpost._tcp"

// TXT record keys of an announcement.
const (
	txtPart        = "part"
	txtFingerprint = "sha256"
	txtVersion     = "v"
)

// Announcement is what a part announces.
type Announcement struct {
	// PartID is the part's id; the instance name is "outpost-<part id>".
	PartID string
	// Port is the control port.
	Port int
	// Fingerprint is the control certificate's SHA-256 (hex), so a client can
	// check it against the cloud before trusting.
	Fingerprint string
	// HostName is the host's DNS name ("" for the system's, with ".local.").
	HostName string
	// IPs are the addresses announced ("" for every up, non-loopback one).
	IPs []net.IP
	// Interface limits the multicast listener to one interface; nil means
	// every multicast interface (the LAN, as a part wants).
	Interface *net.Interface
}

// zone builds the DNS-SD records of an announcement.
func (a Announcement) zone() (*mdns.MDNSService, error) {
	if a.PartID == "" || a.Port <= 0 {
		return nil, errors.New("announce: part id and port are required")
	}
	host := a.HostName
	if host == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("announce: host name: %w", err)
		}
		host = h + ".local."
	}
	if !strings.HasSuffix(host, ".") {
		host += "."
	}
	ips := a.IPs
	if len(ips) == 0 {
		var err error
		if ips, err = lanIPs(); err != nil {
			return nil, err
		}
	}
	txt := []string{txtVersion + "=1", txtPart + "=" + a.PartID}
	if a.Fingerprint != "" {
		txt = append(txt, txtFingerprint+"="+a.Fingerprint)
	}
	z, err := mdns.NewMDNSService("outpost-"+a.PartID, MDNSService, "local.", host, a.Port, ips, txt)
	if err != nil {
		return nil, fmt.Errorf("announce: %w", err)
	}
	return z, nil
}

// lanIPs lists the addresses of up, non-loopback interfaces.
func lanIPs() ([]net.IP, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("announce: list addresses: %w", err)
	}
	var ips []net.IP
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
			ips = append(ips, n.IP)
		}
	}
	if len(ips) == 0 {
		return nil, errors.New("announce: no LAN address")
	}
	return ips, nil
}

// Announce answers mDNS queries for the part until ctx is done.
func Announce(ctx context.Context, a Announcement, logger *zap.Logger) error {
	z, err := a.zone()
	if err != nil {
		return err
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	srv, err := mdns.NewServer(&mdns.Config{Zone: z, Iface: a.Interface, Logger: zap.NewStdLog(logger.Named("mdns"))})
	if err != nil {
		return fmt.Errorf("announce %s: %w", MDNSService, err)
	}
	<-ctx.Done()
	return srv.Shutdown()
}

// DiscoveredPart is a part heard on the LAN.
type DiscoveredPart struct {
	// Instance is the announced instance name.
	Instance string
	// Addr is HOST:PORT to pass to --robot.
	Addr string
	// PartID is the part's id, from TXT.
	PartID string
	// Fingerprint is the announced certificate fingerprint, from TXT; check
	// it against the cloud's before trusting it.
	Fingerprint string
}

// partOf reads a browse answer.
func partOf(e *mdns.ServiceEntry) (DiscoveredPart, bool) {
	if e == nil || e.Port <= 0 || e.Port > 65535 {
		return DiscoveredPart{}, false
	}
	var ip net.IP
	switch {
	case e.AddrV4 != nil:
		ip = e.AddrV4
	case e.AddrV6IPAddr != nil:
		ip = e.AddrV6IPAddr.IP
	default:
		return DiscoveredPart{}, false
	}
	p := DiscoveredPart{Instance: strings.TrimSuffix(e.Name, "."+MDNSService+".local."), Addr: net.JoinHostPort(ip.String(), strconv.Itoa(e.Port))}
	for _, f := range e.InfoFields {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case txtPart:
			p.PartID = v
		case txtFingerprint:
			p.Fingerprint = v
		}
	}
	return p, true
}

// Discover listens for parts for wait and lists them, sorted by address.
func Discover(ctx context.Context, wait time.Duration) ([]DiscoveredPart, error) {
	return DiscoverOn(ctx, nil, wait)
}

// DiscoverOn is Discover on one interface; nil means the system's default
// multicast interface.
func DiscoverOn(ctx context.Context, iface *net.Interface, wait time.Duration) ([]DiscoveredPart, error) {
	entries := make(chan *mdns.ServiceEntry, 64)
	var (
		heard []*mdns.ServiceEntry
		done  = make(chan struct{})
	)
	go func() {
		defer close(done)
		// Only the pointers: the library keeps filling an entry in after
		// sending it, so its fields are read once the query is over.
		for e := range entries {
			heard = append(heard, e)
		}
	}()
	err := mdns.QueryContext(ctx, &mdns.QueryParam{Service: MDNSService, Domain: "local", Timeout: wait, Entries: entries,
		Interface: iface, DisableIPv6: iface != nil && iface.Flags&net.FlagLoopback != 0,
		Logger: log.New(io.Discard, "", 0)}) // the library logs every unparsable packet on the LAN
	close(entries)
	<-done
	if err != nil {
		return nil, fmt.Errorf("discover %s: %w", MDNSService, err)
	}
	found := map[string]DiscoveredPart{}
	for _, e := range heard {
		if p, ok := partOf(e); ok {
			found[p.Addr] = p
		}
	}
	out := make([]DiscoveredPart, 0, len(found))
	for _, p := range found {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b DiscoveredPart) int { return strings.Compare(a.Addr, b.Addr) })
	return out, nil
}
