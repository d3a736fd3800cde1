package relay

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"connectrpc.com/connect"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
)

// Hub is both sides of the relay as the cloud mounts them: the client's
// Relay (through NewService) and the part's NextOffer and AnswerOffer
// (through cloud/partsync). Broker is the hub of one process; Shared is the
// hub of replicas that share a Board.
type Hub interface {
	Relayer
	NextOffer(ctx context.Context, partID string, req *syncv1.NextOfferRequest) (*syncv1.NextOfferResponse, error)
	AnswerOffer(ctx context.Context, partID string, req *syncv1.AnswerOfferRequest) (*syncv1.AnswerOfferResponse, error)
	// Close ends every wait at once, and every later one.
	Close()
}

// Relayer is the client side: it relays an offer and returns the part's
// answer.
type Relayer interface {
	Relay(ctx context.Context, o Offer) (*fleetv1.RelayOfferResponse, error)
}

var (
	_ Hub = (*Broker)(nil)
	_ Hub = (*Shared)(nil)
)

// ErrBoardFull is a Board's refusal of a post past its bounds.
var ErrBoardFull = errors.New("the relay board is full")

// Board keeps offers where every replica sees them, so a client's offer
// made on one replica is taken by its part's poll on another, and the
// part's answer, given to any replica, reaches the client's. Taking is
// atomic across replicas: an offer is taken by one poll at most.
// cloud/pgshared implements it on PostgreSQL.
type Board interface {
	// Post stores offer id for partID with its encoded message, unless the
	// part already has maxPerPart offers or the board maxTotal
	// (ErrBoardFull). The offer lives until Remove, or until expires, when
	// the board may drop it.
	Post(ctx context.Context, partID, id string, msg []byte, expires time.Time, maxPerPart, maxTotal int) error
	// Take claims the oldest offer for partID no poll took, reporting
	// false when there is none.
	Take(ctx context.Context, partID string) (id string, msg []byte, ok bool, err error)
	// Withdraw removes offer id if no poll took it, reporting whether it did.
	Withdraw(ctx context.Context, id string) (bool, error)
	// Answer records partID's answer to offer id, taken and not answered
	// yet, reporting false when there is no such offer.
	Answer(ctx context.Context, partID, id string, answer []byte) (bool, error)
	// Answered returns the answer to offer id, nil while there is none.
	Answered(ctx context.Context, id string) ([]byte, error)
	// Remove forgets offer id.
	Remove(ctx context.Context, id string) error
	// Watch returns a channel closed at the next change posted for key
	// (PartKey: an offer posted for a part; OfferKey: an offer taken or
	// answered), and a function that stops watching. A board may also
	// close it spuriously (after losing its notifications); watchers
	// check again, and check every FallbackPoll regardless.
	Watch(key string) (<-chan struct{}, func())
}

// PartKey is the Board.Watch key of offers posted for a part.
func PartKey(partID string) string { return "p:" + partID }

// OfferKey is the Board.Watch key of an offer's state.
func OfferKey(id string) string { return "o:" + id }

// SharedOptions configures NewShared.
type SharedOptions struct {
	Options
	// Board keeps the offers. Required.
	Board Board
	// FallbackPoll is how often every wait checks the board again without
	// a notification, the most a lost notification delays an offer or an
	// answer; 0 means 2 s.
	FallbackPoll time.Duration
}

// Shared is the relay of replicas sharing a Board: the same calls, bounds
// and timeouts as Broker's, with the offers on the board. The bounds on
// waiting polls are each replica's own.
type Shared struct {
	b        *Broker // the options, the clock, the log and closing
	board    Board
	fallback time.Duration

	mu    sync.Mutex
	polls map[string]int
}

// NewShared returns the relay over opts.Board.
func NewShared(opts SharedOptions) *Shared {
	if opts.Board == nil {
		panic("relay.NewShared: a Board is required")
	}
	fb := opts.FallbackPoll
	if fb <= 0 {
		fb = 2 * time.Second
	}
	return &Shared{b: NewBroker(opts.Options), board: opts.Board, fallback: fb, polls: map[string]int{}}
}

// Close ends every wait at once, and every later one.
func (s *Shared) Close() { s.b.Close() }

func boardErr(what string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return ctxErr(what, err)
	}
	return connect.NewError(connect.CodeUnavailable, fmt.Errorf("%s: the relay's database: %w", what, err))
}

