package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/structpb"

	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
)

func (f *robotFlags) statusCmd() *cobra.Command {
	return &cobra.Command{
		Use: "status", Short: "Show the part's sync state, offline clock and time left", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.run(cmd, func(ctx context.Context, c *robotConn, w io.Writer) error {
				r, err := c.control.Status(ctx, connect.NewRequest(&controlv1.StatusRequest{}))
				if err != nil {
					return err
				}
				m := r.Msg
				return f.print(w, m, func(w io.Writer) error {
					return table(w, []string{"FIELD", "VALUE"}, [][]string{
						{"part", m.GetPartId()}, {"machine", m.GetMachineId()}, {"version", m.GetVersion()},
						{"sync", strings.ToLower(strings.TrimPrefix(m.GetSyncState().String(), "SYNC_STATE_"))},
						{"offline for", m.GetOfflineFor().AsDuration().Round(time.Second).String()},
						{"time left", m.GetTimeLeft().AsDuration().Round(time.Second).String()},
						{"grants", fmt.Sprintf("version %d, expire %s", m.GetGrantsVersion(), m.GetGrantsExpireAt().AsTime().UTC().Format(time.RFC3339))},
						{"certificate", m.GetCertSha256()},
					})
				})
			})
		},
	}
}

func (f *robotFlags) whoamiCmd() *cobra.Command {
	return &cobra.Command{
		Use: "whoami", Short: "Show your role on this part and the grant it comes from", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.run(cmd, func(ctx context.Context, c *robotConn, w io.Writer) error {
				r, err := c.control.WhoAmI(ctx, connect.NewRequest(&controlv1.WhoAmIRequest{}))
				if err != nil {
					return err
				}
				m := r.Msg
				return f.print(w, m, func(w io.Writer) error {
					return table(w, []string{"FIELD", "VALUE"}, [][]string{
						{"subject", m.GetSubject()}, {"name", m.GetDisplayName()}, {"role", m.GetRole()}, {"through", m.GetGrant()},
						{"credential", m.GetCredential()}, {"transport", m.GetTransport()}, {"may", strings.Join(m.GetAllowedActions(), ", ")},
					})
				})
			})
		},
	}
}

func (f *robotFlags) componentsCmd() *cobra.Command {
	return &cobra.Command{
		Use: "components", Short: "List components, modules and processes with their state", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.run(cmd, func(ctx context.Context, c *robotConn, w io.Writer) error {
				r, err := c.comp.ListResources(ctx, connect.NewRequest(&controlv1.ListResourcesRequest{}))
				if err != nil {
					return err
				}
				return f.print(w, r.Msg, func(w io.Writer) error {
					// The main part of a machine of several parts lists every
					// part's components, each with its part.
					parts := slices.ContainsFunc(r.Msg.GetResources(), func(s *controlv1.ResourceStatus) bool { return s.GetPart() != "" })
					var rows [][]string
					for _, s := range r.Msg.GetResources() {
						row := []string{
							strings.ToLower(strings.TrimPrefix(s.GetKind().String(), "RESOURCE_KIND_")), s.GetName(),
							strings.ToLower(strings.TrimPrefix(s.GetState().String(), "RESOURCE_STATE_")),
							strconv.Itoa(int(s.GetRestarts())), s.GetError(),
						}
						if parts {
							row = append(row[:2], append([]string{orDash(s.GetPart())}, row[2:]...)...)
						}
						rows = append(rows, row)
					}
					if parts {
						return table(w, []string{"KIND", "NAME", "PART", "STATE", "RESTARTS", "ERROR"}, rows)
					}
					return table(w, []string{"KIND", "NAME", "STATE", "RESTARTS", "ERROR"}, rows)
				})
			})
		},
	}
}

func (f *robotFlags) doCmd() *cobra.Command {
	return &cobra.Command{
		Use: "do COMPONENT JSON", Short: "Send a model-specific command to a component", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var m map[string]any
			if err := json.Unmarshal([]byte(args[1]), &m); err != nil {
				return fmt.Errorf("the command is not a JSON object: %w", err)
			}
			st, err := structpb.NewStruct(m)
			if err != nil {
				return fmt.Errorf("the command: %w", err)
			}
			return f.run(cmd, func(ctx context.Context, c *robotConn, w io.Writer) error {
				r, err := c.comp.DoCommand(ctx, connect.NewRequest(&controlv1.DoCommandRequest{Name: args[0], Command: st}))
				if err != nil {
					return err
				}
				return f.print(w, r.Msg.GetResult(), nil)
			})
		},
	}
}

