package cli

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

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
			c, err := g.client()
			if err != nil {
				return err
			}
			// The session's private key stays here; the token the cloud
			// returns is bound to its public key.
			sk := credential.NewPrivateKey()
			res, err := c.SignIn(cmd.Context(), connect.NewRequest(&fleetv1.SignInRequest{Email: args[0], Password: pw,
				TtlSeconds: int64(ttl / time.Second), SessionPublicKey: sk.Public().(ed25519.PublicKey)}))
			if err != nil {
				return err
			}
			// What is saved, and shown with --json, is the session: the
			// token with its private key, as --token takes it.
			res.Msg.AccessToken = credential.Session(res.Msg.GetAccessToken(), sk).String()
			path, err := g.save(saved{Cloud: base, Token: res.Msg.GetAccessToken()})
			if err != nil {
				return err
			}
			return g.output(cmd.OutOrStdout(), res.Msg, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "signed in to %s as %s until %s\ntoken saved to %s\n", printable(base), printable(res.Msg.GetUser().GetEmail()), when(res.Msg.GetExpiresAt()), printable(path))
				return err
			})
		},
	}
	cmd.Flags().BoolVar(&fromStdin, "password-stdin", false, "read the password from stdin")
	cmd.Flags().DurationVar(&ttl, "ttl", 0, "token lifetime, such as 720h (default 12h, at most 1440h)")
	return cmd
}

func newLogoutCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "logout",
		Short: "Sign out: revoke the access token and forget the saved one",
		Long: "Revoke the access token at the cloud (parts refuse it from their next sync) and, when it is the\n" +
			"token `outpost login` saved, delete the saved credentials.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fromSaved := g.tokenValue() == ""
			c, err := g.client()
			if err != nil {
				return err
			}
			res, err := c.SignOut(cmd.Context(), connect.NewRequest(&fleetv1.SignOutRequest{}))
			removed := ""
			if fromSaved && (err == nil || connect.CodeOf(err) == connect.CodeUnauthenticated) {
				// A token the cloud no longer takes is as good as signed out.
				path, ferr := g.credentialsPath()
				if ferr == nil {
					if ferr = os.Remove(path); ferr == nil {
						removed = path
					} else if !errors.Is(ferr, os.ErrNotExist) {
						return fmt.Errorf("forget the saved token: %w", ferr)
					}
				}
			}
			if err != nil {
				return err
			}
			return g.output(cmd.OutOrStdout(), res.Msg, func(w io.Writer) error {
				fmt.Fprintln(w, "signed out: the token no longer works at the cloud, nor on parts after their next sync")
				if removed != "" {
					fmt.Fprintf(w, "removed %s\n", removed)
				}
				return nil
			})
		},
	}
}

func newWhoamiCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "whoami",
		Short: "Show who the credential belongs to and its roles",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return call(g, cmd, (*api).WhoAmI, &fleetv1.WhoAmIRequest{},
				func(w io.Writer, m *fleetv1.WhoAmIResponse) error {
					who := m.GetSubject()
					if m.GetEmail() != "" {
						who += " (" + m.GetEmail() + ")"
					}
					if m.GetAdmin() {
						who += ", the cloud's admin"
					}
					fmt.Fprintln(w, printable(who))
					return grantTable(w, m.GetGrants())
				})
		},
	}
}
