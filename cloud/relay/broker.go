// Package relay is the fleet cloud's WebRTC signaling relay: it lets a
// client off a robot's LAN open a control session with a part that is
// online, although the part only ever dials out.
//
// A client calls outpost.fleet.v1.RelayService.RelayOffer with its SDP
// offer; the Broker queues the offer for the part, which long-polls for it
// (outpost.sync.v1.SyncService.NextOffer, served by cloud/partsync) and
// sends back its answer or refusal (SyncService.AnswerOffer); the client's
// call returns that. The cloud authenticates the client (its interceptor
// requires machine.control on the part before RelayOffer runs) and sends
// the part, with the offer, only an assertion it signs: the subject, the
// part as audience, the offer's SDP hash, a minute of life. The client's
// credential never reaches the part, so a compromised part learns nothing
// it could use elsewhere; the part verifies the assertion with the cloud's
// keys and authorizes the subject itself with its cached grants: the cloud
// relays, it grants nothing on the part.
//
// Everything is in memory and bounded: a part has at most
// Options.MaxOffersPerPart offers outstanding and Options.MaxPollsPerPart
// polls waiting, the cloud at most Options.MaxOffers offers; every wait has
// a timeout on the injected clock, and whichever side gives up takes its
// state with it, so nothing outlives the calls that made it. A Broker's
// offers live in one process; replicas behind a load balancer use Shared,
// which keeps the offers on a Board every replica sees (PostgreSQL's, in
// cloud/pgshared), so a part's polls and its clients' offers may reach
// different replicas.
package relay

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"connectrpc.com/connect"
	"go.uber.org/zap"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/clock"
)

// Options configures a Broker; the zero value is usable.
type Options struct {
	// Clock times every wait; nil means the machine's clock.
	Clock clock.Clock
	// Logger receives one line per refused or expired offer: part ids,
	// offer ids and codes, never an SDP or a credential.
	Logger *zap.Logger
	// MaxOffersPerPart bounds one part's outstanding offers (queued, or
	// taken and not yet answered); past it RelayOffer fails with
	// ResourceExhausted. 0 means 8, the number the part answers at once.
	MaxOffersPerPart int
	// MaxOffers bounds outstanding offers across all parts; 0 means 1024.
	MaxOffers int
	// MaxPollsPerPart bounds one part's waiting NextOffer calls; 0 means 4.
	// A part needs one; a few cover a poll the network lost.
	MaxPollsPerPart int
	// PickupTimeout is how long an offer waits for its part to take it
	// before the client is told the part is unavailable; 0 means 10 s. A
	// connected part is always polling, so it takes an offer at once.
	PickupTimeout time.Duration
	// Timeout bounds a relayed offer as a whole: the part must take it and
	// answer within it, or the client is told so; 0 means 30 s (the part
	// gathers its ICE candidates before answering). It is never shorter
	// than PickupTimeout.
	Timeout time.Duration
	// PollWait is how long NextOffer holds a call without offers when the
	// part asks for no particular wait; 0 means 20 s.
	PollWait time.Duration
	// MaxPollWait caps the wait a part asks for; 0 means 25 s, inside the
	// part's 30 s response timeout (sync.NewClient) and proxies' idle ones.
	MaxPollWait time.Duration
}

// Broker matches clients' offers with their parts' polls and answers. It
// implements cloud/partsync's Relay (the part side); NewService serves its
// client side. This package does not import partsync, so a client using
// Signaling does not link the cloud's part sync code.
type Broker struct {
	clock         clock.Clock
	log           *zap.Logger
	maxPerPart    int
	maxOffers     int
	maxPolls      int
	pickupTimeout time.Duration
	timeout       time.Duration
	pollWait      time.Duration
	maxPollWait   time.Duration

	closeOnce sync.Once
	closed    chan struct{} // closed by Close

	mu          sync.Mutex
	parts       map[string]*partQueue // parts with offers outstanding or polls waiting
	offers      map[string]*offer     // offers a part may still answer, by id
	outstanding int                   // offers whose client's call has not returned
}

// partQueue is one part's state; it exists only while the part has an
// offer outstanding or a poll waiting.
type partQueue struct {
	queue       []*offer // not yet taken, oldest first
	outstanding int      // queued or taken, until the client's call returns
	polls       int
	// ready is closed, and replaced, when an offer is queued: it wakes
	// every waiting poll, and the first to take the lock takes the offer.
	ready chan struct{}
}

