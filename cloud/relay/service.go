package relay

import (
	"context"
	"net/http"

	"connectrpc.com/connect"

	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/control/v1/controlv1connect"
	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1/fleetv1connect"
)

// ServiceOptions configures NewService; the zero value is usable.
type ServiceOptions struct {
	// ClientAddress names the client's address, which the part throttles
	// and audits by; nil means the TCP peer's. Behind a load balancer, set
	// it to read the balancer's forwarding header.
	ClientAddress func(peer connect.Peer, header http.Header) string
}

// NewService returns the client side of the relay, RelayService, to mount
// with fleetv1connect.NewRelayServiceHandler behind the cloud's authz
// interceptor: that interceptor requires machine.control on the part
// (relay.proto's rule), this handler only relays. The caller's own
// Authorization header goes to the part with the offer.
func NewService(b *Broker, opts ServiceOptions) fleetv1connect.RelayServiceHandler {
	if b == nil {
		panic("relay.NewService: a Broker is required")
	}
	s := service{b: b, addrOf: opts.ClientAddress}
	if s.addrOf == nil {
		s.addrOf = func(p connect.Peer, _ http.Header) string { return p.Addr }
	}
	return s
}

type service struct {
	b      *Broker
	addrOf func(connect.Peer, http.Header) string
}

// RelayOffer relays the offer and returns the part's answer.
func (s service) RelayOffer(ctx context.Context, req *connect.Request[fleetv1.RelayOfferRequest]) (*connect.Response[fleetv1.RelayOfferResponse], error) {
	auth := req.Header().Values("Authorization")
	if len(auth) != 1 {
		return nil, connect.NewError(connect.CodeUnauthenticated, errNoCredentials)
	}
	resp, err := s.b.Relay(ctx, Offer{
		PartID:        req.Msg.GetPartId(),
		SDP:           req.Msg.GetSdp(),
		Authorization: auth[0],
		Peer:          s.addrOf(req.Peer(), req.Header()),
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(resp), nil
}

// Signaling adapts a RelayService client to the part's signaling API, so
// control.DialWebRTC can open a session through the cloud: offers go to
// partID by RelayOffer. Build c with the caller's credentials (an
// interceptor setting Authorization): they are the session's identity on
// the part. An Authorization header set on a request passes on too.
func Signaling(c fleetv1connect.RelayServiceClient, partID string) controlv1connect.SignalingServiceClient {
	return signaling{c: c, partID: partID}
}

type signaling struct {
	c      fleetv1connect.RelayServiceClient
	partID string
}

func (s signaling) Offer(ctx context.Context, req *connect.Request[controlv1.OfferRequest]) (*connect.Response[controlv1.OfferResponse], error) {
	out := connect.NewRequest(&fleetv1.RelayOfferRequest{PartId: s.partID, Sdp: req.Msg.GetSdp()})
	if a := req.Header().Get("Authorization"); a != "" {
		out.Header().Set("Authorization", a)
	}
	resp, err := s.c.RelayOffer(ctx, out)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&controlv1.OfferResponse{Sdp: resp.Msg.GetSdp(), SessionId: resp.Msg.GetSessionId()}), nil
}
