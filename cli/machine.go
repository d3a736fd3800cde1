package cli

import (
	"context"
	"fmt"
	"io"
	"strings"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

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

func (g *globals) machineCall(cmd *cobra.Command, call func(ctx context.Context, c *api) (proto.Message, *fleetv1.Machine, error)) error {
	return g.do(cmd, func(ctx context.Context, c *api) (proto.Message, printer, error) {
		msg, m, err := call(ctx, c)
		if err != nil {
			return nil, nil, err
		}
		return msg, func(w io.Writer) error { return machineTable(w, m) }, nil
	})
}

func newMachineCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "machine", Short: "Manage machines"}

	var loc, mainPart string
	create := &cobra.Command{
		Use: "create NAME --location LOCATION_ID", Short: "Create a machine with its main part", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.do(cmd, func(ctx context.Context, c *api) (proto.Message, printer, error) {
				res, err := c.mach.CreateMachine(ctx, connect.NewRequest(&fleetv1.CreateMachineRequest{LocationId: loc, Name: args[0], MainPartName: mainPart}))
				if err != nil {
					return nil, nil, err
				}
				return res.Msg, func(w io.Writer) error {
					if err := machineTable(w, res.Msg.GetMachine()); err != nil {
						return err
					}
					return secretNote(w, "main part secret", res.Msg.GetMainPartSecret())
				}, nil
			})
		},
	}
	create.Flags().StringVar(&loc, "location", "", "location ID")
	create.Flags().StringVar(&mainPart, "main-part", "", "the main part's name (default main)")
	mustRequire(create, "location")

	get := &cobra.Command{
		Use: "get MACHINE_ID", Short: "Show a machine and its parts", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.do(cmd, func(ctx context.Context, c *api) (proto.Message, printer, error) {
				res, err := c.mach.GetMachine(ctx, connect.NewRequest(&fleetv1.GetMachineRequest{MachineId: args[0]}))
				if err != nil {
					return nil, nil, err
				}
				return res.Msg, func(w io.Writer) error {
					if err := machineTable(w, res.Msg.GetMachine()); err != nil {
						return err
					}
					fmt.Fprintln(w)
					return partTable(w, res.Msg.GetMachine().GetParts()...)
				}, nil
			})
		},
	}

	var listLoc string
	list := &cobra.Command{
		Use: "list --location LOCATION_ID", Short: "List the machines of a location", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return g.do(cmd, func(ctx context.Context, c *api) (proto.Message, printer, error) {
				res, err := c.mach.ListMachines(ctx, connect.NewRequest(&fleetv1.ListMachinesRequest{LocationId: listLoc}))
				if err != nil {
					return nil, nil, err
				}
				return res.Msg, func(w io.Writer) error { return machineTable(w, res.Msg.GetMachines()...) }, nil
			})
		},
	}
	list.Flags().StringVar(&listLoc, "location", "", "location ID")
	mustRequire(list, "location")

	rename := &cobra.Command{
		Use: "rename MACHINE_ID NAME", Short: "Rename a machine", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.machineCall(cmd, func(ctx context.Context, c *api) (proto.Message, *fleetv1.Machine, error) {
				res, err := c.mach.RenameMachine(ctx, connect.NewRequest(&fleetv1.RenameMachineRequest{MachineId: args[0], Name: args[1]}))
				if err != nil {
					return nil, nil, err
				}
				return res.Msg, res.Msg.GetMachine(), nil
			})
		},
	}
	restart := &cobra.Command{
		Use: "restart MACHINE_ID", Short: "Ask a machine's parts to restart at their next sync", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.machineCall(cmd, func(ctx context.Context, c *api) (proto.Message, *fleetv1.Machine, error) {
				res, err := c.mach.RestartMachine(ctx, connect.NewRequest(&fleetv1.RestartMachineRequest{MachineId: args[0]}))
				if err != nil {
					return nil, nil, err
				}
				return res.Msg, res.Msg.GetMachine(), nil
			})
		},
	}
	del := &cobra.Command{
		Use: "delete MACHINE_ID", Short: "Delete a machine and its parts", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.do(cmd, func(ctx context.Context, c *api) (proto.Message, printer, error) {
				res, err := c.mach.DeleteMachine(ctx, connect.NewRequest(&fleetv1.DeleteMachineRequest{MachineId: args[0]}))
				if err != nil {
					return nil, nil, err
				}
				return res.Msg, func(w io.Writer) error { _, err := fmt.Fprintf(w, "deleted machine/%s\n", args[0]); return err }, nil
			})
		},
	}
	status := &cobra.Command{
		Use: "status MACHINE_ID", Short: "Show when each part was last online and what it reported", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.do(cmd, func(ctx context.Context, c *api) (proto.Message, printer, error) {
				res, err := c.mach.GetMachineStatus(ctx, connect.NewRequest(&fleetv1.GetMachineStatusRequest{MachineId: args[0]}))
				if err != nil {
					return nil, nil, err
				}
				return res.Msg, func(w io.Writer) error { return statusTable(w, res.Msg) }, nil
			})
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
	return table(w, []string{"PART", "NAME", "LAST SEEN", "VERSION", "CONFIG (RUNS/ISSUED)", "BACKLOG", "FAILED"}, rows)
}
