package cli

import (
	"context"
	"fmt"
	"io"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
)

func newAuditCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Read the audit log"}
	var org, page string
	var limit int32
	list := &cobra.Command{
		Use: "list --org ORG_ID", Short: "List an organization's audit events, newest first", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.do(cmd, func(ctx context.Context, c *api) (proto.Message, printer, error) {
				res, err := c.audit.ListAuditEvents(ctx, connect.NewRequest(&fleetv1.ListAuditEventsRequest{OrgId: org, PageSize: limit, PageToken: page}))
				if err != nil {
					return nil, nil, err
				}
				return res.Msg, func(w io.Writer) error {
					var rows [][]string
					for _, e := range res.Msg.GetEvents() {
						d := "denied"
						if e.GetAllowed() {
							d = "allowed"
						}
						rows = append(rows, []string{when(e.GetTime()), orDash(e.GetSubject()), e.GetAction(), orDash(e.GetResource()), d, e.GetOutcome()})
					}
					if err := table(w, []string{"TIME", "SUBJECT", "ACTION", "RESOURCE", "DECISION", "OUTCOME"}, rows); err != nil {
						return err
					}
					if t := res.Msg.GetNextPageToken(); t != "" {
						_, err := fmt.Fprintf(w, "more: --page %s\n", t)
						return err
					}
					return nil
				}, nil
			})
		},
	}
	list.Flags().StringVar(&org, "org", "", "organization ID")
	list.Flags().Int32Var(&limit, "limit", 50, "at most this many events")
	list.Flags().StringVar(&page, "page", "", "continue from a previous listing")
	mustRequire(list, "org")
	cmd.AddCommand(list)
	return cmd
}
