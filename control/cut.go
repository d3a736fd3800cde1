package control

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"connectrpc.com/connect"
	"go.uber.org/zap"

	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/authz"
)

// Every call is decided against the bundle current at that call, but a
// WebRTC session and a streaming call stay open between decisions: a
// technician whose role was removed at the cloud would keep driving the
// robot over a session opened before. GrantsChanged decides those again
// when a new bundle arrives and ends the ones the bundle no longer allows.

// stillHolds reports why id, which proved itself under an older bundle, may
// no longer do anything on this machine under p: nil while it holds a grant
// reaching the machine and its token is not revoked.
func (p *policy) stillHolds(id proved, now time.Time) error {
	if p.err != nil {
		return p.err
	}
	if p.expired(now) {
		return errors.New(p.expiredMessage(now))
	}
	var pr *principal
	switch id.who.Kind {
	case authz.KindUser:
		pr = p.users[id.who.ID]
	case authz.KindAPIKey:
		pr = p.keys[id.who.ID]
	default:
		return nil // the break-glass socket is decided by its peer, not the bundle
	}
	if pr == nil {
		return fmt.Errorf("%s holds no grant on %s (grants version %d)", id.who, p.machine, p.version)
	}
	if _, ok := p.access(&pr.subject); !ok {
		return fmt.Errorf("%s holds no grant reaching %s (grants version %d)", id.who, p.machine, p.version)
	}
	if id.tokenID != "" {
		if !pr.notBefore.IsZero() && id.issued.Before(pr.notBefore) {
			return fmt.Errorf("the access token of %s was revoked at the cloud (the password changed)", id.who)
		}
		if pr.revoked[id.tokenID] {
			return fmt.Errorf("the access token of %s was revoked at the cloud (signed out)", id.who)
		}
	}
	return nil
}

// liveCall is a call on the TLS port in progress, which GrantsChanged may
// end; calls on a WebRTC session end with their session.
type liveCall struct {
	id     proved
	cancel context.CancelCauseFunc
}

// liveCalls are the calls in progress on the TLS port.
type liveCalls struct {
	mu    sync.Mutex
	calls map[*liveCall]struct{}
}

func (l *liveCalls) add(c *liveCall) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.calls == nil {
		l.calls = map[*liveCall]struct{}{}
	}
	l.calls[c] = struct{}{}
}

func (l *liveCalls) remove(c *liveCall) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.calls, c)
}

func (l *liveCalls) all() []*liveCall {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]*liveCall, 0, len(l.calls))
	for c := range l.calls {
		out = append(out, c)
	}
	return out
}

// errCut is the cause of a call ended because the bundle no longer allows it.
var errCut = errors.New("the part's grants changed")

// cutError is what a stream whose context ended answers: the refusal, when
// GrantsChanged ended it, so the client reads why; nil when the client
// went away.
func cutError(ctx context.Context) error {
	if cause := context.Cause(ctx); errors.Is(cause, errCut) {
		return connect.NewError(connect.CodePermissionDenied, cause)
	}
	return nil
}

// GrantsChanged tells the control plane that the part holds a new grant
// bundle (the daemon calls it when sync stores one). It builds the new
// policy at once and ends every open WebRTC session, and every call in
// progress on the TLS port (a log stream, say), whose subject no longer
// holds a grant reaching this machine or whose token the bundle revokes;
// each end is audited. It returns how many sessions and calls it ended.
func (s *Server) GrantsChanged(ctx context.Context) int {
	pol, err := s.auth.currentPolicy(ctx)
	if err != nil {
		s.log.Error("grants changed: read the bundle", zap.Error(err))
		return 0
	}
	now := s.opts.Clock.Now()
	n := 0
	cut := func(id proved, transport, peer, what string, why error) {
		n++
		s.log.Info("closing what the new grants no longer allow", zap.String("what", what), zap.String("subject", id.who.String()),
			zap.String("transport", transport), zap.String("why", why.Error()))
		s.auth.write(ctx, &syncv1.AuditEvent{Subject: id.who.String(), Action: "machine.control", Resource: pol.machine.String(),
			Procedure: what, Allowed: false, Reason: "closed: " + why.Error(), Transport: transport, Peer: peer})
	}
	s.rtc.mu.Lock()
	sessions := make([]*session, 0, len(s.rtc.sessions))
	for _, ss := range s.rtc.sessions {
		sessions = append(sessions, ss)
	}
	s.rtc.mu.Unlock()
	for _, ss := range sessions {
		if ss.conn.fixed == nil {
			continue
		}
		if why := pol.stillHolds(*ss.conn.fixed, now); why != nil {
			cut(*ss.conn.fixed, TransportWebRTC, ss.conn.peer, "WebRTC session", why)
			ss.close()
		}
	}
	for _, c := range s.auth.live.all() {
		if why := pol.stillHolds(c.id, now); why != nil {
			cut(c.id, TransportGRPC, "", "call in progress", why)
			c.cancel(fmt.Errorf("%w: %w", errCut, why))
		}
	}
	return n
}
