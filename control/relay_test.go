package control

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	"github.com/outpost-robotics/outpost/controlclient"
	"github.com/outpost-robotics/outpost/controlwire"
	"github.com/outpost-robotics/outpost/credential"
)

// memRelay stands in for the cloud's relay: offers in, answers out.
type memRelay struct {
	offers chan *controlwire.RelayedOffer
	fail   chan error // errors NextOffer returns first

	mu      sync.Mutex
	next    int
	waiting map[string]chan relayAnswer
}

type relayAnswer struct {
	resp    *controlv1.OfferResponse
	refusal *connect.Error
}

func newMemRelay() *memRelay {
	return &memRelay{offers: make(chan *controlwire.RelayedOffer), fail: make(chan error, 1), waiting: map[string]chan relayAnswer{}}
}

func (m *memRelay) NextOffer(ctx context.Context) (*controlwire.RelayedOffer, error) {
	select {
	case err := <-m.fail:
		return nil, err
	default:
	}
	select {
	case o := <-m.offers:
		return o, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (m *memRelay) Answer(_ context.Context, id string, resp *controlv1.OfferResponse, refusal *connect.Error) error {
	m.mu.Lock()
	ch, ok := m.waiting[id]
	delete(m.waiting, id)
	m.mu.Unlock()
	if !ok {
		return errors.New("no such offer")
	}
	ch <- relayAnswer{resp, refusal}
	return nil
}

// signaling is a client's SignalingServiceClient through the relay: the
// relay (the cloud) vouches for subject with an assertion signed by key,
// made at now() for this part and each offer's SDP.
func (m *memRelay) signaling(subject string, key ed25519.PrivateKey, now func() time.Time) relaySignaling {
	return relaySignaling{m, subject, key, now}
}

type relaySignaling struct {
	m       *memRelay
	subject string
	key     ed25519.PrivateKey
	now     func() time.Time
}

func (r relaySignaling) Offer(ctx context.Context, req *connect.Request[controlv1.OfferRequest]) (*connect.Response[controlv1.OfferResponse], error) {
	r.m.mu.Lock()
	r.m.next++
	id := fmt.Sprint("offer-", r.m.next)
	ch := make(chan relayAnswer, 1)
	r.m.waiting[id] = ch
	r.m.mu.Unlock()
	a, err := credential.SignAssertion(r.key, tokenKID, r.subject, "p1", req.Msg.GetSdp(), r.now())
	if err != nil {
		return nil, err
	}
	select {
	case r.m.offers <- &controlwire.RelayedOffer{ID: id, SDP: req.Msg.GetSdp(), Assertion: a, Peer: "203.0.113.9:4242"}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case a := <-ch:
		if a.refusal != nil {
			return nil, a.refusal
		}
		return connect.NewResponse(a.resp), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func TestRelayedSignaling(t *testing.T) {
	e := newEnv(t)
	relay := newMemRelay()
	relay.fail <- errors.New("cloud unreachable") // the loop survives a failing relay
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- e.srv.ServeRelay(ctx, relay) }()
	if err := e.clock.BlockUntil(ctx, 1); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(relayRetry)

	rc, err := controlclient.DialWebRTCWith(ctx, relay.signaling("apikey/"+opKey, e.creds.signer, e.clock.Now), nil, controlwire.LoopbackICE)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	c := newClients(rc.HTTPClient(), controlclient.RTCBaseURL)
	runCalls(t, e, c, operator)
	who, err := c.control.WhoAmI(ctx, connect.NewRequest(&controlv1.WhoAmIRequest{}))
	if err != nil || who.Msg.GetTransport() != TransportWebRTC {
		t.Fatalf("whoami %v %v", who, err)
	}
	var sawRelay bool
	for _, ev := range e.audit.all() {
		sawRelay = sawRelay || strings.HasPrefix(ev.GetPeer(), "relay:203.0.113.9")
	}
	if !sawRelay {
		t.Error("no audit event names the relayed peer")
	}

	// Refusals travel back through the relay with their code.
	_, err = controlclient.DialWebRTCWith(ctx, relay.signaling("apikey/"+goneKey, e.creds.signer, e.clock.Now), nil, controlwire.LoopbackICE)
	if codeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("relayed offer for a revoked key: %v", err)
	}
	_, err = controlclient.DialWebRTCWith(ctx, relay.signaling("apikey/"+opKey, e.creds.other, e.clock.Now), nil, controlwire.LoopbackICE)
	if codeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("relayed offer with an assertion the cloud did not sign: %v", err)
	}
	_, err = relay.signaling("apikey/"+opKey, e.creds.signer, e.clock.Now).Offer(ctx, connect.NewRequest(&controlv1.OfferRequest{Sdp: "garbage"}))
	if codeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("relayed garbage: %v", err)
	}
	cancel()
	if err := <-served; err != nil {
		t.Fatal(err)
	}
}
