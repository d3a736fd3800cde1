package relay_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/control/v1/controlv1connect"
	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/cloud/relay"
	"github.com/outpost-robotics/outpost/cloudsync"
	"github.com/outpost-robotics/outpost/control"
	"github.com/outpost-robotics/outpost/controlclient"
	"github.com/outpost-robotics/outpost/controlwire"
	"github.com/outpost-robotics/outpost/credential"
)

// The part's fixture: machine m1 with part p1 in location l1 of org o1; the
// owner's API key holds owner on the machine. The stranger's key is one the
// cloud lets through (it stands for a grant the part has not received) but
// the part does not know.
const (
	ownerKey    = "a0000000000000000000000000000001"
	strangerKey = "a0000000000000000000000000000009"
	// The callers' Authorization headers, as the gate knows them.
	ownerAuth    = "APIKey " + ownerKey
	strangerAuth = "APIKey " + strangerKey
)

// gate lets both callers through, as the subjects they are.
var gate = cloudGate{ownerAuth: "apikey/" + ownerKey, strangerAuth: "apikey/" + strangerKey}

func bundle() *syncv1.GrantBundle {
	return &syncv1.GrantBundle{
		PartId: "p1", MachineId: "m1", Version: 1,
		IssuedAt: timestamppb.New(t0), ExpiresAt: timestamppb.New(t0.Add(60 * 24 * time.Hour)),
		Hierarchy: &syncv1.Hierarchy{
			Orgs:      []string{"o1"},
			Locations: []*syncv1.HierarchyLocation{{Id: "l1", OrgId: "o1"}},
			Machine:   &syncv1.HierarchyMachine{Id: "m1", LocationId: "l1"},
			PartIds:   []string{"p1"},
		},
		Principals: []*syncv1.Principal{{
			Kind: syncv1.SubjectKind_SUBJECT_KIND_API_KEY, Id: ownerKey, DisplayName: "owner's key",
			Grants: []*syncv1.Grant{{Role: syncv1.Role_ROLE_OWNER, Scope: "machine/m1"}},
		}},
		TokenKeys: []*syncv1.PublicKey{{KeyId: cloudKID, Ed25519: cloudKey.Public().(ed25519.PublicKey)}},
	}
}

// The part's dependencies: only grants and audit matter to these tests.
type partGrants struct{}

func (partGrants) CurrentGrants(context.Context) (*syncv1.GrantBundle, error) { return bundle(), nil }

type partAudit struct {
	mu     sync.Mutex
	events []*syncv1.AuditEvent
}

func (a *partAudit) Append(_ context.Context, ev *syncv1.AuditEvent) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events = append(a.events, ev)
	return nil
}

type partCerts struct{ cert, key []byte }

func (c *partCerts) LoadCert(context.Context) ([]byte, []byte, error) {
	if c.cert == nil {
		return nil, nil, control.ErrNoCert
	}
	return c.cert, c.key, nil
}

func (c *partCerts) SaveCert(_ context.Context, cert, key []byte) error {
	c.cert, c.key = cert, key
	return nil
}

type partRobot struct {
	controlv1connect.UnimplementedComponentServiceHandler
}

func (partRobot) StopAll(context.Context) (map[string]string, error) { return nil, nil }
func (partRobot) Restart(context.Context) error                      { return nil }

type partConfig struct{}

func (partConfig) CurrentConfig(context.Context) (control.ConfigState, error) {
	return control.ConfigState{}, nil
}

func (partConfig) ProposeEdit(context.Context, *syncv1.ConfigProposal) (control.EditResult, error) {
	return control.EditResult{}, errors.New("not in this test")
}

type partLogs struct{}

func (partLogs) Tail(context.Context, int, string) ([]*controlv1.LogEntry, error) { return nil, nil }
func (partLogs) Follow(ctx context.Context, _ string) (<-chan *controlv1.LogEntry, error) {
	ch := make(chan *controlv1.LogEntry)
	close(ch)
	return ch, nil
}

type partData struct{}

func (partData) ListCaptures(context.Context, string, int) ([]*controlv1.CaptureInfo, error) {
	return nil, nil
}

func (partData) ReadCapture(context.Context, uint64) (*controlv1.CaptureInfo, []byte, error) {
	return nil, nil, errors.New("not in this test")
}

func (partData) TagCaptures(context.Context, []uint64, []string, []string) (int, error) {
	return 0, nil
}

func (partData) DeleteCaptures(context.Context, []uint64) (int, error) { return 0, nil }

