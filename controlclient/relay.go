package controlclient

import (
	"context"

	"connectrpc.com/connect"

	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/control/v1/controlv1connect"
	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1/fleetv1connect"
)

// RelaySignaling adapts a RelayService client to the part's signaling API, so
// DialWebRTC can open a session through the cloud: offers go to
// partID by RelayOffer. Build c with the caller's credentials for the
// cloud (credential.Interceptor): the cloud vouches for the caller to the
// part, which makes that subject the session's identity.
func RelaySignaling(c fleetv1connect.RelayServiceClient, partID string) controlv1connect.SignalingServiceClient {
	return relaySignaling{c: c, partID: partID}
}

type relaySignaling struct {
	c      fleetv1connect.RelayServiceClient
	partID string
}

func (s relaySignaling) Offer(ctx context.Context, req *connect.Request[controlv1.OfferRequest]) (*connect.Response[controlv1.OfferResponse], error) {
	out := connect.NewRequest(&fleetv1.RelayOfferRequest{PartId: s.partID, Sdp: req.Msg.GetSdp()})
	resp, err := s.c.RelayOffer(ctx, out)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&controlv1.OfferResponse{Sdp: resp.Msg.GetSdp(), SessionId: resp.Msg.GetSessionId()}), nil
}
