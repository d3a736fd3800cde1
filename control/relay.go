package control

import (
	"context"
	"errors"
	"time"

	"connectrpc.com/connect"
	"go.uber.org/zap"

	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/control/v1/controlv1connect"
	"github.com/outpost-robotics/outpost/controlwire"
)

// Relay carries WebRTC signaling through the fleet cloud, so a client
// outside the LAN can reach the part while the part is online. The part
// only ever dials out (the sync package implements Relay over the cloud's
// relay endpoint); the media then flows peer to peer, or through the TURN
// servers of Options.ICEServers.
type Relay interface {
	// NextOffer blocks until a client's offer arrives, or ctx is done.
	NextOffer(ctx context.Context) (*controlwire.RelayedOffer, error)
	// Answer sends the answer to the offer's client; with refusal set, the
	// refusal instead (its connect code and message are for the client).
	Answer(ctx context.Context, offerID string, answer *controlv1.OfferResponse, refusal *connect.Error) error
}

// relayRetry is the pause after the relay failed, before asking again.
const relayRetry = 5 * time.Second

// maxRelayed bounds offers being answered at once through the relay.
const maxRelayed = 8

// ServeRelay answers offers relayed by the cloud until ctx is done. Each
// offer goes through the same authorizer as SignalingService.Offer (rule
// "authenticated", throttled and audited as transport "webrtc" from
// "relay:<peer>"); the sessions are the same as LAN sessions.
func (s *Server) ServeRelay(ctx context.Context, r Relay) error {
	rule := s.auth.rules[controlv1connect.SignalingServiceOfferProcedure]
	sem := make(chan struct{}, maxRelayed)
	for {
		off, err := r.NextOffer(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			s.log.Warn("relay: waiting for offers", zap.Error(err))
			if err := s.opts.Clock.Sleep(ctx, relayRetry); err != nil {
				return nil
			}
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		go func() {
			defer func() { <-sem }()
			s.answerRelayed(ctx, r, rule, off)
		}()
	}
}

func (s *Server) answerRelayed(ctx context.Context, r Relay, rule *rule, off *controlwire.RelayedOffer) {
	cn := &conn{transport: TransportWebRTC, peer: "relay:" + off.Peer}
	var resp *controlv1.OfferResponse
	c, refusal := s.auth.authorize(ctx, cn, presented{assertion: off.Assertion, sdp: off.SDP}, rule)
	if refusal == nil {
		var err error
		if resp, err = s.rtc.answer(ctx, c, off.SDP); err != nil {
			// The error policy answers a connect.Error as it is, and
			// anything else as Internal with an id in the part's log.
			errors.As(s.errs.Answer("answer relayed offer", err), &refusal)
		}
	}
	if err := r.Answer(ctx, off.ID, resp, refusal); err != nil {
		s.log.Warn("relay: answer", zap.String("offer", off.ID), zap.Error(err))
	}
}
