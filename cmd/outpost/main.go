// Command outpost is the CLI for field techs (against a robot's daemon) and
// admins (against the fleet cloud); package cli holds it.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/outpost-robotics/outpost/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}
