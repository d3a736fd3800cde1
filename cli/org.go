package cli

import (
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
)

func orgTable(w io.Writer, orgs ...*fleetv1.Organization) error {
	var rows [][]string
	for _, o := range orgs {
		rows = append(rows, []string{o.GetId(), o.GetName(), when(o.GetCreatedAt())})
	}
	return table(w, []string{"ID", "NAME", "CREATED"}, rows)
}

func newOrgCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "org", Short: "Manage organizations"}
	cmd.AddCommand(
		&cobra.Command{
			Use:   "set-lifetime ORG_ID DAYS",
			Short: "Set how many days (1 to 60) the organization's parts honour their signed config and grants offline",
			Args:  cobra.ExactArgs(2),
			RunE: func(cmd *cobra.Command, args []string) error {
				days, err := strconv.Atoi(args[1])
				if err != nil {
					return fmt.Errorf("DAYS %q: want a number of days, 1 to 60", args[1])
				}
				return call(g, cmd, (*api).SetDocumentLifetime, &fleetv1.SetDocumentLifetimeRequest{OrgId: args[0], Days: int32(days)},
					func(w io.Writer, res *fleetv1.SetDocumentLifetimeResponse) error {
						_, err := fmt.Fprintf(w, "org/%s: parts honour their documents for %d days without cloud contact; they get new ones at their next sync\n",
							args[0], res.GetOrg().GetDocumentLifetimeDays())
						return err
					})
			},
		},
		&cobra.Command{
			Use:   "set-retention ORG_ID DAYS",
			Short: "Set how many days (1 to 3650, 0 for ever) the cloud keeps what the organization's parts upload",
			Args:  cobra.ExactArgs(2),
			RunE: func(cmd *cobra.Command, args []string) error {
				days, err := strconv.Atoi(args[1])
				if err != nil {
					return fmt.Errorf("DAYS %q: want a number of days, 1 to 3650, or 0 for ever", args[1])
				}
				return call(g, cmd, (*api).SetDataRetention, &fleetv1.SetDataRetentionRequest{OrgId: args[0], Days: int32(days)},
					func(w io.Writer, res *fleetv1.SetDataRetentionResponse) error {
						if d := res.GetOrg().GetDataRetentionDays(); d > 0 {
							_, err := fmt.Fprintf(w, "org/%s: the cloud keeps what its parts upload for %d days\n", args[0], d)
							return err
						}
						_, err := fmt.Fprintf(w, "org/%s: the cloud keeps what its parts upload for ever\n", args[0])
						return err
					})
			},
		},
		&cobra.Command{
			Use: "create NAME", Short: "Create an organization; you become its owner", Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return call(g, cmd, (*api).CreateOrg, &fleetv1.CreateOrgRequest{Name: args[0]},
					func(w io.Writer, res *fleetv1.CreateOrgResponse) error { return orgTable(w, res.GetOrg()) })
			},
		},
		&cobra.Command{
			Use: "list", Short: "List the organizations you hold a role in", Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				return call(g, cmd, (*api).ListOrgs, &fleetv1.ListOrgsRequest{},
					func(w io.Writer, res *fleetv1.ListOrgsResponse) error { return orgTable(w, res.GetOrgs()...) })
			},
		},
		&cobra.Command{
			Use: "rename ORG_ID NAME", Short: "Rename an organization", Args: cobra.ExactArgs(2),
			RunE: func(cmd *cobra.Command, args []string) error {
				return call(g, cmd, (*api).RenameOrg, &fleetv1.RenameOrgRequest{OrgId: args[0], Name: args[1]},
					func(w io.Writer, res *fleetv1.RenameOrgResponse) error { return orgTable(w, res.GetOrg()) })
			},
		},
		newOrgDeleteCmd(g),
		&cobra.Command{
			Use: "leave ORG_ID", Short: "Give up every role you hold in an organization", Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return call(g, cmd, (*api).LeaveOrg, &fleetv1.LeaveOrgRequest{OrgId: args[0]},
					func(w io.Writer, res *fleetv1.LeaveOrgResponse) error {
						_, err := fmt.Fprintf(w, "left org/%s (%d roles given up)\n", args[0], res.GetRemoved())
						return err
					})
			},
		},
		&cobra.Command{
			Use: "members ORG_ID", Short: "List the users holding a role in an organization", Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return call(g, cmd, (*api).ListMembers, &fleetv1.ListMembersRequest{OrgId: args[0]}, memberTable)
			},
		},
	)
	return cmd
}

// memberTable prints an organization's members, a row per role.
func memberTable(w io.Writer, res *fleetv1.ListMembersResponse) error {
	var rows [][]string
	for _, m := range res.GetMembers() {
		for _, gr := range m.GetGrants() {
			rows = append(rows, []string{m.GetUser().GetEmail(), m.GetUser().GetId(), gr.GetRole(), gr.GetScope(), when(m.GetJoinedAt())})
		}
	}
	return table(w, []string{"EMAIL", "ID", "ROLE", "SCOPE", "JOINED"}, rows)
}

func newOrgDeleteCmd(g *globals) *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use: "delete ORG_ID", Short: "Delete an organization that holds no locations", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := g.confirm(cmd, yes, "delete org/"+args[0]); err != nil {
				return err
			}
			return call(g, cmd, (*api).DeleteOrg, &fleetv1.DeleteOrgRequest{OrgId: args[0]},
				func(w io.Writer, _ *fleetv1.DeleteOrgResponse) error {
					_, err := fmt.Fprintf(w, "deleted org/%s\n", args[0])
					return err
				})
		},
	}
	yesFlag(cmd, &yes)
	return cmd
}
