package daemon

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"connectrpc.com/connect"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/cache"
	"github.com/outpost-robotics/outpost/cloudsync"
	"github.com/outpost-robotics/outpost/control"
	"github.com/outpost-robotics/outpost/packages"
	"github.com/outpost-robotics/outpost/partfile"
	"github.com/outpost-robotics/outpost/robot"
)

// applyConfig makes doc's config the running one: robot, capture, log
// level and store budget.
func (d *daemon) applyConfig(ctx context.Context, doc *syncv1.ConfigDocument, source string) {
	state := control.ConfigState{Config: doc.GetConfig(), Version: doc.GetVersion(), MachineRevision: doc.GetMachineRevision(), Parts: doc.GetParts(),
		Fragments: doc.GetFragments()}
	// Downloads and switches go on in the package manager's own time;
	// the config applies now with the versions on disk.
	d.pkgs.Issue(doc.GetPackages(), doc.GetConfig().GetMaintenance())
	res, err := d.apply(ctx, state)
	if err != nil {
		d.log.Error("config not applied; the running one stays", zap.String("source", source), zap.Uint64("version", doc.GetVersion()), zap.Error(err))
	} else {
		// The one line saying a config runs; robot logs the details at debug.
		d.log.Info("config applied", zap.String("source", source), zap.Uint64("version", doc.GetVersion()),
			zap.Strings("built", res.Built), zap.Strings("removed", res.Removed), zap.Int("kept", len(res.Kept)), zap.Int("failed", len(res.Failed())))
	}
	if d.o.afterApply != nil {
		d.o.afterApply(source, err)
	}
}

var errClosing = errors.New("outpostd is stopping")

// applyState is the running config. Applies, expiry and the start of
// shutdown each change the robot and capture whole; mu makes them take
// turns.
type applyState struct {
	mu      sync.Mutex // held for a whole change; guards the fields below
	closing bool       // shutdown began: nothing changes any more
	expired bool       // the documents expired offline and the machine was stopped
	running control.ConfigState
}

// current is the running config.
func (a *applyState) current() control.ConfigState {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.running
}

// change runs f alone; f changes the robot and capture and may read and
// set a's fields. Once shutdown began it refuses with errClosing.
func (a *applyState) change(f func() error) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closing {
		return errClosing
	}
	return f()
}

// isExpired reports whether the documents expired offline and the
// machine was stopped.
func (a *applyState) isExpired() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.expired
}

// close refuses every change from now on, after the one in progress.
func (a *applyState) close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.closing = true
}

func (d *daemon) apply(ctx context.Context, state control.ConfigState) (*robot.Result, error) {
	var res *robot.Result
	err := d.applied.change(func() error {
		cfg := state.Config
		// The robot runs the config with each "${packages.NAME}" made the
		// directory of the version in place; the running state keeps it as
		// written, as the cloud and control show it.
		run, uses := packages.Substitute(cfg, d.pkgs.Dirs())
		r, err := d.robot.Apply(ctx, run)
		if err != nil {
			return err
		}
		d.pkgUses.set(uses)
		for name, why := range r.Failed() {
			d.log.Warn("resource failed to start", zap.String("resource", name), zap.String("why", why))
		}
		d.poller.Apply(ctx, cfg.GetCaptures())
		if err := d.files.Apply(ctx, cfg.GetSyncFolders()); err != nil {
			d.log.Warn("some sync folders are not synced", zap.Error(err))
		}
		d.level.setConfig(cfg.GetLogLevel())
		d.saveBudget(cfg.GetStoreBudget())
		d.applied.running, d.applied.expired = state, false
		res = r
		return nil
	})
	return res, err
}

// onExpired stops components safely and capture when the grants and
// config expire offline; control refuses remote credentials by itself,
// judging expiry on the offline clock.
func (d *daemon) onExpired(ctx context.Context, why string) {
	_ = d.applied.change(func() error {
		if d.applied.expired {
			return nil
		}
		d.applied.expired = true
		failed, err := d.robot.StopAll(ctx)
		d.poller.Apply(ctx, nil)
		_ = d.files.Apply(ctx, nil)
		d.log.Error("config and grants expired: components stopped, capture stopped", zap.String("why", why), zap.Any("failed_to_stop", failed), zap.Error(err))
		_ = d.o.notifier.Status("EXPIRED: " + why)
		return nil
	})
}

