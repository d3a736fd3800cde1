package relay_test

import (
	"context"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/cloud/relay"
)

// background runs broker calls and collects their errors.
type background struct {
	wg   gosync.WaitGroup
	mu   gosync.Mutex
	errs []error
}

func (bg *background) run(fn func() error) {
	bg.wg.Go(func() {
		err := fn()
		bg.mu.Lock()
		bg.errs = append(bg.errs, err)
		bg.mu.Unlock()
	})
}

func (bg *background) wait() []error {
	bg.wg.Wait()
	return bg.errs
}

func offerTo(part string) relay.Offer {
	return relay.Offer{PartID: part, SDP: "v=0", Assertion: "a.b.c", Peer: "192.0.2.7:5000"}
}

func relayErr(ctx context.Context, b *relay.Broker, part string) error {
	_, err := b.Relay(ctx, offerTo(part))
	return err
}

func pollErr(ctx context.Context, b *relay.Broker, part string) error {
	_, err := b.NextOffer(ctx, part, &syncv1.NextOfferRequest{})
	return err
}

// TestBounds: past each bound the broker refuses at once with
// ResourceExhausted, holds nothing for the refused calls, and lets go of
// everything when the waiting calls end.
func TestBounds(t *testing.T) {
	for _, tc := range []struct {
		name   string
		opts   relay.Options
		offers []string // parts with offers waiting to be taken
		polls  []string // parts with polls waiting
		refuse func(context.Context, *relay.Broker) error
		accept func(context.Context, *relay.Broker) error // still accepted: another part's call
		arms   int                                        // the timers accept arms
	}{
		{
			name: "a flood of offers to one part", opts: relay.Options{MaxOffersPerPart: 2},
			offers: []string{"p1", "p1"}, refuse: func(ctx context.Context, b *relay.Broker) error { return relayErr(ctx, b, "p1") },
			accept: func(ctx context.Context, b *relay.Broker) error { return relayErr(ctx, b, "p2") }, arms: 2,
		},
		{
			name: "offers across the relay", opts: relay.Options{MaxOffersPerPart: 2, MaxOffers: 3},
			offers: []string{"p1", "p1", "p2"}, refuse: func(ctx context.Context, b *relay.Broker) error { return relayErr(ctx, b, "p3") },
		},
		{
			name: "polls of one part", opts: relay.Options{MaxPollsPerPart: 2},
			polls: []string{"p1", "p1"}, refuse: func(ctx context.Context, b *relay.Broker) error { return pollErr(ctx, b, "p1") },
			accept: func(ctx context.Context, b *relay.Broker) error { return pollErr(ctx, b, "p2") }, arms: 1,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := clock.NewFake(t0)
			tc.opts.Clock = clk
			b := relay.NewBroker(tc.opts)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var bg background
			for _, p := range tc.offers {
				bg.run(func() error { return relayErr(ctx, b, p) })
			}
			for _, p := range tc.polls {
				bg.run(func() error { return pollErr(ctx, b, p) })
			}
			armed := 2*len(tc.offers) + len(tc.polls) // two timers per offer, one per poll
			if err := clk.BlockUntil(ctx, armed); err != nil {
				t.Fatal(err)
			}
			for range 100 {
				if err := tc.refuse(ctx, b); connect.CodeOf(err) != connect.CodeResourceExhausted {
					t.Fatalf("past the bound: %v", err)
				}
			}
			if offers, _ := b.Len(); offers != len(tc.offers) {
				t.Fatalf("%d offers held, want %d", offers, len(tc.offers))
			}
			if tc.accept != nil {
				bg.run(func() error { return tc.accept(ctx, b) })
				if err := clk.BlockUntil(ctx, armed+tc.arms); err != nil {
					t.Fatal(err)
				}
			}
			cancel()
			for _, err := range bg.wait() {
				if connect.CodeOf(err) != connect.CodeCanceled {
					t.Errorf("a waiting call ended with %v, want canceled", err)
				}
			}
			assertEmpty(t, b)
		})
	}
}

