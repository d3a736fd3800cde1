package control

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/hashicorp/mdns"
	"github.com/outpost-robotics/outpost/controlwire"
	"go.uber.org/zap"
)

// The mDNS library is github.com/hashicorp/mdns: it answers DNS-SD (PTR,
// SRV, TXT, A/AAAA) and browses, on miekg/dns, and it resolves from the
// module proxy here; grandcat/zeroconf, libp2p/zeroconf and brutella/dnssd
// do not (403), and pion/mdns (already in pion's graph) answers only A
// queries for .local names, not service records.

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
	txt := []string{controlwire.TXTVersion + "=1", controlwire.TXTPart + "=" + a.PartID}
	if a.Fingerprint != "" {
		txt = append(txt, controlwire.TXTFingerprint+"="+a.Fingerprint)
	}
	z, err := mdns.NewMDNSService("outpost-"+a.PartID, controlwire.MDNSService, "local.", host, a.Port, ips, txt)
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
		return fmt.Errorf("announce %s: %w", controlwire.MDNSService, err)
	}
	<-ctx.Done()
	return srv.Shutdown()
}
