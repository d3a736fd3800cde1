package cli

import (
	"fmt"
	"io"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
)

func newCloudCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "cloud", Short: "Talk to the fleet cloud itself"}
	cmd.AddCommand(&cobra.Command{
		Use:   "info",
		Short: "Show the cloud's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			res, err := c.GetServerInfo(cmd.Context(), connect.NewRequest(&fleetv1.GetServerInfoRequest{}))
			if err != nil {
				return fmt.Errorf("ask the cloud for its version: %w", err)
			}
			base, _ := g.cloudURL()
			return g.output(cmd.OutOrStdout(), res.Msg, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "cloud %s\nversion %s\ncommit  %s\n", printable(base), printable(res.Msg.GetVersion()), printable(res.Msg.GetCommit()))
				return err
			})
		},
	})
	return cmd
}
