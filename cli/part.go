package cli

import (
	"bytes"
	"fmt"
	"io"
	"os"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
)

func partTable(w io.Writer, ps ...*fleetv1.Part) error {
	var rows [][]string
	for _, p := range ps {
		rows = append(rows, []string{p.GetId(), p.GetName(), p.GetMachineId(), fmt.Sprint(p.GetMain()), when(p.GetSecretRotatedAt())})
	}
	return table(w, []string{"ID", "NAME", "MACHINE", "MAIN", "SECRET SET"}, rows)
}

func newPartCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "part", Short: "Manage a machine's parts"}
	var machine string
	add := &cobra.Command{
		Use: "add NAME --machine MACHINE_ID", Short: "Add a part to a machine", Args: cobra.ExactArgs(1),
		Long: "Adds a part to a machine. The part's credentials come with its bootstrap file\n" +
			"(`outpost part bootstrap PART_ID`), which gives the part a new secret: none is printed here.",
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			req := &fleetv1.AddPartRequest{MachineId: machine, Name: args[0]}
			if err := g.resolve(cmd.Context(), c, req); err != nil {
				return err
			}
			res, err := c.AddPart(cmd.Context(), connect.NewRequest(req))
			if err != nil {
				return err
			}
			// As machine create: bootstrap replaces this secret.
			res.Msg.Secret = ""
			return g.output(cmd.OutOrStdout(), res.Msg, func(w io.Writer) error {
				if err := partTable(w, res.Msg.GetPart()); err != nil {
					return err
				}
				return bootstrapNote(w, res.Msg.GetPart())
			})
		},
	}
	add.Flags().StringVar(&machine, "machine", "", "machine ID")
	mustRequire(add, "machine")
	rename := &cobra.Command{
		Use: "rename PART_ID NAME", Short: "Rename a part", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(g, cmd, (*api).RenamePart, &fleetv1.RenamePartRequest{PartId: args[0], Name: args[1]},
				func(w io.Writer, res *fleetv1.RenamePartResponse) error { return partTable(w, res.GetPart()) })
		},
	}
	var yes bool
	del := &cobra.Command{
		Use: "delete PART_ID", Short: "Delete a part (not the main part)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := g.confirm(cmd, yes, "delete part/"+args[0]); err != nil {
				return err
			}
			return call(g, cmd, (*api).DeletePart, &fleetv1.DeletePartRequest{PartId: args[0]},
				func(w io.Writer, _ *fleetv1.DeletePartResponse) error {
					_, err := fmt.Fprintf(w, "deleted part/%s\n", args[0])
					return err
				})
		},
	}
	yesFlag(del, &yes)
	rotate := &cobra.Command{
		Use: "rotate-secret PART_ID", Short: "Replace a part's secret; the old one stops working", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(g, cmd, (*api).RotatePartSecret, &fleetv1.RotatePartSecretRequest{PartId: args[0]},
				func(w io.Writer, res *fleetv1.RotatePartSecretResponse) error {
					if err := partTable(w, res.GetPart()); err != nil {
						return err
					}
					return secretNote(w, "new part secret", res.GetSecret())
				})
		},
	}
	restart := &cobra.Command{
		Use:   "restart PART_ID",
		Short: "Ask one part to restart its robot at its next sync",
		Long: "Asks the part to restart its robot (components, modules and processes stop, and its config starts\n" +
			"again) at its next sync with the cloud, once. A part that is offline restarts when it is back, unless\n" +
			"the request lapsed first (after 24 hours). `outpost machine status` shows it pending, then done.\n" +
			"It needs machine.restart on the part (an owner of the machine, its location or its organization).",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(g, cmd, (*api).RestartPart, &fleetv1.RestartPartRequest{PartId: args[0]},
				func(w io.Writer, res *fleetv1.RestartPartResponse) error {
					if err := partTable(w, res.GetPart()); err != nil {
						return err
					}
					_, err := fmt.Fprintf(w, "part/%s restarts at its next sync, unless the request lapses first, at %s\n",
						res.GetPart().GetId(), when(res.GetPart().GetRestart().GetExpiresAt()))
					return err
				})
		},
	}
	var cloudURL, out string
	bootstrap := &cobra.Command{
		Use:   "bootstrap PART_ID",
		Short: "Print the part's bootstrap file for /etc/outpost/outpostd.json; replaces its secret",
		Long: "Prints the part's bootstrap file: the cloud URL, the part's id and secret, and the cloud's public keys.\n" +
			"The cloud keeps only a hash of each secret, so it cannot print the current one: bootstrap gives the part a\n" +
			"new secret, and the old one stops working at once (a running part must get the new file). It needs\n" +
			"machine.config.edit on the part (an owner of the machine, its location or its organization).\n" +
			"The file holds a secret: --output writes it with mode 0600; install it as /etc/outpost/outpostd.json.\n" +
			"When this command reaches the cloud through a private CA (--ca-file, or the one login saved), the file\n" +
			"carries that CA (ca_pem), so the part trusts the cloud's certificate with no other file.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			u := cloudURL
			if u == "" {
				u = c.base
			}
			req := &fleetv1.BootstrapPartRequest{PartId: args[0], CloudUrl: u}
			if err := g.resolve(cmd.Context(), c, req); err != nil {
				return err
			}
			res, err := c.BootstrapPart(cmd.Context(), connect.NewRequest(req))
			if err != nil {
				return err
			}
			// The part reaches the cloud through the same private CA
			// this command did: the file carries it, so it works as is.
			if pem, _, err := g.caPEM(); err == nil && pem != nil && res.Msg.GetBootstrap().GetCaFile() == "" {
				res.Msg.GetBootstrap().CaPem = string(pem)
			}
			var buf bytes.Buffer
			if err := writeJSON(&buf, res.Msg.GetBootstrap()); err != nil {
				return err
			}
			if out == "" {
				_, err = cmd.OutOrStdout().Write(buf.Bytes())
				return err
			}
			if err := writeSecretFile(out, buf.Bytes()); err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "wrote the bootstrap file of part/%s to %s (mode 0600); its previous secret no longer works\n", args[0], out)
			return err
		},
	}
	bootstrap.Flags().StringVar(&cloudURL, "cloud-url", "", "the cloud URL as the part reaches it; default: the URL this command uses")
	bootstrap.Flags().StringVarP(&out, "output", "o", "", "write the file here (mode 0600) instead of printing it")
	cmd.AddCommand(add, rename, del, rotate, restart, bootstrap)
	return cmd
}

// bootstrapNote says how a new part gets its credentials: its bootstrap
// file, which sets its secret.
func bootstrapNote(w io.Writer, parts ...*fleetv1.Part) error {
	for _, p := range parts {
		if _, err := fmt.Fprintf(w, "\nnext: outpost part bootstrap %s -o outpostd.json writes the bootstrap file of part %q (with its secret)\n",
			p.GetId(), p.GetName()); err != nil {
			return err
		}
	}
	return nil
}

// writeSecretFile writes data to a new file readable by its owner only,
// refusing to replace an existing one.
func writeSecretFile(path string, data []byte) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write bootstrap file: %w", err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("write bootstrap file: %w", cerr)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write bootstrap file: %w", err)
	}
	return nil
}
