package cloud

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/outpost-robotics/outpost/authz"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/cloud/ingest"
	"github.com/outpost-robotics/outpost/cloud/ingest/badgeringest"
	"github.com/outpost-robotics/outpost/cloud/ingest/pgingest"
	"github.com/outpost-robotics/outpost/cloud/partsync"
	"github.com/outpost-robotics/outpost/cloud/pgshared"
	"github.com/outpost-robotics/outpost/cloud/relay"
	"github.com/outpost-robotics/outpost/cloud/store"
	"github.com/outpost-robotics/outpost/cloud/store/badgerstore"
	"github.com/outpost-robotics/outpost/cloud/store/pgstore"
	"github.com/outpost-robotics/outpost/netlimit"
)

// RunConfig is what `outpost-cloud serve` passes to Run.
type RunConfig struct {
	// DataDir holds the store (DataDir/store), what parts hand over
	// (DataDir/ingest, blobs in DataDir/blobs) and admin.token; with
	// Database, only a copy of admin.token, whose session the database
	// keeps.
	DataDir string
	// Database, a postgres:// URL, keeps every store in PostgreSQL instead
	// of the data folder: the fleet store (signing key and the admin's
	// session included), what parts hand over, blobs, and what replicas
	// share (the relay's offers, the sign-in throttle).
	Database string
	// Listen is the HOST:PORT to serve on.
	Listen string
	// CertFile and KeyFile turn on TLS; both or neither.
	CertFile, KeyFile string
	// Log is the logger.
	Log *zap.Logger
	// PollInterval is how long parts wait between sync cycles; 0 means
	// partsync's default (15 s). Demos and test runs shorten it.
	PollInterval time.Duration
	// ChunkServes bounds the package chunks served at once to all parts;
	// 0 means partsync.DefaultChunkServes.
	ChunkServes int
	// FaultFsyncDelay is fault injection for the reliability suite: each
	// synced commit of the ingest store waits this long more, as on a slow
	// disk. 0 in production.
	FaultFsyncDelay time.Duration
	// PasswordMemory bounds the memory password hashing uses at once, in
	// bytes; 0 means auth.DefaultHashMemory (six sign-ins at a time).
	PasswordMemory int64
	// SMTP is the relay invitation codes are mailed through; nil sends no
	// mail, and the cloud refuses invitations (its admin creates users).
	SMTP *SMTPConfig
	// Ready, if set, is called with the listening address once serving.
	Ready func(addr string)
	// Limits bound connections and slow clients; zero fields take the
	// values of Limits().
	Limits netlimit.Limits
	// Alerts configures fleet alert evaluation and webhook delivery.
	Alerts AlertOptions
}

// stores is what openStores opened.
type stores struct {
	st    store.Store
	ing   ingest.Store
	blobs ingest.BlobStore
	// relay and throttle are the replicas' shared ones on PostgreSQL;
	// nil (the server's in-process ones) on Badger.
	relay    relay.Hub
	throttle Throttle
	close    func() error
}

// openStores opens the fleet store, the ingest store and its blob store:
// embedded in the data folder, or in PostgreSQL when cfg.Database is set,
// with what replicas share (the relay's offers, the sign-in throttle).
func openStores(ctx context.Context, cfg RunConfig, clk clock.Clock) (*stores, error) {
	var closers []func() error
	closeAll := func() error {
		var errs []error
		for i := len(closers) - 1; i >= 0; i-- {
			errs = append(errs, closers[i]())
		}
		return errors.Join(errs...)
	}
	fail := func(err error) (*stores, error) {
		return nil, errors.Join(err, closeAll())
	}
	var afterSync func()
	if delay := cfg.FaultFsyncDelay; delay > 0 {
		afterSync = func() { _ = clk.Sleep(context.Background(), delay) }
	}
	if cfg.Database != "" {
		st, err := pgstore.Open(ctx, cfg.Database)
		if err != nil {
			return fail(err)
		}
		closers = append(closers, st.Close)
		blobs, err := pgingest.OpenBlobStore(ctx, cfg.Database)
		if err != nil {
			return fail(err)
		}
		closers = append(closers, blobs.Close)
		ing, err := pgingest.Open(ctx, pgingest.Options{URL: cfg.Database, Blobs: blobs, Clock: clk})
		if err != nil {
			return fail(err)
		}
		closers = append(closers, ing.Close)
		sh, err := pgshared.Open(ctx, pgshared.Options{URL: cfg.Database, Clock: clk, Logger: cfg.Log.Named("shared")})
		if err != nil {
			return fail(err)
		}
		closers = append(closers, sh.Close)
		hub := relay.NewShared(relay.SharedOptions{Options: relay.Options{Clock: clk, Logger: cfg.Log}, Board: sh})
		return &stores{st: st, ing: ing, blobs: blobs, relay: hub, throttle: sh.Throttle(authz.SignIn()), close: closeAll}, nil
	}
	st, err := badgerstore.Open(filepath.Join(cfg.DataDir, "store"), cfg.Log)
	if err != nil {
		return fail(err)
	}
	closers = append(closers, st.Close)
	blobs, err := ingest.NewFileBlobStore(filepath.Join(cfg.DataDir, "blobs"))
	if err != nil {
		return fail(err)
	}
	ing, err := badgeringest.Open(badgeringest.Options{Dir: filepath.Join(cfg.DataDir, "ingest"), Blobs: blobs, Logger: cfg.Log.Named("ingest"), AfterSync: afterSync})
	if err != nil {
		return fail(err)
	}
	closers = append(closers, ing.Close)
	return &stores{st: st, ing: ing, blobs: blobs, close: closeAll}, nil
}