// restartRobot restarts the robot for a restart order from the cloud: the
// runtime, not the daemon (docs/ARCHITECTURE.md, decision 35). It takes its
// turn with applies, so a config arriving in the same pull runs first and
// the restart starts it afresh. A daemon that is stopping defers it to its
// next start; one whose documents expired keeps its components stopped.
func (d *daemon) restartRobot(ctx context.Context, _ *syncv1.RestartOrder) error {
	err := d.applied.change(func() error {
		if d.applied.expired {
			return errors.New("the part's config and grants expired: its components stay stopped until the cloud renews them")
		}
		return d.robot.Restart(ctx)
	})
	if errors.Is(err, errClosing) || errors.Is(err, robot.ErrClosed) {
		return fmt.Errorf("%w: %w", cloudsync.ErrRestartDeferred, err)
	}
	return err
}

// loadBudget reads the budget the last config set: the store takes its
// budget at Open, before any config is read.
func (d *daemon) loadBudget() cache.Budget {
	b, err := partfile.ReadBudget(d.o.DataDir)
	if err != nil {
		d.baseLog.Warn("ignoring an unreadable budget file", zap.Error(err))
	}
	return cache.Budget(b)
}

func (d *daemon) saveBudget(sb *configv1.StoreBudget) {
	want := partfile.DefaultBudget()
	if sb != nil {
		want = partfile.Budget{MaxBytes: int64(min(sb.GetMaxBytes(), 1<<62)), MinFreeBytes: int64(min(sb.GetMinFreeBytes(), 1<<62))}
	}
	if cache.Budget(want) == d.budget {
		return
	}
	if err := partfile.WriteBudget(d.o.DataDir, want); err != nil {
		d.log.Warn("could not save the store budget", zap.Error(err))
		return
	}
	d.log.Info("the store budget changes at the next start", zap.Int64("max_bytes", want.MaxBytes), zap.Int64("min_free_bytes", want.MinFreeBytes))
}

// configAPI is control's Config over the daemon.
type configAPI struct{ d *daemon }

func (c configAPI) CurrentConfig(context.Context) (control.ConfigState, error) {
	return c.d.applied.current(), nil
}

// ProposeEdit applies the edit at once (it works offline) and queues it
// for the cloud, which decides whether it becomes a revision.
func (c configAPI) ProposeEdit(ctx context.Context, p *syncv1.ConfigProposal) (control.EditResult, error) {
	d := c.d
	base := d.applied.current()
	if len(base.Parts) > 1 {
		// The part holds only its share: proposed as the machine's config,
		// it would take the other parts' resources away.
		return control.EditResult{}, connect.NewError(connect.CodeFailedPrecondition,
			errors.New("this part is one of its machine's several parts and runs only its share of the machine's config: edit the config at the cloud (outpost config set)"))
	}
	state := control.ConfigState{Config: p.GetConfig(), Version: base.Version, MachineRevision: base.MachineRevision, LocalEdits: true, Parts: base.Parts,
		Fragments: base.Fragments}
	// The edit is of the merged config: the cloud takes these fragments'
	// entries back out of it, so the machine keeps following them.
	p.Fragments = base.Fragments
	if _, err := d.apply(ctx, state); err != nil {
		if errors.Is(err, errClosing) || errors.Is(err, robot.ErrClosed) {
			return control.EditResult{}, connect.NewError(connect.CodeUnavailable, err)
		}
		return control.EditResult{}, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("config edit refused, nothing changed: %w", err))
	}
	raw, err := proto.Marshal(p)
	if err != nil {
		return control.EditResult{}, fmt.Errorf("encode the proposal: %w", err)
	}
	seq, err := d.store.Append(ctx, cache.StreamProposals, cache.Record{Payload: raw})
	if err != nil {
		return control.EditResult{Applied: true}, fmt.Errorf("the edit runs but could not be queued for the cloud: %w", err)
	}
	res := control.EditResult{Applied: true, ProposalSeq: seq}
	if p.GetBaseRevision() != base.MachineRevision {
		res.Conflict = fmt.Sprintf("the edit is based on revision %d but the part runs revision %d; the cloud decides", p.GetBaseRevision(), base.MachineRevision)
	}
	d.log.Info("local config edit applied and queued", zap.String("author", p.GetAuthor()), zap.Uint64("proposal", seq))
	return res, nil
}
