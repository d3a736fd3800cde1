package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/control/v1/controlv1connect"
	"github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1/fleetv1connect"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/cloud/relay"
	"github.com/outpost-robotics/outpost/control"
	"github.com/outpost-robotics/outpost/credential"
)

// robotFlags are the flags of `outpost robot`, the field tech's commands
// against one robot part's daemon.
type robotFlags struct {
	g           *globals
	robot       string
	apiKey      string
	webrtc      bool
	fingerprint string
	socket      string
	ice         []string
	viaCloud    string
}

// robotConn is a connection to a part: typed clients and what to close.
type robotConn struct {
	control controlv1connect.ControlServiceClient
	comp    controlv1connect.ComponentServiceClient
	close   func()
	// key is the credential the calls are made with; nil on the socket.
	key *credential.Key
}

func newRobotCmd(g *globals) *cobra.Command {
	f := &robotFlags{g: g}
	cmd := &cobra.Command{
		Use:   "robot",
		Short: "Drive a robot part over its local control plane (gRPC over TLS, or WebRTC)",
		Long: `Drive a robot part's daemon directly, with or without the cloud, with the
permissions the cloud last granted. Authenticate with an API key
(--api-key opk_...) or a user session (--token ops_..., else the one saved by
outpost login); only proofs made for that part leave this machine. The part's TLS
certificate is pinned: run "outpost robot trust HOST:PORT" once, or pass
--fingerprint. On the robot itself, --socket uses the break-glass socket
(root and the outpost group; every use is audited; works after expiry).`,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.robot, "robot", g.env.getenv("OUTPOST_ROBOT"), "the part's control address HOST:PORT (or $OUTPOST_ROBOT; port 8443 when omitted)")
	// Secrets get no default from the environment: --help would print it.
	pf.StringVar(&f.apiKey, "api-key", "", "API key opk_... as `outpost apikey create` printed it (or $OUTPOST_API_KEY)")
	pf.BoolVar(&f.webrtc, "webrtc", false, "carry the calls over a WebRTC data channel (signaled over the TLS port)")
	pf.StringVar(&f.fingerprint, "fingerprint", "", "SHA-256 of the part's certificate (default: from outpost robot trust)")
	pf.StringVar(&f.socket, "socket", "", "use the break-glass Unix socket at this path (such as "+control.DefaultSocketPath+")")
	pf.StringSliceVar(&f.ice, "ice", nil, "STUN/TURN server URLs for --webrtc (none are needed on a LAN)")
	pf.StringVar(&f.viaCloud, "via-cloud", "", "reach part PART_ID off this network: WebRTC signaled through the fleet cloud (--cloud); the part still decides with its own grants")

	cmd.AddCommand(
		f.statusCmd(), f.whoamiCmd(), f.componentsCmd(), f.doCmd(), f.motorCmd(), f.readingsCmd(), f.stopCmd(),
		f.configCmd(), f.logsCmd(), f.restartCmd(), f.dataCmd(), f.trustCmd(), f.discoverCmd(),
	)
	return cmd
}

// robotAddr adds the default port.
func robotAddr(s string) string {
	if _, _, err := net.SplitHostPort(s); err != nil {
		return net.JoinHostPort(s, strconv.Itoa(control.DefaultPort))
	}
	return s
}

// key is the credential of the flags: an API key (--api-key opk_...) or a
// user's session (--token ops_..., else the one saved by outpost login).
// Its private key never leaves this machine: each part gets proofs made
// for it alone.
func (f *robotFlags) key() (*credential.Key, error) {
	// Flags beat the environment; within each, a key and a token together
	// are ambiguous.
	key, token := f.apiKey, f.g.token
	if key == "" && token == "" {
		key, token = f.g.env.getenv("OUTPOST_API_KEY"), f.g.env.getenv("OUTPOST_TOKEN")
	}
	switch {
	case key != "" && token != "":
		return nil, errors.New("give --api-key or --token, not both (or only one of $OUTPOST_API_KEY and $OUTPOST_TOKEN)")
	case key != "":
		return credential.ParseKey(key)
	case token != "":
		return credential.ParseKey(token)
	}
	if saved := f.g.loadSaved().Token; saved != "" {
		return credential.ParseKey(saved)
	}
	return nil, errors.New("give --api-key opk_... or --token ops_... (or sign in with outpost login; or use --socket on the robot)")
}

