package cli

import (
	"context"
	"fmt"
	"io"
	"os"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
)

func (f *robotFlags) configCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use: "config", Short: "Show the config the part runs", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.run(cmd, func(ctx context.Context, c *robotConn, w io.Writer) error {
				r, err := c.control.GetConfig(ctx, connect.NewRequest(&controlv1.GetConfigRequest{}))
				if err != nil {
					return err
				}
				if !f.g.json {
					fmt.Fprintf(cmd.ErrOrStderr(), "config version %d, machine revision %d, local edits: %v\n",
						r.Msg.GetVersion(), r.Msg.GetMachineRevision(), r.Msg.GetLocalEdits())
					return f.print(w, r.Msg.GetConfig(), nil)
				}
				return f.print(w, r.Msg, nil)
			})
		},
	}
	var base uint64
	edit := &cobra.Command{
		Use:   "edit FILE",
		Short: "Apply an edited config (JSON) on the part and propose it to the cloud",
		Long: `Apply an edited config on the part; it works offline. The edit is queued as a
proposed revision with the revision it was based on (--base, default the
revision the part runs now), signed with your key: the cloud accepts it if
you may edit the machine's config and the base is current, or keeps it for an
owner (outpost config proposals). Edits made on the break-glass socket carry
no signature and always wait for an owner.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := os.ReadFile(args[0])
			if err != nil {
				return fmt.Errorf("read the config: %w", err)
			}
			cfg := &configv1.RobotConfig{}
			if err := protojson.Unmarshal(b, cfg); err != nil {
				return fmt.Errorf("%s is not a robot config: %w", args[0], err)
			}
			return f.run(cmd, func(ctx context.Context, c *robotConn, w io.Writer) error {
				rev := base
				if !cmd.Flags().Changed("base") {
					cur, err := c.control.GetConfig(ctx, connect.NewRequest(&controlv1.GetConfigRequest{}))
					if err != nil {
						return err
					}
					rev = cur.Msg.GetMachineRevision()
				}
				ereq := &controlv1.EditConfigRequest{Config: cfg, BaseRevision: rev}
				if c.key != nil {
					// The cloud makes the edit a revision only with this
					// signature, by someone who may edit the machine's config.
					if ereq.Endorsement, err = f.endorse(ctx, c, cfg, rev); err != nil {
						return err
					}
				}
				r, err := c.control.EditConfig(ctx, connect.NewRequest(ereq))
				if err != nil {
					return err
				}
				return f.print(w, r.Msg, func(w io.Writer) error {
					fmt.Fprintf(w, "applied: %v; proposed to the cloud as proposal %d (based on revision %d)\n", r.Msg.GetApplied(), r.Msg.GetProposalSeq(), rev)
					if r.Msg.GetConflict() != "" {
						fmt.Fprintln(w, "conflict:", printable(r.Msg.GetConflict()))
					}
					return nil
				})
			})
		},
	}
	edit.Flags().Uint64Var(&base, "base", 0, "the machine revision the edit started from")
	cmd.AddCommand(edit)
	return cmd
}

// endorse signs an edit of the part's machine config from revision base
// with the connection's key, for the cloud to verify (credential.Endorse).
// The machine is the one the part names; a part naming another only makes
// the signature fail at the cloud, which checks it against the part's own.
func (f *robotFlags) endorse(ctx context.Context, c *robotConn, cfg *configv1.RobotConfig, base uint64) (*syncv1.Endorsement, error) {
	st, err := c.control.Status(ctx, connect.NewRequest(&controlv1.StatusRequest{}))
	if err != nil {
		return nil, err
	}
	raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("encode the config: %w", err)
	}
	e, err := c.key.Endorse(st.Msg.GetMachineId(), base, raw, f.g.now())
	if err != nil {
		return nil, err
	}
	return &syncv1.Endorsement{KeyId: e.KeyID, AccessToken: e.Token, Signature: e.Signature}, nil
}
