// Command outpost-cloud is the fleet cloud: the admin API, the part sync API
// and the signaling relay.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
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
	root.AddCommand(newServe(), newMigrate())
	return root
}

func newMigrate() *cobra.Command {
	var from, to string
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply the PostgreSQL schema, and copy an embedded cloud's state into it with --from",
		Long: `migrate brings the PostgreSQL database at --to (default $OUTPOST_DATABASE_URL) to
this binary's schema, as serve does at start. With --from DATA_DIR it then copies
the embedded cloud in DATA_DIR (stop it first) into the database, which must hold
no cloud yet: the fleet store with its signing key and admin, what parts handed
over, their statuses and finished blobs. Every kind is read back and compared by
count and SHA-256; any difference fails the command. Serve the database with the
same binary afterwards and point the parts at it: their credentials still hold.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if to == "" {
				to = os.Getenv("OUTPOST_DATABASE_URL")
			}
			if to == "" {
				return fmt.Errorf("--to or $OUTPOST_DATABASE_URL: the PostgreSQL database to migrate")
			}
			log, _ := logging.New(logging.Options{Level: zap.WarnLevel})
			defer func() { _ = log.Sync() }()
			if from == "" {
				if err := cloud.Migrate(cmd.Context(), to); err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), "the database is at this binary's schema")
				return nil
			}
			rep, err := cloud.CopyToPostgres(cmd.Context(), from, to, log)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "copied %s into PostgreSQL, each kind verified by count and SHA-256:\n", from)
			for _, k := range rep.Kinds {
				fmt.Fprintf(w, "  %-20s %8d  %s\n", k.Kind, k.Count, k.SHA256)
			}
			for _, s := range rep.Skipped {
				fmt.Fprintf(w, "not copied: %s\n", s)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "data folder of a stopped embedded cloud to copy into the database")
	cmd.Flags().StringVar(&to, "to", "", "postgres:// URL of the database (default $OUTPOST_DATABASE_URL, which keeps a password out of ps)")
	return cmd
}

func newServe() *cobra.Command {
	var dataDir, listen, certFile, keyFile, level, database string
	var poll, fsyncDelay time.Duration
	var alerts cloud.AlertOptions
	var smtpCfg cloud.SMTPConfig
	var smtpPasswordFile string
	var passwordMiB int64
	var maxConns, chunkServes int
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
			if alerts.Interval != 0 && (alerts.Interval < 10*time.Second || alerts.Interval > time.Hour) {
				return fmt.Errorf("--alert-interval %s: want between 10s and 1h", alerts.Interval)
			}
			if fsyncDelay < 0 || fsyncDelay > time.Second {
				return fmt.Errorf("--fault-fsync-delay %s: want between 0 and 1s", fsyncDelay)
			}
			log, _ := logging.New(logging.Options{Level: lvl})
			defer func() { _ = log.Sync() }()
			log.Info("outpost-cloud starting", zap.String("version", version.Version))
			if passwordMiB < 0 || passwordMiB > 1<<16 {
				return fmt.Errorf("--password-memory %d: want 0 (the default) to 65536 MiB", passwordMiB)
			}
			if maxConns < 1 {
				return fmt.Errorf("--max-conns %d: want at least 1", maxConns)
			}
			if chunkServes < 0 || chunkServes > 4096 {
				return fmt.Errorf("--chunk-serves %d: want 0 (the default) to 4096", chunkServes)
			}
			lim := cloud.Limits()
			lim.MaxConns = maxConns
			if database == "" {
				database = os.Getenv("OUTPOST_DATABASE_URL")
			}
			rc := cloud.RunConfig{DataDir: dataDir, Database: database, Listen: listen, CertFile: certFile, KeyFile: keyFile, Log: log, PollInterval: poll, ChunkServes: chunkServes,
				PasswordMemory: passwordMiB << 20, FaultFsyncDelay: fsyncDelay, Limits: lim, Alerts: alerts}
			if smtpCfg.Host != "" {
				if smtpCfg.Password, err = smtpPassword(smtpPasswordFile); err != nil {
					return err
				}
				rc.SMTP = &smtpCfg
			}
			return cloud.Run(cmd.Context(), rc)
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "/var/lib/outpost-cloud", "folder holding the cloud's state")
	cmd.Flags().StringVar(&database, "database", "", "postgres:// URL of a PostgreSQL database that keeps every store instead of --data-dir (default $OUTPOST_DATABASE_URL, which keeps a password out of ps)")
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8080", "address to serve on")
	cmd.Flags().StringVar(&certFile, "tls-cert", "", "TLS certificate file (PEM); serves cleartext HTTP/2 without it")
	cmd.Flags().StringVar(&keyFile, "tls-key", "", "TLS private key file (PEM)")
	cmd.Flags().DurationVar(&poll, "poll-interval", 0, "how long parts wait between sync cycles (default 15s; 1s to 1h)")
	cmd.Flags().StringVar(&level, "log-level", "info", "debug, info, warn or error")
	cmd.Flags().DurationVar(&alerts.Interval, "alert-interval", 0, "how often alert rules are evaluated (default 30s; 10s to 1h)")
	cmd.Flags().BoolVar(&alerts.AllowPrivate, "alert-private-webhooks", false, "let alert webhooks reach private addresses (10/8, 172.16/12, 192.168/16, fc00::/7, 100.64/10), for a cloud inside its users' network")
	cmd.Flags().BoolVar(&alerts.AllowLoopbackHTTP, "alert-loopback-webhooks", false, "let alert webhooks be http:// on loopback, for labs; never in production")
	cmd.Flags().DurationVar(&fsyncDelay, "fault-fsync-delay", 0, "fault injection for tests: each synced commit of the ingest store waits this long more, as on a slow disk")
	_ = cmd.Flags().MarkHidden("fault-fsync-delay")
	cmd.Flags().Int64Var(&passwordMiB, "password-memory", 0, "MiB password hashing may use at once (argon2id, 19 MiB a sign-in; default 114: six at a time)")
	cmd.Flags().StringVar(&smtpCfg.Host, "smtp-host", "", "SMTP relay that mails invitation codes; without it invitations are refused and the admin creates users")
	cmd.Flags().IntVar(&smtpCfg.Port, "smtp-port", 0, "SMTP relay port (default 587, or 465 with --smtp-tls tls)")
	cmd.Flags().StringVar(&smtpCfg.From, "smtp-from", "", "sender address of invitation mails")
	cmd.Flags().StringVar(&smtpCfg.Username, "smtp-user", "", "SMTP user name; its password comes from $OUTPOST_SMTP_PASSWORD or --smtp-password-file, never a flag")
	cmd.Flags().StringVar(&smtpPasswordFile, "smtp-password-file", "", "file holding the SMTP password")
	cmd.Flags().StringVar(&smtpCfg.TLS, "smtp-tls", "starttls", "starttls (required), tls (from the first byte) or none (only to a relay on loopback)")
	cmd.Flags().StringVar(&smtpCfg.CloudURL, "public-url", "", "the cloud's URL as users reach it, named in invitation mails")
	cmd.Flags().IntVar(&chunkServes, "chunk-serves", 0, "package chunks served to parts at once, up to 4 MiB each (default 32); fetches over it wait briefly, then are told to retry")
	cmd.Flags().IntVar(&maxConns, "max-conns", cloud.Limits().MaxConns, "connections served at once (each part holds one; keep the open-file limit above it)")
	return cmd
}

// smtpPassword reads the SMTP password from a file, else from
// $OUTPOST_SMTP_PASSWORD: a command line is visible to every user of the machine.
func smtpPassword(file string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("--smtp-password-file: %w", err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	return os.Getenv("OUTPOST_SMTP_PASSWORD"), nil
}
