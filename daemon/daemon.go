package daemon

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"connectrpc.com/connect"
	"github.com/pion/webrtc/v4"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/cache"
	"github.com/outpost-robotics/outpost/capture"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/cloudsync"
	"github.com/outpost-robotics/outpost/control"
	"github.com/outpost-robotics/outpost/controlwire"
	"github.com/outpost-robotics/outpost/logging"
	"github.com/outpost-robotics/outpost/partfile"
	"github.com/outpost-robotics/outpost/robot"
	"github.com/outpost-robotics/outpost/robot/builtin"
	"github.com/outpost-robotics/outpost/robot/component"
	"github.com/outpost-robotics/outpost/systemd"
)

// Defaults of the daemon's options; cmd/outpostd uses them for its flags.
const (
	DefaultConfigPath    = partfile.DefaultBootstrapPath
	DefaultDataDir       = partfile.DefaultDataDir
	DefaultRuntimeDir    = "/run/outpost"
	DefaultMetricsListen = "127.0.0.1:9464"
	// DefaultFinalSync bounds the sync cycle run at shutdown, so a stop
	// hands over what it can yet ends well inside the unit's TimeoutStopSec
	// of 20 s.
	DefaultFinalSync = 5 * time.Second
	// robotStopTimeout bounds stopping components, modules and processes.
	robotStopTimeout = 10 * time.Second
	// statusEvery is how often the status line is refreshed when systemd
	// set no watchdog (with one, at every ping).
	statusEvery = 15 * time.Second
	// logQueueDepth bounds log entries waiting for the store.
	logQueueDepth = 4096
)

// Notifier is what the daemon tells its service manager; systemd.Notifier
// is the real one.
type Notifier interface {
	Ready(status string) error
	Reloading(uptime time.Duration) error
	Stopping() error
	Watchdog() error
	Status(status string) error
	WatchdogInterval() (time.Duration, bool, error)
}

// Options configure Run. Zero values take the defaults above.
type Options struct {
	// ConfigPath is the bootstrap file written when the part was provisioned.
	ConfigPath string
	// DataDir holds the store (DataDir/store) and the budget the last
	// config set (DataDir/budget.json, read before the store opens).
	DataDir string
	// Listen is the control plane's TLS address.
	Listen string
	// MetricsListen is the loopback address of /metrics; "-" turns it off.
	MetricsListen string
	// MDNSInterface is where the part announces _outpost._tcp for
	// `outpost robot discover`: "*" on every multicast interface, an
	// interface name for one, "" for none (the zero value: a library or a
	// test announces nothing on the network unless it asks).
	MDNSInterface string
	// RuntimeDir holds the break-glass socket (control.sock) and module
	// sockets (modules/); systemd's RuntimeDirectory.
	RuntimeDir string
	// SocketGroup may use the break-glass socket besides root.
	SocketGroup string
	// LogLevel is the level until a config or the override file says
	// otherwise; LogFormat picks JSON (journald) or console lines.
	LogLevel  zapcore.Level
	LogFormat logging.Format
	// LevelFile, when it exists, overrides the config's log level; SIGHUP
	// re-reads it. Empty means "log-level" next to ConfigPath.
	LevelFile string
	// Version is reported to the cloud and by the control plane.
	Version string
	// Clock is the injected clock; nil means the machine's.
	Clock clock.Clock
	// Stderr receives log lines (journald under systemd); nil means os.Stderr.
	Stderr io.Writer
	// Notifier speaks to systemd; nil means systemd.Notifier.
	Notifier Notifier
	// Signals delivers SIGHUP, SIGTERM and SIGINT; nil means the process's.
	Signals <-chan os.Signal
	// FinalSync bounds the sync cycle at shutdown; 0 means DefaultFinalSync.
	FinalSync time.Duration
	// SyncInterval is the time between sync cycles; 0 means sync's default.
	SyncInterval time.Duration
	// FaultFsyncDelay is fault injection for the reliability suite: each
	// synced commit of the store waits this long more, as on a slow SD
	// card. 0 in production.
	FaultFsyncDelay time.Duration
	// WebRTCSettings adjusts pion's settings for every WebRTC session the
	// control plane answers, on the LAN or relayed by the cloud; nil keeps
	// pion's defaults. controlwire.LoopbackICE keeps sessions on this machine
	// (tests).
	WebRTCSettings func(*webrtc.SettingEngine)
	// OnReady is called once the daemon told systemd it is ready, with the
	// addresses it listens on (tests use it to find ports chosen by the OS).
	OnReady func(Endpoints)

	// Test hooks: wrapSink wraps capture's sink (to observe acknowledged
	// appends); beforeWatchdog runs in the main loop before each ping, so a
	// test can wedge the loop.
	wrapSink       func(capture.Sink) capture.Sink
	beforeWatchdog func()
	afterApply     func(source string, err error)
}

