package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/term"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1/fleetv1connect"
	"github.com/outpost-robotics/outpost/credential"
)

// osEnv is the real process environment.
func osEnv() env {
	fd := int(os.Stdin.Fd())
	return env{
		getenv:        os.Getenv,
		stdin:         os.Stdin,
		stdinTerminal: term.IsTerminal(fd),
		readPassword: func() (string, error) {
			b, err := term.ReadPassword(fd)
			return string(b), err
		},
	}
}

// saved is what `outpost login` keeps between runs: the cloud and the
// session (its private key and token, credential.Key's printed form).
type saved struct {
	Cloud string `json:"cloud"`
	Token string `json:"token"`
}

func (g *globals) credentialsPath() (string, error) {
	dir := g.env.configDir
	if dir == "" {
		base, err := os.UserConfigDir()
		if err != nil {
			return "", fmt.Errorf("find the config folder: %w", err)
		}
		dir = filepath.Join(base, "outpost")
	}
	return filepath.Join(dir, "credentials.json"), nil
}

func (g *globals) loadSaved() saved {
	var s saved
	path, err := g.credentialsPath()
	if err != nil {
		return s
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return s
	}
	_ = json.Unmarshal(b, &s) // a damaged file is the same as none: log in again
	return s
}

// save writes the credentials readable by the user only.
func (g *globals) save(s saved) (string, error) {
	path, err := g.credentialsPath()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("save credentials: %w", err)
	}
	b, _ := json.Marshal(s)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return "", fmt.Errorf("save credentials: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("save credentials: %w", err)
	}
	return path, nil
}

// cloudURL is --cloud, $OUTPOST_CLOUD, or the saved one.
func (g *globals) cloudURL() (string, error) {
	u := g.cloud
	if u == "" {
		u = g.loadSaved().Cloud
	}
	if u == "" {
		return "", errors.New("no cloud given: pass --cloud URL or set OUTPOST_CLOUD")
	}
	return strings.TrimRight(u, "/"), nil
}

func (g *globals) bearer() string {
	if t := g.tokenValue(); t != "" {
		return t
	}
	return g.loadSaved().Token
}

// tokenValue is --token, else $OUTPOST_TOKEN.
func (g *globals) tokenValue() string {
	if g.token != "" {
		return g.token
	}
	return g.env.getenv("OUTPOST_TOKEN")
}

// api holds the fleet API's clients for one command.
type api struct {
	server fleetv1connect.ServerServiceClient
	auth   fleetv1connect.AuthServiceClient
	org    fleetv1connect.OrgServiceClient
	loc    fleetv1connect.LocationServiceClient
	mach   fleetv1connect.MachineServiceClient
	user   fleetv1connect.UserServiceClient
	key    fleetv1connect.APIKeyServiceClient
	role   fleetv1connect.RoleServiceClient
	access fleetv1connect.AccessServiceClient
	audit  fleetv1connect.AuditServiceClient
	config fleetv1connect.ConfigServiceClient
	frag   fleetv1connect.FragmentServiceClient
	data   fleetv1connect.DataServiceClient
	// base is the cloud URL the clients use.
	base string
}

// credentialKey is the key of --token, $OUTPOST_TOKEN or the saved
// session: nil without one. A key that does not parse (one from before key
// pairs, say) is an error naming the fix.
func (g *globals) credentialKey() (*credential.Key, error) {
	s := g.bearer()
	if s == "" {
		return nil, nil
	}
	return credential.ParseKey(s)
}

// client connects to the cloud proving possession of the credential's key
// on every call (credential.NewCloudProver): the key never leaves this
// machine, and no proof made for the cloud works on a part.
func (g *globals) client() (*api, error) {
	base, err := g.cloudURL()
	if err != nil {
		return nil, err
	}
	hc := &http.Client{Timeout: 30 * time.Second}
	var auth connect.Interceptor
	key, kerr := g.credentialKey()
	if key != nil {
		auth = credential.NewCloudProver(key, g.now)
	} else {
		auth = noCredential{kerr}
	}
	opts := []connect.ClientOption{connect.WithInterceptors(auth)}
	return &api{
		server: fleetv1connect.NewServerServiceClient(hc, base, opts...),
		auth:   fleetv1connect.NewAuthServiceClient(hc, base, opts...),
		org:    fleetv1connect.NewOrgServiceClient(hc, base, opts...),
		loc:    fleetv1connect.NewLocationServiceClient(hc, base, opts...),
		mach:   fleetv1connect.NewMachineServiceClient(hc, base, opts...),
		user:   fleetv1connect.NewUserServiceClient(hc, base, opts...),
		key:    fleetv1connect.NewAPIKeyServiceClient(hc, base, opts...),
		role:   fleetv1connect.NewRoleServiceClient(hc, base, opts...),
		access: fleetv1connect.NewAccessServiceClient(hc, base, opts...),
		audit:  fleetv1connect.NewAuditServiceClient(hc, base, opts...),
		config: fleetv1connect.NewConfigServiceClient(hc, base, opts...),
		frag:   fleetv1connect.NewFragmentServiceClient(hc, base, opts...),
		data:   fleetv1connect.NewDataServiceClient(hc, base, opts...),
		base:   base,
	}, nil
}

// output prints msg as indented JSON with --json, and otherwise calls
// plain to print it for a person.
func (g *globals) output(w io.Writer, msg proto.Message, plain func(w io.Writer) error) error {
	if g.json || plain == nil {
		b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(msg)
		if err != nil {
			return fmt.Errorf("encode answer: %w", err)
		}
		// protojson varies its spacing on purpose; re-indent for stable output.
		var buf bytes.Buffer
		if err := json.Indent(&buf, b, "", "  "); err != nil {
			return fmt.Errorf("encode answer: %w", err)
		}
		buf.WriteByte('\n')
		_, err = w.Write(printableJSON(buf.Bytes()))
		return err
	}
	return plain(w)
}

// table prints rows under a header, aligned.
func table(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(printableAll(r), "\t"))
	}
	return tw.Flush()
}

func when(t *timestamppb.Timestamp) string {
	if t == nil {
		return "-"
	}
	return t.AsTime().UTC().Format(time.RFC3339)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// readSecret reads a password from stdin (--password-stdin) or prompts for
// it on a terminal without echo.
func (g *globals) readSecret(fromStdin bool, prompt string, stderr io.Writer) (string, error) {
	if fromStdin {
		b, err := io.ReadAll(io.LimitReader(g.env.stdin, 4096))
		if err != nil {
			return "", fmt.Errorf("read password from stdin: %w", err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	if !g.env.stdinTerminal || g.env.readPassword == nil {
		return "", errors.New("no terminal to ask for a password: pipe it in with --password-stdin")
	}
	fmt.Fprint(stderr, prompt)
	pw, err := g.env.readPassword()
	fmt.Fprintln(stderr)
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	return pw, nil
}

// noCredential sends calls without a credential (signing in needs none); a
// refusal for want of one names why the credential given was not usable.
type noCredential struct{ why error }

func (n noCredential) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		res, err := next(ctx, req)
		if n.why != nil && connect.CodeOf(err) == connect.CodeUnauthenticated {
			return nil, connect.NewError(connect.CodeUnauthenticated, n.why)
		}
		return res, err
	}
}

func (n noCredential) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (n noCredential) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}
