package daemon

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/pion/webrtc/v4"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/outpost-robotics/outpost/cache"
	"github.com/outpost-robotics/outpost/capture"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/cloudsync"
	"github.com/outpost-robotics/outpost/control"
	"github.com/outpost-robotics/outpost/controlwire"
	"github.com/outpost-robotics/outpost/logging"
	"github.com/outpost-robotics/outpost/packages"
	"github.com/outpost-robotics/outpost/partfile"
	"github.com/outpost-robotics/outpost/robot"
	"github.com/outpost-robotics/outpost/systemd"
)

// Defaults of the daemon's options; cmd/outpostd uses them for its flags.
const (
	DefaultConfigPath    = partfile.DefaultBootstrapPath
	DefaultDataDir       = partfile.DefaultDataDir
	DefaultRuntimeDir    = "/run/outpost"
	DefaultMetricsListen = "127.0.0.1:9464"
	// defaultFinalSync bounds the sync cycle run at shutdown, so a stop
	// hands over what it can yet ends well inside the unit's TimeoutStopSec
	// of 20 s.
	defaultFinalSync = 5 * time.Second
	// robotStopTimeout bounds stopping components, modules and processes.
	robotStopTimeout = 10 * time.Second
	// statusEvery is how often the status line is refreshed when systemd
	// set no watchdog (with one, at every ping).
	statusEvery = 15 * time.Second
	// logQueueDepth bounds log entries waiting for the store.
	logQueueDepth = 4096
)

// notifier is what the daemon tells its service manager; systemd.Notifier
// is the real one.
type notifier interface {
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
	// LogLevel is the level until a config or the override file says
	// otherwise; LogFormat picks JSON (journald) or console lines. The
	// override file is "log-level" next to ConfigPath; when it exists it
	// overrides the config's level, and SIGHUP re-reads it.
	LogLevel  zapcore.Level
	LogFormat logging.Format
	// Version is reported to the cloud and by the control plane.
	Version string
	// Clock is the injected clock; nil means the machine's.
	Clock clock.Clock
	// Stderr receives log lines (journald under systemd); nil means os.Stderr.
	Stderr io.Writer
	// Signals delivers SIGHUP, SIGTERM and SIGINT; nil means the process's.
	Signals <-chan os.Signal
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
	// PackageDeadline is how long a new package version has to come up
	// before the part switches back; 0 means packages.DefaultDeadline.
	PackageDeadline time.Duration
	// OnReady is called once the daemon told systemd it is ready, with the
	// addresses it listens on (tests use it to find ports chosen by the OS).
	OnReady func(Endpoints)

	// notifier speaks to systemd; nil means systemd.Notifier.
	notifier notifier
	// finalSync bounds the sync cycle at shutdown; 0 means defaultFinalSync.
	finalSync time.Duration

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
	o.finalSync = cmp.Or(o.finalSync, defaultFinalSync)
	o.Version = cmp.Or(o.Version, "dev")
	if o.Clock == nil {
		o.Clock = clock.NewReal()
	}
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	if o.notifier == nil {
		o.notifier = systemd.Notifier{}
	}
}

// daemon is one run of outpostd. Its state falls in three kinds: what start
// sets and nothing changes after; what only the main loop touches; and three
// small structs, each with its mutex and the fields that mutex guards.
type daemon struct {
	o     Options
	clk   clock.Clock
	fatal chan error // a failed component says so here; the main loop stops
	stops stopList   // start pushes, a failed start or shutdown runs

	// Set by start; read-only once it returned.
	partID    string      // a reload cannot change it
	baseLog   *zap.Logger // stderr only: the store's own lines, and lines once the log sink stopped
	log       *zap.Logger // stderr and the store's log streams
	budget    cache.Budget
	store     *cache.Store
	sink      *logSink
	offline   *cloudsync.OfflineClock
	robot     *robot.Robot
	poller    *capture.Poller
	files     *capture.FileSync
	metrics   *metrics
	ctl       *control.Server
	endpoints Endpoints
	grants    grantSource // swapped atomically by sync, read by control
	pkgs      *packages.Manager
	pkgUses   packageUses // what the running config points at each package

	// The main loop's (and start's, before the loop runs).
	boot       *partfile.Bootstrap // reload swaps it
	lastStatus string
	watchdog   clock.Ticker // the main loop's tick: watchdog pings and status
	pinging    bool         // systemd set a watchdog for this process

	level    logLevel   // the log level and the config's part of it
	syncLoop syncSlot   // the sync loop, which a reload replaces
	applied  applyState // the running config, and the turns to change it
}

// Run runs outpostd until a SIGTERM or SIGINT (returning nil: exit 0) or a
// failure (an error; a *partfile.BootstrapError means exit code 2). The order is
// store, control, READY, cached config, sync: READY=1 means the part
// answers its control port, and a part that boots offline is useful at once.
func Run(ctx context.Context, opts Options) error {
	opts.defaults()
	d := &daemon{o: opts, clk: opts.Clock, fatal: make(chan error, 4)}
	signals := opts.Signals
	if signals == nil {
		// Subscribed first, so a SIGTERM during start is not lost.
		ch := make(chan os.Signal, 4)
		signal.Notify(ch, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
		defer signal.Stop(ch)
		signals = ch
	}
	if err := d.start(ctx); err != nil {
		_ = d.stops.run(context.WithoutCancel(ctx), false)
		return err
	}
	return d.loop(ctx, signals)
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