// knownRobotsPath is where trusted fingerprints are kept, one "HOST:PORT
// FINGERPRINT" per line.
func knownRobotsPath() (string, error) {
	base, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("find the config folder: %w", err)
	}
	return filepath.Join(base, "outpost", "known_robots"), nil
}

func knownFingerprint(addr string) (string, error) {
	path, err := knownRobotsPath()
	if err != nil {
		return "", err
	}
	fh, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	fp := ""
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 2 && fields[0] == addr {
			fp = fields[1] // the last entry wins: re-trusting replaces
		}
	}
	return fp, sc.Err()
}

// connect opens the connection the flags ask for.
func (f *robotFlags) connect(ctx context.Context) (*robotConn, error) {
	if f.socket != "" {
		tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", f.socket)
		}}
		hc := &http.Client{Transport: tr}
		return &robotConn{
			control: controlv1connect.NewControlServiceClient(hc, "http://socket"),
			comp:    controlv1connect.NewComponentServiceClient(hc, "http://socket"),
			close:   tr.CloseIdleConnections,
		}, nil
	}
	if f.viaCloud != "" {
		return f.connectViaCloud(ctx)
	}
	if f.robot == "" {
		return nil, errors.New("give --robot HOST:PORT (or $OUTPOST_ROBOT); `outpost robot discover` lists the parts on this network")
	}
	addr := robotAddr(f.robot)
	key, err := f.key()
	if err != nil {
		return nil, err
	}
	fp := f.fingerprint
	if fp == "" {
		if fp, err = knownFingerprint(addr); err != nil {
			return nil, err
		}
	}
	if fp == "" {
		return nil, fmt.Errorf("%s is not a trusted robot: run `outpost robot trust %s`, check the fingerprint it shows, or pass --fingerprint", addr, addr)
	}
	if fp, err = control.NormalizeFingerprint(fp); err != nil {
		return nil, err
	}
	tlsConf, err := control.PinnedTLSConfig(fp)
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{TLSClientConfig: tlsConf, ForceAttemptHTTP2: true}
	hc := &http.Client{Transport: tr}
	base := "https://" + addr
	// Proofs name the pinned certificate as their audience: a part cannot
	// pass one on to another part, nor to the cloud.
	opts := []connect.ClientOption{connect.WithInterceptors(credential.NewPartProver(key, fp, f.g.now, control.HealthNonce(hc, base)))}
	if !f.webrtc {
		return &robotConn{
			control: controlv1connect.NewControlServiceClient(hc, base, opts...),
			comp:    controlv1connect.NewComponentServiceClient(hc, base, opts...),
			close:   tr.CloseIdleConnections,
			key:     key,
		}, nil
	}
	sig := controlv1connect.NewSignalingServiceClient(hc, base, opts...)
	rc, err := control.DialWebRTCWith(ctx, sig, f.ice, f.g.env.webrtcSettings)
	if err != nil {
		return nil, fmt.Errorf("open WebRTC session with %s: %w", addr, err)
	}
	rhc := rc.HTTPClient()
	return &robotConn{
		control: controlv1connect.NewControlServiceClient(rhc, control.RTCBaseURL),
		comp:    controlv1connect.NewComponentServiceClient(rhc, control.RTCBaseURL),
		close:   func() { _ = rc.Close(); tr.CloseIdleConnections() },
		key:     key,
	}, nil
}

// connectViaCloud opens a WebRTC session signaled through the fleet cloud's
// relay, for a part that is online but not on this network. The cloud checks
// the credential for machine.control on the part and forwards only its own
// assertion of who is calling; the part authorizes that subject again with
// its cached grants, and every call on the channel too.
func (f *robotFlags) connectViaCloud(ctx context.Context) (*robotConn, error) {
	base, err := f.g.cloudURL()
	if err != nil {
		return nil, err
	}
	key, err := f.key()
	if err != nil {
		return nil, err
	}
	hc := &http.Client{Timeout: 60 * time.Second}
	rc := fleetv1connect.NewRelayServiceClient(hc, base, connect.WithInterceptors(credential.NewCloudProver(key, f.g.now)))
	sess, err := control.DialWebRTCWith(ctx, relay.Signaling(rc, f.viaCloud), f.ice, f.g.env.webrtcSettings)
	if err != nil {
		return nil, fmt.Errorf("open a WebRTC session with part %s through %s: %w", f.viaCloud, base, err)
	}
	rhc := sess.HTTPClient()
	return &robotConn{
		control: controlv1connect.NewControlServiceClient(rhc, control.RTCBaseURL),
		comp:    controlv1connect.NewComponentServiceClient(rhc, control.RTCBaseURL),
		close:   func() { _ = sess.Close(); hc.CloseIdleConnections() },
		key:     key,
	}, nil
}

