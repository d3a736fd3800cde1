package daemon

import (
	"context"
	"errors"
	"fmt"

	"go.uber.org/zap"

	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/partfile"
	psync "github.com/outpost-robotics/outpost/sync"
)

// newSyncer builds the sync client and syncer for a bootstrap file.
func (d *daemon) newSyncer(b *partfile.Bootstrap) error {
	f := b.File
	client, err := psync.NewClient(psync.ClientOptions{CloudURL: f.GetCloudUrl(), PartID: f.GetPartId(), PartSecret: f.GetPartSecret(), CAFile: f.GetCaFile(), Logger: d.log})
	if err != nil {
		if errors.Is(err, psync.ErrCAFile) {
			return &partfile.BootstrapError{Path: d.o.ConfigPath, Field: "ca_file", Err: err}
		}
		// The bootstrap file was checked whole before this; what is left
		// comes from the environment (HTTPS_PROXY and the like).
		return fmt.Errorf("set up the cloud client: %w", err)
	}
	seed := uint64(0)
	for _, c := range f.GetPartId() {
		seed = seed*31 + uint64(c)
	}
	s, err := psync.New(psync.Options{
		Store: d.store, Client: client, Clock: d.clk, Logger: d.log,
		Trust: psync.NewTrust(f.GetPartId(), b.Keys, d.offline), Offline: d.offline,
		Interval: d.o.SyncInterval, Seed: seed,
		OnConfig:  func(ctx context.Context, doc *syncv1.ConfigDocument) { d.applyConfig(ctx, doc, "cloud") },
		OnGrants:  func(_ context.Context, g *syncv1.GrantBundle) { d.grants.cur.Store(g) },
		OnExpired: d.onExpired,
		Status:    d.partStatus,
		OnBlobUploaded: func(_ context.Context, id string) {
			// Deletes the user's file only where its folder opted in.
			if err := d.files.Confirmed(id); err != nil {
				d.log.Warn("could not delete a synced file after the cloud confirmed it", zap.String("blob", id), zap.Error(err))
			}
		},
	})
	if err != nil {
		return fmt.Errorf("start sync: %w", err)
	}
	relay, err := psync.NewRelay(psync.RelayOptions{Client: client, Clock: d.clk})
	if err != nil {
		return fmt.Errorf("start the signaling relay: %w", err)
	}
	d.syncMu.Lock()
	d.syncer, d.relay = s, &quietRelay{Relay: relay, clk: d.clk}
	d.syncMu.Unlock()
	return nil
}

func (d *daemon) currentSyncer() *psync.Syncer {
	d.syncMu.Lock()
	defer d.syncMu.Unlock()
	return d.syncer
}

// startSync runs the sync loop, and the WebRTC signaling relay through the
// cloud on the same client; with applyCached it first applies the config
// the store holds, so an offline part is fully useful at once.
func (d *daemon) startSync(ctx context.Context, applyCached bool) {
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	d.syncMu.Lock()
	s, relay := d.syncer, d.relay
	d.syncCancel, d.syncDone = cancel, done
	d.syncMu.Unlock()
	relayed := make(chan struct{})
	go func() {
		defer close(relayed)
		if err := d.ctl.ServeRelay(sctx, relay); err != nil {
			d.log.Warn("the signaling relay stopped", zap.Error(err))
		}
	}()
	go func() {
		defer close(done)
		defer func() { <-relayed }()
		if applyCached {
			doc, err := s.LoadConfig(sctx)
			switch {
			case err != nil:
				d.log.Error("the cached config is refused; running nothing until the cloud sends one", zap.Error(err))
			case doc != nil:
				d.applyConfig(sctx, doc, "cache")
			default:
				d.log.Info("no cached config yet; waiting for the cloud")
			}
		}
		if err := s.Run(sctx); err != nil {
			d.fatal <- fmt.Errorf("sync: %w", err)
		}
	}()
}

// stopSync stops the sync loop and waits for it.
func (d *daemon) stopSync() {
	d.syncMu.Lock()
	cancel, done := d.syncCancel, d.syncDone
	d.syncCancel, d.syncDone = nil, nil
	d.syncMu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}
