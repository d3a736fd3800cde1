package cli

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
)

// fleetState is a machine's STATUS cell: online, offline, or never seen.
func fleetState(m *fleetv1.FleetMachine) string {
	switch {
	case m.GetOnline():
		return "online"
	case m.GetLastSeen() == nil:
		return "never seen"
	}
	return "offline"
}

// fleetCells are a machine's cells past its name and location: each
// part's version and config (running/issued) joined with ", ", the
// backlog over every part, and the failing resources (prefixed by their
// part's name past the main part).
func fleetCells(m *fleetv1.FleetMachine) (version, config, backlog, failing string) {
	var versions, configs, failed []string
	var records uint64
	for i, p := range m.GetParts() {
		if v := p.GetVersion(); v != "" && !slices.Contains(versions, v) {
			versions = append(versions, v)
		}
		if p.GetLastSeen() != nil {
			configs = append(configs, fmt.Sprintf("%d/%d", p.GetRunningConfigVersion(), p.GetIssuedConfigVersion()))
		}
		records += p.GetBacklogRecords()
		for _, f := range p.GetFailing() {
			if i > 0 {
				f = p.GetName() + ":" + f
			}
			failed = append(failed, f)
		}
	}
	backlog = "-"
	if len(configs) > 0 {
		backlog = fmt.Sprint(records)
	}
	return orDash(strings.Join(versions, ", ")), orDash(strings.Join(configs, ", ")), backlog, orDash(strings.Join(failed, ", "))
}

// fleetTable prints ListFleet's rows.
func fleetTable(w io.Writer, ms []*fleetv1.FleetMachine) error {
	var rows [][]string
	for _, m := range ms {
		version, config, backlog, failing := fleetCells(m)
		rows = append(rows, []string{m.GetMachine().GetName(), m.GetMachine().GetId(), m.GetLocationPath(), fleetState(m),
			when(m.GetLastSeen()), version, config, backlog, failing})
	}
	return table(w, []string{"NAME", "ID", "LOCATION", "STATUS", "LAST SEEN", "VERSION", "CONFIG (RUNS/ISSUED)", "BACKLOG", "FAILING"}, rows)
}

// maxListLimit is the most machines the cloud returns a page.
const maxListLimit = 500

// newMachineListCmd is `outpost machine list`: an organization's machines
// or a location subtree's, a page at a time, filtered on the server.
func newMachineListCmd(g *globals) *cobra.Command {
	var r fleetv1.ListFleetRequest
	list := &cobra.Command{
		Use:   "list --org ORG_ID | --location LOCATION_ID",
		Short: "List the machines of an organization or a location (with the locations in it), with their state",
		Long: "Lists the machines you may see in an organization (its locations, nested, and those shared with it) or in\n" +
			"a location and every location in it, by name: whether each is online (a part heard from within 2.5 sync\n" +
			"intervals), the daemon version, the config each part runs of the one issued to it, the records waiting on\n" +
			"its parts, and its failing resources (a process in a crash loop counts).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// The cloud's bound names its field, page_size; say it in
			// the flag the user typed.
			if r.PageSize > maxListLimit {
				return fmt.Errorf("--limit %d: at most %d machines a page", r.PageSize, maxListLimit)
			}
			return call(g, cmd, (*api).ListFleet, &r, func(w io.Writer, res *fleetv1.ListFleetResponse) error {
				if err := fleetTable(w, res.GetMachines()); err != nil {
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
	f := list.Flags()
	f.StringVar(&r.OrgId, "org", "", "organization ID: its machines, nested and shared")
	f.StringVar(&r.LocationId, "location", "", "location ID: its machines and those of the locations in it")
	f.BoolVar(&r.Offline, "offline", false, "only machines with no part online")
	f.BoolVar(&r.Failing, "failing", false, "only machines with a failing resource")
	f.StringVar(&r.Version, "version", "", "only machines with a part running this daemon version")
	f.StringVar(&r.Search, "search", "", "only machines whose name holds this (ignoring case)")
	f.Uint32Var(&r.PageSize, "limit", 100, fmt.Sprintf("at most this many machines (up to %d)", maxListLimit))
	f.StringVar(&r.PageToken, "page", "", "continue from a previous listing")
	list.MarkFlagsOneRequired("org", "location")
	list.MarkFlagsMutuallyExclusive("org", "location")
	return list
}

// newFleetCmd is `outpost fleet`: the fleet at a glance.
func newFleetCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "fleet", Short: "See a whole fleet at once"}
	var r fleetv1.SummarizeFleetRequest
	status := &cobra.Command{
		Use:   "status --org ORG_ID | --location LOCATION_ID",
		Short: "Summarize an organization's machines: online, offline, failing, versions, worst backlogs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return call(g, cmd, (*api).SummarizeFleet, &r, func(w io.Writer, res *fleetv1.SummarizeFleetResponse) error {
				fmt.Fprintf(w, "machines  %d\nonline    %d\noffline   %d (%d never seen)\nfailing   %d\n\n",
					res.GetMachines(), res.GetOnline(), res.GetOffline(), res.GetNeverSeen(), res.GetFailing())
				var rows [][]string
				for _, v := range res.GetVersions() {
					name := v.GetVersion()
					if name == "" {
						name = "(not reported)"
					}
					rows = append(rows, []string{name, fmt.Sprint(v.GetParts())})
				}
				if err := table(w, []string{"VERSION", "PARTS"}, rows); err != nil {
					return err
				}
				if len(res.GetWorstBacklogs()) == 0 {
					_, err := fmt.Fprintln(w, "\nno backlog")
					return err
				}
				fmt.Fprintln(w, "\nworst backlogs")
				return fleetTable(w, res.GetWorstBacklogs())
			})
		},
	}
	status.Flags().StringVar(&r.OrgId, "org", "", "organization ID")
	status.Flags().StringVar(&r.LocationId, "location", "", "location ID (with the locations in it)")
	status.MarkFlagsOneRequired("org", "location")
	status.MarkFlagsMutuallyExclusive("org", "location")
	cmd.AddCommand(status)
	return cmd
}