// Endpoints are the addresses a running daemon serves.
type Endpoints struct {
	Control, Metrics, Socket string
}

func (o *Options) defaults() {
	o.ConfigPath = cmp.Or(o.ConfigPath, DefaultConfigPath)
	o.DataDir = cmp.Or(o.DataDir, DefaultDataDir)
	o.Listen = cmp.Or(o.Listen, fmt.Sprintf(":%d", controlwire.DefaultPort))
	o.MetricsListen = cmp.Or(o.MetricsListen, DefaultMetricsListen)
	o.RuntimeDir = cmp.Or(o.RuntimeDir, DefaultRuntimeDir)
	o.SocketGroup = cmp.Or(o.SocketGroup, control.DefaultSocketGroup)
	o.LevelFile = cmp.Or(o.LevelFile, filepath.Join(filepath.Dir(o.ConfigPath), "log-level"))
	o.FinalSync = cmp.Or(o.FinalSync, DefaultFinalSync)
	o.Version = cmp.Or(o.Version, "dev")
	if o.Clock == nil {
		o.Clock = clock.NewReal()
	}
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	if o.Notifier == nil {
		o.Notifier = systemd.Notifier{}
	}
}

// daemon is one run of outpostd: what Run started, in start order.
type daemon struct {
	o      Options
	clk    clock.Clock
	boot   *partfile.Bootstrap // the main loop's (reload swaps it)
	partID string              // fixed for the run: a reload cannot change it

	baseLog, log        *zap.Logger
	baseLevel, teeLevel zap.AtomicLevel
	store               *cache.Store
	sink                *LogSink
	sinkCancel          context.CancelFunc
	sinkDone            chan error
	robot               *robot.Robot
	poller              *capture.Poller
	files               *capture.FileSync
	offline             *cloudsync.OfflineClock
	grants              grantSource
	ctl                 *control.Server
	metrics             *Metrics
	metricsSrv          *control.LocalServer
	fatal               chan error
	syncMu              sync.Mutex // guards syncer, syncCancel, syncDone
	syncer              *cloudsync.Syncer
	relay               *quietRelay
	syncCancel          context.CancelFunc
	syncDone            chan struct{}
	applyMu             sync.Mutex // serialises config applies, expiry and shutdown
	closing             bool
	expired             bool
	running             control.ConfigState
	cfgLevel            string // the running config's log_level (levelMu)
	budget              cache.Budget
	endpoints           Endpoints
	cleanups            []func()
	lastStatus          string
	watchdog            clock.Ticker // the main loop's tick: watchdog pings and status
	pinging             bool         // systemd set a watchdog for this process
	levelMu             sync.Mutex   // guards cfgLevel and level changes
}