type partStatus struct{}

func (partStatus) SyncStatus(context.Context) (*controlv1.StatusResponse, error) {
	return &controlv1.StatusResponse{PartId: "p1", SyncState: controlv1.SyncState_SYNC_STATE_ONLINE}, nil
}

// startPart runs a real control plane for p1 that answers offers relayed by
// c through a sync.Relay on its sync client, until the test ends.
func startPart(t *testing.T, c *cloud, secret string) *partAudit {
	t.Helper()
	audit := &partAudit{}
	srv, err := control.New(context.Background(), control.Options{
		Clock: clock.NewFake(t0), WebRTCSettings: controlwire.LoopbackICE, Version: "test", PartID: "p1", Grants: partGrants{}, Audit: audit,
		Certs: &partCerts{}, Robot: partRobot{}, Config: partConfig{}, Logs: partLogs{}, Data: partData{}, Status: partStatus{},
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := cloudsync.NewRelay(cloudsync.RelayOptions{Client: c.part("p1", secret)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.ServeRelay(ctx, r) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeRelay: %v", err)
		}
		_ = srv.Close()
	})
	return audit
}

// TestRelayedSession is the relayed path end to end: a pion client off the
// LAN signals through the cloud, the part's real control plane takes the
// offer over its sync client and decides it with its own grants.
func TestRelayedSession(t *testing.T) {
	c := newCloud(t, gate, relay.Options{})
	audit := startPart(t, c, c.provision("p1"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	rc, err := controlclient.DialWebRTCWith(ctx, controlclient.RelaySignaling(c.relayClient(ownerAuth), "p1"), nil, controlwire.LoopbackICE)
	if err != nil {
		t.Fatalf("dial through the relay: %v", err)
	}
	defer rc.Close()
	ctl := controlv1connect.NewControlServiceClient(rc.HTTPClient(), controlclient.RTCBaseURL)
	who, err := ctl.WhoAmI(ctx, connect.NewRequest(&controlv1.WhoAmIRequest{}))
	if err != nil {
		t.Fatalf("WhoAmI over the relayed session: %v", err)
	}
	if who.Msg.GetSubject() != "apikey/"+ownerKey || who.Msg.GetRole() != "owner" || who.Msg.GetTransport() != control.TransportWebRTC {
		t.Fatalf("WhoAmI = %v", who.Msg)
	}
	st, err := ctl.Status(ctx, connect.NewRequest(&controlv1.StatusRequest{}))
	if err != nil || st.Msg.GetPartId() != "p1" {
		t.Fatalf("Status over the relayed session: %v %v", st, err)
	}

	// The cloud lets the stranger's offer through; the part, which does
	// not know the key, refuses it, and the refusal reaches the client
	// with the part's code.
	_, err = controlclient.DialWebRTCWith(ctx, controlclient.RelaySignaling(c.relayClient(strangerAuth), "p1"), nil, controlwire.LoopbackICE)
	if code := connect.CodeOf(err); code != connect.CodeUnauthenticated {
		t.Fatalf("a key the part does not know: %v (%v), want unauthenticated", err, code)
	}
	// The part audited the refusal, naming the client's address as the
	// cloud saw it.
	audit.mu.Lock()
	var refused bool
	for _, ev := range audit.events {
		refused = refused || (!ev.GetAllowed() && ev.GetTransport() == control.TransportWebRTC && strings.HasPrefix(ev.GetPeer(), "relay:127.0.0.1:"))
	}
	audit.mu.Unlock()
	if !refused {
		t.Error("the part did not audit the refused relayed offer with the client's address")
	}

	// The gate still applies: a caller the cloud refuses never reaches the part.
	_, err = controlclient.RelaySignaling(c.relayClient("Bearer nobody"), "p1").Offer(ctx, connect.NewRequest(&controlv1.OfferRequest{Sdp: "v=0"}))
	if connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Fatalf("a caller the cloud refuses: %v", err)
	}
}

// TestPartOffline: a part that is not polling leaves the client with a
// clear Unavailable once the bounded wait ends, and nothing behind.
func TestPartOffline(t *testing.T) {
	c := newCloud(t, cloudGate{ownerAuth: gate[ownerAuth]}, relay.Options{PickupTimeout: 10 * time.Second})
	c.provision("p1")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, err := c.relayClient(ownerAuth).RelayOffer(ctx, connect.NewRequest(&fleetv1.RelayOfferRequest{PartId: "p1", Sdp: "v=0"}))
		errc <- err
	}()
	if err := c.clock.BlockUntil(ctx, 2); err != nil { // the offer is queued, its timers armed
		t.Fatal(err)
	}
	c.clock.Advance(10 * time.Second)
	err := <-errc
	if connect.CodeOf(err) != connect.CodeUnavailable || !strings.Contains(err.Error(), "did not take it within 10s") {
		t.Fatalf("offer to an offline part: %v", err)
	}
	assertEmpty(t, c.broker)
}

// TestOffersReachOnlyTheirPart: the part id comes from the part's
// credentials, so a part never receives, nor answers, another's offer.
func TestOffersReachOnlyTheirPart(t *testing.T) {
	c := newCloud(t, cloudGate{ownerAuth: gate[ownerAuth]}, relay.Options{})
	p1, p2 := c.part("p1", c.provision("p1")), c.part("p2", c.provision("p2"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	if _, err := c.part("p1", "wrong").NextOffer(ctx, connect.NewRequest(&syncv1.NextOfferRequest{})); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("poll with a wrong secret: %v", err)
	}

	type answer struct {
		resp *connect.Response[fleetv1.RelayOfferResponse]
		err  error
	}
	answered := make(chan answer, 1)
	go func() {
		resp, err := c.relayClient(ownerAuth).RelayOffer(ctx, connect.NewRequest(&fleetv1.RelayOfferRequest{PartId: "p2", Sdp: "v=0 offer"}))
		answered <- answer{resp, err}
	}()
	if err := c.clock.BlockUntil(ctx, 2); err != nil { // p2's offer is queued
		t.Fatal(err)
	}
	polled := make(chan *syncv1.NextOfferResponse, 1)
	go func() {
		resp, err := p1.NextOffer(ctx, connect.NewRequest(&syncv1.NextOfferRequest{MaxWait: durationpb.New(5 * time.Second)}))
		if err != nil {
			t.Errorf("p1 polls: %v", err)
			polled <- nil
			return
		}
		polled <- resp.Msg
	}()
	if err := c.clock.BlockUntil(ctx, 3); err != nil { // p1's poll waits
		t.Fatal(err)
	}
	c.clock.Advance(5 * time.Second) // p1's wait ends; p2's offer still has 5 s
	if got := <-polled; got.GetOffer() != nil {
		t.Fatalf("p1 received p2's offer: %v", got)
	}

	next, err := p2.NextOffer(ctx, connect.NewRequest(&syncv1.NextOfferRequest{}))
	if err != nil {
		t.Fatalf("p2 polls: %v", err)
	}
	off := next.Msg.GetOffer()
	if off.GetSdp() != "v=0 offer" || !strings.HasPrefix(off.GetPeer(), "127.0.0.1:") {
		t.Fatalf("p2 received %v", off)
	}
	// The part gets the cloud's assertion for it and this offer, never the
	// caller's credential.
	keys := map[string]ed25519.PublicKey{cloudKID: cloudKey.Public().(ed25519.PublicKey)}
	if ac, err := credential.VerifyAssertion(off.GetAssertion(), keys, "p2", "v=0 offer", c.clock.Now()); err != nil || ac.Subject != "apikey/"+ownerKey {
		t.Fatalf("p2's assertion: %v %v", ac, err)
	}
	if _, err := credential.VerifyAssertion(off.GetAssertion(), keys, "p1", "v=0 offer", c.clock.Now()); err == nil {
		t.Fatal("p2's assertion works on p1")
	}
	reply := func(to string) *connect.Request[syncv1.AnswerOfferRequest] {
		return connect.NewRequest(&syncv1.AnswerOfferRequest{OfferId: off.GetId(),
			Result: &syncv1.AnswerOfferRequest_Answer{Answer: &syncv1.OfferAnswer{Sdp: "v=0 answer from " + to, SessionId: "s1"}}})
	}
	if _, err := p1.AnswerOffer(ctx, reply("p1")); connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("p1 answers p2's offer: %v", err)
	}
	if _, err := p2.AnswerOffer(ctx, reply("p2")); err != nil {
		t.Fatalf("p2 answers: %v", err)
	}
	got := <-answered
	if got.err != nil || got.resp.Msg.GetSdp() != "v=0 answer from p2" || got.resp.Msg.GetSessionId() != "s1" {
		t.Fatalf("the client got %v, %v", got.resp, got.err)
	}
	if _, err := p2.AnswerOffer(ctx, reply("p2")); connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("a second answer: %v", err)
	}
	assertEmpty(t, c.broker)
}