// wait blocks until ch (a Board.Watch taken before the state was last
// checked, so no change in between is missed) is closed, the fallback poll
// is due, a timer fires, ctx ends, or the relay closes; it reports which
// timer fired, or -1.
func (s *Shared) wait(ctx context.Context, ch <-chan struct{}, timers ...<-chan time.Time) (fired int, err error) {
	fb := s.b.clock.NewTimer(s.fallback)
	defer fb.Stop()
	var t0, t1 <-chan time.Time
	if len(timers) > 0 {
		t0 = timers[0]
	}
	if len(timers) > 1 {
		t1 = timers[1]
	}
	select {
	case <-ch:
		return -1, nil
	case <-fb.C():
		return -1, nil
	case <-t0:
		return 0, nil
	case <-t1:
		return 1, nil
	case <-ctx.Done():
		return -1, ctx.Err()
	case <-s.b.closed:
		return -1, errClosed
	}
}

var errClosed = errors.New("closed")

// Relay posts o on the board and waits for its part's answer, as
// Broker.Relay does.
func (s *Shared) Relay(ctx context.Context, o Offer) (*fleetv1.RelayOfferResponse, error) {
	if err := validateOffer(o); err != nil {
		return nil, err
	}
	select {
	case <-s.b.closed:
		return nil, closing(o.PartID)
	default:
	}
	id, err := newOfferID()
	if err != nil {
		return nil, connect.NewError(connect.CodeInternal, fmt.Errorf("relay offer to part %s: %w", o.PartID, err))
	}
	msg, err := proto.Marshal(&syncv1.RelayedOffer{Id: id, Sdp: o.SDP, Assertion: o.Assertion, Peer: o.Peer})
	if err != nil {
		return nil, connect.NewError(connect.CodeInternal, fmt.Errorf("relay offer to part %s: %w", o.PartID, err))
	}
	err = s.board.Post(ctx, o.PartID, id, msg, s.b.clock.Now().Add(s.b.timeout), s.b.maxPerPart, s.b.maxOffers)
	if errors.Is(err, ErrBoardFull) {
		s.b.log.Warn("refused a relayed offer: too many outstanding", zap.String("part", o.PartID))
		return nil, connect.NewError(connect.CodeResourceExhausted, fmt.Errorf(
			"relay offer to part %s: too many offers are already waiting; try again shortly", o.PartID))
	}
	if err != nil {
		return nil, boardErr("relay offer to part "+o.PartID, err)
	}
	defer func() {
		// The offer goes whatever happened; the board drops it at its
		// expiry if this replica cannot.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := s.board.Remove(rctx, id); err != nil {
			s.b.log.Warn("could not remove a relayed offer; it expires on its own", zap.String("offer", id), zap.Error(err))
		}
	}()
	deadline := s.b.clock.NewTimer(s.b.timeout)
	defer deadline.Stop()
	pickup := s.b.clock.NewTimer(s.b.pickupTimeout)
	defer pickup.Stop()
	pickupC := pickup.C()
	for {
		ch, stop := s.board.Watch(OfferKey(id))
		ans, err := s.board.Answered(ctx, id)
		if err != nil {
			stop()
			return nil, boardErr("relay offer to part "+o.PartID, err)
		}
		if ans != nil {
			stop()
			return decodeAnswer(o.PartID, ans)
		}
		fired, err := s.wait(ctx, ch, pickupC, deadline.C())
		stop()
		switch {
		case errors.Is(err, errClosed):
			return nil, closing(o.PartID)
		case err != nil:
			return nil, ctxErr("relay offer to part "+o.PartID+": waiting for the part", err)
		case fired == 0: // pickup time is up
			pickupC = nil
			withdrawn, err := s.board.Withdraw(ctx, id)
			if err != nil {
				return nil, boardErr("relay offer to part "+o.PartID, err)
			}
			if withdrawn {
				s.b.log.Info("no poll took a relayed offer: the part seems offline", zap.String("part", o.PartID), zap.String("offer", id))
				return nil, connect.NewError(connect.CodeUnavailable, fmt.Errorf(
					"relay offer to part %s: the part did not take it within %s: it is offline or cannot reach the cloud (on its LAN, connect to it directly)", o.PartID, s.b.pickupTimeout))
			}
		case fired == 1:
			if ans, err := s.board.Answered(ctx, id); err == nil && ans != nil {
				return decodeAnswer(o.PartID, ans)
			}
			s.b.log.Warn("a part took a relayed offer and did not answer", zap.String("part", o.PartID), zap.String("offer", id))
			return nil, connect.NewError(connect.CodeDeadlineExceeded, fmt.Errorf(
				"relay offer to part %s: the part took it but did not answer within %s; try again", o.PartID, s.b.timeout))
		}
	}
}