// Run runs outpostd until a SIGTERM or SIGINT (returning nil: exit 0) or a
// failure (an error; a *partfile.BootstrapError means exit code 2). The order is
// store, control, READY, cached config, sync: READY=1 means the part
// answers its control port, and a part that boots offline is useful at once.
func Run(ctx context.Context, opts Options) (err error) {
	opts.defaults()
	d := &daemon{o: opts, clk: opts.Clock, fatal: make(chan error, 4)}
	defer func() {
		if err != nil {
			d.cleanup()
		}
	}()
	signals := opts.Signals
	if signals == nil {
		// Subscribed first, so a SIGTERM during start is not lost.
		ch := make(chan os.Signal, 4)
		signal.Notify(ch, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
		defer signal.Stop(ch)
		signals = ch
	}
	if err := d.start(ctx); err != nil {
		return err
	}
	return d.loop(ctx, signals)
}

func (d *daemon) onCleanup(f func()) { d.cleanups = append(d.cleanups, f) }

// cleanup undoes a start that failed, newest first.
func (d *daemon) cleanup() {
	for i := len(d.cleanups) - 1; i >= 0; i-- {
		d.cleanups[i]()
	}
	d.cleanups = nil
}

// CheckMetricsListen refuses a metrics address other than loopback ("-"
// means none): metrics are served without authentication.
func CheckMetricsListen(addr string) error {
	if addr == "-" {
		return nil
	}
	if err := control.CheckLoopback(addr); err != nil {
		return fmt.Errorf("metrics address: %w", err)
	}
	return nil
}

func (d *daemon) start(ctx context.Context) error {
	o := d.o
	if err := CheckMetricsListen(o.MetricsListen); err != nil {
		return err
	}
	boot, err := partfile.LoadBootstrap(o.ConfigPath)
	if err != nil {
		return err
	}
	d.boot, d.partID = boot, boot.File.GetPartId()

	// The store's own logger writes to stderr only: teeing it into the log
	// stream would have the store log about writing its own log lines.
	d.baseLog, d.baseLevel = logging.New(logging.Options{Level: o.LogLevel, Format: o.LogFormat, Writer: o.Stderr, Now: d.clk.Now})
	d.budget = d.loadBudget()
	storeDir := filepath.Join(o.DataDir, "store")
	copts := cache.Options{Clock: d.clk, Logger: d.baseLog.Named("cache"), Budget: d.budget}
	if delay := o.FaultFsyncDelay; delay > 0 {
		copts.AfterSync = func() { _ = d.clk.Sleep(context.Background(), delay) }
	}
	d.store, err = cache.Open(ctx, storeDir, copts)
	if err != nil {
		if errors.Is(err, cache.ErrInUse) {
			return fmt.Errorf("open the store in %s: another outpostd is running on it: %w", storeDir, err)
		}
		return fmt.Errorf("open the store in %s: %w", storeDir, err)
	}
	d.onCleanup(func() { _ = d.store.Close() })

	d.sink = NewLogSink(d.store, d.clk, logQueueDepth)
	d.log, d.teeLevel = logging.New(logging.Options{Level: o.LogLevel, Format: o.LogFormat, Writer: o.Stderr, Tee: d.sink, Now: d.clk.Now})
	d.log = d.log.With(zap.String("part", d.partID))
	sinkCtx, sinkCancel := context.WithCancel(context.WithoutCancel(ctx))
	d.sinkCancel, d.sinkDone = sinkCancel, make(chan error, 1)
	go func() { d.sinkDone <- d.sink.Run(sinkCtx) }()
	d.onCleanup(func() { sinkCancel(); <-d.sinkDone })
	d.applyLevel()
	if moved := d.store.MovedAside(); moved != "" {
		// The store said so on stderr before the log streams existed; this
		// line goes to the cloud too, beside the gap record.
		d.log.Error("the store was corrupted beyond repair and moved aside; this part started a fresh one, and what it held that the cloud had not acknowledged is lost",
			zap.String("moved_to", moved))
	}

	persisted, err := d.store.GetOfflineClock(ctx)
	if err != nil {
		return fmt.Errorf("read the offline clock: %w", err)
	}
	d.offline = cloudsync.NewOfflineClock(d.clk, persisted)

	if err := d.startRobot(ctx); err != nil {
		return err
	}
	if err := d.newSyncer(boot); err != nil {
		return err
	}
	// Grants load before control serves, so a part that boots offline
	// authorizes field techs from its first request.
	if g, err := d.syncer.LoadGrants(ctx); err != nil {
		d.log.Error("the held grant bundle is refused; remote calls are refused until the cloud sends a new one", zap.Error(err))
	} else {
		d.grants.cur.Store(g)
	}
	// The registry first: control counts its calls into it.
	d.buildMetrics()
	if err := d.startControl(ctx); err != nil {
		return err
	}
	if err := d.startMetrics(ctx); err != nil {
		return err
	}

	// The main loop's ticker starts before READY, as systemd counts
	// WatchdogSec from READY=1. Without a watchdog the same tick only
	// refreshes the status line.
	every, ok, err := d.o.Notifier.WatchdogInterval()
	if err != nil {
		d.log.Warn("watchdog setting unreadable; not pinging", zap.Error(err))
	}
	d.pinging = ok && err == nil
	if d.pinging {
		d.log.Info("pinging the systemd watchdog", zap.Duration("every", every))
	} else {
		every = statusEvery
	}
	d.watchdog = d.clk.NewTicker(every)
	d.onCleanup(d.watchdog.Stop)
	status := "control on " + d.endpoints.Control + ", applying the cached config"
	if err := d.o.Notifier.Ready(status); err != nil {
		d.log.Warn("could not tell systemd the daemon is ready", zap.Error(err))
	}
	d.lastStatus = status
	d.log.Info("outpostd ready", zap.String("version", o.Version), zap.String("control", d.endpoints.Control),
		zap.String("metrics", d.endpoints.Metrics), zap.String("socket", d.endpoints.Socket), zap.Stringer("startup", d.clk.Uptime()))
	if o.OnReady != nil {
		o.OnReady(d.endpoints)
	}

	// The cached config is applied off the main loop: a module may take
	// its start timeout, and the watchdog and SIGTERM must not wait for it.
	d.startSync(ctx, true)
	return nil
}

func (d *daemon) startRobot(ctx context.Context) error {
	reg := component.NewRegistry()
	if err := builtin.Register(reg, builtin.Options{Clock: d.clk}); err != nil {
		return fmt.Errorf("register built-in models: %w", err)
	}
	modDir := filepath.Join(d.o.RuntimeDir, "modules")
	if err := os.MkdirAll(modDir, 0o700); err != nil {
		return fmt.Errorf("make the module socket folder: %w", err)
	}
	r, err := robot.New(robot.Options{Clock: d.clk, Log: d.log, Registry: reg, SocketDir: modDir})
	if err != nil {
		return fmt.Errorf("start the robot runtime: %w", err)
	}
	d.robot = r
	d.onCleanup(func() {
		cctx, cancel := d.timeout(context.Background(), robotStopTimeout)
		defer cancel()
		_ = r.Close(cctx)
	})
	var sink capture.Sink = CaptureSink{Store: d.store}
	if d.o.wrapSink != nil {
		sink = d.o.wrapSink(sink)
	}
	d.poller = capture.NewPoller(capture.PollerOptions{Clock: d.clk, Log: d.log, Sink: sink, Finder: r})
	d.files = capture.NewFileSync(capture.FileSyncOptions{Clock: d.clk, Log: d.log, Sink: sink})
	d.onCleanup(func() { d.poller.Close(); d.files.Close() })
	return nil
}

// newSyncer builds the sync client and syncer for a bootstrap file.
func (d *daemon) newSyncer(b *partfile.Bootstrap) error {
	f := b.File
	client, err := cloudsync.NewClient(cloudsync.ClientOptions{CloudURL: f.GetCloudUrl(), PartID: f.GetPartId(), PartSecret: f.GetPartSecret(), CAFile: f.GetCaFile(), Logger: d.log})
	if err != nil {
		if errors.Is(err, cloudsync.ErrCAFile) {
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
	s, err := cloudsync.New(cloudsync.Options{
		Store: d.store, Client: client, Clock: d.clk, Logger: d.log,
		Trust: cloudsync.NewTrust(f.GetPartId(), b.Keys, d.offline), Offline: d.offline,
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
	relay, err := cloudsync.NewRelay(cloudsync.RelayOptions{Client: client, Clock: d.clk})
	if err != nil {
		return fmt.Errorf("start the signaling relay: %w", err)
	}
	d.syncMu.Lock()
	d.syncer, d.relay = s, &quietRelay{Relay: relay, clk: d.clk}
	d.syncMu.Unlock()
	return nil
}

func (d *daemon) currentSyncer() *cloudsync.Syncer {
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

func (d *daemon) startControl(ctx context.Context) error {
	ctl, err := control.New(ctx, control.Options{
		Clock: offlineTime{Clock: d.clk, offline: d.offline}, Logger: d.log, Version: d.o.Version, PartID: d.partID,
		Grants: &d.grants, Audit: auditLog{d.store}, Certs: certStore{d.store}, Robot: d.robot,
		Config: configAPI{d}, Logs: d.sink, Data: captureData{d.store}, Status: statusAPI{d}, WebRTCSettings: d.o.WebRTCSettings,
		HandlerOptions: []connect.HandlerOption{connect.WithInterceptors(d.metrics.Interceptor())},
	})
	if err != nil {
		return fmt.Errorf("start the control plane: %w", err)
	}
	d.ctl = ctl
	ln, err := control.Listen(d.o.Listen)
	if err != nil {
		return err
	}
	sockPath := filepath.Join(d.o.RuntimeDir, "control.sock")
	sock, err := control.ListenSocket(sockPath, d.o.SocketGroup)
	if err != nil {
		ln.Close()
		return err
	}
	d.endpoints.Control, d.endpoints.Socket = ln.Addr().String(), sockPath
	if err := d.announce(ctx, ln.Addr()); err != nil {
		ln.Close()
		sock.Close()
		return err
	}
	go func() {
		if err := ctl.ServeTLS(context.WithoutCancel(ctx), ln); err != nil {
			d.fatal <- fmt.Errorf("control plane on %s: %w", d.endpoints.Control, err)
		}
	}()
	go func() {
		if err := ctl.ServeSocket(context.WithoutCancel(ctx), sock); err != nil {
			d.fatal <- fmt.Errorf("break-glass socket %s: %w", sockPath, err)
		}
	}()
	d.onCleanup(func() { _ = ctl.Close() })
	return nil
}

// announce starts the mDNS announcement of the control port, unless
// MDNSInterface is "". A network without multicast is no reason to stop the
// daemon: a failure to announce is logged.
func (d *daemon) announce(ctx context.Context, addr net.Addr) error {
	if d.o.MDNSInterface == "" {
		return nil
	}
	var iface *net.Interface
	if d.o.MDNSInterface != "*" {
		var err error
		if iface, err = net.InterfaceByName(d.o.MDNSInterface); err != nil {
			return fmt.Errorf("mDNS interface %q: %w", d.o.MDNSInterface, err)
		}
	}
	tcp, ok := addr.(*net.TCPAddr)
	if !ok {
		return fmt.Errorf("mDNS: control address %v is not TCP", addr)
	}
	a := control.Announcement{PartID: d.partID, Port: tcp.Port, Fingerprint: d.ctl.Fingerprint(), Interface: iface}
	if iface != nil && iface.Flags&net.FlagLoopback != 0 {
		a.IPs = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	actx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := control.Announce(actx, a, d.log); err != nil {
			d.log.Warn("mDNS announcement failed; `outpost robot discover` will not find this part", zap.Error(err))
		}
	}()
	d.onCleanup(func() { cancel(); <-done })
	return nil
}

// buildMetrics makes the Prometheus registry over the daemon's sources.
func (d *daemon) buildMetrics() {
	d.metrics = NewMetrics(d.clk, MetricSources{
		Store:        d.store,
		SyncState:    func() string { st, _ := d.currentSyncer().State(); return st.String() },
		SinceContact: func() (time.Duration, bool) { return d.offline.SinceContact(), d.offline.Known() },
		Components:   d.componentHealth,
		LogsDropped:  d.sink.Dropped,
		SyncStalled:  func() map[cache.Stream]int { return d.currentSyncer().Stalled() },
	})
}

// startMetrics serves /metrics on a loopback address, through control (the
// only daemon package that listens), which refuses any other address.
func (d *daemon) startMetrics(ctx context.Context) error {
	if d.o.MetricsListen == "-" {
		return nil
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", d.metrics.Handler())
	srv, err := control.ListenLocal(d.o.MetricsListen, mux, d.log.Named("metrics"))
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	d.metricsSrv = srv
	d.endpoints.Metrics = srv.Addr()
	go func() {
		if err := srv.Serve(context.WithoutCancel(ctx)); err != nil {
			d.fatal <- fmt.Errorf("metrics: %w", err)
		}
	}()
	d.onCleanup(func() { _ = srv.Close() })
	return nil
}

func (d *daemon) componentHealth() map[string]bool {
	out := map[string]bool{}
	for _, r := range d.robot.Resources() {
		out[strings.TrimPrefix(strings.ToLower(r.GetKind().String()), "resource_kind_")+"/"+r.GetName()] = r.GetState() == controlv1.ResourceState_RESOURCE_STATE_RUNNING
	}
	return out
}

// loop is the main loop: the only goroutine that pings the watchdog, so
// if it wedges, systemd restarts the daemon.
func (d *daemon) loop(ctx context.Context, signals <-chan os.Signal) error {
	defer d.watchdog.Stop()
	tick := d.watchdog.C()
	for {
		select {
		case sig := <-signals:
			if sig == syscall.SIGHUP {
				d.reload(ctx)
				continue
			}
			d.log.Info("stopping", zap.String("signal", sig.String()))
			return d.shutdown(ctx)
		case <-ctx.Done():
			d.log.Info("stopping", zap.String("why", "context ended"))
			return d.shutdown(ctx)
		case err := <-d.fatal:
			d.log.Error("a component failed; stopping so that systemd restarts the daemon", zap.Error(err))
			_ = d.shutdown(ctx)
			return err
		case <-tick:
			if d.o.beforeWatchdog != nil {
				d.o.beforeWatchdog()
			}
			if err := d.healthy(ctx); err != nil {
				d.log.Error("unhealthy: not pinging the watchdog", zap.Error(err))
				continue
			}
			if d.pinging {
				if err := d.o.Notifier.Watchdog(); err != nil {
					d.log.Warn("watchdog ping failed", zap.Error(err))
				}
			}
			d.updateStatus()
		}
	}
}

// healthy checks what the loop cannot see by running: that the store still
// answers. A store that hangs hangs the loop, which stops the pings too.
func (d *daemon) healthy(ctx context.Context) error {
	if _, err := d.store.Stats(ctx, cache.StreamGaps); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

// updateStatus keeps systemctl status's line current, sending only changes.
func (d *daemon) updateStatus() {
	st, msg := d.currentSyncer().State()
	s := fmt.Sprintf("control on %s; cloud %s", d.endpoints.Control, st)
	if d.offline.Known() && st != cloudsync.StateOnline {
		s += fmt.Sprintf(" (last contact %s ago)", d.offline.SinceContact().Truncate(time.Second))
	}
	if msg != "" && st != cloudsync.StateOnline {
		s += ": " + firstLineOf(msg)
	}
	if s != d.lastStatus {
		d.lastStatus = s
		_ = d.o.Notifier.Status(s)
	}
}

// reload is SIGHUP: re-read the bootstrap file and the log level. A bad
// bootstrap file is logged and the running one kept: a reload never stops
// a working robot.
func (d *daemon) reload(ctx context.Context) {
	if err := d.o.Notifier.Reloading(d.clk.Uptime()); err != nil {
		d.log.Warn("could not tell systemd about the reload", zap.Error(err))
	}
	defer func() { _ = d.o.Notifier.Ready(d.lastStatus) }()
	d.applyLevel()
	b, err := partfile.LoadBootstrap(d.o.ConfigPath)
	if err != nil {
		d.log.Error("reload: keeping the running bootstrap file", zap.Error(err))
		return
	}
	if proto.Equal(b.File, d.boot.File) {
		d.log.Info("reloaded: bootstrap file unchanged", zap.Stringer("level", d.teeLevel.Level()))
		return
	}
	if b.File.GetPartId() != d.boot.File.GetPartId() {
		d.log.Error("reload: the bootstrap file names another part; restart the daemon to become it", zap.String("new_part", b.File.GetPartId()))
		return
	}
	d.stopSync()
	old := d.currentSyncer()
	if err := d.newSyncer(b); err != nil {
		d.log.Error("reload: keeping the running bootstrap file", zap.Error(err))
		d.syncMu.Lock()
		d.syncer = old
		d.syncMu.Unlock()
		d.startSync(ctx, false)
		return
	}
	d.boot = b
	d.log.Info("reloaded the bootstrap file: sync restarts with it", zap.String("cloud", b.File.GetCloudUrl()))
	d.startSync(ctx, false)
}

func firstLineOf(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 120 {
		s = s[:120] + "..."
	}
	return s
}

// applyLevel sets the log level: the override file if there is one, else
// the running config's, else the start level.
func (d *daemon) applyLevel() {
	d.levelMu.Lock()
	defer d.levelMu.Unlock()
	level, source := d.o.LogLevel, "default"
	if d.cfgLevel != "" {
		if l, err := logging.ParseLevel(d.cfgLevel); err == nil {
			level, source = l, "config"
		}
	}
	if b, err := os.ReadFile(d.o.LevelFile); err == nil {
		if l, err := logging.ParseLevel(string(b)); err == nil {
			level, source = l, d.o.LevelFile
		} else {
			d.log.Warn("ignoring the log level override file", zap.String("file", d.o.LevelFile), zap.Error(err))
		}
	}
	if d.teeLevel.Level() != level {
		d.log.Info("log level changed", zap.Stringer("from", d.teeLevel.Level()), zap.Stringer("to", level), zap.String("source", source))
	}
	d.baseLevel.SetLevel(level)
	d.teeLevel.SetLevel(level)
}

// applyConfig makes doc's config the running one: robot, capture, log
// level and store budget.
func (d *daemon) applyConfig(ctx context.Context, doc *syncv1.ConfigDocument, source string) {
	state := control.ConfigState{Config: doc.GetConfig(), Version: doc.GetVersion(), MachineRevision: doc.GetMachineRevision()}
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

func (d *daemon) apply(ctx context.Context, state control.ConfigState) (*robot.Result, error) {
	d.applyMu.Lock()
	defer d.applyMu.Unlock()
	if d.closing {
		return nil, errClosing
	}
	cfg := state.Config
	res, err := d.robot.Apply(ctx, cfg)
	if err != nil {
		return nil, err
	}
	for name, why := range res.Failed() {
		d.log.Warn("resource failed to start", zap.String("resource", name), zap.String("why", why))
	}
	d.poller.Apply(ctx, cfg.GetCaptures())
	if err := d.files.Apply(ctx, cfg.GetSyncFolders()); err != nil {
		d.log.Warn("some sync folders are not synced", zap.Error(err))
	}
	d.levelMu.Lock()
	d.cfgLevel = cfg.GetLogLevel()
	d.levelMu.Unlock()
	d.applyLevel()
	d.saveBudget(cfg.GetStoreBudget())
	d.running = state
	d.expired = false
	return res, nil
}

// onExpired stops components safely and capture when the grants and
// config expire offline; control refuses remote credentials by itself,
// judging expiry on the offline clock.
func (d *daemon) onExpired(ctx context.Context, why string) {
	d.applyMu.Lock()
	defer d.applyMu.Unlock()
	if d.closing || d.expired {
		return
	}
	d.expired = true
	failed, err := d.robot.StopAll(ctx)
	d.poller.Apply(ctx, nil)
	_ = d.files.Apply(ctx, nil)
	d.log.Error("config and grants expired: components stopped, capture stopped", zap.String("why", why), zap.Any("failed_to_stop", failed), zap.Error(err))
	_ = d.o.Notifier.Status("EXPIRED: " + why)
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

// timeout is context.WithTimeout on the injected clock.
func (d *daemon) timeout(ctx context.Context, dur time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	t := d.clk.NewTimer(dur)
	stop := make(chan struct{})
	go func() {
		select {
		case <-t.C():
			cancel(context.DeadlineExceeded)
		case <-stop:
		}
	}()
	return ctx, func() { t.Stop(); close(stop); cancel(context.Canceled) }
}

// shutdown is SIGTERM: no new remote commands, capture stopped with its
// pending appends finished, components safe, one bounded final sync, logs
// drained, store closed.
func (d *daemon) shutdown(ctx context.Context) error {
	d.cleanups = nil // shutdown undoes everything itself, in its own order
	_ = d.o.Notifier.Stopping()
	ctx = context.WithoutCancel(ctx)
	_ = d.ctl.Close()
	d.stopSync() // also interrupts a cached-config apply in progress
	d.applyMu.Lock()
	d.closing = true
	d.applyMu.Unlock()
	// Close waits for every poll and folder goroutine, so an append in
	// flight completes (durable and acknowledged) or fails before the store
	// closes.
	d.poller.Close()
	d.files.Close()
	rctx, cancel := d.timeout(ctx, robotStopTimeout)
	if err := d.robot.Close(rctx); err != nil {
		d.log.Error("some components did not stop cleanly", zap.Error(err))
	}
	cancel()
	fctx, cancel := d.timeout(ctx, d.o.FinalSync)
	res := d.currentSyncer().Cycle(fctx)
	cancel()
	if res.Err != nil {
		d.log.Info("final sync incomplete; the rest goes at the next start", zap.Bool("reached_cloud", res.Pulled), zap.Error(res.Err))
	} else {
		d.log.Info("final sync done", zap.Any("uploaded", res.Uploaded))
	}
	if d.metricsSrv != nil {
		_ = d.metricsSrv.Close()
	}
	if err := d.store.PutOfflineClock(ctx, d.offline.Snapshot()); err != nil {
		d.log.Warn("could not persist the offline clock", zap.Error(err))
	}
	d.log.Info("stopped")
	d.sinkCancel()
	sinkErr := <-d.sinkDone
	if err := d.store.Close(); err != nil {
		return fmt.Errorf("close the store: %w", err)
	}
	if sinkErr != nil {
		d.baseLog.Warn("log lines were not all stored", zap.Error(sinkErr))
	}
	return nil
}

// configAPI is control's Config over the daemon.
type configAPI struct{ d *daemon }

func (c configAPI) CurrentConfig(context.Context) (control.ConfigState, error) {
	c.d.applyMu.Lock()
	defer c.d.applyMu.Unlock()
	return c.d.running, nil
}

// ProposeEdit applies the edit at once (it works offline) and queues it
// for the cloud, which decides whether it becomes a revision.
func (c configAPI) ProposeEdit(ctx context.Context, p *syncv1.ConfigProposal) (control.EditResult, error) {
	d := c.d
	d.applyMu.Lock()
	base := d.running
	d.applyMu.Unlock()
	state := control.ConfigState{Config: p.GetConfig(), Version: base.Version, MachineRevision: base.MachineRevision, LocalEdits: true}
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

// statusAPI is control's Status over the syncer and the offline clock.
type statusAPI struct{ d *daemon }

func (s statusAPI) SyncStatus(context.Context) (*controlv1.StatusResponse, error) {
	d := s.d
	st, _ := d.currentSyncer().State()
	d.applyMu.Lock()
	version := d.running.Version
	d.applyMu.Unlock()
	resp := &controlv1.StatusResponse{PartId: d.partID, SyncState: syncStateProto(st), ConfigVersion: version}
	if d.offline.Known() {
		resp.LastContact = timestamppb.New(d.offline.LastContact())
		resp.OfflineFor = ttl(d.offline.SinceContact())
	}
	if g := d.grants.cur.Load(); g != nil && g.GetExpiresAt() != nil {
		resp.TimeLeft = ttl(g.GetExpiresAt().AsTime().Sub(offlineTime{Clock: d.clk, offline: d.offline}.Now()))
	}
	return resp, nil
}

// partStatus is what each sync cycle reports to the cloud.
func (d *daemon) partStatus() *syncv1.PartStatus {
	d.applyMu.Lock()
	version := d.running.Version
	d.applyMu.Unlock()
	st := &syncv1.PartStatus{Version: d.o.Version, ConfigVersion: version}
	if d.ctl != nil {
		st.ControlCertSha256 = certSHA256(d.ctl.Fingerprint())
	}
	if g := d.grants.cur.Load(); g != nil {
		st.GrantsVersion = g.GetVersion()
	}
	for _, r := range d.robot.Resources() {
		st.Resources = append(st.Resources, &syncv1.ResourceStatus{
			Name:  r.GetName(),
			State: strings.TrimPrefix(strings.ToLower(r.GetState().String()), "resource_state_"),
			Error: r.GetError(),
		})
	}
	return st
}
