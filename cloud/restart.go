package cloud

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/cloud/auth"
	"github.com/outpost-robotics/outpost/cloud/partsync"
	"github.com/outpost-robotics/outpost/cloud/store"
)

// RestartTTL is how long a restart request waits for its part. A restart is
// an operator's remedy for what the robot does now; a part that comes back
// within a day (a dropped link, a night without network) still gets it,
// once, but one that comes back later is in another situation, with people
// perhaps working beside it, and a restart it did not expect would surprise
// them. The part honours the expiry the order carries by its offline clock,
// and the cloud stops sending the order by its own.
const RestartTTL = 24 * time.Hour

// askRestart makes a new pending restart request on r, replacing any
// pending one; what the part last handled stays.
func askRestart(r store.PartRestart, now time.Time, by string) store.PartRestart {
	r.ID, r.RequestedAt, r.RequestedBy = auth.NewID(), now, by
	return r
}

// requester is the caller of a fleet call, as audit records spell it.
func requester(ctx context.Context) string {
	if c := callFrom(ctx); c != nil && c.principal != nil {
		return c.principal.ref()
	}
	return ""
}

// partRestartPB is a part's restart state for the fleet API; nil when no
// restart was ever asked of it.
func partRestartPB(r store.PartRestart) *fleetv1.PartRestart {
	if r.ID == "" && r.HandledID == "" {
		return nil
	}
	pb := &fleetv1.PartRestart{HandledAt: ts(r.HandledAt), Outcome: r.Outcome, Error: r.Error}
	if r.ID != "" {
		pb.RequestedAt, pb.ExpiresAt, pb.RequestedBy = ts(r.RequestedAt), ts(r.RequestedAt.Add(RestartTTL)), r.RequestedBy
	}
	return pb
}

var _ partsync.Restarter = (*documents)(nil)

// PendingRestart signs the part's pending restart request, unless there is
// none or it expired by the cloud's clock. It reads the hierarchy snapshot,
// which authenticating the pull has just brought up to date.
func (d *documents) PendingRestart(ctx context.Context, part partsync.Part) (*syncv1.SignedDocument, error) {
	snap, err := d.s.snaps.get(ctx)
	if err != nil {
		return nil, err
	}
	r := snap.parts[part.ID].Restart
	if r.ID == "" {
		return nil, nil
	}
	exp := r.RequestedAt.Add(RestartTTL)
	if !d.s.clock.Now().Before(exp) {
		return nil, nil
	}
	doc, err := d.signer.Sign(&syncv1.RestartOrder{PartId: part.ID, MachineId: part.MachineID, Id: r.ID,
		RequestedAt: ts(r.RequestedAt), ExpiresAt: ts(exp), RequestedBy: r.RequestedBy})
	if err != nil {
		return nil, fmt.Errorf("sign the restart order of part/%s: %w", part.ID, err)
	}
	return doc, nil
}

// RestartHandled clears the pending request a part reports handled and
// keeps what it did. A report of a request that is not the pending one (it
// was cleared already, or a newer one was asked since) changes nothing.
func (d *documents) RestartHandled(ctx context.Context, part partsync.Part, rep *syncv1.RestartReport) error {
	snap, err := d.s.snaps.get(ctx)
	if err != nil {
		return err
	}
	if snap.parts[part.ID].Restart.ID != rep.GetId() {
		return nil
	}
	return d.s.update(ctx, func(tx store.Tx) error {
		p, err := tx.GetPart(ctx, part.ID)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if p.Restart.ID != rep.GetId() {
			return nil
		}
		// The part's time is its estimate of the cloud's: kept between
		// the request and now, where it must lie.
		at := rep.GetAt().AsTime()
		if now := d.s.clock.Now().UTC(); at.After(now) || at.Before(p.Restart.RequestedAt) {
			at = now
		}
		outcome := strings.TrimPrefix(strings.ToLower(rep.GetOutcome().String()), "restart_outcome_")
		p.Restart.HandledID, p.Restart.HandledAt, p.Restart.Outcome, p.Restart.Error = rep.GetId(), at.UTC(), outcome, rep.GetError()
		p.Restart.ID, p.Restart.RequestedAt, p.Restart.RequestedBy = "", time.Time{}, ""
		return tx.PutPart(ctx, p)
	})
}
