package cloud

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/cloud/ingest/pgingest"
	"github.com/outpost-robotics/outpost/rbac"
)

// retentionSweep is how often the organizations' data retention is
// applied: retention is counted in days, so hourly is ample.
const retentionSweep = time.Hour

// retainer is an ingest store that erases records past their part's
// cutoff (pgingest's, which drops whole days); the embedded store keeps
// everything.
type retainer interface {
	ApplyRetention(ctx context.Context, cutoff func(partID string) (time.Time, bool)) (pgingest.RetentionResult, error)
}

// retentionCutoffs returns, for each part, the time before which its
// organization no longer keeps what it uploaded; false for parts kept for
// ever (an organization without retention, a part no longer known).
func (s *Server) retentionCutoffs(ctx context.Context) (func(partID string) (time.Time, bool), error) {
	snap, err := s.snaps.get(ctx)
	if err != nil {
		return nil, err
	}
	now := s.clock.Now()
	return func(partID string) (time.Time, bool) {
		if _, ok := snap.parts[partID]; !ok {
			return time.Time{}, false
		}
		org, ok := snap.orgs[snap.orgOf(rbac.Part(partID))]
		if !ok || org.Retention <= 0 {
			return time.Time{}, false
		}
		return now.Add(-org.Retention), true
	}, nil
}

// applyRetention applies every organization's retention once.
func (s *Server) applyRetention(ctx context.Context) {
	r, ok := s.ingest.(retainer)
	if !ok {
		return
	}
	cutoff, err := s.retentionCutoffs(ctx)
	if err == nil {
		var res pgingest.RetentionResult
		res, err = r.ApplyRetention(ctx, cutoff)
		if len(res.Dropped) > 0 || res.Pruned > 0 {
			s.log.Info("applied the organizations' data retention", zap.Strings("dropped_partitions", res.Dropped), zap.Int64("pruned_records", res.Pruned))
		}
	}
	if err != nil && ctx.Err() == nil {
		s.log.Warn("could not apply the organizations' data retention", zap.Error(err))
	}
}

// sweepRetention applies the retention at start and every retentionSweep
// until ctx ends. Every replica sweeps; the store serializes their changes.
func sweepRetention(ctx context.Context, clk clock.Clock, s *Server) {
	if _, ok := s.ingest.(retainer); !ok {
		return
	}
	t := clk.NewTicker(retentionSweep)
	defer t.Stop()
	for {
		s.applyRetention(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
	}
}
