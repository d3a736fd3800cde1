package cloud_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"connectrpc.com/connect"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1/fleetv1connect"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/cloud/cloudtest"
	"github.com/outpost-robotics/outpost/credential"
)

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
		relay := fleetv1connect.NewRelayServiceClient(http.DefaultClient, e.URL, connect.WithInterceptors(cloudtest.CloudAuth(e.adminToken, e.clk.Now)))
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
	captured := map[string]credential.Bearer{
		"relay assertion as a token":  {Authorization: "DPoP " + assertion, Proof: assertion},
		"relay assertion as a bearer": {Authorization: "Bearer " + assertion},
		"part secret":                 {Authorization: "Bearer " + f.boot.GetPartId() + ":" + f.boot.GetPartSecret()},
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
		captured[name+" proof for a part"] = credential.Bearer{Authorization: a, Proof: proof}
		captured[name+" token alone"] = credential.Bearer{Authorization: "Bearer " + k.Token}
	}
	for name, b := range captured {
		t.Run(name, func(t *testing.T) {
			c := fleetv1connect.NewOrgServiceClient(http.DefaultClient, e.URL, connect.WithInterceptors(b))
			_, err := c.RenameOrg(ctx, connect.NewRequest(&fleetv1.RenameOrgRequest{OrgId: f.org, Name: "owned"}))
			wantCode(t, err, connect.CodeUnauthenticated, "")
		})
	}
	// Nothing changed.
	orgs := check(e.client(e.adminToken).Org.ListOrgs(ctx, connect.NewRequest(&fleetv1.ListOrgsRequest{})))(t)
	for _, o := range orgs.GetOrgs() {
		if o.GetName() == "owned" {
			t.Fatal("a captured credential renamed the org")
		}
	}
}
