package cli

import (
	"crypto/ed25519"
	"fmt"
	"io"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	"github.com/outpost-robotics/outpost/authz"
	"github.com/outpost-robotics/outpost/credential"
)

func inviteTable(w io.Writer, inv *fleetv1.Invite) error {
	return table(w, []string{"ID", "EMAIL", "ROLE", "SCOPE", "EXPIRES"},
		[][]string{{inv.GetId(), inv.GetEmail(), inv.GetRole(), inv.GetScope(), when(inv.GetExpiresAt())}})
}

func newUserCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "user", Short: "Manage users and invitations"}

	var pwStdin bool
	create := &cobra.Command{
		Use:   "create EMAIL",
		Short: "Create a user (the cloud's admin only)",
		Long:  "Create a user. Without --password-stdin the cloud makes a password and shows it once.",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pw := ""
			if pwStdin {
				var err error
				if pw, err = g.readSecret(true, "", cmd.ErrOrStderr()); err != nil {
					return err
				}
			}
			return call(g, cmd, (*api).CreateUser, &fleetv1.CreateUserRequest{Email: args[0], Password: pw},
				func(w io.Writer, res *fleetv1.CreateUserResponse) error {
					u := res.GetUser()
					if err := table(w, []string{"ID", "EMAIL", "CREATED"}, [][]string{{u.GetId(), u.GetEmail(), when(u.GetCreatedAt())}}); err != nil {
						return err
					}
					if p := res.GetGeneratedPassword(); p != "" {
						return secretNote(w, "password", p)
					}
					return nil
				})
		},
	}
	create.Flags().BoolVar(&pwStdin, "password-stdin", false, "read the new user's password from stdin")

	var role, scope string
	invite := &cobra.Command{
		Use: "invite EMAIL --role owner|operator --scope org/ID|location/ID|machine/ID", Short: "Invite someone to a role; the code is mailed to them, and only to them", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(g, cmd, (*api).InviteUser, &fleetv1.InviteUserRequest{Email: args[0], Role: role, Scope: scope},
				func(w io.Writer, res *fleetv1.InviteUserResponse) error {
					if err := inviteTable(w, res.GetInvite()); err != nil {
						return err
					}
					_, err := fmt.Fprintf(w, "the invitation code was mailed to %s, and only there\n", res.GetInvite().GetEmail())
					return err
				})
		},
	}
	invite.Flags().StringVar(&role, "role", "", "owner or operator")
	invite.Flags().StringVar(&scope, "scope", "", "org/ID, location/ID or machine/ID")
	mustRequire(invite, "role", "scope")
	_ = invite.RegisterFlagCompletionFunc("role", completeRoles)
	_ = invite.RegisterFlagCompletionFunc("scope", completeScopes)

	resend := &cobra.Command{
		Use: "resend-invite INVITE_ID", Short: "Make a new code for an invitation; the old one stops working", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(g, cmd, (*api).ResendInvite, &fleetv1.ResendInviteRequest{InviteId: args[0]},
				func(w io.Writer, res *fleetv1.ResendInviteResponse) error {
					if err := inviteTable(w, res.GetInvite()); err != nil {
						return err
					}
					_, err := fmt.Fprintf(w, "a new code was mailed to %s; the old one no longer works\n", res.GetInvite().GetEmail())
					return err
				})
		},
	}
	revoke := &cobra.Command{
		Use: "revoke-invite INVITE_ID", Short: "Withdraw an invitation", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(g, cmd, (*api).RevokeInvite, &fleetv1.RevokeInviteRequest{InviteId: args[0]},
				func(w io.Writer, _ *fleetv1.RevokeInviteResponse) error {
					_, err := fmt.Fprintf(w, "revoked invitation %s\n", args[0])
					return err
				})
		},
	}
	var acceptStdin bool
	accept := &cobra.Command{
		Use:   "accept-invite CODE",
		Short: "Accept an invitation: creates your account (or checks your password) and signs you in",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			base, err := g.cloudURL()
			if err != nil {
				return err
			}
			pw, err := g.readSecret(acceptStdin, "Password (new, or your current one): ", cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			sk := credential.NewPrivateKey()
			res, err := c.AcceptInvite(cmd.Context(), connect.NewRequest(&fleetv1.AcceptInviteRequest{Code: args[0], Password: pw,
				SessionPublicKey: sk.Public().(ed25519.PublicKey)}))
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
				_, err := fmt.Fprintf(w, "welcome %s: you are %s of %s\ntoken saved to %s\n", printable(res.Msg.GetUser().GetEmail()),
					printable(res.Msg.GetGrant().GetRole()), printable(res.Msg.GetGrant().GetScope()), printable(path))
				return err
			})
		},
	}
	accept.Flags().BoolVar(&acceptStdin, "password-stdin", false, "read the password from stdin")
	cmd.AddCommand(create, invite, resend, revoke, accept, newUserPasswdCmd(g), newUserDeleteCmd(g), newUserListCmd(g))
	return cmd
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
			c, err := g.client()
			if err != nil {
				return err
			}
			// A new session: its private key stays here, and the new
			// token is bound to its public key, as at sign-in.
			sk := credential.NewPrivateKey()
			res, err := c.ChangePassword(cmd.Context(), connect.NewRequest(&fleetv1.ChangePasswordRequest{CurrentPassword: cur, NewPassword: next,
				TtlSeconds: int64(ttl / time.Second), SessionPublicKey: sk.Public().(ed25519.PublicKey)}))
			if err != nil {
				return err
			}
			res.Msg.AccessToken = credential.Session(res.Msg.GetAccessToken(), sk).String()
			note := "the new token is in the answer (--json); the one you passed no longer works"
			if fromSaved {
				path, err := g.save(saved{Cloud: base, Token: res.Msg.GetAccessToken()})
				if err != nil {
					return err
				}
				note = "new token saved to " + path
			}
			return g.output(cmd.OutOrStdout(), res.Msg, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "password changed; every older token of yours is revoked\n%s, valid until %s\n", note, when(res.Msg.GetExpiresAt()))
				return err
			})
		},
	}
	cmd.Flags().BoolVar(&fromStdin, "password-stdin", false, "read the current and the new password from stdin, one a line")
	cmd.Flags().DurationVar(&ttl, "ttl", 0, "new token lifetime, such as 720h (default 12h, at most 1440h)")
	return cmd
}