// offer is one client's offer, from RelayOffer until that call returns.
type offer struct {
	msg    *syncv1.RelayedOffer
	partID string
	taken  chan struct{} // closed when a poll took it
	answer chan result   // the part's answer; buffered, sent at most once
}

type result struct {
	resp *fleetv1.RelayOfferResponse
	err  error
}

// NewBroker returns an empty broker.
func NewBroker(opts Options) *Broker {
	b := &Broker{
		clock:         opts.Clock,
		log:           opts.Logger,
		maxPerPart:    cmp.Or(opts.MaxOffersPerPart, 8),
		maxOffers:     cmp.Or(opts.MaxOffers, 1024),
		maxPolls:      cmp.Or(opts.MaxPollsPerPart, 4),
		pickupTimeout: cmp.Or(opts.PickupTimeout, 10*time.Second),
		timeout:       cmp.Or(opts.Timeout, 30*time.Second),
		pollWait:      cmp.Or(opts.PollWait, 20*time.Second),
		maxPollWait:   cmp.Or(opts.MaxPollWait, 25*time.Second),
		parts:         map[string]*partQueue{},
		offers:        map[string]*offer{},
		closed:        make(chan struct{}),
	}
	if b.clock == nil {
		b.clock = clock.NewReal()
	}
	if b.log == nil {
		b.log = zap.NewNop()
	}
	b.log = b.log.Named("relay")
	b.timeout = max(b.timeout, b.pickupTimeout)
	b.pollWait = min(b.pollWait, b.maxPollWait)
	return b
}

// Close ends every wait at once, and every later one: a part's poll gets
// no offer, a client's offer is refused as Unavailable. The cloud calls it
// when it shuts down, so its graceful shutdown does not wait out parts'
// long polls (up to PollWait) and clients' offers (up to Timeout).
func (b *Broker) Close() { b.closeOnce.Do(func() { close(b.closed) }) }

// closing is the refusal of an offer while the cloud shuts down.
func closing(partID string) error {
	return connect.NewError(connect.CodeUnavailable, fmt.Errorf("relay offer to part %s: the cloud is shutting down; try again shortly", partID))
}

// Offer is a client's offer as the client side hands it to the broker.
type Offer struct {
	// PartID is the part the offer is for.
	PartID string
	// SDP is the client's offer.
	SDP string
	// Assertion is the cloud's signed assertion of who the client is
	// (credential.SignAssertion), bound to the part and to SDP: never the
	// client's own credential.
	Assertion string
	// Peer is the client's address, for the part's throttling and audit.
	Peer string
}

// Relay queues o for its part and waits for the part's answer: it returns
// Unavailable when the part does not take the offer within PickupTimeout,
// DeadlineExceeded when it took it but did not answer within Timeout,
// ResourceExhausted past the bounds, and the part's refusal as the part
// sent it.
func (b *Broker) Relay(ctx context.Context, o Offer) (*fleetv1.RelayOfferResponse, error) {
	if err := validateOffer(o); err != nil {
		return nil, err
	}
	select {
	case <-b.closed:
		return nil, closing(o.PartID)
	default:
	}
	off, err := b.enqueue(o)
	if err != nil {
		return nil, err
	}
	defer b.release(off)

	// Both timers start now, so a relayed call lasts at most Timeout
	// however the part's poll and answer split it.
	deadline := b.clock.NewTimer(b.timeout)
	defer deadline.Stop()
	pickup := b.clock.NewTimer(b.pickupTimeout)
	defer pickup.Stop()
	offline := func() error {
		b.log.Info("no poll took a relayed offer: the part seems offline", zap.String("part", o.PartID), zap.String("offer", off.msg.GetId()))
		return connect.NewError(connect.CodeUnavailable, fmt.Errorf(
			"relay offer to part %s: the part did not take it within %s: it is offline or cannot reach the cloud (on its LAN, connect to it directly)", o.PartID, b.pickupTimeout))
	}
	unanswered := func() (*fleetv1.RelayOfferResponse, error) {
		select {
		case r := <-off.answer: // the answer came as the time ran out
			return r.resp, r.err
		default:
		}
		b.log.Warn("a part took a relayed offer and did not answer", zap.String("part", o.PartID), zap.String("offer", off.msg.GetId()))
		return nil, connect.NewError(connect.CodeDeadlineExceeded, fmt.Errorf(
			"relay offer to part %s: the part took it but did not answer within %s; try again", o.PartID, b.timeout))
	}
	select {
	case <-off.taken:
	case <-pickup.C():
		if b.withdraw(off) {
			return nil, offline()
		}
		// A poll took it as the timer fired: wait for the answer.
	case <-deadline.C():
		if b.withdraw(off) {
			return nil, offline()
		}
		return unanswered()
	case <-ctx.Done():
		return nil, ctxErr("relay offer to part "+o.PartID+": waiting for the part to take it", ctx.Err())
	case <-b.closed:
		return nil, closing(o.PartID)
	}
	pickup.Stop()
	select {
	case r := <-off.answer:
		return r.resp, r.err
	case <-deadline.C():
		return unanswered()
	case <-ctx.Done():
		return nil, ctxErr("relay offer to part "+o.PartID+": waiting for the part's answer", ctx.Err())
	case <-b.closed:
		return nil, closing(o.PartID)
	}
}

