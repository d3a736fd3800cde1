package cli

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

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
				return g.do(cmd, func(ctx context.Context, c *api) (proto.Message, printer, error) {
					res, err := c.org.SetDocumentLifetime(ctx, connect.NewRequest(&fleetv1.SetDocumentLifetimeRequest{OrgId: args[0], Days: int32(days)}))
					if err != nil {
						return nil, nil, err
					}
					return res.Msg, func(w io.Writer) error {
						_, err := fmt.Fprintf(w, "org/%s: parts honour their documents for %d days without cloud contact; they get new ones at their next sync\n",
							args[0], res.Msg.GetOrg().GetDocumentLifetimeDays())
						return err
					}, nil
				})
			},
		},
		&cobra.Command{
			Use: "create NAME", Short: "Create an organization; you become its owner", Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return g.do(cmd, func(ctx context.Context, c *api) (proto.Message, printer, error) {
					res, err := c.org.CreateOrg(ctx, connect.NewRequest(&fleetv1.CreateOrgRequest{Name: args[0]}))
					if err != nil {
						return nil, nil, err
					}
					return res.Msg, func(w io.Writer) error { return orgTable(w, res.Msg.GetOrg()) }, nil
				})
			},
		},
		&cobra.Command{
			Use: "list", Short: "List the organizations you hold a role in", Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				return g.do(cmd, func(ctx context.Context, c *api) (proto.Message, printer, error) {
					res, err := c.org.ListOrgs(ctx, connect.NewRequest(&fleetv1.ListOrgsRequest{}))
					if err != nil {
						return nil, nil, err
					}
					return res.Msg, func(w io.Writer) error { return orgTable(w, res.Msg.GetOrgs()...) }, nil
				})
			},
		},
		&cobra.Command{
			Use: "rename ORG_ID NAME", Short: "Rename an organization", Args: cobra.ExactArgs(2),
			RunE: func(cmd *cobra.Command, args []string) error {
				return g.do(cmd, func(ctx context.Context, c *api) (proto.Message, printer, error) {
					res, err := c.org.RenameOrg(ctx, connect.NewRequest(&fleetv1.RenameOrgRequest{OrgId: args[0], Name: args[1]}))
					if err != nil {
						return nil, nil, err
					}
					return res.Msg, func(w io.Writer) error { return orgTable(w, res.Msg.GetOrg()) }, nil
				})
			},
		},
		&cobra.Command{
			Use: "delete ORG_ID", Short: "Delete an organization that holds no locations", Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return g.do(cmd, func(ctx context.Context, c *api) (proto.Message, printer, error) {
					res, err := c.org.DeleteOrg(ctx, connect.NewRequest(&fleetv1.DeleteOrgRequest{OrgId: args[0]}))
					if err != nil {
						return nil, nil, err
					}
					return res.Msg, func(w io.Writer) error { _, err := fmt.Fprintf(w, "deleted org/%s\n", args[0]); return err }, nil
				})
			},
		},
		&cobra.Command{
			Use: "leave ORG_ID", Short: "Give up every role you hold in an organization", Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return g.do(cmd, func(ctx context.Context, c *api) (proto.Message, printer, error) {
					res, err := c.org.LeaveOrg(ctx, connect.NewRequest(&fleetv1.LeaveOrgRequest{OrgId: args[0]}))
					if err != nil {
						return nil, nil, err
					}
					return res.Msg, func(w io.Writer) error {
						_, err := fmt.Fprintf(w, "left org/%s (%d roles given up)\n", args[0], res.Msg.GetRemoved())
						return err
					}, nil
				})
			},
		},
		&cobra.Command{
			Use: "members ORG_ID", Short: "List the users holding a role in an organization", Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return g.do(cmd, func(ctx context.Context, c *api) (proto.Message, printer, error) {
					res, err := c.org.ListMembers(ctx, connect.NewRequest(&fleetv1.ListMembersRequest{OrgId: args[0]}))
					if err != nil {
						return nil, nil, err
					}
					return res.Msg, func(w io.Writer) error {
						var rows [][]string
						for _, m := range res.Msg.GetMembers() {
							for _, gr := range m.GetGrants() {
								rows = append(rows, []string{m.GetUser().GetEmail(), gr.GetRole(), gr.GetScope(), when(m.GetJoinedAt())})
							}
						}
						return table(w, []string{"EMAIL", "ROLE", "SCOPE", "JOINED"}, rows)
					}, nil
				})
			},
		},
	)
	return cmd
}