// TestTimeouts: every wait ends on the injected clock with the error that
// says which side failed, and leaves nothing behind.
func TestTimeouts(t *testing.T) {
	opts := func(clk clock.Clock) relay.Options {
		return relay.Options{Clock: clk, PickupTimeout: 10 * time.Second, Timeout: 30 * time.Second, PollWait: 20 * time.Second, MaxPollWait: 25 * time.Second}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	t.Run("taken but not answered", func(t *testing.T) {
		clk := clock.NewFake(t0)
		b := relay.NewBroker(opts(clk))
		var bg background
		bg.run(func() error { return relayErr(ctx, b, "p1") })
		if err := clk.BlockUntil(ctx, 2); err != nil {
			t.Fatal(err)
		}
		next, err := b.NextOffer(ctx, "p1", &syncv1.NextOfferRequest{})
		if err != nil || next.GetOffer() == nil {
			t.Fatalf("poll: %v %v", next, err)
		}
		clk.Advance(30 * time.Second)
		if err := bg.wait()[0]; connect.CodeOf(err) != connect.CodeDeadlineExceeded || !strings.Contains(err.Error(), "did not answer") {
			t.Fatalf("unanswered offer: %v", err)
		}
		_, err = b.AnswerOffer(ctx, "p1", answerTo(next.GetOffer().GetId()))
		if connect.CodeOf(err) != connect.CodeNotFound {
			t.Fatalf("a late answer: %v", err)
		}
		assertEmpty(t, b)
	})

	t.Run("client gives up before the part polls", func(t *testing.T) {
		clk := clock.NewFake(t0)
		b := relay.NewBroker(opts(clk))
		cctx, ccancel := context.WithCancel(ctx)
		var bg background
		bg.run(func() error { return relayErr(cctx, b, "p1") })
		if err := clk.BlockUntil(ctx, 2); err != nil {
			t.Fatal(err)
		}
		ccancel()
		if err := bg.wait()[0]; connect.CodeOf(err) != connect.CodeCanceled {
			t.Fatalf("cancelled offer: %v", err)
		}
		assertEmpty(t, b)
		// The part's next poll finds nothing: the withdrawn offer is gone.
		bg = background{}
		var got *syncv1.NextOfferResponse
		bg.run(func() (err error) { got, err = b.NextOffer(ctx, "p1", &syncv1.NextOfferRequest{}); return err })
		if err := clk.BlockUntil(ctx, 1); err != nil {
			t.Fatal(err)
		}
		clk.Advance(20 * time.Second)
		if err := bg.wait()[0]; err != nil || got.GetOffer() != nil {
			t.Fatalf("poll after the client left: %v %v", got, err)
		}
		assertEmpty(t, b)
	})

	t.Run("a refusal reaches the client with the part's code", func(t *testing.T) {
		clk := clock.NewFake(t0)
		b := relay.NewBroker(opts(clk))
		var resp *fleetv1.RelayOfferResponse
		var bg background
		bg.run(func() (err error) { resp, err = b.Relay(ctx, offerTo("p1")); return err })
		if err := clk.BlockUntil(ctx, 2); err != nil {
			t.Fatal(err)
		}
		next, err := b.NextOffer(ctx, "p1", &syncv1.NextOfferRequest{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = b.AnswerOffer(ctx, "p1", &syncv1.AnswerOfferRequest{OfferId: next.GetOffer().GetId(),
			Result: &syncv1.AnswerOfferRequest_Refusal{Refusal: &syncv1.OfferRefusal{Code: uint32(connect.CodePermissionDenied), Message: "operator may not"}}})
		if err != nil {
			t.Fatal(err)
		}
		err = bg.wait()[0]
		if connect.CodeOf(err) != connect.CodePermissionDenied || !strings.Contains(err.Error(), "part p1 refused the session: operator may not") || resp != nil {
			t.Fatalf("refused offer: %v %v", resp, err)
		}
		assertEmpty(t, b)
	})

	for _, tc := range []struct {
		name string
		wait *durationpb.Duration
		want time.Duration // the poll's wait; 0 means refused
	}{
		{"default wait", nil, 20 * time.Second},
		{"zero is the default", durationpb.New(0), 20 * time.Second},
		{"shorter", durationpb.New(3 * time.Second), 3 * time.Second},
		{"capped", durationpb.New(time.Hour), 25 * time.Second},
		{"negative", durationpb.New(-time.Second), 0},
		{"malformed", &durationpb.Duration{Seconds: 1, Nanos: -5}, 0},
	} {
		t.Run("poll wait: "+tc.name, func(t *testing.T) {
			clk := clock.NewFake(t0)
			b := relay.NewBroker(opts(clk))
			var bg background
			bg.run(func() error { _, err := b.NextOffer(ctx, "p1", &syncv1.NextOfferRequest{MaxWait: tc.wait}); return err })
			if tc.want == 0 {
				if err := bg.wait()[0]; connect.CodeOf(err) != connect.CodeInvalidArgument {
					t.Fatalf("max_wait %v: %v", tc.wait, err)
				}
				assertEmpty(t, b)
				return
			}
			if err := clk.BlockUntil(ctx, 1); err != nil {
				t.Fatal(err)
			}
			if d, ok := clk.NextDeadline(); !ok || d != tc.want {
				t.Fatalf("the poll waits %v, want %v", d, tc.want)
			}
			clk.Advance(tc.want)
			if err := bg.wait()[0]; err != nil {
				t.Fatal(err)
			}
			assertEmpty(t, b)
		})
	}
}

func answerTo(id string) *syncv1.AnswerOfferRequest {
	return &syncv1.AnswerOfferRequest{OfferId: id, Result: &syncv1.AnswerOfferRequest_Answer{Answer: &syncv1.OfferAnswer{Sdp: "v=0 answer"}}}
}

// TestCloseEndsWaits: Close ends a part's waiting poll with no offer and a
// client's waiting offer with Unavailable, at once (the fake clock never
// moves), and later calls too, so a shutting-down cloud is not held by
// long polls.
func TestCloseEndsWaits(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	clk := clock.NewFake(t0)
	b := relay.NewBroker(relay.Options{Clock: clk})
	var polled *syncv1.NextOfferResponse
	var bg background
	bg.run(func() (err error) { polled, err = b.NextOffer(ctx, "p1", &syncv1.NextOfferRequest{}); return err })
	bg.run(func() error { return relayErr(ctx, b, "p2") })
	if err := clk.BlockUntil(ctx, 3); err != nil { // the poll's timer and the offer's two
		t.Fatal(err)
	}
	b.Close()
	b.Close() // twice is harmless
	errs := bg.wait()
	if polled.GetOffer() != nil {
		t.Fatalf("the poll got offer %v", polled.GetOffer())
	}
	var unavailable int
	for _, err := range errs {
		switch {
		case err == nil:
		case connect.CodeOf(err) == connect.CodeUnavailable && strings.Contains(err.Error(), "shutting down"):
			unavailable++
		default:
			t.Fatalf("a wait ended with %v", err)
		}
	}
	if unavailable != 1 {
		t.Fatalf("errors %v, want the offer refused as Unavailable", errs)
	}
	if res, err := b.NextOffer(ctx, "p1", &syncv1.NextOfferRequest{}); err != nil || res.GetOffer() != nil {
		t.Fatalf("a poll after Close: %v %v", res, err)
	}
	if err := relayErr(ctx, b, "p1"); connect.CodeOf(err) != connect.CodeUnavailable {
		t.Fatalf("an offer after Close: %v", err)
	}
	assertEmpty(t, b)
}
