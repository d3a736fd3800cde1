package cli

import (
	"fmt"
	"io"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
)

func fragmentTable(w io.Writer, fs ...*fleetv1.Fragment) error {
	var rows [][]string
	for _, f := range fs {
		rows = append(rows, []string{f.GetId(), f.GetName(), fmt.Sprint(f.GetRevision()), f.GetUpdatedBy(), when(f.GetUpdatedAt())})
	}
	return table(w, []string{"ID", "NAME", "REVISION", "UPDATED BY", "UPDATED"}, rows)
}

func newFragmentCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "fragment", Short: "Manage an organization's config fragments"}

	var org, file string
	create := &cobra.Command{
		Use: "create NAME --org ORG_ID --file CONFIG.json", Short: "Create a fragment", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := g.readConfig(file)
			if err != nil {
				return err
			}
			return call(g, cmd, (*api).CreateFragment, &fleetv1.CreateFragmentRequest{OrgId: org, Name: args[0], Config: cfg},
				func(w io.Writer, res *fleetv1.CreateFragmentResponse) error {
					return fragmentTable(w, res.GetFragment())
				})
		},
	}
	create.Flags().StringVar(&org, "org", "", "organization ID")
	create.Flags().StringVar(&file, "file", "", "the fragment's config as protobuf JSON; - reads stdin")
	mustRequire(create, "org", "file")

	list := &cobra.Command{
		Use: "list --org ORG_ID", Short: "List an organization's fragments", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return call(g, cmd, (*api).ListFragments, &fleetv1.ListFragmentsRequest{OrgId: org},
				func(w io.Writer, res *fleetv1.ListFragmentsResponse) error {
					return fragmentTable(w, res.GetFragments()...)
				})
		},
	}
	list.Flags().StringVar(&org, "org", "", "organization ID")
	mustRequire(list, "org")

	get := &cobra.Command{
		Use: "get FRAGMENT_ID", Short: "Print a fragment's config", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(g, cmd, (*api).GetFragment, &fleetv1.GetFragmentRequest{FragmentId: args[0]},
				func(w io.Writer, res *fleetv1.GetFragmentResponse) error {
					if err := fragmentTable(w, res.GetFragment()); err != nil {
						return err
					}
					return writeJSON(w, res.GetFragment().GetConfig())
				})
		},
	}

	var base int64
	update := &cobra.Command{
		Use: "update FRAGMENT_ID --file CONFIG.json", Short: "Write a new revision; every machine using it gets a new config", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := g.readConfig(file)
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			frag, err := g.resolveArg(ctx, c, "fragment", args[0])
			if err != nil {
				return err
			}
			b := uint64(base)
			if base < 0 {
				cur, err := c.GetFragment(ctx, connect.NewRequest(&fleetv1.GetFragmentRequest{FragmentId: frag}))
				if err != nil {
					return err
				}
				b = cur.Msg.GetFragment().GetRevision()
			}
			res, err := c.UpdateFragment(ctx, connect.NewRequest(&fleetv1.UpdateFragmentRequest{FragmentId: frag, BaseRevision: b, Config: cfg}))
			if err != nil {
				return err
			}
			return g.output(cmd.OutOrStdout(), res.Msg, func(w io.Writer) error {
				if err := fragmentTable(w, res.Msg.GetFragment()); err != nil {
					return err
				}
				_, err := fmt.Fprintf(w, "%d machines use it; their parts get the new config at their next sync\n", res.Msg.GetMachines())
				return err
			})
		},
	}
	update.Flags().StringVar(&file, "file", "", "the fragment's config as protobuf JSON; - reads stdin")
	update.Flags().Int64Var(&base, "base", -1, "the revision the edit started from; default: the current one")
	mustRequire(update, "file")

	var yes bool
	del := &cobra.Command{
		Use: "delete FRAGMENT_ID", Short: "Delete a fragment no machine uses", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := g.confirm(cmd, yes, "delete fragment/"+args[0]); err != nil {
				return err
			}
			return call(g, cmd, (*api).DeleteFragment, &fleetv1.DeleteFragmentRequest{FragmentId: args[0]},
				func(w io.Writer, _ *fleetv1.DeleteFragmentResponse) error {
					_, err := fmt.Fprintf(w, "deleted fragment/%s\n", args[0])
					return err
				})
		},
	}
	yesFlag(del, &yes)
	cmd.AddCommand(create, list, get, update, del)
	return cmd
}
