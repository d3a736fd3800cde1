package partsync_test

import (
	"context"
	gosync "sync"
	"testing"

	"connectrpc.com/connect"

	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/cloud/partsync"
)

// recordingRelay notes which part each relay call was made for.
type recordingRelay struct {
	mu    gosync.Mutex
	parts []string
}

func (r *recordingRelay) NextOffer(_ context.Context, partID string, _ *syncv1.NextOfferRequest) (*syncv1.NextOfferResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.parts = append(r.parts, partID)
	return &syncv1.NextOfferResponse{Offer: &syncv1.RelayedOffer{Id: "for-" + partID}}, nil
}

func (r *recordingRelay) AnswerOffer(_ context.Context, partID string, _ *syncv1.AnswerOfferRequest) (*syncv1.AnswerOfferResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.parts = append(r.parts, partID)
	return &syncv1.AnswerOfferResponse{}, nil
}

// TestRelayCalls: the relay calls reach the relay only authenticated, and
// with the part id of the credentials, never one the request could name.
func TestRelayCalls(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		relay  bool
		secret string // "" means the part's own
		want   connect.Code
	}{
		{name: "relayed for the authenticated part", relay: true},
		{name: "a wrong secret", relay: true, secret: "wrong", want: connect.CodeUnauthenticated},
		{name: "a cloud without a relay", want: connect.CodeUnimplemented},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recordingRelay{}
			opts := partsync.Options{}
			if tc.relay {
				opts.Relay = rec
			}
			e := newEnv(t, opts)
			secret := e.backend.provision("p1")
			if tc.secret != "" {
				secret = tc.secret
			}
			c := e.client(e.url, "p1", secret)
			next, err := c.NextOffer(ctx, connect.NewRequest(&syncv1.NextOfferRequest{}))
			if codeOf(err) != tc.want {
				t.Fatalf("NextOffer: %v, want %v", err, tc.want)
			}
			_, err = c.AnswerOffer(ctx, connect.NewRequest(&syncv1.AnswerOfferRequest{OfferId: "x"}))
			if codeOf(err) != tc.want {
				t.Fatalf("AnswerOffer: %v, want %v", err, tc.want)
			}
			rec.mu.Lock()
			defer rec.mu.Unlock()
			if tc.want != 0 {
				if len(rec.parts) != 0 {
					t.Fatalf("the relay was called for %v", rec.parts)
				}
				return
			}
			if next.Msg.GetOffer().GetId() != "for-p1" || len(rec.parts) != 2 || rec.parts[0] != "p1" || rec.parts[1] != "p1" {
				t.Fatalf("relay calls for %v, offer %v", rec.parts, next.Msg)
			}
		})
	}
}
