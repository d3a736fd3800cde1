// Command outpostd is the daemon every robot part runs under systemd.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"time"

	"github.com/spf13/pflag"

	"github.com/outpost-robotics/outpost/daemon"
	"github.com/outpost-robotics/outpost/logging"
	"github.com/outpost-robotics/outpost/partfile"
	"github.com/outpost-robotics/outpost/version"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run parses flags and runs the daemon. Exit code 2 is a usage or
// bootstrap-file error, which systemd's RestartPreventExitStatus tells from
// a crash: restarting will not fix it.
//
// The flags are pflag's, not cobra's: cobra's help templates are
// text/template, whose reflection makes the linker keep every exported
// method of the binary, 5.5 MB of outpostd that a robot keeps resident
// (deptest's link rule on text/template holds it to that).
func run(args []string, stdout, stderr io.Writer) int {
	var o flags
	var showVersion bool
	fs := pflag.NewFlagSet("outpostd", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.config, "config", daemon.DefaultConfigPath, "bootstrap file written when the part was provisioned")
	fs.StringVar(&o.dataDir, "data-dir", daemon.DefaultDataDir, "folder of the local store")
	fs.StringVar(&o.listen, "listen", ":8443", "control plane address (TLS)")
	fs.StringVar(&o.metrics, "metrics", daemon.DefaultMetricsListen, "loopback address serving Prometheus /metrics, or - for none")
	fs.StringVar(&o.mdns, "mdns", "*", "announce the control port with mDNS on this interface (* for every one, - for none)")
	fs.StringVar(&o.runtimeDir, "runtime-dir", daemon.DefaultRuntimeDir, "folder of the break-glass socket and module sockets")
	fs.DurationVar(&o.syncEvery, "sync-interval", 0, "time between sync cycles until the cloud sets one (default 15s; 1s to 1h)")
	fs.StringVar(&o.level, "log-level", "info", "log level until the config or the file log-level next to --config sets one: debug, info, warn or error")
	fs.StringVar(&o.format, "log-format", "", "json or console; default: console on a terminal, else json (journald)")
	fs.DurationVar(&o.fsyncDelay, "fault-fsync-delay", 0, "fault injection for tests: each synced commit of the store waits this long more, as on a slow SD card (never in production; at most 1s)")
	fs.BoolVarP(&showVersion, "version", "v", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprintf(stdout, "%s\n\nUsage:\n  outpostd [flags]\n\nFlags:\n%s", usage, fs.FlagUsages())
	}
	err := fs.Parse(args)
	switch {
	case errors.Is(err, pflag.ErrHelp):
		return 0
	case err != nil:
		fmt.Fprintln(stderr, "outpostd:", err)
		fmt.Fprintln(stderr, "see 'outpostd --help'")
		return 2
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "outpostd: unexpected argument %q: outpostd takes flags only\n", fs.Arg(0))
		fmt.Fprintln(stderr, "see 'outpostd --help'")
		return 2
	case showVersion:
		fmt.Fprintln(stdout, version.String("outpostd"))
		return 0
	}
	return serve(o, stderr)
}

// usage is what --help says before the flags.
const usage = "outpostd keeps a robot part's config, logs and captures in its store, syncs with the fleet cloud, and serves the control plane to field technicians on the local network."

// flags are outpostd's command-line flags.
type flags struct {
	config, dataDir, listen, metrics, mdns, runtimeDir, level, format string
	syncEvery, fsyncDelay                                             time.Duration
}

// serve checks the flags' values and runs the daemon until it stops.
func serve(o flags, stderr io.Writer) int {
	lvl, err := logging.ParseLevel(o.level)
	if err != nil {
		fmt.Fprintf(stderr, "outpostd: --log-level: %v\n", err)
		return 2
	}
	if o.syncEvery != 0 && (o.syncEvery < time.Second || o.syncEvery > time.Hour) {
		fmt.Fprintf(stderr, "outpostd: --sync-interval %s: want between 1s and 1h\n", o.syncEvery)
		return 2
	}
	if o.fsyncDelay < 0 || o.fsyncDelay > time.Second {
		fmt.Fprintf(stderr, "outpostd: --fault-fsync-delay %s: want between 0 and 1s\n", o.fsyncDelay)
		return 2
	}
	if err := daemon.CheckMetricsListen(o.metrics); err != nil {
		fmt.Fprintf(stderr, "outpostd: --metrics: %v\n", err)
		return 2
	}
	f := logging.Format(o.format)
	if f != logging.FormatAuto && f != logging.FormatJSON && f != logging.FormatConsole {
		fmt.Fprintf(stderr, "outpostd: --log-format %q: want json or console\n", o.format)
		return 2
	}
	err = daemon.Run(context.Background(), daemon.Options{
		ConfigPath: o.config, DataDir: o.dataDir, Listen: o.listen, MetricsListen: o.metrics, MDNSInterface: strings.TrimPrefix(o.mdns, "-"),
		RuntimeDir: o.runtimeDir, LogLevel: lvl, LogFormat: f, Stderr: stderr, Version: version.Version, SyncInterval: o.syncEvery,
		FaultFsyncDelay: o.fsyncDelay,
	})
	if err == nil {
		return 0
	}
	fmt.Fprintln(stderr, "outpostd:", err)
	if be := new(partfile.BootstrapError); errors.As(err, &be) {
		return 2
	}
	return 1
}
