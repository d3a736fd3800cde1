package cli

import (
	"fmt"
	"io"
	"os"
	"strings"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	"github.com/outpost-robotics/outpost/config"
)

// readConfig reads a RobotConfig written as protobuf JSON from path, or
// from stdin for "-". Unknown fields are refused so a typo never passes
// silently; validity is the cloud's to judge, on the merged config.
func (g *globals) readConfig(path string) (*configv1.RobotConfig, error) {
	var r io.Reader = g.env.stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("read config: %w", err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, config.MaxConfigBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	if len(b) > config.MaxConfigBytes {
		return nil, fmt.Errorf("read config: more than %d bytes", config.MaxConfigBytes)
	}
	c := &configv1.RobotConfig{}
	if err := protojson.Unmarshal(b, c); err != nil {
		// protojson randomly puts a no-break space in its messages, on
		// purpose, so nobody matches them; print a plain one.
		return nil, fmt.Errorf("read config %s: %s", path, strings.ReplaceAll(err.Error(), "\u00a0", " "))
	}
	return c, nil
}

func revisionTable(w io.Writer, revs ...*fleetv1.ConfigRevision) error {
	var rows [][]string
	for _, r := range revs {
		rows = append(rows, []string{fmt.Sprint(r.GetRevision()), r.GetAuthor(), when(r.GetCreatedAt()), orDash(strings.Join(r.GetFragmentIds(), ","))})
	}
	return table(w, []string{"REVISION", "AUTHOR", "CREATED", "FRAGMENTS"}, rows)
}

func newConfigCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Read and edit machine configs"}

	var own bool
	get := &cobra.Command{
		Use: "get MACHINE_ID", Short: "Print the config a machine's parts receive (fragments merged in)", Args: cobra.ExactArgs(1),
		Long: "Prints the merged config as JSON: the machine's fragments in ID order, then the machine's own config,\n" +
			"a later entry replacing an earlier one of the same name. --own prints the machine's own config, to edit and set.",
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(g, cmd, (*api).GetMachineConfig, &fleetv1.GetMachineConfigRequest{MachineId: args[0]},
				func(w io.Writer, m *fleetv1.GetMachineConfigResponse) error {
					if own {
						return writeJSON(w, m.GetRevision().GetConfig())
					}
					var frags []string
					for _, f := range m.GetFragments() {
						frags = append(frags, fmt.Sprintf("%s@%d", f.GetId(), f.GetVersion()))
					}
					if _, err := fmt.Fprintf(w, "revision %d by %s at %s; fragments %s\n", m.GetRevision().GetRevision(),
						printable(orDash(m.GetRevision().GetAuthor())), when(m.GetRevision().GetCreatedAt()), printable(orDash(strings.Join(frags, ",")))); err != nil {
						return err
					}
					return writeJSON(w, m.GetMerged())
				})
		},
	}
	get.Flags().BoolVar(&own, "own", false, "print the machine's own config, without fragments")

	var file string
	var fragments []string
	var base int64
	set := &cobra.Command{
		Use: "set MACHINE_ID --file CONFIG.json", Short: "Write a new revision of a machine's config", Args: cobra.ExactArgs(1),
		Long: "Writes the machine's own config (protobuf JSON, - for stdin) and the fragments it uses as a new revision.\n" +
			"--base is the revision the edit started from; without it the current one is used, so a concurrent edit may be\n" +
			"overwritten. The cloud refuses a merged config the daemon could not apply, naming the field.",
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := g.readConfig(file)
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			machine, err := g.resolveArg(ctx, c, "machine", args[0])
			if err != nil {
				return err
			}
			b := uint64(base)
			frags := fragments
			if base < 0 || !cmd.Flags().Changed("fragment") {
				cur, err := c.GetMachineConfig(ctx, connect.NewRequest(&fleetv1.GetMachineConfigRequest{MachineId: machine}))
				if err != nil {
					return err
				}
				if base < 0 {
					b = cur.Msg.GetRevision().GetRevision()
				}
				if !cmd.Flags().Changed("fragment") {
					frags = cur.Msg.GetRevision().GetFragmentIds()
				}
			}
			req := &fleetv1.UpdateMachineConfigRequest{MachineId: machine, BaseRevision: b, Config: cfg, FragmentIds: frags}
			if err := g.resolve(ctx, c, req); err != nil {
				return err
			}
			res, err := c.UpdateMachineConfig(ctx, connect.NewRequest(req))
			if err != nil {
				return err
			}
			return g.output(cmd.OutOrStdout(), res.Msg, func(w io.Writer) error { return revisionTable(w, res.Msg.GetRevision()) })
		},
	}
	set.Flags().StringVar(&file, "file", "", "the machine's own config as protobuf JSON; - reads stdin")
	set.Flags().StringSliceVar(&fragments, "fragment", nil, "fragment IDs the machine uses (repeat or comma-separate; --fragment= for none); default: unchanged")
	set.Flags().Int64Var(&base, "base", -1, "the revision the edit started from; default: the current one")
	mustRequire(set, "file")

	history := &cobra.Command{
		Use: "history MACHINE_ID", Short: "List a machine's config revisions, newest first", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(g, cmd, (*api).ListConfigRevisions, &fleetv1.ListConfigRevisionsRequest{MachineId: args[0]},
				func(w io.Writer, res *fleetv1.ListConfigRevisionsResponse) error {
					return revisionTable(w, res.GetRevisions()...)
				})
		},
	}

	proposals := &cobra.Command{
		Use: "proposals MACHINE_ID", Short: "List offline edits parts proposed, and conflicts waiting for an owner", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(g, cmd, (*api).ListConfigProposals, &fleetv1.ListConfigProposalsRequest{MachineId: args[0]},
				func(w io.Writer, res *fleetv1.ListConfigProposalsResponse) error {
					return proposalTable(w, res.GetProposals()...)
				})
		},
	}

	var accept, dismiss bool
	resolve := &cobra.Command{
		Use: "resolve MACHINE_ID PROPOSAL_ID --accept|--dismiss", Short: "Settle a conflicting offline edit", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if accept == dismiss {
				return fmt.Errorf("give one of --accept or --dismiss")
			}
			return call(g, cmd, (*api).ResolveConfigProposal, &fleetv1.ResolveConfigProposalRequest{MachineId: args[0], ProposalId: args[1], Accept: accept},
				func(w io.Writer, res *fleetv1.ResolveConfigProposalResponse) error {
					return proposalTable(w, res.GetProposal())
				})
		},
	}
	resolve.Flags().BoolVar(&accept, "accept", false, "make the proposed config a new revision")
	resolve.Flags().BoolVar(&dismiss, "dismiss", false, "keep the current config")

	cmd.AddCommand(get, set, history, proposals, resolve)
	return cmd
}

func proposalTable(w io.Writer, ps ...*fleetv1.ConfigProposal) error {
	var rows [][]string
	for _, p := range ps {
		rows = append(rows, []string{p.GetId(), p.GetState(), fmt.Sprint(p.GetBaseRevision()), fmt.Sprint(p.GetRevision()), orDash(p.GetAuthor()), when(p.GetCreatedAt()), p.GetMessage()})
	}
	return table(w, []string{"ID", "STATE", "BASE", "REVISION", "AUTHOR", "RECEIVED", "MESSAGE"}, rows)
}
