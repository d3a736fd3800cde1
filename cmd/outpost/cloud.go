package main

import (
	"fmt"
	"net/http"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1/fleetv1connect"
)

func newCloudCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "cloud", Short: "Talk to the fleet cloud itself"}
	cmd.AddCommand(&cobra.Command{
		Use:   "info",
		Short: "Show the cloud's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if g.cloud == "" {
				return fmt.Errorf("no cloud given: pass --cloud URL or set OUTPOST_CLOUD")
			}
			c := fleetv1connect.NewServerServiceClient(http.DefaultClient, g.cloud)
			res, err := c.GetServerInfo(cmd.Context(), connect.NewRequest(&fleetv1.GetServerInfoRequest{}))
			if err != nil {
				return fmt.Errorf("ask %s for its version: %w", g.cloud, err)
			}
			if g.json {
				b, err := protojson.Marshal(res.Msg)
				if err != nil {
					return fmt.Errorf("encode answer: %w", err)
				}
				_, err = fmt.Fprintln(cmd.OutOrStdout(), string(b))
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "cloud %s\nversion %s\ncommit  %s\n", g.cloud, res.Msg.GetVersion(), res.Msg.GetCommit())
			return err
		},
	})
	return cmd
}
