package relay

import (
	"context"
	"net/http"

	"connectrpc.com/connect"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1/fleetv1connect"
)

// ServiceOptions configures NewService.
type ServiceOptions struct {
	// Assert returns the cloud's signed assertion that the caller of ctx
	// offers sdp to partID (credential.SignAssertion): what the part gets
	// instead of the caller's credential. Required.
	Assert func(ctx context.Context, partID, sdp string) (string, error)
	// ClientAddress names the client's address, which the part throttles
	// and audits by; nil means the TCP peer's. Behind a load balancer, set
	// it to read the balancer's forwarding header.
	ClientAddress func(peer connect.Peer, header http.Header) string
}

// NewService returns the client side of the relay, RelayService, to mount
// with fleetv1connect.NewRelayServiceHandler behind the cloud's authz
// interceptor: that interceptor authenticates the caller and requires
// machine.control on the part (relay.proto's rule); this handler relays the
// offer with opts.Assert's assertion, never the caller's credential.
func NewService(b Relayer, opts ServiceOptions) fleetv1connect.RelayServiceHandler {
	if b == nil || opts.Assert == nil {
		panic("relay.NewService: a Relayer (Broker or Shared) and ServiceOptions.Assert are required")
	}
	s := service{b: b, assert: opts.Assert, addrOf: opts.ClientAddress}
	if s.addrOf == nil {
		s.addrOf = func(p connect.Peer, _ http.Header) string { return p.Addr }
	}
	return s
}

type service struct {
	b      Relayer
	assert func(ctx context.Context, partID, sdp string) (string, error)
	addrOf func(connect.Peer, http.Header) string
}

// RelayOffer relays the offer and returns the part's answer.
func (s service) RelayOffer(ctx context.Context, req *connect.Request[fleetv1.RelayOfferRequest]) (*connect.Response[fleetv1.RelayOfferResponse], error) {
	o := Offer{PartID: req.Msg.GetPartId(), SDP: req.Msg.GetSdp(), Peer: s.addrOf(req.Peer(), req.Header())}
	if err := validateOffer(Offer{PartID: o.PartID, SDP: o.SDP, Peer: o.Peer, Assertion: "-"}); err != nil {
		return nil, err
	}
	a, err := s.assert(ctx, o.PartID, o.SDP)
	if err != nil {
		return nil, err
	}
	o.Assertion = a
	resp, err := s.b.Relay(ctx, o)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(resp), nil
}
