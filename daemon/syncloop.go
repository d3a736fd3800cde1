package daemon

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"connectrpc.com/connect"
	"go.uber.org/zap"

	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1/syncv1connect"
	"github.com/outpost-robotics/outpost/cloudsync"
	"github.com/outpost-robotics/outpost/partfile"
)

// syncSlot is the sync loop and what it runs. A reload replaces them from
// the main loop while metrics, status and control read the syncer from
// their own goroutines.
type syncSlot struct {
	mu     sync.Mutex // guards every field
	syncer *cloudsync.Syncer
	relay  *quietRelay                     // the relay on the syncer's client
	client syncv1connect.SyncServiceClient // the client packages download with
	cancel context.CancelFunc              // stops the running loop; nil when none runs
	done   chan struct{}                   // closed once the running loop has returned
}

// current is the syncer the loop runs, or ran last.
func (s *syncSlot) current() *cloudsync.Syncer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.syncer
}

// install makes syncer and relay the ones the next loop runs, and client
// the one packages download with.
func (s *syncSlot) install(syncer *cloudsync.Syncer, relay *quietRelay, client syncv1connect.SyncServiceClient) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.syncer, s.relay, s.client = syncer, relay, client
}

// GetPackageChunk fetches a package chunk with the installed client, so a
// reload's new credentials or cloud URL serve the downloads that follow.
func (s *syncSlot) GetPackageChunk(ctx context.Context, req *connect.Request[syncv1.GetPackageChunkRequest]) (*connect.Response[syncv1.GetPackageChunkResponse], error) {
	s.mu.Lock()
	c := s.client
	s.mu.Unlock()
	if c == nil {
		return nil, connect.NewError(connect.CodeUnavailable, errors.New("no cloud client"))
	}
	return c.GetPackageChunk(ctx, req)
}

// begin records a loop that cancel stops and that closes done when it
// returns, and says what it runs.
func (s *syncSlot) begin(cancel context.CancelFunc, done chan struct{}) (*cloudsync.Syncer, *quietRelay) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cancel, s.done = cancel, done
	return s.syncer, s.relay
}

// stop stops the running loop, if one runs, and waits for it.
func (s *syncSlot) stop() {
	s.mu.Lock()
	cancel, done := s.cancel, s.done
	s.cancel, s.done = nil, nil
	s.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// newSyncer builds the sync client and syncer for a bootstrap file.
func (d *daemon) newSyncer(b *partfile.Bootstrap) error {
	f := b.File
	client, err := cloudsync.NewClient(cloudsync.ClientOptions{CloudURL: f.GetCloudUrl(), PartID: f.GetPartId(), PartSecret: f.GetPartSecret(), CAFile: f.GetCaFile(), CAPEM: []byte(f.GetCaPem()), Logger: d.log})
	if err != nil {
		if errors.Is(err, cloudsync.ErrCAFile) {
			return &partfile.BootstrapError{Path: d.o.ConfigPath, Field: "ca_file", Err: err}
		}
		// The bootstrap file was checked whole before this; what is left
		// comes from the environment (HTTPS_PROXY and the like).
		return fmt.Errorf("set up the cloud client: %w", err)
	}
	// Package chunks come uncompressed on a client of their own: a chunk
	// (at most pkgformat.MaxChunk) is then held once, not compressed and
	// decompressed.
	chunks, err := cloudsync.NewClient(cloudsync.ClientOptions{CloudURL: f.GetCloudUrl(), PartID: f.GetPartId(), PartSecret: f.GetPartSecret(), CAFile: f.GetCaFile(), CAPEM: []byte(f.GetCaPem()), Logger: d.log, Compression: "none"})
	if err != nil {
		return fmt.Errorf("set up the package download client: %w", err)
	}
	seed := uint64(0)
	for _, c := range f.GetPartId() {
		seed = seed*31 + uint64(c)
	}
	s, err := cloudsync.New(cloudsync.Options{
		Store: d.store, Client: client, Clock: d.clk, Logger: d.log,
		Trust: cloudsync.NewTrust(f.GetPartId(), b.Keys, d.offline), Offline: d.offline,
		Interval: d.o.SyncInterval, Seed: seed,
		OnConfig: func(ctx context.Context, doc *syncv1.ConfigDocument) { d.applyConfig(ctx, doc, "cloud") },
		OnGrants: func(ctx context.Context, g *syncv1.GrantBundle) {
			d.grants.cur.Store(g)
			// What stays open between calls (WebRTC sessions, streams) is
			// decided again now, not at its next call.
			if d.ctl != nil {
				d.ctl.GrantsChanged(ctx)
			}
		},
		OnExpired: d.onExpired,
		OnRestart: d.restartRobot,
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
	relay, err := cloudsync.NewRelay(cloudsync.RelayOptions{Client: client, Clock: d.clk})
	if err != nil {
		return fmt.Errorf("start the signaling relay: %w", err)
	}
	d.syncLoop.install(s, &quietRelay{Relay: relay, clk: d.clk}, chunks)
	return nil
}

// startSync runs the sync loop, and the WebRTC signaling relay through the
// cloud on the same client; with applyCached it first applies the config
// the store holds, so an offline part is fully useful at once.
func (d *daemon) startSync(ctx context.Context, applyCached bool) {
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	s, relay := d.syncLoop.begin(cancel, done)
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
