package controlclient

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

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
	heard, err := controlwire.Browse(ctx, iface, wait)
	if err != nil {
		return nil, fmt.Errorf("discover: %w", err)
	}
	found := map[string]DiscoveredPart{}
	for _, p := range heard {
		found[p.Addr] = p
	}
	out := make([]DiscoveredPart, 0, len(found))
	for _, p := range found {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b DiscoveredPart) int { return strings.Compare(a.Addr, b.Addr) })
	return out, nil
}
