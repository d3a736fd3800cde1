package cloud

import (
	"context"
	"net/http"
	"testing"
	"time"

	"connectrpc.com/connect"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1/fleetv1connect"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/credential"
)

// headers is an interceptor sending exactly h.
type headers http.Header

func (h headers) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		for k, v := range h {
			req.Header()[k] = v
		}
		return next(ctx, req)
	}
}

func (h headers) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (h headers) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// TestWhatAPartSeesIsUselessAtTheCloud: a compromised part keeps what it
// receives (a relayed offer's assertion, read from the real relay path
// with the part's own secret; the proofs clients send it on the LAN, with
// API keys and sessions, the admin's included) and presents it to the
// fleet API, with or without its own secret: every call is refused.
func TestWhatAPartSeesIsUselessAtTheCloud(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e := newEnv(t)
	f := newFleet(t, e)
	p := e.part(t, f.boot)

	// The owner reaches the part through the relay; the part reads what
	// came with the offer.
	done := make(chan error, 1)
	go func() {
		relay := fleetv1connect.NewRelayServiceClient(http.DefaultClient, e.url, connect.WithInterceptors(e.bearer(e.adminToken)))
		_, err := relay.RelayOffer(ctx, connect.NewRequest(&fleetv1.RelayOfferRequest{PartId: f.boot.GetPartId(), Sdp: "v=0 offer"}))
		done <- err
	}()
	next, err := p.client.NextOffer(ctx, connect.NewRequest(&syncv1.NextOfferRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	assertion := next.Msg.GetOffer().GetAssertion()
	if assertion == "" {
		t.Fatalf("the part received %v", next.Msg.GetOffer())
	}
	if _, err := p.client.AnswerOffer(ctx, connect.NewRequest(&syncv1.AnswerOfferRequest{OfferId: next.Msg.GetOffer().GetId(),
		Result: &syncv1.AnswerOfferRequest_Answer{Answer: &syncv1.OfferAnswer{Sdp: "v=0 answer"}}})); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// What clients send the part on its LAN: proofs for its certificate.
	partAud := credential.TLSAudience("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff")
	captured := map[string]http.Header{
		"relay assertion as a token":  {"Authorization": {"DPoP " + assertion}, credential.ProofHeader: {assertion}},
		"relay assertion as a bearer": {"Authorization": {"Bearer " + assertion}},
		"part secret":                 {"Authorization": {"Bearer " + f.boot.GetPartId() + ":" + f.boot.GetPartSecret()}},
	}
	for name, key := range map[string]string{"admin session": e.adminToken, "operator session": e.token(f.user), "api key": f.keySecret} {
		k, err := credential.ParseKey(key)
		if err != nil {
			t.Fatal(err)
		}
		a, proof, err := k.Headers(partAud, "a-nonce-of-the-part", e.clk.Now())
		if err != nil {
			t.Fatal(err)
		}
		captured[name+" proof for a part"] = http.Header{"Authorization": {a}, credential.ProofHeader: {proof}}
		captured[name+" token alone"] = http.Header{"Authorization": {"Bearer " + k.Token}}
	}
	for name, h := range captured {
		t.Run(name, func(t *testing.T) {
			c := fleetv1connect.NewOrgServiceClient(http.DefaultClient, e.url, connect.WithInterceptors(headers(h)))
			_, err := c.RenameOrg(ctx, connect.NewRequest(&fleetv1.RenameOrgRequest{OrgId: f.org, Name: "owned"}))
			wantCode(t, err, connect.CodeUnauthenticated, "")
		})
	}
	// Nothing changed.
	orgs := check(e.client(e.adminToken).org.ListOrgs(ctx, connect.NewRequest(&fleetv1.ListOrgsRequest{})))(t)
	for _, o := range orgs.GetOrgs() {
		if o.GetName() == "owned" {
			t.Fatal("a captured credential renamed the org")
		}
	}
}
