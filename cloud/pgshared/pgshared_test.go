package pgshared_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/authz"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/cloud/pgshared"
	"github.com/outpost-robotics/outpost/cloud/pgtest"
	"github.com/outpost-robotics/outpost/cloud/relay"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// replicas opens n Shared on one new database, as n cloud replicas do.
func replicas(t *testing.T, n int, clk clock.Clock) []*pgshared.Shared {
	t.Helper()
	url := pgtest.Database(t)
	var out []*pgshared.Shared
	for range n {
		s, err := pgshared.Open(context.Background(), pgshared.Options{URL: url, Clock: clk})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		out = append(out, s)
	}
	return out
}

func hub(s *pgshared.Shared, opts relay.Options) *relay.Shared {
	return relay.NewShared(relay.SharedOptions{Options: opts, Board: s})
}

const part = "0123456789abcdef0123456789abcdef"

func offer() relay.Offer {
	return relay.Offer{PartID: part, SDP: "v=0 offer", Assertion: "a.b.c", Peer: "192.0.2.7:5000"}
}

// TestRelayAcrossReplicas: a client's offer on one replica reaches its
// part's poll on another, and the part's answer, given to a third, reaches
// the client.
func TestRelayAcrossReplicas(t *testing.T) {
	rs := replicas(t, 3, nil)
	a, b, c := hub(rs[0], relay.Options{}), hub(rs[1], relay.Options{}), hub(rs[2], relay.Options{})
	ctx := context.Background()
	type res struct {
		sdp string
		err error
	}
	done := make(chan res, 1)
	polled := make(chan *syncv1.NextOfferResponse, 1)
	go func() {
		resp, err := b.NextOffer(ctx, part, &syncv1.NextOfferRequest{MaxWait: durationpb.New(20 * time.Second)})
		if err != nil {
			t.Error(err)
		}
		polled <- resp
	}()
	go func() {
		r, err := a.Relay(ctx, offer())
		done <- res{r.GetSdp(), err}
	}()
	got := <-polled
	if got.GetOffer().GetSdp() != "v=0 offer" || got.GetOffer().GetAssertion() != "a.b.c" {
		t.Fatalf("the part's poll got %v", got)
	}
	// Another part cannot answer it.
	if _, err := c.AnswerOffer(ctx, "ffffffffffffffffffffffffffffffff", answer(got.GetOffer().GetId())); connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("another part's answer: %v, want NotFound", err)
	}
	if _, err := c.AnswerOffer(ctx, part, answer(got.GetOffer().GetId())); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil || r.sdp != "v=0 answer" {
		t.Fatalf("the client got %q, %v", r.sdp, r.err)
	}
	// Answered once: a second answer finds nothing.
	if _, err := b.AnswerOffer(ctx, part, answer(got.GetOffer().GetId())); connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("a second answer: %v, want NotFound", err)
	}
}

func answer(id string) *syncv1.AnswerOfferRequest {
	return &syncv1.AnswerOfferRequest{OfferId: id, Result: &syncv1.AnswerOfferRequest_Answer{Answer: &syncv1.OfferAnswer{Sdp: "v=0 answer"}}}
}

// TestTakenOnce: polls of one part on two replicas, one offer: exactly one
// poll takes it; the part's refusal reaches the client with its code.
func TestTakenOnce(t *testing.T) {
	rs := replicas(t, 2, nil)
	a, b := hub(rs[0], relay.Options{}), hub(rs[1], relay.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	offers := make(chan *syncv1.RelayedOffer, 4)
	var wg sync.WaitGroup
	for _, h := range []*relay.Shared{a, a, b, b} {
		wg.Go(func() {
			resp, err := h.NextOffer(ctx, part, &syncv1.NextOfferRequest{MaxWait: durationpb.New(20 * time.Second)})
			if err == nil && resp.GetOffer() != nil {
				offers <- resp.GetOffer()
			}
		})
	}
	errc := make(chan error, 1)
	go func() {
		_, err := b.Relay(context.Background(), offer())
		errc <- err
	}()
	got := <-offers
	if _, err := a.AnswerOffer(context.Background(), part, &syncv1.AnswerOfferRequest{OfferId: got.GetId(),
		Result: &syncv1.AnswerOfferRequest_Refusal{Refusal: &syncv1.OfferRefusal{Code: uint32(connect.CodePermissionDenied), Message: "no grant"}}}); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; connect.CodeOf(err) != connect.CodePermissionDenied || !strings.Contains(err.Error(), "no grant") {
		t.Fatalf("the client got %v, want the part's refusal", err)
	}
	cancel()
	wg.Wait()
	close(offers)
	for o := range offers {
		t.Errorf("offer %s taken twice", o.GetId())
	}
}

// TestOfflineAndBounds: past the per-part bound an offer is refused at
// once, across replicas; an offer no poll takes is withdrawn as
// Unavailable, and the board is empty after.
func TestOfflineAndBounds(t *testing.T) {
	clk := clock.NewFake(time.Unix(1_700_000_000, 0))
	rs := replicas(t, 2, clk)
	a := hub(rs[0], relay.Options{Clock: clk, PickupTimeout: time.Second, MaxOffersPerPart: 1})
	b := hub(rs[1], relay.Options{Clock: clk, PickupTimeout: time.Second, MaxOffersPerPart: 1})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		_, err := a.Relay(ctx, offer())
		errc <- err
	}()
	// Posted, then waiting on its pickup, overall and fallback timers.
	if err := clk.BlockUntil(ctx, 3); err != nil {
		t.Fatal(err)
	}
	// The second offer, on the other replica, finds the first on the board.
	if _, err := b.Relay(ctx, offer()); connect.CodeOf(err) != connect.CodeResourceExhausted {
		t.Fatalf("second offer: %v, want ResourceExhausted", err)
	}
	clk.Advance(time.Second)
	if err := <-errc; connect.CodeOf(err) != connect.CodeUnavailable {
		t.Fatalf("an offer no one took: %v, want Unavailable", err)
	}
	if _, _, ok, err := rs[1].Take(ctx, part); ok || err != nil {
		t.Fatalf("the board still holds an offer: %v, %v", ok, err)
	}
}