// motorCmd drives a motor with the motor API (rather than a model's own
// DoCommand), so it works the same for every motor model.
func (f *robotFlags) motorCmd() *cobra.Command {
	var power, rpm, revolutions float64
	cmd := &cobra.Command{
		Use:   "motor MOTOR [--power P | --rpm R [--revolutions N]]",
		Short: "Set a motor's power or speed, then show whether it moves",
		Long: "Sets a motor's power (-1 full reverse to 1 full forward; 0 stops it), or turns it at --rpm for\n" +
			"--revolutions (0: until stopped), then shows whether it is moving. With neither, only shows that.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			setPower, setRPM := cmd.Flags().Changed("power"), cmd.Flags().Changed("rpm")
			switch {
			case setPower && setRPM:
				return errors.New("give --power or --rpm, not both")
			case cmd.Flags().Changed("revolutions") && !setRPM:
				return errors.New("--revolutions goes with --rpm")
			case setPower && (math.IsNaN(power) || power < -1 || power > 1):
				return fmt.Errorf("--power %v: want a number from -1 to 1", power)
			case setRPM && (math.IsNaN(rpm) || math.IsInf(rpm, 0) || math.IsNaN(revolutions) || math.IsInf(revolutions, 0)):
				return errors.New("--rpm and --revolutions take finite numbers")
			}
			name := args[0]
			return f.run(cmd, func(ctx context.Context, c *robotConn, w io.Writer) error {
				var err error
				switch {
				case setPower:
					_, err = c.comp.MotorSetPower(ctx, connect.NewRequest(&controlv1.MotorSetPowerRequest{Name: name, Power: power}))
				case setRPM:
					_, err = c.comp.MotorGoFor(ctx, connect.NewRequest(&controlv1.MotorGoForRequest{Name: name, Rpm: rpm, Revolutions: revolutions}))
				}
				if err != nil {
					return err
				}
				r, err := c.comp.MotorIsMoving(ctx, connect.NewRequest(&controlv1.MotorIsMovingRequest{Name: name}))
				if err != nil {
					return err
				}
				return f.print(w, r.Msg, func(w io.Writer) error {
					_, err := fmt.Fprintf(w, "%s moving: %t\n", name, r.Msg.GetMoving())
					return err
				})
			})
		},
	}
	cmd.Flags().Float64Var(&power, "power", 0, "power from -1 (full reverse) to 1 (full forward); 0 stops the motor")
	cmd.Flags().Float64Var(&rpm, "rpm", 0, "speed in revolutions per minute; negative turns backwards")
	cmd.Flags().Float64Var(&revolutions, "revolutions", 0, "with --rpm: how many revolutions (0: until stopped)")
	return cmd
}

func (f *robotFlags) readingsCmd() *cobra.Command {
	return &cobra.Command{
		Use: "readings COMPONENT", Short: "Show a sensor's readings", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.run(cmd, func(ctx context.Context, c *robotConn, w io.Writer) error {
				r, err := c.comp.SensorReadings(ctx, connect.NewRequest(&controlv1.SensorReadingsRequest{Name: args[0]}))
				if err != nil {
					return err
				}
				return f.print(w, r.Msg.GetReadings(), nil)
			})
		},
	}
}

func (f *robotFlags) stopCmd() *cobra.Command {
	return &cobra.Command{
		Use: "stop", Short: "Stop every component (safe state)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.run(cmd, func(ctx context.Context, c *robotConn, w io.Writer) error {
				r, err := c.control.StopAll(ctx, connect.NewRequest(&controlv1.StopAllRequest{}))
				if err != nil {
					return err
				}
				return f.print(w, r.Msg, func(w io.Writer) error {
					if len(r.Msg.GetErrors()) == 0 {
						_, err := fmt.Fprintln(w, "every component stopped")
						return err
					}
					var rows [][]string
					for name, why := range r.Msg.GetErrors() {
						rows = append(rows, []string{name, why})
					}
					return table(w, []string{"DID NOT STOP", "WHY"}, rows)
				})
			})
		},
	}
}

func (f *robotFlags) restartCmd() *cobra.Command {
	return &cobra.Command{
		Use: "restart", Short: "Restart the robot's components, modules and processes", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.run(cmd, func(ctx context.Context, c *robotConn, w io.Writer) error {
				if _, err := c.control.Restart(ctx, connect.NewRequest(&controlv1.RestartRequest{})); err != nil {
					return err
				}
				_, err := fmt.Fprintln(w, "restarting")
				return err
			})
		},
	}
}
