package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	"github.com/outpost-robotics/outpost/api/gen/outpost/control/v1/controlv1connect"
	"github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1/fleetv1connect"
	"github.com/outpost-robotics/outpost/controlclient"
	"github.com/outpost-robotics/outpost/controlwire"
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
	// verbose (-v) says on stderr which credential the calls are made with.
	verbose bool
	stderr  io.Writer
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
	pf.StringVar(&f.socket, "socket", "", "use the break-glass Unix socket at this path (such as "+controlwire.DefaultSocketPath+")")
	pf.StringSliceVar(&f.ice, "ice", nil, "STUN/TURN server URLs for --webrtc (none are needed on a LAN)")
	pf.BoolVarP(&f.verbose, "verbose", "v", false, "say on stderr which credential the calls are made with")
	cmd.PersistentPreRun = func(c *cobra.Command, _ []string) { f.stderr = c.ErrOrStderr() }
	pf.StringVar(&f.viaCloud, "via-cloud", "", "reach part PART_ID off this network: WebRTC signaled through the fleet cloud (--cloud); the part still decides with its own grants")

	cmd.AddCommand(
		f.statusCmd(), f.whoamiCmd(), f.componentsCmd(), f.doCmd(), f.motorCmd(), f.readingsCmd(), f.stopCmd(),
		f.configCmd(), f.logsCmd(), f.restartCmd(), f.dataCmd(), f.trustCmd(), f.discoverCmd(), f.consoleCmd(),
	)
	return cmd
}

// robotAddr adds the default port.
func robotAddr(s string) string {
	if _, _, err := net.SplitHostPort(s); err != nil {
		return net.JoinHostPort(s, strconv.Itoa(controlwire.DefaultPort))
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
	from := "--api-key"
	if key == "" && token == "" {
		key, token = f.g.env.getenv("OUTPOST_API_KEY"), f.g.env.getenv("OUTPOST_TOKEN")
		from = "$OUTPOST_API_KEY"
	}
	switch {
	case key != "" && token != "":
		return nil, errors.New("give --api-key or --token, not both (or only one of $OUTPOST_API_KEY and $OUTPOST_TOKEN)")
	case key != "":
		return f.used(credential.ParseKey(key))(from)
	case token != "":
		return f.used(credential.ParseKey(token))(strings.Replace(strings.Replace(from, "--api-key", "--token", 1), "$OUTPOST_API_KEY", "$OUTPOST_TOKEN", 1))
	}
	if saved := f.g.loadSaved().Token; saved != "" {
		path, _ := f.g.credentialsPath()
		return f.used(credential.ParseKey(saved))("the session outpost login saved in " + path)
	}
	return nil, errors.New("give --api-key opk_... or --token ops_... (or sign in with outpost login; or use --socket on the robot)")
}

// used says, with -v, which credential key is: its kind and where it came
// from, never the secret. A session's token is the cloud's, which the part
// verifies offline with the cloud's keys; what leaves this machine are
// proofs made for this part alone (docs/CREDENTIALS.md).
func (f *robotFlags) used(key *credential.Key, err error) func(from string) (*credential.Key, error) {
	return func(from string) (*credential.Key, error) {
		if err != nil || !f.verbose || f.stderr == nil {
			return key, err
		}
		what := "a user session (its token is verified by the part with the cloud's keys; each call carries a proof for this part only)"
		if key.KeyID != "" {
			what = "API key " + key.KeyID + " (each call carries a proof for this part only)"
		}
		fmt.Fprintf(f.stderr, "outpost: calling the part with %s, from %s\n", what, printable(from))
		return key, nil
	}
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
	if fp, err = controlwire.NormalizeFingerprint(fp); err != nil {
		return nil, err
	}
	tlsConf, err := controlclient.PinnedTLSConfig(fp)
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{TLSClientConfig: tlsConf, ForceAttemptHTTP2: true}
	hc := &http.Client{Transport: tr}
	base := "https://" + addr
	// Proofs name the pinned certificate as their audience: a part cannot
	// pass one on to another part, nor to the cloud.
	opts := []connect.ClientOption{connect.WithInterceptors(credential.NewPartProver(key, fp, f.g.now, controlclient.HealthNonce(hc, base)))}
	if !f.webrtc {
		return &robotConn{
			control: controlv1connect.NewControlServiceClient(hc, base, opts...),
			comp:    controlv1connect.NewComponentServiceClient(hc, base, opts...),
			close:   tr.CloseIdleConnections,
			key:     key,
		}, nil
	}
	sig := controlv1connect.NewSignalingServiceClient(hc, base, opts...)
	rc, err := controlclient.DialWebRTCWith(ctx, sig, f.ice, f.g.env.webrtcSettings)
	if err != nil {
		return nil, fmt.Errorf("open WebRTC session with %s: %w", addr, err)
	}
	rhc := rc.HTTPClient()
	return &robotConn{
		control: controlv1connect.NewControlServiceClient(rhc, controlclient.RTCBaseURL),
		comp:    controlv1connect.NewComponentServiceClient(rhc, controlclient.RTCBaseURL),
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
	sess, err := controlclient.DialWebRTCWith(ctx, controlclient.RelaySignaling(rc, f.viaCloud), f.ice, f.g.env.webrtcSettings)
	if err != nil {
		return nil, fmt.Errorf("open a WebRTC session with part %s through %s: %w", f.viaCloud, base, err)
	}
	rhc := sess.HTTPClient()
	return &robotConn{
		control: controlv1connect.NewControlServiceClient(rhc, controlclient.RTCBaseURL),
		comp:    controlv1connect.NewComponentServiceClient(rhc, controlclient.RTCBaseURL),
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
				if fp, err = controlclient.ProbeFingerprint(cmd.Context(), addr); err != nil {
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
		Use: "discover", Short: "List the robot parts announcing " + controlwire.MDNSService + " on this network", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			parts, err := controlclient.Discover(cmd.Context(), wait)
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
