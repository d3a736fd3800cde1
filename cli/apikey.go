package cli

import (
	"crypto/ed25519"
	"fmt"
	"io"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	"github.com/outpost-robotics/outpost/credential"
)

func newAPIKeyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "apikey", Short: "Manage API keys"}
	var name, role, scope string
	create := &cobra.Command{
		Use: "create --name NAME --role ROLE --scope SCOPE", Short: "Create an API key holding one role; its private key is made here and shown once", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			// The key pair is made here: the cloud gets the public key
			// only, and the private key is printed once, never sent.
			priv := credential.NewPrivateKey()
			req := &fleetv1.CreateAPIKeyRequest{Name: name, Role: role, Scope: scope, PublicKey: priv.Public().(ed25519.PublicKey)}
			if err := g.resolve(cmd.Context(), c, req); err != nil {
				return err
			}
			res, err := c.CreateAPIKey(cmd.Context(), connect.NewRequest(req))
			if err != nil {
				return err
			}
			res.Msg.Token = credential.APIKey(res.Msg.GetKey().GetId(), priv).String()
			return g.output(cmd.OutOrStdout(), res.Msg, func(w io.Writer) error {
				if err := keyTable(w, res.Msg.GetKey()); err != nil {
					return err
				}
				return secretNote(w, "API key (use as --api-key or OUTPOST_API_KEY for robots, --token or OUTPOST_TOKEN for the cloud)", res.Msg.GetToken())
			})
		},
	}
	create.Flags().StringVar(&name, "name", "", "a name for the key")
	mustRequire(create, "name")
	grantFlags(create, nil, &role, &scope)

	var org string
	list := &cobra.Command{
		Use: "list --org ORG_ID", Short: "List an organization's API keys", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return call(g, cmd, (*api).ListAPIKeys, &fleetv1.ListAPIKeysRequest{OrgId: org},
				func(w io.Writer, res *fleetv1.ListAPIKeysResponse) error { return keyTable(w, res.GetKeys()...) })
		},
	}
	list.Flags().StringVar(&org, "org", "", "organization ID")
	mustRequire(list, "org")

	revoke := &cobra.Command{
		Use: "revoke KEY_ID", Short: "Revoke an API key", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(g, cmd, (*api).RevokeAPIKey, &fleetv1.RevokeAPIKeyRequest{KeyId: args[0]},
				func(w io.Writer, _ *fleetv1.RevokeAPIKeyResponse) error {
					_, err := fmt.Fprintf(w, "revoked apikey/%s\n", args[0])
					return err
				})
		},
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}

func keyTable(w io.Writer, keys ...*fleetv1.APIKey) error {
	var rows [][]string
	for _, k := range keys {
		roles := ""
		for i, gr := range k.GetGrants() {
			if i > 0 {
				roles += ","
			}
			roles += gr.GetRole() + "@" + gr.GetScope()
		}
		rows = append(rows, []string{k.GetId(), k.GetName(), orDash(roles), when(k.GetCreatedAt())})
	}
	return table(w, []string{"ID", "NAME", "ROLES", "CREATED"}, rows)
}
