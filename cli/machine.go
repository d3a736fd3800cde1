package cli

import (
	"fmt"
	"io"
	"strings"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
)

func machineTable(w io.Writer, ms ...*fleetv1.Machine) error {
	var rows [][]string
	for _, m := range ms {
		main := "-"
		if ps := m.GetParts(); len(ps) > 0 {
			main = ps[0].GetId()
		}
		rows = append(rows, []string{m.GetId(), m.GetName(), m.GetLocationId(), fmt.Sprint(len(m.GetParts())), main, when(m.GetRestartRequestedAt())})
	}
	return table(w, []string{"ID", "NAME", "LOCATION", "PARTS", "MAIN PART", "RESTART REQUESTED"}, rows)
}

// showMachine prints the machine an answer holds.
func showMachine[M interface{ GetMachine() *fleetv1.Machine }](w io.Writer, res M) error {
	return machineTable(w, res.GetMachine())
}

func newMachineCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "machine", Short: "Manage machines"}

	var loc, mainPart string
	create := &cobra.Command{
		Use: "create NAME --location LOCATION_ID", Short: "Create a machine with its main part", Args: cobra.ExactArgs(1),
		Long: "Creates a machine with its main part. The part's credentials come with its bootstrap file\n" +
			"(`outpost part bootstrap PART_ID`), which gives the part a new secret: none is printed here.",
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			req := &fleetv1.CreateMachineRequest{LocationId: loc, Name: args[0], MainPartName: mainPart}
			if err := g.resolve(cmd.Context(), c, req); err != nil {
				return err
			}
			res, err := c.CreateMachine(cmd.Context(), connect.NewRequest(req))
			if err != nil {
				return err
			}
			// The secret the cloud made stops working at the part's
			// bootstrap, the only way to install a part, so it is never
			// shown: a copy in a terminal's scrollback or a script's log
			// would be one more secret to guard for nothing.
			res.Msg.MainPartSecret = ""
			return g.output(cmd.OutOrStdout(), res.Msg, func(w io.Writer) error {
				if err := machineTable(w, res.Msg.GetMachine()); err != nil {
					return err
				}
				return bootstrapNote(w, res.Msg.GetMachine().GetParts()...)
			})
		},
	}
	create.Flags().StringVar(&loc, "location", "", "location ID")
	create.Flags().StringVar(&mainPart, "main-part", "", "the main part's name (default main)")
	mustRequire(create, "location")

	get := &cobra.Command{
		Use: "get MACHINE_ID", Short: "Show a machine and its parts", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(g, cmd, (*api).GetMachine, &fleetv1.GetMachineRequest{MachineId: args[0]},
				func(w io.Writer, res *fleetv1.GetMachineResponse) error {
					if err := machineTable(w, res.GetMachine()); err != nil {
						return err
					}
					fmt.Fprintln(w)
					return partTable(w, res.GetMachine().GetParts()...)
				})
		},
	}

	list := newMachineListCmd(g)

	rename := &cobra.Command{
		Use: "rename MACHINE_ID NAME", Short: "Rename a machine", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(g, cmd, (*api).RenameMachine, &fleetv1.RenameMachineRequest{MachineId: args[0], Name: args[1]}, showMachine)
		},
	}
	restart := &cobra.Command{
		Use: "restart MACHINE_ID", Short: "Ask a machine's parts to restart at their next sync", Args: cobra.ExactArgs(1),
		Long: "Asks every part of the machine to restart its robot at its next sync with the cloud, once; a part that\n" +
			"is offline restarts when it is back, unless the request lapsed first (after 24 hours). `outpost machine\n" +
			"status` shows each part's restart pending, then done. `outpost part restart` asks one part.",
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(g, cmd, (*api).RestartMachine, &fleetv1.RestartMachineRequest{MachineId: args[0]}, showMachine)
		},
	}
	var yes bool
	del := &cobra.Command{
		Use: "delete MACHINE_ID", Short: "Delete a machine and its parts", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := g.confirm(cmd, yes, fmt.Sprintf("delete machine/%s and its parts, for good", args[0])); err != nil {
				return err
			}
			return call(g, cmd, (*api).DeleteMachine, &fleetv1.DeleteMachineRequest{MachineId: args[0]},
				func(w io.Writer, _ *fleetv1.DeleteMachineResponse) error {
					_, err := fmt.Fprintf(w, "deleted machine/%s\n", args[0])
					return err
				})
		},
	}
	yesFlag(del, &yes)
	status := &cobra.Command{
		Use: "status MACHINE_ID", Short: "Show when each part was last online and what it reported", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(g, cmd, (*api).GetMachineStatus, &fleetv1.GetMachineStatusRequest{MachineId: args[0]},
				func(w io.Writer, res *fleetv1.GetMachineStatusResponse) error { return statusTable(w, res) })
		},
	}
	cmd.AddCommand(create, get, list, rename, restart, del, status)
	return cmd
}

