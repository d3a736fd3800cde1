package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
)

func newAuditCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Read the audit log"}
	var org, page string
	var limit int32
	list := &cobra.Command{
		Use: "list --org ORG_ID", Short: "List an organization's audit events, newest first", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return call(g, cmd, (*api).ListAuditEvents, &fleetv1.ListAuditEventsRequest{OrgId: org, PageSize: limit, PageToken: page},
				func(w io.Writer, res *fleetv1.ListAuditEventsResponse) error {
					var rows [][]string
					for _, e := range res.GetEvents() {
						d := "denied"
						if e.GetAllowed() {
							d = "allowed"
						}
						rows = append(rows, []string{when(e.GetTime()), orDash(e.GetSubject()), e.GetAction(), orDash(e.GetResource()), d, e.GetOutcome()})
					}
					if err := table(w, []string{"TIME", "SUBJECT", "ACTION", "RESOURCE", "DECISION", "OUTCOME"}, rows); err != nil {
						return err
					}
					if t := res.GetNextPageToken(); t != "" {
						_, err := fmt.Fprintf(w, "more: --page %s\n", t)
						return err
					}
					return nil
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
