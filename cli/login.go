package cli

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	"github.com/outpost-robotics/outpost/credential"
)

func newLoginCmd(g *globals) *cobra.Command {
	var fromStdin bool
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "login EMAIL",
		Short: "Sign in to the cloud and save the access token for later commands",
		Long: "Sign in with your password (asked for on the terminal, or read from stdin with --password-stdin).\n" +
			"The token is saved, readable only by you, with the cloud's URL; later commands use both.\n" +
			"A token lives 12 hours by default and up to 60 days (--ttl), for work offline.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			base, err := g.cloudURL()
			if err != nil {
				return err
			}
			pw, err := g.readSecret(fromStdin, "Password for "+args[0]+": ", cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			return g.do(cmd, func(ctx context.Context, c *api) (proto.Message, printer, error) {
				// The session's private key stays here; the token the cloud
				// returns is bound to its public key.
				sk := credential.NewPrivateKey()
				res, err := c.auth.SignIn(ctx, connect.NewRequest(&fleetv1.SignInRequest{Email: args[0], Password: pw,
					TtlSeconds: int64(ttl / time.Second), SessionPublicKey: sk.Public().(ed25519.PublicKey)}))
				if err != nil {
					return nil, nil, err
				}
				// What is saved, and shown with --json, is the session: the
				// token with its private key, as --token takes it.
				res.Msg.AccessToken = credential.Session(res.Msg.GetAccessToken(), sk).String()
				path, err := g.save(saved{Cloud: base, Token: res.Msg.GetAccessToken()})
				if err != nil {
					return nil, nil, err
				}
				return res.Msg, func(w io.Writer) error {
					_, err := fmt.Fprintf(w, "signed in to %s as %s until %s\ntoken saved to %s\n", printable(base), printable(res.Msg.GetUser().GetEmail()), when(res.Msg.GetExpiresAt()), printable(path))
					return err
				}, nil
			})
		},
	}
	cmd.Flags().BoolVar(&fromStdin, "password-stdin", false, "read the password from stdin")
	cmd.Flags().DurationVar(&ttl, "ttl", 0, "token lifetime, such as 720h (default 12h, at most 1440h)")
	return cmd
}

func newWhoamiCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "whoami",
		Short: "Show who the credential belongs to and its roles",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.do(cmd, func(ctx context.Context, c *api) (proto.Message, printer, error) {
				res, err := c.auth.WhoAmI(ctx, connect.NewRequest(&fleetv1.WhoAmIRequest{}))
				if err != nil {
					return nil, nil, err
				}
				m := res.Msg
				return m, func(w io.Writer) error {
					who := m.GetSubject()
					if m.GetEmail() != "" {
						who += " (" + m.GetEmail() + ")"
					}
					if m.GetAdmin() {
						who += ", the cloud's admin"
					}
					fmt.Fprintln(w, printable(who))
					return grantTable(w, m.GetGrants())
				}, nil
			})
		},
	}
}

func grantTable(w io.Writer, gs []*fleetv1.Grant) error {
	var rows [][]string
	for _, g := range gs {
		rows = append(rows, []string{g.GetSubject(), orDash(g.GetEmail()), g.GetRole(), g.GetScope()})
	}
	return table(w, []string{"SUBJECT", "EMAIL", "ROLE", "SCOPE"}, rows)
}