// enqueue registers a new offer and wakes the part's polls.
func (b *Broker) enqueue(o Offer) (*offer, error) {
	id, err := newOfferID()
	if err != nil {
		return nil, connect.NewError(connect.CodeInternal, fmt.Errorf("relay offer to part %s: %w", o.PartID, err))
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	q := b.partLocked(o.PartID)
	switch {
	case q.outstanding >= b.maxPerPart:
		b.gcLocked(o.PartID, q)
		b.log.Warn("refused a relayed offer: too many outstanding for the part", zap.String("part", o.PartID), zap.Int("outstanding", q.outstanding))
		return nil, connect.NewError(connect.CodeResourceExhausted, fmt.Errorf(
			"relay offer to part %s: %d offers to it are already waiting; try again shortly", o.PartID, q.outstanding))
	case b.outstanding >= b.maxOffers:
		b.gcLocked(o.PartID, q)
		b.log.Warn("refused a relayed offer: the relay is full", zap.Int("outstanding", b.outstanding))
		return nil, connect.NewError(connect.CodeResourceExhausted, fmt.Errorf(
			"relay offer to part %s: the cloud's relay is busy; try again shortly", o.PartID))
	}
	off := &offer{
		msg:    &syncv1.RelayedOffer{Id: id, Sdp: o.SDP, Assertion: o.Assertion, Peer: o.Peer},
		partID: o.PartID,
		taken:  make(chan struct{}),
		answer: make(chan result, 1),
	}
	b.offers[id] = off
	q.queue = append(q.queue, off)
	q.outstanding++
	b.outstanding++
	close(q.ready)
	q.ready = make(chan struct{})
	return off, nil
}

// withdraw takes off out of its part's queue, reporting false when a poll
// took it first.
func (b *Broker) withdraw(off *offer) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.parts[off.partID].removeLocked(off)
}

// removeLocked takes off out of the queue, reporting whether it was there.
func (q *partQueue) removeLocked(off *offer) bool {
	i := slices.Index(q.queue, off)
	if i < 0 {
		return false
	}
	q.queue = slices.Delete(q.queue, i, i+1)
	return true
}

// release forgets off once its client's call returns, whatever happened:
// a later answer finds nothing, and the part's state goes when unused.
func (b *Broker) release(off *offer) {
	b.mu.Lock()
	defer b.mu.Unlock()
	q := b.parts[off.partID]
	q.removeLocked(off)
	if b.offers[off.msg.GetId()] == off {
		delete(b.offers, off.msg.GetId())
	}
	q.outstanding--
	b.outstanding--
	b.gcLocked(off.partID, q)
}

// partLocked returns partID's state, made if needed.
func (b *Broker) partLocked(partID string) *partQueue {
	q := b.parts[partID]
	if q == nil {
		q = &partQueue{ready: make(chan struct{})}
		b.parts[partID] = q
	}
	return q
}

// gcLocked drops a part's state once nothing uses it.
func (b *Broker) gcLocked(partID string, q *partQueue) {
	if q.outstanding == 0 && q.polls == 0 {
		delete(b.parts, partID)
	}
}

