package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
)

func newRoleCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "role", Short: "Grant, change, limit, remove and list roles"}

	var gSubject, gRole, gScope string
	grant := &cobra.Command{
		Use: "grant --subject SUBJECT --role ROLE --scope SCOPE", Short: "Give a subject a role on a scope (grant additional access)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return call(g, cmd, (*api).GrantRole, &fleetv1.GrantRoleRequest{Subject: gSubject, Role: gRole, Scope: gScope},
				func(w io.Writer, res *fleetv1.GrantRoleResponse) error {
					return grantTable(w, []*fleetv1.Grant{res.GetGrant()})
				})
		},
	}
	grantFlags(grant, &gSubject, &gRole, &gScope)

	var cSubject, cRole, cScope string
	change := &cobra.Command{
		Use: "change --subject SUBJECT --role ROLE --scope SCOPE", Short: "Change the role a subject holds on a scope", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return call(g, cmd, (*api).ChangeRole, &fleetv1.ChangeRoleRequest{Subject: cSubject, Role: cRole, Scope: cScope},
				func(w io.Writer, res *fleetv1.ChangeRoleResponse) error {
					return grantTable(w, []*fleetv1.Grant{res.GetGrant()})
				})
		},
	}
	grantFlags(change, &cSubject, &cRole, &cScope)

	var lSubject, lScope string
	var lTo []string
	limit := &cobra.Command{
		Use:   "limit --subject SUBJECT --scope SCOPE --to SCOPE [--to SCOPE ...]",
		Short: "Limit access: replace a grant with the same role on narrower scopes inside it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return call(g, cmd, (*api).LimitAccess, &fleetv1.LimitAccessRequest{Subject: lSubject, Scope: lScope, LimitTo: lTo},
				func(w io.Writer, res *fleetv1.LimitAccessResponse) error { return grantTable(w, res.GetGrants()) })
		},
	}
	grantFlags(limit, &lSubject, nil, &lScope)
	limit.Flags().StringArrayVar(&lTo, "to", nil, "a narrower scope inside --scope (repeat for several)")
	mustRequire(limit, "to")

	var rSubject, rScope string
	remove := &cobra.Command{
		Use: "remove --subject SUBJECT --scope SCOPE", Short: "Remove a subject's role on a scope (anyone may remove their own)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return call(g, cmd, (*api).RemoveRole, &fleetv1.RemoveRoleRequest{Subject: rSubject, Scope: rScope},
				func(w io.Writer, _ *fleetv1.RemoveRoleResponse) error {
					_, err := fmt.Fprintf(w, "removed the role of %s on %s\n", printable(rSubject), printable(rScope))
					return err
				})
		},
	}
	grantFlags(remove, &rSubject, nil, &rScope)

	var listScope string
	list := &cobra.Command{
		Use: "list --scope SCOPE", Short: "List the roles that reach a scope: on it and on everything above it", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return call(g, cmd, (*api).ListRoles, &fleetv1.ListRolesRequest{Scope: listScope},
				func(w io.Writer, res *fleetv1.ListRolesResponse) error { return grantTable(w, res.GetGrants()) })
		},
	}
	grantFlags(list, nil, nil, &listScope)
	cmd.AddCommand(grant, change, limit, remove, list)
	return cmd
}

func grantTable(w io.Writer, gs []*fleetv1.Grant) error {
	var rows [][]string
	for _, g := range gs {
		rows = append(rows, []string{g.GetSubject(), orDash(g.GetEmail()), g.GetRole(), g.GetScope()})
	}
	return table(w, []string{"SUBJECT", "EMAIL", "ROLE", "SCOPE"}, rows)
}
