package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"connectrpc.com/connect"

	"github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1/fleetv1connect"
	"github.com/outpost-robotics/outpost/credential"
	"github.com/outpost-robotics/outpost/partfile"
)

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

// caFlag is --ca-file, else $OUTPOST_CA_FILE.
func (g *globals) caFlag() string {
	if g.caFile != "" {
		return g.caFile
	}
	return g.env.getenv("OUTPOST_CA_FILE")
}

// caPEM is the private CA the cloud is reached through: --ca-file,
// $OUTPOST_CA_FILE, or the one outpost login saved with the cloud it is
// for; nil for the system's roots.
func (g *globals) caPEM() ([]byte, string, error) {
	path := g.caFlag()
	if path == "" && (g.cloud == "" || strings.TrimRight(g.cloud, "/") == strings.TrimRight(g.loadSaved().Cloud, "/")) {
		path = g.loadSaved().CAFile
	}
	if path == "" {
		return nil, "", nil
	}
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, path, fmt.Errorf("read the cloud's CA (--ca-file): %w", err)
	}
	if len(pem) > partfile.MaxCAPEM || !x509.NewCertPool().AppendCertsFromPEM(pem) {
		return nil, path, fmt.Errorf("the cloud's CA %s: not a PEM bundle of certificates (at most %d bytes)", path, partfile.MaxCAPEM)
	}
	return pem, path, nil
}

// tokenValue is --token, else $OUTPOST_TOKEN.
func (g *globals) tokenValue() string {
	if g.token != "" {
		return g.token
	}
	return g.env.getenv("OUTPOST_TOKEN")
}

// api holds the fleet API's clients for one command. They are embedded, so
// every method of the API is a method of api, and (*api).CreateOrg names
// one for call.
type api struct {
	fleetv1connect.ServerServiceClient
	fleetv1connect.AuthServiceClient
	fleetv1connect.OrgServiceClient
	fleetv1connect.LocationServiceClient
	fleetv1connect.MachineServiceClient
	fleetv1connect.UserServiceClient
	fleetv1connect.APIKeyServiceClient
	fleetv1connect.RoleServiceClient
	fleetv1connect.AccessServiceClient
	fleetv1connect.AuditServiceClient
	fleetv1connect.ConfigServiceClient
	fleetv1connect.FragmentServiceClient
	fleetv1connect.DataServiceClient
	fleetv1connect.PackageServiceClient
	fleetv1connect.AlertServiceClient
	fleetv1connect.DatasetServiceClient
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
	pem, _, err := g.caPEM()
	if err != nil {
		return nil, err
	}
	if pem != nil {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		hc.Transport = &http.Transport{Proxy: http.ProxyFromEnvironment, ForceAttemptHTTP2: true,
			TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	}
	var auth connect.Interceptor
	key, kerr := g.credentialKey()
	if key != nil {
		auth = credential.NewCloudProver(key, g.now)
	} else {
		auth = noCredential{kerr}
	}
	opts := []connect.ClientOption{connect.WithInterceptors(auth)}
	return &api{
		ServerServiceClient:   fleetv1connect.NewServerServiceClient(hc, base, opts...),
		AuthServiceClient:     fleetv1connect.NewAuthServiceClient(hc, base, opts...),
		OrgServiceClient:      fleetv1connect.NewOrgServiceClient(hc, base, opts...),
		LocationServiceClient: fleetv1connect.NewLocationServiceClient(hc, base, opts...),
		MachineServiceClient:  fleetv1connect.NewMachineServiceClient(hc, base, opts...),
		UserServiceClient:     fleetv1connect.NewUserServiceClient(hc, base, opts...),
		APIKeyServiceClient:   fleetv1connect.NewAPIKeyServiceClient(hc, base, opts...),
		RoleServiceClient:     fleetv1connect.NewRoleServiceClient(hc, base, opts...),
		AccessServiceClient:   fleetv1connect.NewAccessServiceClient(hc, base, opts...),
		AuditServiceClient:    fleetv1connect.NewAuditServiceClient(hc, base, opts...),
		ConfigServiceClient:   fleetv1connect.NewConfigServiceClient(hc, base, opts...),
		FragmentServiceClient: fleetv1connect.NewFragmentServiceClient(hc, base, opts...),
		DataServiceClient:     fleetv1connect.NewDataServiceClient(hc, base, opts...),
		PackageServiceClient:  fleetv1connect.NewPackageServiceClient(hc, base, opts...),
		AlertServiceClient:    fleetv1connect.NewAlertServiceClient(hc, base, opts...),
		DatasetServiceClient:  fleetv1connect.NewDatasetServiceClient(hc, base, opts...),
		base:                  base,
	}, nil
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
