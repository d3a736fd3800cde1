package cloudsync

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/outpost-robotics/outpost/api/codec"
	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1/syncv1connect"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/controlwire"
)

// relayCloud is a cloud whose relay calls the test answers one by one.
// (cloud/relay's tests run the real broker end to end.)
type relayCloud struct {
	syncv1connect.UnimplementedSyncServiceHandler
	polls    chan pollReply
	asked    chan *syncv1.NextOfferRequest
	answers  chan *syncv1.AnswerOfferRequest
	answerOK error
}

type pollReply struct {
	resp *syncv1.NextOfferResponse
	err  error
}

func (c *relayCloud) NextOffer(ctx context.Context, req *connect.Request[syncv1.NextOfferRequest]) (*connect.Response[syncv1.NextOfferResponse], error) {
	if req.Header().Get("Authorization") != "Part p1:s3cret" {
		return nil, connect.NewError(connect.CodeUnauthenticated, errors.New("who?"))
	}
	c.asked <- req.Msg
	select {
	case r := <-c.polls:
		if r.err != nil {
			return nil, r.err
		}
		return connect.NewResponse(r.resp), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *relayCloud) AnswerOffer(_ context.Context, req *connect.Request[syncv1.AnswerOfferRequest]) (*connect.Response[syncv1.AnswerOfferResponse], error) {
	c.answers <- req.Msg
	if c.answerOK != nil {
		return nil, c.answerOK
	}
	return connect.NewResponse(&syncv1.AnswerOfferResponse{}), nil
}

func newRelayCloud(t *testing.T) (*relayCloud, syncv1connect.SyncServiceClient) {
	t.Helper()
	c := &relayCloud{polls: make(chan pollReply), asked: make(chan *syncv1.NextOfferRequest, 8), answers: make(chan *syncv1.AnswerOfferRequest, 1)}
	mux := http.NewServeMux()
	mux.Handle(syncv1connect.NewSyncServiceHandler(c, codec.HandlerOption()))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	client, err := NewClient(ClientOptions{CloudURL: srv.URL, PartID: "p1", PartSecret: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	return c, client
}

func TestRelayNextOffer(t *testing.T) {
	cloud, client := newRelayCloud(t)
	clk := clock.NewFake(time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC))
	r, err := NewRelay(RelayOptions{Client: client, Clock: clk, PollWait: 15 * time.Second, MinPoll: time.Second, UnsupportedPause: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	type got struct {
		off *controlwire.RelayedOffer
		err error
	}
	next := func() <-chan got {
		ch := make(chan got, 1)
		go func() { off, err := r.NextOffer(ctx); ch <- got{off, err} }()
		return ch
	}

	// An empty poll is asked again, no sooner than MinPoll; then an offer.
	res := next()
	if req := <-cloud.asked; req.GetMaxWait().AsDuration() != 15*time.Second {
		t.Fatalf("asked to wait %v", req.GetMaxWait())
	}
	cloud.polls <- pollReply{resp: &syncv1.NextOfferResponse{}}
	if err := clk.BlockUntil(ctx, 1); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	<-cloud.asked
	cloud.polls <- pollReply{resp: &syncv1.NextOfferResponse{Offer: &syncv1.RelayedOffer{Id: "o1", Sdp: "v=0", Assertion: "a.b.c", Peer: "192.0.2.9:1"}}}
	g := <-res
	if g.err != nil || *g.off != (controlwire.RelayedOffer{ID: "o1", SDP: "v=0", Assertion: "a.b.c", Peer: "192.0.2.9:1"}) {
		t.Fatalf("NextOffer = %+v, %v", g.off, g.err)
	}

	// A cloud that relays nothing is reported, after a long pause.
	res = next()
	<-cloud.asked
	cloud.polls <- pollReply{err: connect.NewError(connect.CodeUnimplemented, errors.New("no relay here"))}
	if err := clk.BlockUntil(ctx, 1); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Hour)
	if g := <-res; connect.CodeOf(g.err) != connect.CodeUnimplemented || !strings.Contains(g.err.Error(), "ask the cloud for relayed offers") {
		t.Fatalf("unsupported relay: %v", g.err)
	}

	// Other failures return at once, for the control plane to retry.
	res = next()
	<-cloud.asked
	cloud.polls <- pollReply{err: connect.NewError(connect.CodeInvalidArgument, errors.New("bad wait"))}
	if g := <-res; connect.CodeOf(g.err) != connect.CodeInvalidArgument {
		t.Fatalf("failed poll: %v", g.err)
	}
	// An offer without an id is the cloud's bug, not something to answer.
	res = next()
	<-cloud.asked
	cloud.polls <- pollReply{resp: &syncv1.NextOfferResponse{Offer: &syncv1.RelayedOffer{Sdp: "v=0"}}}
	if g := <-res; g.err == nil {
		t.Fatal("accepted an offer without an id")
	}

	// A poll ends with its context.
	cctx, ccancel := context.WithCancel(ctx)
	ch := make(chan error, 1)
	go func() { _, err := r.NextOffer(cctx); ch <- err }()
	<-cloud.asked
	ccancel()
	if err := <-ch; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled poll: %v", err)
	}
}

func TestRelayAnswer(t *testing.T) {
	long := strings.Repeat("é", 600) // 1200 bytes
	for _, tc := range []struct {
		name     string
		answer   *controlv1.OfferResponse
		refusal  *connect.Error
		cloudErr error
		want     *syncv1.AnswerOfferRequest
		wantErr  connect.Code
	}{
		{
			name: "answer", answer: &controlv1.OfferResponse{Sdp: "v=0 answer", SessionId: "s1"},
			want: &syncv1.AnswerOfferRequest{OfferId: "o1", Result: &syncv1.AnswerOfferRequest_Answer{Answer: &syncv1.OfferAnswer{Sdp: "v=0 answer", SessionId: "s1"}}},
		},
		{
			name: "refusal", refusal: connect.NewError(connect.CodePermissionDenied, errors.New("operators may not")),
			want: &syncv1.AnswerOfferRequest{OfferId: "o1", Result: &syncv1.AnswerOfferRequest_Refusal{Refusal: &syncv1.OfferRefusal{Code: uint32(connect.CodePermissionDenied), Message: "operators may not"}}},
		},
		{
			name: "long refusal is cut on a rune", refusal: connect.NewError(connect.CodeResourceExhausted, errors.New(long)),
			want: &syncv1.AnswerOfferRequest{OfferId: "o1", Result: &syncv1.AnswerOfferRequest_Refusal{Refusal: &syncv1.OfferRefusal{Code: uint32(connect.CodeResourceExhausted), Message: long[:1024]}}},
		},
		{
			name: "no answer at all is an internal refusal",
			want: &syncv1.AnswerOfferRequest{OfferId: "o1", Result: &syncv1.AnswerOfferRequest_Refusal{Refusal: &syncv1.OfferRefusal{Code: uint32(connect.CodeInternal), Message: "the part produced no answer"}}},
		},
		{
			name: "the client gave up", answer: &controlv1.OfferResponse{Sdp: "v=0"},
			cloudErr: connect.NewError(connect.CodeNotFound, errors.New("no client waits")),
			want:     &syncv1.AnswerOfferRequest{OfferId: "o1", Result: &syncv1.AnswerOfferRequest_Answer{Answer: &syncv1.OfferAnswer{Sdp: "v=0"}}},
			wantErr:  connect.CodeNotFound,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cloud, client := newRelayCloud(t)
			cloud.answerOK = tc.cloudErr
			r, err := NewRelay(RelayOptions{Client: client})
			if err != nil {
				t.Fatal(err)
			}
			err = r.Answer(context.Background(), "o1", tc.answer, tc.refusal)
			if got := <-cloud.answers; !proto.Equal(got, tc.want) {
				t.Fatalf("sent %v, want %v", got, tc.want)
			}
			if tc.wantErr == 0 && err != nil || tc.wantErr != 0 && (connect.CodeOf(err) != tc.wantErr || !strings.Contains(err.Error(), "relayed offer o1")) {
				t.Fatalf("Answer: %v", err)
			}
		})
	}
}

func TestNewRelayNeedsAClient(t *testing.T) {
	if _, err := NewRelay(RelayOptions{}); err == nil {
		t.Fatal("NewRelay without a client succeeded")
	}
}
