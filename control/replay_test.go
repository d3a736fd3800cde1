package control

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/control/v1/controlv1connect"
	"github.com/outpost-robotics/outpost/controlclient"
	"github.com/outpost-robotics/outpost/credential"
)

// recorder is a client transport that keeps the credential headers of
// every request it carries: exactly what the part received.
type recorder struct {
	next http.RoundTripper
	mu   sync.Mutex
	got  []http.Header
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Header.Get("Authorization") != "" {
		r.mu.Lock()
		r.got = append(r.got, http.Header{"Authorization": {req.Header.Get("Authorization")},
			credential.ProofHeader: {req.Header.Get(credential.ProofHeader)}})
		r.mu.Unlock()
	}
	return r.next.RoundTrip(req)
}

func (r *recorder) last() http.Header {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got[len(r.got)-1]
}

// replay calls WhoAmI on e with exactly the headers h, on a new connection.
func replay(t *testing.T, e *env, h http.Header) error {
	t.Helper()
	tlsConf, err := controlclient.PinnedTLSConfig(e.srv.Fingerprint())
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: tlsConf, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	c := controlv1connect.NewControlServiceClient(&http.Client{Transport: tr}, "https://"+e.addr, connect.WithGRPC())
	req := connect.NewRequest(&controlv1.WhoAmIRequest{})
	for k, v := range h {
		req.Header()[k] = v
	}
	_, err = c.WhoAmI(context.Background(), req)
	return err
}

// TestCapturedProofIsUselessElsewhere: what a part receives from a client
// (an owner's API key or session, with its proof) is recorded, as a
// compromised part would keep it, and replayed: at another part of the same
// fleet, whose grants hold the same subjects, it is refused; at the part
// itself it is refused once the part's nonce is stale, however the part's
// wall clock is set.
func TestCapturedProofIsUselessElsewhere(t *testing.T) {
	a := newEnv(t)
	b := newEnvOf(t, a.creds, "p2", nil)
	for _, tc := range []struct{ name, key string }{
		{"api key", a.creds.key(ownerKey)},
		{"session", a.creds.token(ownerUser, tokenKID, a.creds.signer, t0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{next: a.client.Transport}
			c := a.authed(&http.Client{Transport: rec}, "https://"+a.addr, tc.key, connect.WithGRPC())
			if _, err := c.control.WhoAmI(context.Background(), connect.NewRequest(&controlv1.WhoAmIRequest{})); err != nil {
				t.Fatal(err)
			}
			captured := rec.last()
			// The capture is good on the part it was made for, within the
			// nonce's life, even on another connection: it was made for it.
			if err := replay(t, a, captured); err != nil {
				t.Fatalf("the capture on its own part, at once: %v", err)
			}
			// The same subject is an owner on part p2, which refuses it.
			if err := replay(t, b, captured); codeOf(err) != connect.CodeUnauthenticated {
				t.Fatalf("the capture at another part: %v", err)
			}
			// Its own part refuses it once its nonce is stale.
			a.clock.Advance(credential.NonceTTL)
			if err := replay(t, a, captured); codeOf(err) != connect.CodeUnauthenticated {
				t.Fatalf("the capture at its part after the nonce expired: %v", err)
			}
			// The client itself carries on: it learns a fresh nonce.
			if _, err := c.control.WhoAmI(context.Background(), connect.NewRequest(&controlv1.WhoAmIRequest{})); err != nil {
				t.Fatalf("the client after the nonce expired: %v", err)
			}
		})
	}
}

// TestRelayAssertionIsBoundToItsPartAndOffer: an assertion the cloud made
// for an offer to p1 opens no session on p2, none with another offer, none
// after it expired, and is no credential on the LAN.
func TestRelayAssertionIsBoundToItsPartAndOffer(t *testing.T) {
	a := newEnv(t)
	b := newEnvOf(t, a.creds, "p2", nil)
	rule := a.srv.auth.rules[controlv1connect.SignalingServiceOfferProcedure]
	cn := &conn{transport: TransportWebRTC, peer: "relay:192.0.2.1:1"}
	const sdp = "v=0 offer"
	assertion, err := credential.SignAssertion(a.creds.signer, tokenKID, "apikey/"+ownerKey, "p1", sdp, t0)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, refusal := a.srv.auth.authorize(ctx, cn, presented{assertion: assertion, sdp: sdp}, rule); refusal != nil {
		t.Fatalf("on its part: %v", refusal)
	}
	for _, tc := range []struct {
		name string
		e    *env
		sdp  string
		wait time.Duration
	}{
		{"another part", b, sdp, 0},
		{"another offer", a, "v=0 other", 0},
		{"expired", a, sdp, credential.AssertionTTL + credential.ClockSkew},
	} {
		tc.e.clock.Advance(tc.wait)
		if _, refusal := tc.e.srv.auth.authorize(ctx, cn, presented{assertion: assertion, sdp: tc.sdp}, rule); refusal == nil || refusal.Code() != connect.CodeUnauthenticated {
			t.Errorf("%s: %v", tc.name, refusal)
		}
	}
	for _, h := range []string{"DPoP " + assertion, "Bearer " + assertion} {
		if err := replay(t, a, http.Header{"Authorization": {h}, credential.ProofHeader: {assertion}}); codeOf(err) != connect.CodeUnauthenticated {
			t.Errorf("the assertion as %.6s on the LAN: %v", h, err)
		}
	}
}