func newUserDeleteCmd(g *globals) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "delete EMAIL|ID",
		Short: "Delete a user and its grants; its tokens stop working (the cloud's admin only)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			subj, err := authz.Parse(args[0])
			if err != nil {
				subj = authz.User(args[0]) // a bare EMAIL or ID
			}
			if err := g.confirm(cmd, yes, "delete "+subj.String()+" and every role it holds"); err != nil {
				return err
			}
			return call(g, cmd, (*api).DeleteUser, &fleetv1.DeleteUserRequest{User: subj.String()},
				func(w io.Writer, res *fleetv1.DeleteUserResponse) error {
					u := res.GetUser()
					_, err := fmt.Fprintf(w, "deleted user %s (%s) and its %d grants; its tokens no longer work, on parts from their next sync\n",
						u.GetEmail(), u.GetId(), res.GetGrantsRemoved())
					return err
				})
		},
	}
	yesFlag(cmd, &yes)
	return cmd
}

// newUserListCmd is `outpost user list`: an organization's members and
// their roles, as `org members` (org.members.view decides).
func newUserListCmd(g *globals) *cobra.Command {
	var org string
	cmd := &cobra.Command{
		Use:   "list --org ORG_ID",
		Short: "List the users holding a role in an organization, with their roles",
		Long: "Lists every user holding a role in the organization (or in a location or machine of it), a row per\n" +
			"role. It needs org.members.view on the organization: an owner or operator of the organization.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return call(g, cmd, (*api).ListMembers, &fleetv1.ListMembersRequest{OrgId: org}, memberTable)
		},
	}
	cmd.Flags().StringVar(&org, "org", "", "organization ID")
	mustRequire(cmd, "org")
	return cmd
}