// NextOffer implements partsync.Relay: it returns the oldest offer queued
// for partID, waiting up to the request's bounded wait for one.
func (b *Broker) NextOffer(ctx context.Context, partID string, req *syncv1.NextOfferRequest) (*syncv1.NextOfferResponse, error) {
	wait, err := b.pollWaitOf(req)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	q := b.partLocked(partID)
	if q.polls >= b.maxPolls {
		b.mu.Unlock()
		b.log.Warn("refused a poll for relayed offers: too many waiting for the part", zap.String("part", partID))
		return nil, connect.NewError(connect.CodeResourceExhausted, fmt.Errorf(
			"next offer: %d polls of this part are already waiting; poll once at a time", b.maxPolls))
	}
	q.polls++
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		q.polls--
		b.gcLocked(partID, q)
		b.mu.Unlock()
	}()

	timer := b.clock.NewTimer(wait)
	defer timer.Stop()
	for {
		b.mu.Lock()
		// A poll whose caller is gone takes nothing: the offer would be
		// lost in a response no one reads.
		if len(q.queue) > 0 && ctx.Err() == nil {
			off := q.queue[0]
			q.queue[0] = nil
			q.queue = q.queue[1:]
			close(off.taken)
			b.mu.Unlock()
			return &syncv1.NextOfferResponse{Offer: off.msg}, nil
		}
		ready := q.ready
		b.mu.Unlock()
		select {
		case <-ready:
		case <-timer.C():
			return &syncv1.NextOfferResponse{}, nil
		case <-ctx.Done():
			return nil, ctxErr("next offer", ctx.Err())
		case <-b.closed:
			// No offer: the part polls again after its pause, and finds
			// the cloud gone or back.
			return &syncv1.NextOfferResponse{}, nil
		}
	}
}

// AnswerOffer implements partsync.Relay: it hands partID's answer to the
// client waiting on the offer. An offer that is not partID's, not taken
// yet, already answered or given up is NotFound, alike, so a part learns
// nothing about other parts' offers.
func (b *Broker) AnswerOffer(_ context.Context, partID string, req *syncv1.AnswerOfferRequest) (*syncv1.AnswerOfferResponse, error) {
	res, err := answerResult(partID, req)
	if err != nil {
		b.log.Warn("refused a part's answer", zap.String("part", partID), zap.Error(err))
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	off := b.offers[req.GetOfferId()]
	if off == nil || off.partID != partID || !isClosed(off.taken) {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf(
			"answer offer %s: no client is waiting for this part's answer to it (the client gave up, or it was answered already)", req.GetOfferId()))
	}
	// Out of the map, the offer cannot be answered twice, and the buffered
	// send never blocks.
	delete(b.offers, req.GetOfferId())
	off.answer <- res
	return &syncv1.AnswerOfferResponse{}, nil
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// pollWaitOf is the wait a NextOffer request asks for, capped.
func (b *Broker) pollWaitOf(req *syncv1.NextOfferRequest) (time.Duration, error) {
	d := req.GetMaxWait()
	if d == nil {
		return b.pollWait, nil
	}
	if err := d.CheckValid(); err != nil || d.AsDuration() < 0 {
		return 0, connect.NewError(connect.CodeInvalidArgument, errors.New("next offer: max_wait must be a valid, non-negative duration"))
	}
	switch w := d.AsDuration(); {
	case w == 0:
		return b.pollWait, nil
	case w > b.maxPollWait:
		return b.maxPollWait, nil
	default:
		return w, nil
	}
}

// Len reports how many offers are outstanding and how many parts have
// state, for metrics and for tests that check nothing is left behind.
func (b *Broker) Len() (offers, parts int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.outstanding, len(b.parts)
}

func newOfferID() (string, error) {
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("make an offer id: %w", err)
	}
	return hex.EncodeToString(raw[:]), nil
}

// ctxErr is the error of a call whose context ended.
func ctxErr(what string, err error) error {
	code := connect.CodeCanceled
	if errors.Is(err, context.DeadlineExceeded) {
		code = connect.CodeDeadlineExceeded
	}
	return connect.NewError(code, fmt.Errorf("%s: %w", what, err))
}
