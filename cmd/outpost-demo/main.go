// Command outpost-demo is the one-command demo (make demo): it starts
// outpost-cloud and two parts' outpostd on loopback and drives them through
// the outpost CLI, printing each step. See package demo.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/outpost-robotics/outpost/demo"
)

func main() {
	os.Exit(run())
}

// run parses the flags and runs the demo: exit code 0 when every step did
// what it should, 1 when one did not, 2 for bad flags, 130 when interrupted.
func run() int {
	fs := flag.NewFlagSet("outpost-demo", flag.ContinueOnError)
	bin := fs.String("bin", "", "folder holding outpost, outpostd and outpost-cloud (default: this program's folder)")
	keep := fs.Bool("keep", false, "keep the temporary folder (the cloud's data, the parts' stores and logs) and print its path, and keep the cloud and the parts running for the fleet app until Ctrl-C")
	postgres := fs.Bool("postgres", false, "run the cloud on a private PostgreSQL server (scripts/deps installs it) instead of embedded storage; the database goes when the demo ends")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "outpost-demo: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *bin == "" {
		exe, err := os.Executable()
		if err != nil {
			fmt.Fprintln(os.Stderr, "outpost-demo: find this program's folder:", err, "(pass --bin)")
			return 2
		}
		*bin = filepath.Dir(exe)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	_, err := demo.Run(ctx, demo.Options{Bin: *bin, Out: os.Stdout, Keep: *keep, Stay: *keep, Postgres: *postgres})
	var se *demo.StepError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, context.Canceled):
		fmt.Fprintln(os.Stderr, "\noutpost-demo: interrupted; every program it started is stopped")
		return 130
	case errors.As(err, &se):
		fmt.Fprintln(os.Stderr, "\noutpost-demo: FAILED at", err)
	default:
		fmt.Fprintln(os.Stderr, "outpost-demo:", err)
	}
	return 1
}