// Run opens the stores (embedded in the data folder, or PostgreSQL), bootstraps them, and
// serves the fleet API and the part sync API until ctx ends. It sets the
// process's umask to 077 first: every file the cloud writes (the stores
// with the signing key, admin.token, blobs) is readable by its user alone.
func Run(ctx context.Context, cfg RunConfig) (err error) {
	if (cfg.CertFile == "") != (cfg.KeyFile == "") {
		return errors.New("--tls-cert and --tls-key go together: give both or neither")
	}
	ownerOnlyFiles()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data folder: %w", err)
	}
	clk := clock.NewReal()
	sts, err := openStores(ctx, cfg, clk)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := sts.close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	st, ing, blobs := sts.st, sts.ing, sts.blobs
	bootstrap := Bootstrap
	if cfg.Database != "" {
		bootstrap = BootstrapShared
	}
	signer, tokenPath, err := bootstrap(ctx, st, cfg.DataDir, clk, cfg.Log)
	if err != nil {
		return err
	}
	if tokenPath != "" {
		cfg.Log.Info("wrote the admin's access token (valid 60 days; use it with --token or OUTPOST_TOKEN)", zap.String("path", tokenPath))
	}
	var mailer Mailer
	if cfg.SMTP != nil {
		if mailer, err = NewSMTPMailer(*cfg.SMTP); err != nil {
			return err
		}
	} else {
		cfg.Log.Info("no SMTP relay (--smtp-host): invitations are refused; the admin creates users with `outpost user create`")
	}
	srv, err := New(Config{Store: st, Signer: signer, Clock: clk, Log: cfg.Log, Ingest: ing, Blobs: blobs, Mailer: mailer,
		PasswordMemory: cfg.PasswordMemory, Sync: partsync.Options{PollInterval: cfg.PollInterval, ChunkServes: cfg.ChunkServes}, Relay: sts.relay, Throttle: sts.throttle, Alerts: cfg.Alerts})
	if err != nil {
		return err
	}
	sweepCtx, stopSweep := context.WithCancel(ctx)
	swept := make(chan struct{})
	go func() {
		defer close(swept)
		sweepPartialBlobs(sweepCtx, clk, ing, cfg.Log.Named("ingest"))
	}()
	retained := make(chan struct{})
	go func() {
		defer close(retained)
		sweepRetention(sweepCtx, clk, srv)
	}()
	alerted := make(chan struct{})
	go func() {
		defer close(alerted)
		sweepAlerts(sweepCtx, clk, srv)
	}()
	// The sweep ends before the ingest store closes (deferred above).
	defer func() { stopSweep(); <-swept; <-retained; <-alerted }()
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	cfg.Log.Info("outpost-cloud serving", zap.String("addr", ln.Addr().String()), zap.String("data_dir", cfg.DataDir), zap.Bool("postgresql", cfg.Database != ""),
		zap.Bool("tls", cfg.CertFile != ""), zap.String("signing_key_id", signer.KeyID()))
	if cfg.Ready != nil {
		cfg.Ready(ln.Addr().String())
	}
	if srv.relay != nil {
		// Parts' long polls for relayed offers would hold the graceful
		// shutdown until they time out (20 s, past Serve's 10 s): end
		// them when serving ends.
		defer context.AfterFunc(ctx, srv.relay.Close)()
	}
	lim := cfg.Limits
	if lim.MaxConns == 0 {
		lim.MaxConns = Limits().MaxConns
	}
	return ServeLimited(ctx, ln, srv.Handler(), cfg.CertFile, cfg.KeyFile, lim, cfg.Log)
}
