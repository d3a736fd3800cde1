package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"connectrpc.com/connect"
	"go.uber.org/zap"

	"github.com/outpost-robotics/outpost/cache"
	"github.com/outpost-robotics/outpost/capture"
	"github.com/outpost-robotics/outpost/cloudsync"
	"github.com/outpost-robotics/outpost/control"
	"github.com/outpost-robotics/outpost/logging"
	"github.com/outpost-robotics/outpost/partfile"
	"github.com/outpost-robotics/outpost/robot"
	"github.com/outpost-robotics/outpost/robot/builtin"
	"github.com/outpost-robotics/outpost/robot/component"
)

// stopStep is how one started piece of the daemon stops.
type stopStep struct {
	// name says what the step does; it prefixes the step's error.
	name string
	// shutdownOnly marks a step a failed start skips: the final sync and
	// the last log line are for a daemon that ran.
	shutdownOnly bool
	// stop logs what goes wrong itself, and returns an error only when Run
	// should fail with it.
	stop func(context.Context) error
}

// stopList is the one teardown order: start pushes each piece's step as
// the piece starts, and a failed start and shutdown both run the steps
// newest first. Only the goroutine running Run touches it.
type stopList []stopStep

func (l *stopList) push(name string, stop func(context.Context) error) {
	*l = append(*l, stopStep{name: name, stop: stop})
}

func (l *stopList) pushShutdownOnly(name string, stop func(context.Context) error) {
	*l = append(*l, stopStep{name: name, shutdownOnly: true, stop: stop})
}

// run runs the steps newest first and empties the list; shutdown says the
// daemon ran, so the steps for a daemon that ran run too.
func (l *stopList) run(ctx context.Context, shutdown bool) error {
	var errs []error
	for _, s := range slices.Backward(*l) {
		if s.shutdownOnly && !shutdown {
			continue
		}
		if err := s.stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.name, err))
		}
	}
	*l = nil
	return errors.Join(errs...)
}

// start brings the pieces up in order, each pushing its stop step as it
// starts, so the teardown is the start reversed: the watchdog tick,
// metrics, the mDNS announcement and control (no new remote commands),
// the sync loop, capture (its pending appends finished), the robot
// (components safe), one bounded final sync, the offline clock saved, the
// log sink drained, the store closed.
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
	var baseLevel zap.AtomicLevel
	d.baseLog, baseLevel = logging.New(logging.Options{Level: o.LogLevel, Format: o.LogFormat, Writer: o.Stderr, Now: d.clk.Now})
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
	d.stops.push("close the store", func(context.Context) error { return d.store.Close() })

	d.sink = newLogSink(d.store, d.clk, logQueueDepth)
	log, teeLevel := logging.New(logging.Options{Level: o.LogLevel, Format: o.LogFormat, Writer: o.Stderr, Tee: d.sink, Now: d.clk.Now})
	d.log = log.With(zap.String("part", d.partID))
	sinkCtx, sinkCancel := context.WithCancel(context.WithoutCancel(ctx))
	sinkDone := make(chan error, 1)
	go func() { sinkDone <- d.sink.Run(sinkCtx) }()
	d.stops.push("drain the log sink", func(context.Context) error {
		sinkCancel()
		if err := <-sinkDone; err != nil {
			d.baseLog.Warn("log lines were not all stored", zap.Error(err))
		}
		return nil
	})
	// The last line the store keeps.
	d.stops.pushShutdownOnly("log the stop", func(context.Context) error {
		d.log.Info("stopped")
		return nil
	})
	d.level = logLevel{start: o.LogLevel, file: filepath.Join(filepath.Dir(o.ConfigPath), "log-level"), base: baseLevel, tee: teeLevel, log: d.log}
	d.level.reread()
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
	d.stops.push("persist the offline clock", func(ctx context.Context) error {
		if err := d.store.PutOfflineClock(ctx, d.offline.Snapshot()); err != nil {
			d.log.Warn("could not persist the offline clock", zap.Error(err))
		}
		return nil
	})

	// The syncer is built before the robot and capture, so its final cycle
	// runs after they stopped and hands over what they made last.
	if err := d.newSyncer(boot); err != nil {
		return err
	}
	d.stops.pushShutdownOnly("final sync", d.finalSync)
	// Grants load before control serves, so a part that boots offline
	// authorizes field techs from its first request.
	if g, err := d.syncLoop.current().LoadGrants(ctx); err != nil {
		d.log.Error("the held grant bundle is refused; remote calls are refused until the cloud sends a new one", zap.Error(err))
	} else {
		d.grants.cur.Store(g)
	}
	if err := d.startRobot(ctx); err != nil {
		return err
	}
	if err := d.startPackages(ctx); err != nil {
		return err
	}
	// The sync loop starts last, after READY; its step stands here so that
	// it stops after control and before capture and the robot, whose
	// config it applies. Stopping also interrupts a cached-config apply in
	// progress.
	d.stops.push("stop the sync loop", func(context.Context) error {
		d.syncLoop.stop()
		return nil
	})
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
	every, ok, err := d.o.notifier.WatchdogInterval()
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
	d.stops.push("stop the main loop's ticker", func(context.Context) error {
		d.watchdog.Stop()
		return nil
	})
	status := "control on " + d.endpoints.Control + ", applying the cached config"
	if err := d.o.notifier.Ready(status); err != nil {
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
	d.stops.push("stop the robot", func(ctx context.Context) error {
		rctx, cancel := d.timeout(ctx, robotStopTimeout)
		defer cancel()
		if err := r.Close(rctx); err != nil {
			d.log.Error("some components did not stop cleanly", zap.Error(err))
		}
		return nil
	})
	var sink capture.Sink = CaptureSink{Store: d.store}
	if d.o.wrapSink != nil {
		sink = d.o.wrapSink(sink)
	}
	d.poller = capture.NewPoller(capture.PollerOptions{Clock: d.clk, Log: d.log, Sink: sink, Finder: r})
	d.files = capture.NewFileSync(capture.FileSyncOptions{Clock: d.clk, Log: d.log, Sink: sink})
	d.stops.push("stop capture", func(context.Context) error {
		// No apply restarts capture once it stopped: a control call in
		// flight when control closed may still try.
		d.applied.close()
		// Close waits for every poll and folder goroutine, so an append in
		// flight completes (durable and acknowledged) or fails before the
		// store closes.
		d.poller.Close()
		d.files.Close()
		return nil
	})
	return nil
}

