package cloudsync

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/cache"
)

// ErrRestartDeferred is what Options.OnRestart wraps when it cannot restart
// now (the daemon is stopping): the order is not counted as handled, and
// the next pull that carries it, after the next start, acts on it.
var ErrRestartDeferred = errors.New("the restart is deferred")

// stateRestart is the store state key of the last restart order handled: a
// serialized RestartReport.
const stateRestart = "sync.restart"

// maxRestartError bounds RestartReport.error, as the cloud does.
const maxRestartError = 1024

// LastRestart returns the last restart order handled, as the status
// reports it, or nil before the first.
func (s *Syncer) LastRestart(ctx context.Context) (*syncv1.RestartReport, error) {
	b, err := s.o.Store.GetState(ctx, stateRestart)
	if errors.Is(err, cache.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the last restart handled: %w", err)
	}
	var r syncv1.RestartReport
	if err := proto.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decode the last restart handled: %w", err)
	}
	if r.GetId() == "" {
		return nil, nil
	}
	return &r, nil
}

func (s *Syncer) putRestart(ctx context.Context, r *syncv1.RestartReport) error {
	b, err := proto.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode the restart handled: %w", err)
	}
	if err := s.o.Store.PutState(ctx, stateRestart, b); err != nil {
		return fmt.Errorf("record the restart handled: %w", err)
	}
	return nil
}

// restart acts on a restart order from the cloud, once: an order is acted
// on only when it was asked later than the last one handled, so neither
// repeated pulls (the cloud sends it until the status says it was handled)
// nor daemon restarts nor an old order replayed restart the robot again.
// The order is recorded durably before the robot restarts, never after: a
// crash in between costs the restart, and the daemon's own start, after
// the crash, is one. It returns the report of an order acted on in this
// call, nil when there was none.
func (s *Syncer) restart(ctx context.Context, doc *syncv1.SignedDocument) (*syncv1.RestartReport, error) {
	if doc == nil || s.o.OnRestart == nil {
		return nil, nil
	}
	order, verr := s.o.Trust.Restart(doc)
	if order == nil {
		s.mu.Lock()
		first := s.refused["restart"] != verr.Error()
		s.refused["restart"] = verr.Error()
		s.mu.Unlock()
		if first {
			s.log.Error("refused a restart order from the cloud", zap.Error(verr))
		}
		return nil, fmt.Errorf("refuse restart: %w", verr)
	}
	s.mu.Lock()
	delete(s.refused, "restart")
	s.mu.Unlock()
	last, err := s.LastRestart(ctx)
	if err != nil {
		// Whether the order was acted on is unknown: not acting is the
		// safe side, and the next cycle asks again.
		return nil, err
	}
	asked := order.GetRequestedAt().AsTime()
	if last != nil && !asked.After(last.GetRequestedAt().AsTime()) {
		if last.GetId() != order.GetId() {
			s.log.Warn("ignored a restart order asked no later than the last one handled",
				zap.String("restart", order.GetId()), zap.Time("requested_at", asked), zap.String("last", last.GetId()))
		}
		return nil, nil
	}
	rep := &syncv1.RestartReport{Id: order.GetId(), RequestedAt: order.GetRequestedAt(), At: timestamppb.New(s.o.Offline.Now()),
		Outcome: syncv1.RestartOutcome_RESTART_OUTCOME_RESTARTED}
	fields := []zap.Field{zap.String("restart", order.GetId()), zap.String("requested_by", order.GetRequestedBy()), zap.Time("requested_at", asked)}
	if errors.Is(verr, ErrExpired) {
		rep.Outcome = syncv1.RestartOutcome_RESTART_OUTCOME_EXPIRED
		if err := s.putRestart(ctx, rep); err != nil {
			return nil, err
		}
		s.log.Warn("a restart asked from the cloud expired before it reached the part; not restarting",
			append(fields, zap.Time("expired_at", order.GetExpiresAt().AsTime()))...)
		return rep, nil
	}
	if err := s.putRestart(ctx, rep); err != nil {
		return nil, err
	}
	s.log.Info("restarting the robot: the cloud asked", fields...)
	err = s.o.OnRestart(ctx, order)
	switch {
	case errors.Is(err, ErrRestartDeferred):
		// Not acted on: forget it, so the next start does (an empty
		// report stands for none).
		if last == nil {
			last = &syncv1.RestartReport{}
		}
		if err := s.putRestart(ctx, last); err != nil {
			return nil, fmt.Errorf("defer the restart: %w", err)
		}
		s.log.Info("the restart asked from the cloud waits for the next start", fields...)
		return nil, nil
	case err != nil:
		rep.Outcome, rep.Error = syncv1.RestartOutcome_RESTART_OUTCOME_FAILED, clip(err.Error(), maxRestartError)
		s.log.Error("the restart asked from the cloud failed; it is not tried again", append(fields, zap.Error(err))...)
		if perr := s.putRestart(ctx, rep); perr != nil {
			return rep, perr
		}
		return rep, nil
	}
	s.log.Info("restarted the robot as the cloud asked", fields...)
	return rep, nil
}

// clip cuts s to at most n bytes, on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}
