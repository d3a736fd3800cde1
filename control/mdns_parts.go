package control

import (
	"context"
	"net"
	"slices"
	"time"

	"go.uber.org/zap"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	"github.com/outpost-robotics/outpost/config"
	"github.com/outpost-robotics/outpost/controlwire"
)

// The main part finds the other parts of its machine on the LAN without
// the cloud: it browses the parts' mDNS announcements and keeps the
// addresses of those whose TXT part id is one of its machine's parts in the
// signed document. An announcement proves nothing: the address is only a
// candidate, and the TLS pin from the signed document still decides whom
// the main part talks to. This is also why this browse lives here and not
// in controlclient: outpostd links no client package.

// matchHeard keeps, by part id, the addresses of answers from the other
// parts of this machine: the TXT part id must be one of parts other than
// self, and an announced fingerprint must be the one the signed document
// pins (an answer with another one is a different certificate, which the
// pin would refuse anyway). Strangers, this part itself and parts with no
// pin yet are left out.
func matchHeard(parts []*configv1.MachinePart, self string, heard []controlwire.Announcement) map[string][]string {
	out := map[string][]string{}
	for _, h := range heard {
		if h.PartID == "" || h.PartID == self {
			continue
		}
		i := slices.IndexFunc(parts, func(p *configv1.MachinePart) bool { return p.GetId() == h.PartID })
		if i < 0 {
			continue
		}
		pin, err := config.NormalizeFingerprint(parts[i].GetFingerprint())
		if err != nil {
			continue
		}
		if h.Fingerprint != "" {
			if fp, err := config.NormalizeFingerprint(h.Fingerprint); err != nil || fp != pin {
				continue
			}
		}
		if !slices.Contains(out[h.PartID], h.Addr) {
			out[h.PartID] = append(out[h.PartID], h.Addr)
		}
	}
	for _, a := range out {
		slices.Sort(a)
	}
	return out
}

// browseWait is how long one browse listens for answers.
const browseWait = 2 * time.Second

// BrowseParts browses the LAN (iface; nil for the system's default
// multicast interface) every interval until ctx is done and, on the main
// part, notes where each other part of the machine was heard (Heard). A
// browse that fails (no multicast) is logged once and tried again.
func (s *Server) BrowseParts(ctx context.Context, iface *net.Interface, interval time.Duration) {
	t := s.opts.Clock.NewTicker(interval)
	defer t.Stop()
	warned := false
	for {
		if err := s.browseOnce(ctx, iface); err != nil && !warned && ctx.Err() == nil {
			s.log.Warn("mDNS browse for the machine's other parts failed; the main part tries the addresses they last reported", zap.Error(err))
			warned = true
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
	}
}

// browseOnce runs one browse and records what it heard of the machine's parts.
func (s *Server) browseOnce(ctx context.Context, iface *net.Interface) error {
	parts, self := s.partsOf(ctx)
	if self == nil || !self.GetMain() || len(parts) < 2 {
		return nil
	}
	heard, err := controlwire.Browse(ctx, iface, browseWait)
	if err != nil {
		return err
	}
	for id, addrs := range matchHeard(parts, self.GetId(), heard) {
		s.Heard(id, addrs)
	}
	return nil
}
