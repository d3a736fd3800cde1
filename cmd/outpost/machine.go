package main

import (
	"context"
	"fmt"
	"io"

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

func partTable(w io.Writer, ps ...*fleetv1.Part) error {
	var rows [][]string
	for _, p := range ps {
		rows = append(rows, []string{p.GetId(), p.GetName(), p.GetMachineId(), fmt.Sprint(p.GetMain()), when(p.GetSecretRotatedAt())})
	}
	return table(w, []string{"ID", "NAME", "MACHINE", "MAIN", "SECRET SET"}, rows)
}

// secretNote tells where a one-time secret is and that it is shown once.
func secretNote(w io.Writer, what, secret string) error {
	_, err := fmt.Fprintf(w, "\n%s (shown once, keep it safe):\n%s\n", what, secret)
	return err
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
	cmd.AddCommand(create, get, list, rename, restart, del)
	return cmd
}

func newPartCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "part", Short: "Manage a machine's parts"}
	var machine string
	add := &cobra.Command{
		Use: "add NAME --machine MACHINE_ID", Short: "Add a part to a machine", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.do(cmd, func(ctx context.Context, c *api) (proto.Message, printer, error) {
				res, err := c.mach.AddPart(ctx, connect.NewRequest(&fleetv1.AddPartRequest{MachineId: machine, Name: args[0]}))
				if err != nil {
					return nil, nil, err
				}
				return res.Msg, func(w io.Writer) error {
					if err := partTable(w, res.Msg.GetPart()); err != nil {
						return err
					}
					return secretNote(w, "part secret", res.Msg.GetSecret())
				}, nil
			})
		},
	}
	add.Flags().StringVar(&machine, "machine", "", "machine ID")
	mustRequire(add, "machine")
	rename := &cobra.Command{
		Use: "rename PART_ID NAME", Short: "Rename a part", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.do(cmd, func(ctx context.Context, c *api) (proto.Message, printer, error) {
				res, err := c.mach.RenamePart(ctx, connect.NewRequest(&fleetv1.RenamePartRequest{PartId: args[0], Name: args[1]}))
				if err != nil {
					return nil, nil, err
				}
				return res.Msg, func(w io.Writer) error { return partTable(w, res.Msg.GetPart()) }, nil
			})
		},
	}
	del := &cobra.Command{
		Use: "delete PART_ID", Short: "Delete a part (not the main part)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.do(cmd, func(ctx context.Context, c *api) (proto.Message, printer, error) {
				res, err := c.mach.DeletePart(ctx, connect.NewRequest(&fleetv1.DeletePartRequest{PartId: args[0]}))
				if err != nil {
					return nil, nil, err
				}
				return res.Msg, func(w io.Writer) error { _, err := fmt.Fprintf(w, "deleted part/%s\n", args[0]); return err }, nil
			})
		},
	}
	rotate := &cobra.Command{
		Use: "rotate-secret PART_ID", Short: "Replace a part's secret; the old one stops working", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return g.do(cmd, func(ctx context.Context, c *api) (proto.Message, printer, error) {
				res, err := c.mach.RotatePartSecret(ctx, connect.NewRequest(&fleetv1.RotatePartSecretRequest{PartId: args[0]}))
				if err != nil {
					return nil, nil, err
				}
				return res.Msg, func(w io.Writer) error {
					if err := partTable(w, res.Msg.GetPart()); err != nil {
						return err
					}
					return secretNote(w, "new part secret", res.Msg.GetSecret())
				}, nil
			})
		},
	}
	cmd.AddCommand(add, rename, del, rotate)
	return cmd
}