// run connects, calls fn, and closes.
func (f *robotFlags) run(cmd *cobra.Command, fn func(ctx context.Context, c *robotConn, w io.Writer) error) error {
	ctx := cmd.Context()
	c, err := f.connect(ctx)
	if err != nil {
		return err
	}
	defer c.close()
	return fn(ctx, c, cmd.OutOrStdout())
}

// print writes msg as JSON with --json (or when it has no plain form),
// else calls plain.
func (f *robotFlags) print(w io.Writer, msg proto.Message, plain func(w io.Writer) error) error {
	return f.g.output(w, msg, plain)
}

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
					var rows [][]string
					for _, s := range r.Msg.GetResources() {
						rows = append(rows, []string{
							strings.ToLower(strings.TrimPrefix(s.GetKind().String(), "RESOURCE_KIND_")), s.GetName(),
							strings.ToLower(strings.TrimPrefix(s.GetState().String(), "RESOURCE_STATE_")),
							strconv.Itoa(int(s.GetRestarts())), s.GetError(),
						})
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

func robotLogLine(w io.Writer, e *controlv1.LogEntry) {
	t := "-"
	if e.GetTime() != nil {
		t = e.GetTime().AsTime().UTC().Format(time.RFC3339Nano)
	}
	fmt.Fprintln(w, printable(fmt.Sprintf("%s %-5s %s %s %s", t, e.GetLevel(), e.GetLogger(), e.GetMessage(), e.GetFieldsJson())))
}

func (f *robotFlags) logsCmd() *cobra.Command {
	var follow bool
	var level string
	var limit uint32
	cmd := &cobra.Command{
		Use: "logs", Short: "Show the part's recent log, or follow it", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.run(cmd, func(ctx context.Context, c *robotConn, w io.Writer) error {
				if !follow {
					r, err := c.control.TailLogs(ctx, connect.NewRequest(&controlv1.TailLogsRequest{Limit: limit, MinLevel: level}))
					if err != nil {
						return err
					}
					return f.print(w, r.Msg, func(w io.Writer) error {
						for _, e := range r.Msg.GetEntries() {
							robotLogLine(w, e)
						}
						return nil
					})
				}
				s, err := c.control.FollowLogs(ctx, connect.NewRequest(&controlv1.FollowLogsRequest{MinLevel: level}))
				if err != nil {
					return err
				}
				defer s.Close()
				for s.Receive() {
					if err := f.print(w, s.Msg().GetEntry(), func(w io.Writer) error { robotLogLine(w, s.Msg().GetEntry()); return nil }); err != nil {
						return err
					}
				}
				if err := s.Err(); err != nil && ctx.Err() == nil {
					return err
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "stream new entries until interrupted")
	cmd.Flags().StringVar(&level, "level", "", "lowest level shown: debug, info, warn or error")
	cmd.Flags().Uint32VarP(&limit, "lines", "n", 100, "how many recent entries")
	return cmd
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

func (f *robotFlags) dataCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "data", Short: "List, export, tag and delete the captures held on the part"}
	var component string
	var limit uint32
	ls := &cobra.Command{
		Use: "ls", Short: "List captures, newest first", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.run(cmd, func(ctx context.Context, c *robotConn, w io.Writer) error {
				r, err := c.control.ListCaptures(ctx, connect.NewRequest(&controlv1.ListCapturesRequest{Component: component, Limit: limit}))
				if err != nil {
					return err
				}
				return f.print(w, r.Msg, func(w io.Writer) error {
					var rows [][]string
					for _, c := range r.Msg.GetCaptures() {
						rows = append(rows, []string{strconv.FormatUint(c.GetId(), 10), c.GetTime().AsTime().UTC().Format(time.RFC3339),
							c.GetComponent(), c.GetMethod(), c.GetMimeType(), strconv.FormatUint(c.GetSize(), 10), strings.Join(c.GetTags(), ",")})
					}
					return table(w, []string{"ID", "TIME", "COMPONENT", "METHOD", "TYPE", "BYTES", "TAGS"}, rows)
				})
			})
		},
	}
	ls.Flags().StringVar(&component, "component", "", "only this component's captures")
	ls.Flags().Uint32Var(&limit, "limit", 0, "at most this many (default 1000)")
	var out string
	var ids []uint
	export := &cobra.Command{
		Use: "export", Short: "Export captures into a folder", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := os.MkdirAll(out, 0o755); err != nil {
				return fmt.Errorf("make %s: %w", out, err)
			}
			return f.run(cmd, func(ctx context.Context, c *robotConn, w io.Writer) error {
				req := &controlv1.ExportCapturesRequest{Component: component}
				for _, id := range ids {
					req.Ids = append(req.Ids, uint64(id))
				}
				s, err := c.control.ExportCaptures(ctx, connect.NewRequest(req))
				if err != nil {
					return err
				}
				defer s.Close()
				n := 0
				for s.Receive() {
					info := s.Msg().GetInfo()
					name := fmt.Sprintf("%d-%s-%s%s", info.GetId(), safeName(info.GetComponent()), safeName(info.GetMethod()), extFor(info.GetMimeType()))
					if err := os.WriteFile(filepath.Join(out, name), s.Msg().GetData(), 0o644); err != nil {
						return fmt.Errorf("write %s: %w", name, err)
					}
					n++
				}
				if err := s.Err(); err != nil {
					return err
				}
				_, err = fmt.Fprintf(w, "exported %d captures into %s\n", n, out)
				return err
			})
		},
	}
	export.Flags().StringVar(&out, "out", ".", "folder to write the captures into")
	export.Flags().UintSliceVar(&ids, "id", nil, "capture ids (default: every capture, or --component's)")
	export.Flags().StringVar(&component, "component", "", "only this component's captures")
	cmd.AddCommand(ls, export, f.dataTagCmd(), f.dataRmCmd())
	return cmd
}

// captureIDs reads capture ids (as `outpost robot data ls` shows them).
func captureIDs(args []string) ([]uint64, error) {
	out := make([]uint64, 0, len(args))
	for _, a := range args {
		id, err := strconv.ParseUint(a, 10, 64)
		if err != nil || id == 0 {
			return nil, fmt.Errorf("capture %q: an id is a number from 1, as `outpost robot data ls` shows", a)
		}
		out = append(out, id)
	}
	return out, nil
}

// editBatch is how many captures one tag or delete call names: the part's
// limit per call.
const editBatch = 1000

// inBatches calls fn with ids editBatch at a time and sums what it returns.
func inBatches(ids []uint64, fn func(batch []uint64) (uint32, error)) (uint32, error) {
	var n uint32
	for len(ids) > 0 {
		b := ids[:min(len(ids), editBatch)]
		ids = ids[len(b):]
		k, err := fn(b)
		if err != nil {
			return n, err
		}
		n += k
	}
	return n, nil
}

func (f *robotFlags) dataTagCmd() *cobra.Command {
	var add, remove []string
	cmd := &cobra.Command{
		Use:   "tag ID... [--add TAG] [--remove TAG]",
		Short: "Add or remove tags of captures still on the part (data.edit); the tags go to the cloud with them",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ids, err := captureIDs(args)
			if err != nil {
				return err
			}
			if len(add)+len(remove) == 0 {
				return errors.New("give --add TAG or --remove TAG")
			}
			return f.run(cmd, func(ctx context.Context, c *robotConn, w io.Writer) error {
				n, err := inBatches(ids, func(b []uint64) (uint32, error) {
					r, err := c.control.TagCaptures(ctx, connect.NewRequest(&controlv1.TagCapturesRequest{Ids: b, Add: add, Remove: remove}))
					if err != nil {
						return 0, err
					}
					return r.Msg.GetChanged(), nil
				})
				if err != nil {
					return err
				}
				return f.print(w, &controlv1.TagCapturesResponse{Changed: n}, func(w io.Writer) error {
					_, err := fmt.Fprintf(w, "tags changed on %d of %d captures\n", n, len(ids))
					return err
				})
			})
		},
	}
	cmd.Flags().StringSliceVar(&add, "add", nil, "tags to add (repeat or comma-separate)")
	cmd.Flags().StringSliceVar(&remove, "remove", nil, "tags to remove (repeat or comma-separate)")
	return cmd
}

