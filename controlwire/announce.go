package controlwire

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"strconv"
	"strings"
	"time"

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

// Browse asks the network for MDNSService on iface (nil: the system's
// default multicast interface) for wait, and returns the announcements
// heard, as ReadAnnouncement reads them, in the order they came.
func Browse(ctx context.Context, iface *net.Interface, wait time.Duration) ([]Announcement, error) {
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
		return nil, fmt.Errorf("browse %s: %w", MDNSService, err)
	}
	var out []Announcement
	for _, e := range heard {
		if a, ok := ReadAnnouncement(e); ok {
			out = append(out, a)
		}
	}
	return out, nil
}
