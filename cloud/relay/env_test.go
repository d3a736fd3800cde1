package relay_test

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"net/http/httptest"
	gosync "sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1/fleetv1connect"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1/syncv1connect"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/cloud/ingest"
	"github.com/outpost-robotics/outpost/cloud/partsync"
	"github.com/outpost-robotics/outpost/cloud/relay"
	"github.com/outpost-robotics/outpost/cloudsync"
	"github.com/outpost-robotics/outpost/credential"
)

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

// backend knows the parts and their secrets; it has no documents.
type backend struct {
	mu      gosync.Mutex
	secrets map[string][32]byte
}

func (b *backend) AuthenticatePart(_ context.Context, partID, secret string) (partsync.Part, error) {
	b.mu.Lock()
	want, ok := b.secrets[partID]
	b.mu.Unlock()
	got := sha256.Sum256([]byte(secret))
	if !ok || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
		return partsync.Part{}, fmt.Errorf("part %s: %w", partID, partsync.ErrUnknownPart)
	}
	return partsync.Part{ID: partID, MachineID: "m-" + partID}, nil
}

func (*backend) Documents(context.Context, partsync.Part, uint64, uint64) (*syncv1.SignedDocument, *syncv1.SignedDocument, error) {
	return nil, nil, nil
}

func (*backend) HandleProposal(context.Context, partsync.Part, string, uint64, *syncv1.ConfigProposal) error {
	return nil
}

func (*backend) PollInterval(partsync.Part) time.Duration { return 0 }

var _ partsync.Relay = (*relay.Broker)(nil)

// noIngest is an ingest store the relay tests never reach.
type noIngest struct{ ingest.Store }

// cloudGate stands in for the cloud's authz interceptor in front of
// RelayService: it lets through the Authorization headers it was given, as
// the subjects they map to (the real one authenticates proofs and requires
// machine.control on the part), and refuses the rest.
type cloudGate map[string]string

type subjectKey struct{}

func (g cloudGate) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		sub, ok := g[req.Header().Get("Authorization")]
		if !ok {
			return nil, connect.NewError(connect.CodePermissionDenied, fmt.Errorf("the cloud refuses this caller"))
		}
		return next(context.WithValue(ctx, subjectKey{}, sub), req)
	}
}

func (g cloudGate) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (g cloudGate) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// cloudKey is the stand-in cloud's signing key, which the parts' bundles hold.
var cloudKey = credential.NewPrivateKey()

const cloudKID = "kid-cloud"

// assert signs the assertion the cloud sends with an offer: for the
// subject the gate let through, on the cloud's clock.
func (c *cloud) assert(ctx context.Context, partID, sdp string) (string, error) {
	sub, _ := ctx.Value(subjectKey{}).(string)
	return credential.SignAssertion(cloudKey, cloudKID, sub, partID, sdp, c.clock.Now())
}

// cloud is the relay's two sides served on loopback: RelayService behind
// the gate, and the part sync API with the broker as its relay.
type cloud struct {
	t       testing.TB
	clock   *clock.Fake
	broker  *relay.Broker
	backend *backend
	url     string
}

func newCloud(t testing.TB, gate cloudGate, opts relay.Options) *cloud {
	t.Helper()
	c := &cloud{t: t, clock: clock.NewFake(t0), backend: &backend{secrets: map[string][32]byte{}}}
	opts.Clock = c.clock
	c.broker = relay.NewBroker(opts)
	mux := http.NewServeMux()
	mux.Handle(partsync.NewHandler(c.backend, noIngest{}, partsync.Options{Clock: c.clock, Relay: c.broker}))
	mux.Handle(fleetv1connect.NewRelayServiceHandler(relay.NewService(c.broker, relay.ServiceOptions{Assert: c.assert}), connect.WithInterceptors(gate)))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	c.url = srv.URL
	return c
}

// provision adds a part and returns its secret.
func (c *cloud) provision(id string) string {
	secret := "secret-of-" + id
	c.backend.mu.Lock()
	c.backend.secrets[id] = sha256.Sum256([]byte(secret))
	c.backend.mu.Unlock()
	return secret
}

// part returns a part's sync client, as the daemon makes it.
func (c *cloud) part(id, secret string) syncv1connect.SyncServiceClient {
	c.t.Helper()
	sc, err := cloudsync.NewClient(cloudsync.ClientOptions{CloudURL: c.url, PartID: id, PartSecret: secret})
	if err != nil {
		c.t.Fatal(err)
	}
	return sc
}

// relayClient is a field tech's RelayService client with its credential.
func (c *cloud) relayClient(auth string) fleetv1connect.RelayServiceClient {
	return fleetv1connect.NewRelayServiceClient(http.DefaultClient, c.url, connect.WithInterceptors(credential.Bearer{Authorization: auth}))
}

// assertEmpty checks the broker let go of every offer and part.
func assertEmpty(t testing.TB, b *relay.Broker) {
	t.Helper()
	if offers, parts := b.Len(); offers != 0 || parts != 0 {
		t.Fatalf("broker holds %d offers and %d parts after every call returned", offers, parts)
	}
}
