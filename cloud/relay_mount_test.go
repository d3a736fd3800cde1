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

// TestRelayBehindTheInterceptor: RelayOffer needs machine.control on the
// part; an allowed offer reaches the part with the caller's own credential.
func TestRelayBehindTheInterceptor(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e := newEnv(t)
	f := newFleet(t, e)
	p := e.part(t, f.boot)
	relayAs := func(token string) fleetv1connect.RelayServiceClient {
		return fleetv1connect.NewRelayServiceClient(http.DefaultClient, e.URL, connect.WithInterceptors(cloudtest.CloudAuth(token, e.clk.Now)))
	}
	keyAuth := f.keySecret // "opk_<key id>_<private key>"

	_, err := relayAs("").RelayOffer(ctx, connect.NewRequest(&fleetv1.RelayOfferRequest{PartId: f.boot.GetPartId(), Sdp: "v=0"}))
	wantCode(t, err, connect.CodeUnauthenticated, "")
	_, err = relayAs(keyAuth).RelayOffer(ctx, connect.NewRequest(&fleetv1.RelayOfferRequest{PartId: f.bootOther.GetPartId(), Sdp: "v=0"}))
	wantCode(t, err, connect.CodePermissionDenied, "machine.control")
	_, err = relayAs(keyAuth).RelayOffer(ctx, connect.NewRequest(&fleetv1.RelayOfferRequest{PartId: "0123456789abcdef0123456789abcdef", Sdp: "v=0"}))
	wantCode(t, err, connect.CodeNotFound, "")
	if n, _ := e.Server.RelayLen(); n != 0 {
		t.Fatalf("refused offers left %d behind", n)
	}

	type res struct {
		resp *connect.Response[fleetv1.RelayOfferResponse]
		err  error
	}
	done := make(chan res, 1)
	go func() {
		resp, err := relayAs(keyAuth).RelayOffer(ctx, connect.NewRequest(&fleetv1.RelayOfferRequest{PartId: f.boot.GetPartId(), Sdp: "v=0 offer"}))
		done <- res{resp, err}
	}()
	next, err := p.client.NextOffer(ctx, connect.NewRequest(&syncv1.NextOfferRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	off := next.Msg.GetOffer()
	if off == nil || off.GetSdp() != "v=0 offer" {
		t.Fatalf("the part received %v", off)
	}
	// The part gets the cloud's assertion, for it and this offer, naming
	// the caller; nothing of the caller's credential.
	ac, err := credential.VerifyAssertion(off.GetAssertion(), e.Keys(), f.boot.GetPartId(), "v=0 offer", e.clk.Now())
	if err != nil || ac.Subject != "apikey/"+f.key {
		t.Fatalf("assertion %v %v", ac, err)
	}
	if _, err := p.client.AnswerOffer(ctx, connect.NewRequest(&syncv1.AnswerOfferRequest{OfferId: off.GetId(),
		Result: &syncv1.AnswerOfferRequest_Answer{Answer: &syncv1.OfferAnswer{Sdp: "v=0 answer"}}})); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil || r.resp.Msg.GetSdp() != "v=0 answer" {
		t.Fatalf("RelayOffer: %v %v", r.resp, r.err)
	}
}
