// Command outpost is the CLI for field techs (against a robot's daemon) and
// admins (against the fleet cloud).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/outpost-robotics/outpost/version"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRoot().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "outpost:", err)
		os.Exit(1)
	}
}

// globals are the flags every command shares.
type globals struct {
	cloud string
	token string
	json  bool
}

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "outpost",
		Short:         "Manage an Outpost fleet and the robots in it",
		Version:       version.String("outpost"),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetVersionTemplate("{{.Version}}\n")
	pf := root.PersistentFlags()
	pf.StringVar(&g.cloud, "cloud", os.Getenv("OUTPOST_CLOUD"), "fleet cloud URL (or $OUTPOST_CLOUD)")
	pf.StringVar(&g.token, "token", os.Getenv("OUTPOST_TOKEN"), "access token (or $OUTPOST_TOKEN)")
	pf.BoolVar(&g.json, "json", false, "print what the API returns as JSON")
	root.AddCommand(newCloudCmd(g))
	return root
}