func (f *robotFlags) dataRmCmd() *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:     "rm ID... --yes",
		Aliases: []string{"delete"},
		Short:   "Delete captures from the part before they are uploaded (data.edit)",
		Long: `Deletes captures still on the part, and their images or files, so they never
reach the cloud. The cloud is told that they were deleted on the part and by
whom (a gap record), so the loss is known, not silent. A capture already
uploaded (or being uploaded at that moment) is deleted in the cloud: see
"outpost data delete". --yes confirms.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ids, err := captureIDs(args)
			if err != nil {
				return err
			}
			if !yes {
				return errors.New("this deletes data for good: add --yes")
			}
			return f.run(cmd, func(ctx context.Context, c *robotConn, w io.Writer) error {
				n, err := inBatches(ids, func(b []uint64) (uint32, error) {
					r, err := c.control.DeleteCaptures(ctx, connect.NewRequest(&controlv1.DeleteCapturesRequest{Ids: b}))
					if err != nil {
						return 0, err
					}
					return r.Msg.GetDeleted(), nil
				})
				if err != nil {
					return err
				}
				return f.print(w, &controlv1.DeleteCapturesResponse{Deleted: n}, func(w io.Writer) error {
					_, err := fmt.Fprintf(w, "deleted %d of %d captures from the part\n", n, len(ids))
					return err
				})
			})
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "confirm: the captures are deleted for good")
	return cmd
}

// safeName keeps a capture's file name inside the export folder.
func safeName(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == 0 || r == '.' {
			return '_'
		}
		return r
	}, s)
	if s == "" {
		return "_"
	}
	return s
}

func extFor(mime string) string {
	switch mime {
	case "application/json":
		return ".json"
	case "image/jpeg":
		return ".jpg"
	case "image/png":
		return ".png"
	}
	return ".bin"
}

func (f *robotFlags) trustCmd() *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "trust HOST:PORT",
		Short: "Show a part's certificate fingerprint, and with --yes pin it",
		Long: `Connect to a part and show the SHA-256 fingerprint of its certificate. Compare
