package relay

import (
	"strings"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
)

// FuzzAnswerResult: whatever a part sends, the cloud either refuses it
// with InvalidArgument or hands the client a bounded answer, or an error
// with a valid code that says which part refused.
func FuzzAnswerResult(f *testing.F) {
	id := strings.Repeat("ab", 16)
	for _, m := range []*syncv1.AnswerOfferRequest{
		{OfferId: id, Result: &syncv1.AnswerOfferRequest_Answer{Answer: &syncv1.OfferAnswer{Sdp: "v=0", SessionId: "s"}}},
		{OfferId: id, Result: &syncv1.AnswerOfferRequest_Refusal{Refusal: &syncv1.OfferRefusal{Code: 16, Message: "who?"}}},
		{OfferId: id, Result: &syncv1.AnswerOfferRequest_Refusal{Refusal: &syncv1.OfferRefusal{Code: 0}}},
		{OfferId: id, Result: &syncv1.AnswerOfferRequest_Refusal{Refusal: &syncv1.OfferRefusal{Code: 17}}},
		{OfferId: strings.ToUpper(id)},
		{OfferId: id},
		{},
	} {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		req := &syncv1.AnswerOfferRequest{}
		if proto.Unmarshal(raw, req) != nil {
			return
		}
		res, err := answerResult("p1", req)
		if err != nil {
			if connect.CodeOf(err) != connect.CodeInvalidArgument || res.resp != nil || res.err != nil {
				t.Fatalf("refusal %v with result %v", err, res)
			}
			return
		}
		if !validOfferID(req.GetOfferId()) {
			t.Fatalf("accepted offer id %q", req.GetOfferId())
		}
		switch {
		case res.resp != nil && res.err == nil:
			if s := res.resp.GetSdp(); s == "" || len(s) > maxSDP || len(res.resp.GetSessionId()) > maxSessionID {
				t.Fatalf("accepted answer of %d bytes, session id of %d", len(s), len(res.resp.GetSessionId()))
			}
		case res.resp == nil && res.err != nil:
			code := connect.CodeOf(res.err)
			if code < connect.CodeCanceled || code > connect.CodeUnauthenticated || uint32(code) != req.GetRefusal().GetCode() {
				t.Fatalf("refusal code %d became %v", req.GetRefusal().GetCode(), code)
			}
			if len(req.GetRefusal().GetMessage()) > maxRefusal || !strings.Contains(res.err.Error(), "part p1 refused") {
				t.Fatalf("refusal passed as %v", res.err)
			}
		default:
			t.Fatalf("result %v", res)
		}
	})
}

// FuzzValidateOffer: an accepted offer is within every bound.
func FuzzValidateOffer(f *testing.F) {
	f.Add("p1", "v=0", "a.b.c", "192.0.2.1:1")
	f.Add("", "v=0", "a.b.c", "")
	f.Add("p1", "", "a.b.c", "")
	f.Add("p1", "v=0", "", "")
	f.Add("p1", "\xff", "a", "")
	f.Fuzz(func(t *testing.T, part, sdp, auth, peer string) {
		err := validateOffer(Offer{PartID: part, SDP: sdp, Assertion: auth, Peer: peer})
		if err != nil {
			if c := connect.CodeOf(err); c != connect.CodeInvalidArgument && c != connect.CodeUnauthenticated {
				t.Fatalf("refused with %v", err)
			}
			return
		}
		if part == "" || len(part) > maxPartID || sdp == "" || len(sdp) > maxSDP || auth == "" || len(auth) > maxAssertion || len(peer) > maxPeer {
			t.Fatalf("accepted part %d, sdp %d, auth %d, peer %d bytes", len(part), len(sdp), len(auth), len(peer))
		}
	})
}
