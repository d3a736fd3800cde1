// Command outpost-cloud is the fleet cloud: the admin API, the part sync API
// and the signaling relay.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/outpost-robotics/outpost/cloud"
	"github.com/outpost-robotics/outpost/logging"
	"github.com/outpost-robotics/outpost/version"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRoot().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "outpost-cloud:", err)
		os.Exit(1)
	}
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "outpost-cloud",
		Short:         "The Outpost fleet cloud",
		Version:       version.String("outpost-cloud"),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.AddCommand(newServe())
	return root
}

func newServe() *cobra.Command {
	var dataDir, listen, certFile, keyFile, level string
	var poll time.Duration
	var maxConns int
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the fleet API and the part sync API",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			lvl, err := logging.ParseLevel(level)
			if err != nil {
				return err
			}
			if poll != 0 && (poll < time.Second || poll > time.Hour) {
				return fmt.Errorf("--poll-interval %s: want between 1s and 1h", poll)
			}
			log, _ := logging.New(logging.Options{Level: lvl})
			defer func() { _ = log.Sync() }()
			log.Info("outpost-cloud starting", zap.String("version", version.Version))
			if maxConns < 1 {
				return fmt.Errorf("--max-conns %d: want at least 1", maxConns)
			}
			lim := cloud.Limits()
			lim.MaxConns = maxConns
			return cloud.Run(cmd.Context(), cloud.RunConfig{DataDir: dataDir, Listen: listen, CertFile: certFile, KeyFile: keyFile, Log: log, PollInterval: poll,
				Limits: lim})
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "/var/lib/outpost-cloud", "folder holding the cloud's state")
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8080", "address to serve on")
	cmd.Flags().StringVar(&certFile, "tls-cert", "", "TLS certificate file (PEM); serves cleartext HTTP/2 without it")
	cmd.Flags().StringVar(&keyFile, "tls-key", "", "TLS private key file (PEM)")
	cmd.Flags().DurationVar(&poll, "poll-interval", 0, "how long parts wait between sync cycles (default 15s; 1s to 1h)")
	cmd.Flags().StringVar(&level, "log-level", "info", "debug, info, warn or error")
	cmd.Flags().IntVar(&maxConns, "max-conns", cloud.Limits().MaxConns, "connections served at once (each part holds one; keep the open-file limit above it)")
	return cmd
}
