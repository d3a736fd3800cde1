// Command outpostd is the daemon every robot part runs under systemd.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

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
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("outpostd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	showVersion := fs.Bool("version", false, "print the version and exit")
	config := fs.String("config", daemon.DefaultConfigPath, "bootstrap file written when the part was provisioned")
	dataDir := fs.String("data-dir", daemon.DefaultDataDir, "folder of the local store")
	listen := fs.String("listen", ":8443", "control plane address (TLS)")
	metrics := fs.String("metrics", daemon.DefaultMetricsListen, "loopback address serving Prometheus /metrics, or - for none")
	mdns := fs.String("mdns", "*", "announce the control port with mDNS on this interface (* for every one, - for none)")
	runtimeDir := fs.String("runtime-dir", daemon.DefaultRuntimeDir, "folder of the break-glass socket and module sockets")
	syncEvery := fs.Duration("sync-interval", 0, "time between sync cycles until the cloud sets one (default 15s; 1s to 1h)")
	level := fs.String("log-level", "info", "log level until the config or the file log-level next to --config sets one: debug, info, warn or error")
	format := fs.String("log-format", "", "json or console; default: console on a terminal, else json (journald)")
	fsyncDelay := fs.Duration("fault-fsync-delay", 0, "fault injection for tests: each synced commit of the store waits this long more, as on a slow SD card (never in production; at most 1s)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "outpostd: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *showVersion {
		fmt.Fprintln(stdout, version.String("outpostd"))
		return 0
	}
	lvl, err := logging.ParseLevel(*level)
	if err != nil {
		fmt.Fprintf(stderr, "outpostd: --log-level: %v\n", err)
		return 2
	}
	if *syncEvery != 0 && (*syncEvery < time.Second || *syncEvery > time.Hour) {
		fmt.Fprintf(stderr, "outpostd: --sync-interval %s: want between 1s and 1h\n", *syncEvery)
		return 2
	}
	if *fsyncDelay < 0 || *fsyncDelay > time.Second {
		fmt.Fprintf(stderr, "outpostd: --fault-fsync-delay %s: want between 0 and 1s\n", *fsyncDelay)
		return 2
	}
	if err := daemon.CheckMetricsListen(*metrics); err != nil {
		fmt.Fprintf(stderr, "outpostd: --metrics: %v\n", err)
		return 2
	}
	f := logging.Format(*format)
	if f != logging.FormatAuto && f != logging.FormatJSON && f != logging.FormatConsole {
		fmt.Fprintf(stderr, "outpostd: --log-format %q: want json or console\n", *format)
		return 2
	}
	err = daemon.Run(context.Background(), daemon.Options{
		ConfigPath: *config, DataDir: *dataDir, Listen: *listen, MetricsListen: *metrics, MDNSInterface: strings.TrimPrefix(*mdns, "-"),
		RuntimeDir: *runtimeDir, LogLevel: lvl, LogFormat: f, Stderr: stderr, Version: version.Version, SyncInterval: *syncEvery,
		FaultFsyncDelay: *fsyncDelay,
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