func (d *daemon) startControl(ctx context.Context) error {
	ctl, err := control.New(ctx, control.Options{
		Clock: offlineTime{Clock: d.clk, offline: d.offline}, Logger: d.log, Version: d.o.Version, PartID: d.partID,
		Grants: &d.grants, Audit: auditLog{d.store}, Certs: certStore{d.store}, Robot: d.robot,
		Config: configAPI{d}, Logs: d.sink, Data: captureData{d.store}, Status: statusAPI{d}, WebRTCSettings: d.o.WebRTCSettings,
		HandlerOptions: []connect.HandlerOption{connect.WithInterceptors(d.metrics.Interceptor())},
		RemoteKeys:     remoteKeys{bootstrap: d.o.ConfigPath},
		Console:        d.console(),
		SyncInterval: func() time.Duration {
			if s := d.syncLoop.current(); s != nil {
				return s.Interval()
			}
			return 0
		},
	})
	if err != nil {
		return fmt.Errorf("start the control plane: %w", err)
	}
	d.ctl = ctl
	d.stops.push("close the control plane", func(context.Context) error {
		_ = ctl.Close()
		return nil
	})
	ln, err := control.Listen(d.o.Listen)
	if err != nil {
		return err
	}
	sockPath := filepath.Join(d.o.RuntimeDir, "control.sock")
	sock, err := control.ListenSocket(sockPath, control.DefaultSocketGroup)
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
	return nil
}

// announce starts the mDNS announcement of the control port, and the
// browse for the machine's other parts (control.Server.BrowseParts), unless
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
	browsed := make(chan struct{})
	go func() {
		defer close(done)
		if err := control.Announce(actx, a, d.log); err != nil {
			d.log.Warn("mDNS announcement failed; `outpost robot discover` will not find this part", zap.Error(err))
		}
	}()
	// The main part also listens for the machine's other parts, so it
	// reaches them on the LAN without the cloud (a no-op on other parts).
	go func() {
		defer close(browsed)
		d.ctl.BrowseParts(actx, iface, partBrowseInterval)
	}()
	d.stops.push("stop the mDNS announcement", func(context.Context) error {
		cancel()
		<-done
		<-browsed
		return nil
	})
	return nil
}

// partBrowseInterval is how often the main part browses mDNS for the
// machine's other parts: an address that changed is found within it.
const partBrowseInterval = 30 * time.Second

// buildMetrics makes the Prometheus registry over the daemon's sources.
func (d *daemon) buildMetrics() {
	d.metrics = newMetrics(d.clk, metricSources{
		Store:        d.store,
		SyncState:    func() string { st, _ := d.syncLoop.current().State(); return st.String() },
		SinceContact: func() (time.Duration, bool) { return d.offline.SinceContact(), d.offline.Known() },
		Components:   d.componentHealth,
		LogsDropped:  d.sink.Dropped,
		SyncStalled:  func() map[cache.Stream]int { return d.syncLoop.current().Stalled() },
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
	d.endpoints.Metrics = srv.Addr()
	go func() {
		if err := srv.Serve(context.WithoutCancel(ctx)); err != nil {
			d.fatal <- fmt.Errorf("metrics: %w", err)
		}
	}()
	d.stops.push("close the metrics listener", func(context.Context) error {
		_ = srv.Close()
		return nil
	})
	return nil
}

// loop is the main loop: the only goroutine that pings the watchdog, so
// if it wedges, systemd restarts the daemon.
func (d *daemon) loop(ctx context.Context, signals <-chan os.Signal) error {
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
				if err := d.o.notifier.Watchdog(); err != nil {
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

// shutdown is SIGTERM: STOPPING=1, then the whole stop list.
func (d *daemon) shutdown(ctx context.Context) error {
	_ = d.o.notifier.Stopping()
	return d.stops.run(context.WithoutCancel(ctx), true)
}

// finalSync runs one sync cycle, bounded by finalSync, to hand over what
// the store holds before the daemon stops.
func (d *daemon) finalSync(ctx context.Context) error {
	fctx, cancel := d.timeout(ctx, d.o.finalSync)
	res := d.syncLoop.current().Cycle(fctx)
	cancel()
	if res.Err != nil {
		d.log.Info("final sync incomplete; the rest goes at the next start", zap.Bool("reached_cloud", res.Pulled), zap.Error(res.Err))
	} else {
		d.log.Info("final sync done", zap.Any("uploaded", res.Uploaded))
	}
	return nil
}
