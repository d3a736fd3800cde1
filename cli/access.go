package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
)

func newAccessCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "access", Short: "Ask what a subject may do"}
	var subject, action, resource, dest string
	check := &cobra.Command{
		Use:   "check --subject SUBJECT --action ACTION --resource KIND/ID",
		Short: "Simulate a decision: allowed or denied, and why",
		Long: "Ask the cloud whether a subject may do an action (docs/ACTIONS.md in the Outpost repository) on a resource, without doing it.\n" +
			"You may always ask about yourself; asking about others needs the right to see their roles there.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return call(g, cmd, (*api).CheckAccess, &fleetv1.CheckAccessRequest{Subject: subject, Action: action, Resource: resource, Destination: dest},
				func(w io.Writer, res *fleetv1.CheckAccessResponse) error {
					verdict := "DENIED"
					if res.GetAllowed() {
						verdict = "ALLOWED"
					}
					_, err := fmt.Fprintf(w, "%s (%s)\n%s\n", verdict, printable(res.GetReason()), printable(res.GetExplanation()))
					return err
				})
		},
	}
	check.Flags().StringVar(&subject, "subject", "", "user/EMAIL, user/ID or apikey/KEY_ID")
	check.Flags().StringVar(&action, "action", "", "an action of docs/ACTIONS.md, such as machine.rename")
	check.Flags().StringVar(&resource, "resource", "", "KIND/ID, such as machine/ID (none for org.create)")
	check.Flags().StringVar(&dest, "destination", "", "for location.move: the destination location ID (none: the top level)")
	mustRequire(check, "subject", "action")
	_ = check.RegisterFlagCompletionFunc("action", completeActions)
	cmd.AddCommand(check)
	return cmd
}
