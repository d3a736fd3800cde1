package cloudsync

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1/syncv1connect"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/controlwire"
)

// RelayOptions configures NewRelay; only Client is required.
type RelayOptions struct {
	// Client is the part's sync client (NewClient): the relay's calls carry
	// the part's credentials like every other call to the cloud.
	Client syncv1connect.SyncServiceClient
	// Clock paces the pauses below; nil means the machine's clock.
	Clock clock.Clock
	// PollWait is how long each long poll asks the cloud to wait for an
	// offer; 0 leaves it to the cloud (20 s, at most 25 s: inside the
	// client's 30 s response timeout).
	PollWait time.Duration
	// MinPoll is the least time between two polls that brought nothing, so
	// a cloud answering empty polls at once cannot spin the part's CPU;
	// 0 means 1 s.
	MinPoll time.Duration
	// UnsupportedPause is how long NextOffer waits before it reports a
	// cloud that relays no signaling (Unimplemented), so the control
	// plane's retry loop logs that once in a while, not every few seconds;
	// 0 means 10 minutes.
	UnsupportedPause time.Duration
}

// Relay is the control server's relay (control.Relay) over the part's sync client: NextOffer long-polls
// the cloud (SyncService.NextOffer) and Answer sends the control plane's
// answer or refusal back (SyncService.AnswerOffer). The part decides each
// offer itself, with its cached grants; the cloud only carries it.
type Relay struct {
	client      syncv1connect.SyncServiceClient
	clock       clock.Clock
	wait        time.Duration
	minPoll     time.Duration
	unsupported time.Duration
}

// maxRefusalMessage is the cloud's bound on a refusal's message.
const maxRefusalMessage = 1024

// NewRelay returns a relay over opts.Client.
func NewRelay(opts RelayOptions) (*Relay, error) {
	if opts.Client == nil {
		return nil, errors.New("new relay: a sync client is required")
	}
	r := &Relay{client: opts.Client, clock: opts.Clock, wait: opts.PollWait,
		minPoll: cmp.Or(opts.MinPoll, time.Second), unsupported: cmp.Or(opts.UnsupportedPause, 10*time.Minute)}
	if r.clock == nil {
		r.clock = clock.NewReal()
	}
	return r, nil
}

// NextOffer polls the cloud until it relays an offer for this part, ctx
// ends, or a poll fails (the control plane retries).
func (r *Relay) NextOffer(ctx context.Context) (*controlwire.RelayedOffer, error) {
	req := &syncv1.NextOfferRequest{}
	if r.wait > 0 {
		req.MaxWait = durationpb.New(r.wait)
	}
	for {
		start := r.clock.Uptime()
		resp, err := r.client.NextOffer(ctx, connect.NewRequest(req))
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if connect.CodeOf(err) == connect.CodeUnimplemented {
				if err := r.clock.Sleep(ctx, r.unsupported); err != nil {
					return nil, err
				}
			}
			return nil, fmt.Errorf("ask the cloud for relayed offers: %w", err)
		}
		if o := resp.Msg.GetOffer(); o != nil {
			if o.GetId() == "" {
				return nil, errors.New("ask the cloud for relayed offers: the cloud sent an offer without an id")
			}
			return &controlwire.RelayedOffer{ID: o.GetId(), SDP: o.GetSdp(), Assertion: o.GetAssertion(), Peer: o.GetPeer()}, nil
		}
		// The wait ended with no offer: ask again, but never faster than
		// MinPoll.
		if took := r.clock.Uptime() - start; took < r.minPoll {
			if err := r.clock.Sleep(ctx, r.minPoll-took); err != nil {
				return nil, err
			}
		}
	}
}

// Answer sends the control plane's answer, or its refusal, to the client
// waiting on the offer.
func (r *Relay) Answer(ctx context.Context, offerID string, answer *controlv1.OfferResponse, refusal *connect.Error) error {
	req := &syncv1.AnswerOfferRequest{OfferId: offerID}
	switch {
	case refusal != nil:
		code := refusal.Code()
		if code < connect.CodeCanceled || code > connect.CodeUnauthenticated {
			code = connect.CodeUnknown
		}
		req.Result = &syncv1.AnswerOfferRequest_Refusal{Refusal: &syncv1.OfferRefusal{
			Code: uint32(code), Message: truncateUTF8(strings.ToValidUTF8(refusal.Message(), "?"), maxRefusalMessage),
		}}
	case answer == nil:
		// Never leave the client to time out: tell it something went wrong.
		req.Result = &syncv1.AnswerOfferRequest_Refusal{Refusal: &syncv1.OfferRefusal{
			Code: uint32(connect.CodeInternal), Message: "the part produced no answer",
		}}
	default:
		req.Result = &syncv1.AnswerOfferRequest_Answer{Answer: &syncv1.OfferAnswer{Sdp: answer.GetSdp(), SessionId: answer.GetSessionId()}}
	}
	if _, err := r.client.AnswerOffer(ctx, connect.NewRequest(req)); err != nil {
		return fmt.Errorf("send the answer to relayed offer %s: %w", offerID, err)
	}
	return nil
}

// truncateUTF8 shortens s to at most n bytes, on a rune boundary.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
