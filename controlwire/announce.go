package controlwire

import (
	"net"
	"strconv"
	"strings"

	"github.com/hashicorp/mdns"
)

// Announcement is one part's mDNS answer as read from the network: what it
// claims, which a reader checks against a pinned fingerprint before it
// trusts anything.
type Announcement struct {
	// Instance is the announced instance name.
	Instance string
	// Addr is HOST:PORT of the part's control plane.
	Addr string
	// PartID is the part's id, from TXT.
	PartID string
	// Fingerprint is the announced certificate fingerprint, from TXT.
	Fingerprint string
}

// ReadAnnouncement reads a browse answer for MDNSService; false for one
// that names no address or no usable port.
func ReadAnnouncement(e *mdns.ServiceEntry) (Announcement, bool) {
	if e == nil || e.Port <= 0 || e.Port > 65535 {
		return Announcement{}, false
	}
	var ip net.IP
	switch {
	case e.AddrV4 != nil:
		ip = e.AddrV4
	case e.AddrV6IPAddr != nil:
		ip = e.AddrV6IPAddr.IP
	default:
		return Announcement{}, false
	}
	a := Announcement{Instance: strings.TrimSuffix(e.Name, "."+MDNSService+".local."), Addr: net.JoinHostPort(ip.String(), strconv.Itoa(e.Port))}
	for _, f := range e.InfoFields {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case TXTPart:
			a.PartID = v
		case TXTFingerprint:
			a.Fingerprint = v
		}
	}
	return a, true
}