it with the one the fleet cloud shows for the part (the part reports it with
its status), then run again with --yes to pin it: later commands refuse a
part presenting another certificate.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			addr := robotAddr(args[0])
			fp := f.fingerprint
			if fp == "" {
				var err error
				if fp, err = control.ProbeFingerprint(cmd.Context(), addr); err != nil {
					return err
				}
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "%s presents certificate SHA-256 %s\n", printable(addr), fp)
			if !yes {
				_, err := fmt.Fprintf(w, "if it matches the part's fingerprint, pin it with: outpost robot trust %s --yes\n", addr)
				return err
			}
			path, err := knownRobotsPath()
			if err != nil {
				return err
			}
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				return fmt.Errorf("make %s: %w", filepath.Dir(path), err)
			}
			fh, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
			if err != nil {
				return fmt.Errorf("open %s: %w", path, err)
			}
			if _, err := fmt.Fprintf(fh, "%s %s\n", addr, fp); err != nil {
				fh.Close()
				return fmt.Errorf("write %s: %w", path, err)
			}
			if err := fh.Close(); err != nil {
				return fmt.Errorf("write %s: %w", path, err)
			}
			_, err = fmt.Fprintf(w, "pinned in %s\n", path)
			return err
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "pin the fingerprint shown (trust on first use, confirmed)")
	return cmd
}

func (f *robotFlags) discoverCmd() *cobra.Command {
	var wait time.Duration
	cmd := &cobra.Command{
		Use: "discover", Short: "List the robot parts announcing " + control.MDNSService + " on this network", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			parts, err := control.Discover(cmd.Context(), wait)
			if err != nil {
				return err
			}
			var rows [][]string
			for _, p := range parts {
				rows = append(rows, []string{p.Instance, p.Addr, p.PartID, p.Fingerprint})
			}
			return table(cmd.OutOrStdout(), []string{"NAME", "ADDRESS", "PART", "FINGERPRINT"}, rows)
		},
	}
	cmd.Flags().DurationVar(&wait, "wait", 3*time.Second, "how long to listen")
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
