package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
)

func locationTable(w io.Writer, locs ...*fleetv1.Location) error {
	var rows [][]string
	for _, l := range locs {
		rows = append(rows, []string{l.GetId(), l.GetName(), orDash(l.GetParentLocationId()), l.GetOrgId(),
			orDash(strings.Join(l.GetSharedWith(), ",")), fmt.Sprint(l.GetSupportAccess())})
	}
	return table(w, []string{"ID", "NAME", "PARENT", "ORG", "SHARED WITH", "SUPPORT"}, rows)
}

// showLocation prints the location an answer holds.
func showLocation[M interface{ GetLocation() *fleetv1.Location }](w io.Writer, res M) error {
	return locationTable(w, res.GetLocation())
}

func newLocationCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "location", Short: "Manage locations: trees of any depth inside an organization"}

	var org, parent string
	create := &cobra.Command{
		Use: "create NAME --org ORG_ID [--parent LOCATION_ID]", Short: "Create a location", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(g, cmd, (*api).CreateLocation, &fleetv1.CreateLocationRequest{OrgId: org, Name: args[0], ParentLocationId: parent}, showLocation)
		},
	}
	create.Flags().StringVar(&org, "org", "", "organization ID")
	create.Flags().StringVar(&parent, "parent", "", "parent location ID (default: the org's top level)")
	mustRequire(create, "org")

	var listOrg string
	list := &cobra.Command{
		Use: "list --org ORG_ID", Short: "List the locations of an organization you can reach", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return call(g, cmd, (*api).ListLocations, &fleetv1.ListLocationsRequest{OrgId: listOrg},
				func(w io.Writer, res *fleetv1.ListLocationsResponse) error {
					return locationTable(w, res.GetLocations()...)
				})
		},
	}
	list.Flags().StringVar(&listOrg, "org", "", "organization ID")
	mustRequire(list, "org")

	rename := &cobra.Command{
		Use: "rename LOCATION_ID NAME", Short: "Rename a location", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(g, cmd, (*api).RenameLocation, &fleetv1.RenameLocationRequest{LocationId: args[0], Name: args[1]}, showLocation)
		},
	}

	var moveParent string
	var root bool
	move := &cobra.Command{
		Use: "move LOCATION_ID --parent LOCATION_ID | --root", Short: "Move a location under another one, or to the top level", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (moveParent == "") == !root {
				return errors.New("say where to: --parent LOCATION_ID or --root")
			}
			return call(g, cmd, (*api).MoveLocation, &fleetv1.MoveLocationRequest{LocationId: args[0], NewParentLocationId: moveParent}, showLocation)
		},
	}
	move.Flags().StringVar(&moveParent, "parent", "", "the new parent location")
	move.Flags().BoolVar(&root, "root", false, "move to the organization's top level")
	move.MarkFlagsMutuallyExclusive("parent", "root")

	var yes bool
	del := &cobra.Command{
		Use: "delete LOCATION_ID", Short: "Delete a location that holds no machines or child locations", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := g.confirm(cmd, yes, "delete location/"+args[0]); err != nil {
				return err
			}
			return call(g, cmd, (*api).DeleteLocation, &fleetv1.DeleteLocationRequest{LocationId: args[0]},
				func(w io.Writer, _ *fleetv1.DeleteLocationResponse) error {
					_, err := fmt.Fprintf(w, "deleted location/%s\n", args[0])
					return err
				})
		},
	}
	yesFlag(del, &yes)

	var shareOrg string
	share := &cobra.Command{
		Use: "share LOCATION_ID --org ORG_ID", Short: "Share a location, and everything under it, with another organization", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(g, cmd, (*api).ShareLocation, &fleetv1.ShareLocationRequest{LocationId: args[0], OrgId: shareOrg}, showLocation)
		},
	}
	share.Flags().StringVar(&shareOrg, "org", "", "the organization to share with")
	mustRequire(share, "org")

	var unshareOrg string
	unshare := &cobra.Command{
		Use: "unshare LOCATION_ID --org ORG_ID", Short: "Stop sharing a location with an organization", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(g, cmd, (*api).UnshareLocation, &fleetv1.UnshareLocationRequest{LocationId: args[0], OrgId: unshareOrg}, showLocation)
		},
	}
	unshare.Flags().StringVar(&unshareOrg, "org", "", "the organization to stop sharing with")
	mustRequire(unshare, "org")

	support := &cobra.Command{
		Use: "support LOCATION_ID on|off", Short: "Turn the support team's access to a location on or off", Args: cobra.ExactArgs(2),
		ValidArgsFunction: func(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
			if len(args) == 1 {
				return []string{"on", "off"}, cobra.ShellCompDirectiveNoFileComp
			}
			return nil, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if args[1] != "on" && args[1] != "off" {
				return fmt.Errorf("support access is on or off, not %q", args[1])
			}
			return call(g, cmd, (*api).SetSupportAccess, &fleetv1.SetSupportAccessRequest{LocationId: args[0], Enabled: args[1] == "on"}, showLocation)
		},
	}
	cmd.AddCommand(create, list, rename, move, del, share, unshare, support)
	return cmd
}
