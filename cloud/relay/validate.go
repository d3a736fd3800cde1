package relay

import (
	"fmt"
	"unicode/utf8"

	"connectrpc.com/connect"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/credential"
)

// Bounds on what the relay holds. Real SDPs with gathered candidates are a
// few KiB; the part accepts up to 64 KiB, the fleet API's requests are 64
// KiB in all, so 32 KiB leaves room and keeps a full relay small.
const (
	maxSDP       = 32 << 10
	maxAssertion = credential.MaxHeaderLen // what a part parses
	maxPeer      = 256
	maxPartID    = 128
	maxSessionID = 128
	maxRefusal   = 1024
	offerIDLen   = 32
)

func invalid(format string, a ...any) error {
	return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf(format, a...))
}

// validateOffer checks a client's offer before it takes a place in a queue.
func validateOffer(o Offer) error {
	switch {
	case o.PartID == "" || len(o.PartID) > maxPartID:
		return invalid("relay offer: part_id is required (at most %d bytes)", maxPartID)
	case o.SDP == "" || len(o.SDP) > maxSDP:
		return invalid("relay offer to part %s: sdp of %d bytes: want 1 to %d", o.PartID, len(o.SDP), maxSDP)
	case !utf8.ValidString(o.SDP):
		return invalid("relay offer to part %s: sdp is not UTF-8", o.PartID)
	case o.Assertion == "":
		// The part would refuse it; refusing here spares it the work.
		return connect.NewError(connect.CodeUnauthenticated, fmt.Errorf("relay offer to part %s: no assertion of the caller", o.PartID))
	case len(o.Assertion) > maxAssertion:
		return invalid("relay offer to part %s: the assertion is over %d bytes", o.PartID, maxAssertion)
	case len(o.Peer) > maxPeer:
		return invalid("relay offer to part %s: peer address over %d bytes", o.PartID, maxPeer)
	}
	return nil
}

// validOfferID accepts what newOfferID makes: 32 lowercase hex digits.
func validOfferID(id string) bool {
	if len(id) != offerIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// answerResult checks a part's answer and turns it into what the client
// receives. Its errors are for the part; a valid refusal becomes the
// client's error, with the part's code.
func answerResult(partID string, req *syncv1.AnswerOfferRequest) (result, error) {
	if !validOfferID(req.GetOfferId()) {
		return result{}, invalid("answer offer: offer_id %q is not an offer id (%d hex digits)", truncate(req.GetOfferId(), 64), offerIDLen)
	}
	id := req.GetOfferId()
	switch r := req.GetResult().(type) {
	case *syncv1.AnswerOfferRequest_Answer:
		a := r.Answer
		switch {
		case a.GetSdp() == "" || len(a.GetSdp()) > maxSDP:
			return result{}, invalid("answer offer %s: sdp of %d bytes: want 1 to %d", id, len(a.GetSdp()), maxSDP)
		case len(a.GetSessionId()) > maxSessionID:
			return result{}, invalid("answer offer %s: session_id over %d bytes", id, maxSessionID)
		}
		return result{resp: &fleetv1.RelayOfferResponse{Sdp: a.GetSdp(), SessionId: a.GetSessionId()}}, nil
	case *syncv1.AnswerOfferRequest_Refusal:
		code, msg := r.Refusal.GetCode(), r.Refusal.GetMessage()
		switch {
		case code < uint32(connect.CodeCanceled) || code > uint32(connect.CodeUnauthenticated):
			return result{}, invalid("answer offer %s: refusal code %d: want a Connect code, 1 to 16", id, code)
		case len(msg) > maxRefusal:
			return result{}, invalid("answer offer %s: refusal message over %d bytes", id, maxRefusal)
		case msg == "":
			msg = "no reason given"
		}
		return result{err: connect.NewError(connect.Code(code), fmt.Errorf("part %s refused the session: %s", partID, msg))}, nil
	default:
		return result{}, invalid("answer offer %s: an answer or a refusal is required", id)
	}
}

// truncate shortens s for an error message, on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