// decodeAnswer turns the answer a part gave on any replica into what the
// client gets; it was checked when the part gave it, and is checked again.
func decodeAnswer(partID string, b []byte) (*fleetv1.RelayOfferResponse, error) {
	var req syncv1.AnswerOfferRequest
	if err := proto.Unmarshal(b, &req); err != nil {
		return nil, connect.NewError(connect.CodeInternal, fmt.Errorf("relay offer to part %s: decode the part's answer: %w", partID, err))
	}
	res, err := answerResult(partID, &req)
	if err != nil {
		return nil, connect.NewError(connect.CodeInternal, fmt.Errorf("relay offer to part %s: the part's stored answer: %w", partID, err))
	}
	return res.resp, res.err
}

// NextOffer implements partsync.Relay over the board.
func (s *Shared) NextOffer(ctx context.Context, partID string, req *syncv1.NextOfferRequest) (*syncv1.NextOfferResponse, error) {
	wait, err := s.b.pollWaitOf(req)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if s.polls[partID] >= s.b.maxPolls {
		s.mu.Unlock()
		s.b.log.Warn("refused a poll for relayed offers: too many waiting for the part", zap.String("part", partID))
		return nil, connect.NewError(connect.CodeResourceExhausted, fmt.Errorf(
			"next offer: %d polls of this part are already waiting; poll once at a time", s.b.maxPolls))
	}
	s.polls[partID]++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if s.polls[partID]--; s.polls[partID] == 0 {
			delete(s.polls, partID)
		}
		s.mu.Unlock()
	}()
	timer := s.b.clock.NewTimer(wait)
	defer timer.Stop()
	for {
		// A poll whose caller is gone takes nothing.
		if ctx.Err() != nil {
			return nil, ctxErr("next offer", ctx.Err())
		}
		ch, stop := s.board.Watch(PartKey(partID))
		_, msg, ok, err := s.board.Take(ctx, partID)
		if err != nil || ok {
			stop()
		}
		if err != nil {
			return nil, boardErr("next offer", err)
		}
		if ok {
			var off syncv1.RelayedOffer
			if err := proto.Unmarshal(msg, &off); err != nil {
				return nil, connect.NewError(connect.CodeInternal, fmt.Errorf("next offer: decode a stored offer: %w", err))
			}
			return &syncv1.NextOfferResponse{Offer: &off}, nil
		}
		fired, err := s.wait(ctx, ch, timer.C())
		stop()
		switch {
		case errors.Is(err, errClosed), fired == 0:
			return &syncv1.NextOfferResponse{}, nil
		case err != nil:
			return nil, ctxErr("next offer", err)
		}
	}
}

// AnswerOffer implements partsync.Relay over the board: the answer reaches
// the client's replica through it. Unknown, foreign, untaken and answered
// offers are NotFound alike, as with Broker.
func (s *Shared) AnswerOffer(ctx context.Context, partID string, req *syncv1.AnswerOfferRequest) (*syncv1.AnswerOfferResponse, error) {
	if _, err := answerResult(partID, req); err != nil {
		s.b.log.Warn("refused a part's answer", zap.String("part", partID), zap.Error(err))
		return nil, err
	}
	b, err := proto.Marshal(req)
	if err != nil {
		return nil, connect.NewError(connect.CodeInternal, fmt.Errorf("answer offer: %w", err))
	}
	ok, err := s.board.Answer(ctx, partID, req.GetOfferId(), b)
	if err != nil {
		return nil, boardErr("answer offer "+req.GetOfferId(), err)
	}
	if !ok {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf(
			"answer offer %s: no client is waiting for this part's answer to it (the client gave up, or it was answered already)", req.GetOfferId()))
	}
	return &syncv1.AnswerOfferResponse{}, nil
}