func statusTable(w io.Writer, st *fleetv1.GetMachineStatusResponse) error {
	if _, err := fmt.Fprintf(w, "last seen %s\n", when(st.GetLastSeen())); err != nil {
		return err
	}
	var rows [][]string
	for _, p := range st.GetParts() {
		s := p.GetStatus()
		var backlog uint64
		var stalled []string
		for _, b := range s.GetBacklog() {
			backlog += b.GetRecords()
			if b.GetStalledCycles() > 0 {
				stalled = append(stalled, fmt.Sprintf("%s for %d cycles", b.GetStream(), b.GetStalledCycles()))
			}
		}
		backlogCell := fmt.Sprint(backlog)
		if len(stalled) > 0 {
			backlogCell += " (stalled: " + strings.Join(stalled, ", ") + ")"
		}
		failed := 0
		for _, r := range s.GetResources() {
			if r.GetState() == "failed" {
				failed++
			}
		}
		version, running := "-", "-"
		if s != nil {
			version = orDash(s.GetVersion())
			running = fmt.Sprintf("%d/%d", s.GetConfigVersion(), p.GetIssuedConfigVersion())
		}
		rows = append(rows, []string{p.GetPart().GetId(), p.GetPart().GetName(), when(p.GetLastSeen()), version, running, backlogCell, fmt.Sprint(failed)})
	}
	if err := table(w, []string{"PART", "NAME", "LAST SEEN", "VERSION", "CONFIG (RUNS/ISSUED)", "BACKLOG", "FAILED"}, rows); err != nil {
		return err
	}
	if err := partsTable(w, st.GetParts()); err != nil {
		return err
	}
	if err := machinePackagesTable(w, st.GetParts()); err != nil {
		return err
	}
	return restartTable(w, st.GetParts())
}

// machinePackagesTable shows the packages each part reported: the version
// it runs and was issued, how the move between them goes, and why it
// failed or rolled back; and each package of its config the cloud cannot
// resolve for it, with why (state "unresolved"). Nothing is printed when
// there is neither.
func machinePackagesTable(w io.Writer, parts []*fleetv1.PartStatus) error {
	var rows [][]string
	for _, p := range parts {
		unresolved := map[string]*fleetv1.PackageProblem{}
		for _, pp := range p.GetPackageProblems() {
			unresolved[pp.GetName()] = pp
		}
		for _, pk := range p.GetStatus().GetPackages() {
			prog := "-"
			if pk.GetBytesTotal() > 0 {
				prog = fmt.Sprintf("%d%%", pk.GetBytesDone()*100/pk.GetBytesTotal())
			}
			problem := pk.GetError()
			if pk.GetRolledBackFrom() != "" {
				problem = strings.TrimSpace("rolled back from " + pk.GetRolledBackFrom() + ": " + problem)
			}
			// What the cloud says now outranks what the part last said.
			if pp := unresolved[pk.GetName()]; pp != nil {
				problem = pp.GetProblem()
				delete(unresolved, pk.GetName())
			}
			rows = append(rows, []string{p.GetPart().GetName(), pk.GetName(), pk.GetPackage(), orDash(pk.GetRunningVersion()),
				orDash(pk.GetIssuedVersion()), orDash(pk.GetState()), prog, orDash(problem)})
		}
		for _, pp := range p.GetPackageProblems() {
			if unresolved[pp.GetName()] != nil {
				rows = append(rows, []string{p.GetPart().GetName(), pp.GetName(), pp.GetPackage(), "-", "-", "unresolved", "-", pp.GetProblem()})
			}
		}
	}
	if len(rows) == 0 {
		return nil
	}
	if _, err := fmt.Fprintln(w); err != nil {
		return err
	}
	return table(w, []string{"PART", "PACKAGE", "FROM", "RUNNING", "ISSUED", "STATE", "PROGRESS", "PROBLEM"}, rows)
}

