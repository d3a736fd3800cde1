package cli

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"github.com/outpost-robotics/outpost/credential"
	"io"
	"os"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
)

func newLogoutCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "logout",
		Short: "Sign out: revoke the access token and forget the saved one",
		Long: "Revoke the access token at the cloud (parts refuse it from their next sync) and, when it is the\n" +
			"token `outpost login` saved, delete the saved credentials.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fromSaved := g.tokenValue() == ""
			return g.do(cmd, func(ctx context.Context, c *api) (proto.Message, printer, error) {
				res, err := c.auth.SignOut(ctx, connect.NewRequest(&fleetv1.SignOutRequest{}))
				removed := ""
				if fromSaved && (err == nil || connect.CodeOf(err) == connect.CodeUnauthenticated) {
					// A token the cloud no longer takes is as good as signed out.
					path, ferr := g.credentialsPath()
					if ferr == nil {
						if ferr = os.Remove(path); ferr == nil {
							removed = path
						} else if !errors.Is(ferr, os.ErrNotExist) {
							return nil, nil, fmt.Errorf("forget the saved token: %w", ferr)
						}
					}
				}
				if err != nil {
					return nil, nil, err
				}
				return res.Msg, func(w io.Writer) error {
					fmt.Fprintln(w, "signed out: the token no longer works at the cloud, nor on parts after their next sync")
					if removed != "" {
						fmt.Fprintf(w, "removed %s\n", removed)
					}
					return nil
				}, nil
			})
		},
	}
}

func newUserPasswdCmd(g *globals) *cobra.Command {
	var fromStdin bool
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "passwd",
		Short: "Change your password; every older token of yours stops working",
		Long: "Change your password: the current one and the new one are asked for on the terminal, or read from\n" +
			"stdin with --password-stdin (the current on the first line, the new on the second). Every token\n" +
			"issued to you before stops working at the cloud, and on parts from their next sync; the new token\n" +
			"replaces the saved one.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cur, next, err := readPasswordChange(g, fromStdin, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			base, err := g.cloudURL()
			if err != nil {
				return err
			}
			fromSaved := g.tokenValue() == ""
			return g.do(cmd, func(ctx context.Context, c *api) (proto.Message, printer, error) {
				// A new session: its private key stays here, and the new
				// token is bound to its public key, as at sign-in.
				sk := credential.NewPrivateKey()
				res, err := c.auth.ChangePassword(ctx, connect.NewRequest(&fleetv1.ChangePasswordRequest{CurrentPassword: cur, NewPassword: next,
					TtlSeconds: int64(ttl / time.Second), SessionPublicKey: sk.Public().(ed25519.PublicKey)}))
				if err != nil {
					return nil, nil, err
				}
				res.Msg.AccessToken = credential.Session(res.Msg.GetAccessToken(), sk).String()
				note := "the new token is in the answer (--json); the one you passed no longer works"
				if fromSaved {
					path, err := g.save(saved{Cloud: base, Token: res.Msg.GetAccessToken()})
					if err != nil {
						return nil, nil, err
					}
					note = "new token saved to " + path
				}
				return res.Msg, func(w io.Writer) error {
					_, err := fmt.Fprintf(w, "password changed; every older token of yours is revoked\n%s, valid until %s\n", note, when(res.Msg.GetExpiresAt()))
					return err
				}, nil
			})
		},
	}
	cmd.Flags().BoolVar(&fromStdin, "password-stdin", false, "read the current and the new password from stdin, one a line")
	cmd.Flags().DurationVar(&ttl, "ttl", 0, "new token lifetime, such as 720h (default 12h, at most 1440h)")
	return cmd
}

// readPasswordChange reads the current and the new password.
func readPasswordChange(g *globals, fromStdin bool, stderr io.Writer) (string, string, error) {
	if fromStdin {
		all, err := g.readSecret(true, "", stderr)
		if err != nil {
			return "", "", err
		}
		cur, next, ok := strings.Cut(all, "\n")
		next = strings.TrimRight(next, "\r\n")
		if !ok || next == "" || strings.Contains(next, "\n") {
			return "", "", errors.New("--password-stdin: give the current password on the first line and the new one on the second")
		}
		return strings.TrimRight(cur, "\r"), next, nil
	}
	cur, err := g.readSecret(false, "Current password: ", stderr)
	if err != nil {
		return "", "", err
	}
	next, err := g.readSecret(false, "New password: ", stderr)
	if err != nil {
		return "", "", err
	}
	again, err := g.readSecret(false, "New password again: ", stderr)
	if err != nil {
		return "", "", err
	}
	if again != next {
		return "", "", errors.New("the new passwords differ: nothing changed")
	}
	return cur, next, nil
}

func newUserDeleteCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "delete EMAIL|ID",
		Short: "Delete a user and its grants; its tokens stop working (the cloud's admin only)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref := args[0]
			if !strings.HasPrefix(ref, "user:") {
				ref = "user:" + ref
			}
			return g.do(cmd, func(ctx context.Context, c *api) (proto.Message, printer, error) {
				res, err := c.user.DeleteUser(ctx, connect.NewRequest(&fleetv1.DeleteUserRequest{User: ref}))
				if err != nil {
					return nil, nil, err
				}
				return res.Msg, func(w io.Writer) error {
					u := res.Msg.GetUser()
					_, err := fmt.Fprintf(w, "deleted user %s (%s) and its %d grants; its tokens no longer work, on parts from their next sync\n",
						u.GetEmail(), u.GetId(), res.Msg.GetGrantsRemoved())
					return err
				}, nil
			})
		},
	}
}
