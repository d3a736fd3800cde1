package controlclient

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/mdns"
	"github.com/outpost-robotics/outpost/controlwire"
)

// DiscoveredPart is a part that answered on the local network.
type DiscoveredPart = controlwire.Announcement

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
	err := mdns.QueryContext(ctx, &mdns.QueryParam{Service: controlwire.MDNSService, Domain: "local", Timeout: wait, Entries: entries,
		Interface: iface, DisableIPv6: iface != nil && iface.Flags&net.FlagLoopback != 0,
		Logger: log.New(io.Discard, "", 0)}) // the library logs every unparsable packet on the LAN
	close(entries)
	<-done
	if err != nil {
		return nil, fmt.Errorf("discover %s: %w", controlwire.MDNSService, err)
	}
	found := map[string]DiscoveredPart{}
	for _, e := range heard {
		if p, ok := controlwire.ReadAnnouncement(e); ok {
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