// partsTable shows, for a machine of several parts, each part's role,
// whether the main part reached it on its last try (as the main part last
// reported), and the health of its components (as the part last reported).
func partsTable(w io.Writer, parts []*fleetv1.PartStatus) error {
	if len(parts) < 2 {
		return nil
	}
	reach := map[string]string{}
	for _, p := range parts {
		if !p.GetPart().GetMain() {
			continue
		}
		for _, pe := range p.GetStatus().GetPeers() {
			if pe.GetReachable() {
				reach[pe.GetPartId()] = "yes (" + pe.GetAddress() + ")"
			} else {
				reach[pe.GetPartId()] = "no: " + pe.GetError()
			}
		}
	}
	var rows [][]string
	for _, p := range parts {
		role, reached := "-", orDash(reach[p.GetPart().GetId()])
		if p.GetPart().GetMain() {
			role, reached = "main", "(is main)"
		}
		var running, total int
		var failed []string
		for _, r := range p.GetStatus().GetResources() {
			if strings.HasPrefix(r.GetName(), "module/") || strings.HasPrefix(r.GetName(), "process/") {
				continue
			}
			total++
			if r.GetState() == "running" {
				running++
			} else {
				failed = append(failed, strings.TrimPrefix(r.GetName(), "component/")+" "+r.GetState())
			}
		}
		health := fmt.Sprintf("%d/%d running", running, total)
		if len(failed) > 0 {
			health += "; " + strings.Join(failed, ", ")
		}
		rows = append(rows, []string{p.GetPart().GetId(), p.GetPart().GetName(), role, reached, health})
	}
	if _, err := fmt.Fprintln(w); err != nil {
		return err
	}
	return table(w, []string{"PART", "NAME", "ROLE", "REACHED BY MAIN", "COMPONENTS"}, rows)
}

// restartTable shows each part's restart asked from the cloud: the pending
// request, and the last one the part reported handled. Nothing when no
// restart was ever asked of these parts.
func restartTable(w io.Writer, parts []*fleetv1.PartStatus) error {
	var rows [][]string
	for _, p := range parts {
		r := p.GetPart().GetRestart()
		if r == nil {
			continue
		}
		pending, last := "-", "-"
		if r.GetRequestedAt() != nil {
			pending = fmt.Sprintf("asked %s by %s, lapses %s", when(r.GetRequestedAt()), orDash(r.GetRequestedBy()), when(r.GetExpiresAt()))
		}
		if r.GetHandledAt() != nil {
			last = when(r.GetHandledAt()) + " " + r.GetOutcome()
			if r.GetError() != "" {
				last += ": " + r.GetError()
			}
		}
		rows = append(rows, []string{p.GetPart().GetId(), p.GetPart().GetName(), pending, last})
	}
	if len(rows) == 0 {
		return nil
	}
	if _, err := fmt.Fprintln(w); err != nil {
		return err
	}
	return table(w, []string{"PART", "NAME", "RESTART PENDING", "LAST RESTART"}, rows)
}