// TestHostileIDs: identifiers PostgreSQL text cannot hold are refused or
// found absent, never an error from the database.
func TestHostileIDs(t *testing.T) {
	s := replicas(t, 1, nil)[0]
	ctx := context.Background()
	for _, id := range []string{"nul\x00", "\xff\xfe", strings.Repeat("x", 600), "' OR 1=1 --"} {
		if _, _, ok, err := s.Take(ctx, id); ok || err != nil {
			t.Errorf("Take(%q) = %v, %v", id, ok, err)
		}
		if ok, err := s.Answer(ctx, id, id, []byte("x")); ok || err != nil {
			t.Errorf("Answer(%q) = %v, %v", id, ok, err)
		}
	}
	if err := s.Post(ctx, "nul\x00", "id", []byte("x"), time.Now().Add(time.Minute), 8, 8); err == nil {
		t.Error("Post of an unstorable part id passed")
	}
	th := s.Throttle(authz.SignIn())
	keys := []authz.Key{{Name: "address:\x00\xff"}}
	if w := th.Begin(keys, time.Now()); w == 0 {
		t.Error("an unstorable key went unthrottled")
	}
	if th.Knows("\x00", time.Now()) {
		t.Error("an unstorable pair is known")
	}
}

// TestThrottleShared: failures counted on one replica make the other
// refuse; a success there clears what ClearOnSuccess keys counted.
func TestThrottleShared(t *testing.T) {
	rs := replicas(t, 2, nil)
	policy := authz.SignIn()
	a, b := rs[0].Throttle(policy), rs[1].Throttle(policy)
	now := time.Unix(1_700_000_000, 0)
	addr := []authz.Key{{Name: "address:192.0.2.9", Max: 15 * time.Minute}}
	for i := range policy.Free {
		th := a
		if i%2 == 1 {
			th = b
		}
		if w := th.Begin(addr, now); w != 0 {
			t.Fatalf("attempt %d waits %s", i, w)
		}
	}
	if w := b.Begin(addr, now); w != policy.Base {
		t.Fatalf("after %d failures on both replicas, wait %s, want %s", policy.Free, w, policy.Base)
	}
	if w := a.Begin(addr, now.Add(policy.Base)); w != 0 {
		t.Fatalf("after the wait: %s", w)
	}
	if w := b.Begin(addr, now.Add(policy.Base)); w != 2*policy.Base {
		t.Fatalf("the next failure doubles the wait: %s", w)
	}
	// A cancelled attempt takes its count back.
	acct := []authz.Key{{Name: "account:a@example.com", ClearOnSuccess: true}}
	if w := a.Begin(acct, now); w != 0 {
		t.Fatal(w)
	}
	b.Succeed(acct)
	for range policy.Free {
		if w := b.Begin(acct, now); w != 0 {
			t.Fatal("a success did not clear the account's count")
		}
	}
	b.Cancel(acct)
	if w := a.Begin(acct, now); w != 0 {
		t.Fatalf("a cancelled attempt still counts: %s", w)
	}
	if a.Knows("a@example.com|192.0.2.9", now) {
		t.Fatal("an unknown pair is known")
	}
	b.Remember("a@example.com|192.0.2.9", now)
	if !a.Knows("a@example.com|192.0.2.9", now.Add(time.Hour)) || a.Knows("a@example.com|192.0.2.9", now.Add(policy.Known)) {
		t.Fatal("a remembered pair is not known on the other replica for Known")
	}
}
