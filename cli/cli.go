// Package cli is the outpost command: the CLI for field techs (against a
// robot's daemon) and admins (against the fleet cloud). cmd/outpost only
// calls Main; the commands live here, one file per noun of the command
// tree, so tests run them in-process with an injected environment.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"connectrpc.com/connect"
	"github.com/pion/webrtc/v4"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/outpost-robotics/outpost/version"
)

// Main runs the outpost command with args (the command line without the
// program's name) in this process's environment: its variables, standard
// streams and terminal. It returns the exit status: 0, or 1 after printing
// why to standard error.
func Main(ctx context.Context, args []string) int {
	root := newRoot(osEnv())
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "outpost:", describe(err))
		return 1
	}
	return 0
}

// describe puts a Connect error's code after its message, which is written
// for a person.
func describe(err error) string {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return printable(fmt.Sprintf("%s [%s]", ce.Message(), ce.Code()))
	}
	return printable(err.Error())
}

// env is what the CLI takes from its process, injected so tests run it in-process.
type env struct {
	getenv func(string) string
	stdin  io.Reader
	// stdinTerminal says stdin is a terminal, so a password can be prompted for.
	stdinTerminal bool
	// readPassword reads a password from the terminal without echo.
	readPassword func() (string, error)
	// configDir holds the saved credentials ("" for the user's config dir).
	configDir string
	// webrtcSettings adjusts pion's settings for `outpost robot` sessions;
	// nil keeps pion's defaults. Tests pass control.LoopbackICE.
	webrtcSettings func(*webrtc.SettingEngine)
	// now is the clock proofs of possession are dated by; nil is the
	// machine's. Tests against a cloud on a fake clock pass its time.
	now func() time.Time
	// openURL opens a URL in the user's browser; nil is the system's
	// opener (xdg-open, open). Tests record the URL instead.
	openURL func(string) error
}

// osEnv is the real process environment.
func osEnv() env {
	fd := int(os.Stdin.Fd())
	return env{
		getenv:        os.Getenv,
		stdin:         os.Stdin,
		stdinTerminal: term.IsTerminal(fd),
		readPassword: func() (string, error) {
			b, err := term.ReadPassword(fd)
			return string(b), err
		},
	}
}

// globals are the flags every command shares.
type globals struct {
	env    env
	cloud  string
	token  string
	json   bool
	caFile string
}

func newRoot(e env) *cobra.Command {
	g := &globals{env: e}
	root := &cobra.Command{
		Use:           "outpost",
		Short:         "Manage an Outpost fleet and the robots in it",
		Version:       version.String("outpost"),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetIn(e.stdin)
	pf := root.PersistentFlags()
	pf.StringVar(&g.cloud, "cloud", e.getenv("OUTPOST_CLOUD"), "fleet cloud URL (or $OUTPOST_CLOUD; else the one saved by outpost login)")
	// No default from the environment: --help prints flag defaults, and a
	// token must never be printed. tokenValue reads $OUTPOST_TOKEN instead.
	pf.StringVar(&g.token, "token", "", "session (ops_..., as outpost login saves and outpost-cloud writes to admin.token) or API key (opk_...) (or $OUTPOST_TOKEN; else the one saved by outpost login)")
	pf.BoolVar(&g.json, "json", false, "print what the API returns as JSON")
	pf.StringVar(&g.caFile, "ca-file", "", "PEM bundle of the private CA the cloud's TLS certificate is signed by (or $OUTPOST_CA_FILE; outpost login remembers it)")
	root.AddCommand(
		newCloudCmd(g), newLoginCmd(g), newLogoutCmd(g), newWhoamiCmd(g), newOrgCmd(g), newLocationCmd(g), newMachineCmd(g),
		newPartCmd(g), newUserCmd(g), newRoleCmd(g), newAPIKeyCmd(g), newAccessCmd(g), newAuditCmd(g),
		newConfigCmd(g), newFragmentCmd(g), newPackageCmd(g), newLogsCmd(g), newDataCmd(g), newDatasetCmd(g),
	)
	root.AddCommand(newDoctorCmd(g))
	root.AddCommand(newRobotCmd(g))
	root.AddCommand(newFleetCmd(g))
	root.AddCommand(newAlertCmd(g))
	refuseUnknownSubcommands(root)
	registerCompletion(g, root)
	return root
}

// now is the time proofs are dated by: env.now, else the machine's clock.
func (g *globals) now() time.Time {
	if g.env.now != nil {
		return g.env.now()
	}
	return time.Now()
}
