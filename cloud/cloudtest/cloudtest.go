// Package cloudtest runs the real outpost-cloud in process for tests, the way
// tailscale's tests run a test control server: cloud.New over real Badger
// stores in the test's temporary folder, on an httptest server on loopback,
// on the clock the test injects. Tests of the daemon, its sync loop and the
// reliability suite use it instead of building the cloud by hand or faking it.
//
// Everything a test does through it goes through the real fleet API with the
// admin's credentials (provisioning, configs, API keys), so what the cloud
// signs and sends a part is what production would. What it reads back
// (Ingested, Ingest) comes from the cloud's own ingest store.
//
// Every credential it hands out is remembered; when the test ends, the
// cloud's log is checked for each of them, and the test fails if a log line
// holds one (no secret in any log line).
package cloudtest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/protobuf/encoding/protojson"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1/fleetv1connect"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/authz"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/cloud"
	"github.com/outpost-robotics/outpost/cloud/auth"
	"github.com/outpost-robotics/outpost/cloud/ingest"
	"github.com/outpost-robotics/outpost/cloud/ingest/badgeringest"
	"github.com/outpost-robotics/outpost/cloud/ingest/pgingest"
	"github.com/outpost-robotics/outpost/cloud/mailtest"
	"github.com/outpost-robotics/outpost/cloud/partsync"
	"github.com/outpost-robotics/outpost/cloud/pgtest"
	"github.com/outpost-robotics/outpost/cloud/store"
	"github.com/outpost-robotics/outpost/cloud/store/badgerstore"
	"github.com/outpost-robotics/outpost/cloud/store/pgstore"
	"github.com/outpost-robotics/outpost/controlclient"
	"github.com/outpost-robotics/outpost/credential"
	"github.com/outpost-robotics/outpost/faultproxy"
	"github.com/outpost-robotics/outpost/netlimit"
	"github.com/outpost-robotics/outpost/pkgupload"
	"github.com/outpost-robotics/outpost/signed"
)

// Options configures New; the zero value is a plain-HTTP cloud on the
// machine's clock.
type Options struct {
	// Clock is the cloud's clock; nil means the machine's. A test that moves
	// a part's fake clock passes its own fake here (or a second one, when
	// the part's wall clock is to be wrong while the cloud's is right).
	Clock clock.Clock
	// TLS serves HTTPS with a certificate from a private CA made for this
	// cloud; CAFile is that CA, for the part's ca_file.
	TLS bool
	// Hostnames are DNS names the certificate is valid for besides
	// localhost and the loopback addresses, such as "cloud.outpost.test"
	// for a test that reaches the cloud by name through a proxy.
	Hostnames []string
	// Sync configures the part sync API (poll interval, limits); its Clock
	// and Logger default to the cloud's.
	Sync partsync.Options
	// Log also receives the cloud's log lines; nil keeps them only in
	// memory, for the secret check and Logs.
	Log *zap.Logger
	// IngestAfterSync is called after each synced commit of the ingest
	// store, to model a slow disk (badgeringest.Options.AfterSync).
	IngestAfterSync func()
	// Limits bound connections and slow clients as outpost-cloud serve
	// does; zero fields take the values of cloud.Limits().
	Limits netlimit.Limits
	// DiscardLog keeps none of the cloud's log, so checks none of it: for
	// benchmarks, whose calls by the million would fill memory with it.
	DiscardLog bool
	// Store and Ingest are the cloud's stores (PostgreSQL ones, say); nil
	// opens Badger ones in a temporary folder. The caller closes those it
	// passes.
	Store  store.Store
	Ingest ingest.Store
	// Postgres runs the fleet store, the ingest store and the blobs on a
	// new database of the test binary's private PostgreSQL (pgtest; its
	// TestMain must call pgtest.Main) instead of Badger. Setting
	// OUTPOST_CLOUD_STORE=postgres in the environment does the same for
	// every cloud that names no stores of its own and models no slow disk,
	// so one package's API tests run on both backends.
	Postgres bool
	// Alerts configures alert evaluation and delivery (tests allow http
	// webhooks on loopback and shorten the backoff).
	Alerts cloud.AlertOptions
	// Packages bounds the chunks uploads hold before a version names them.
	Packages cloud.PackageLimits
}

// StoreEnv is the environment variable that, set to "postgres", makes New
// run every cloud that names no stores of its own on PostgreSQL.
const StoreEnv = "OUTPOST_CLOUD_STORE"

// usePostgres reports whether New puts this cloud on PostgreSQL.
func (o Options) usePostgres() bool {
	if o.Store != nil || o.Ingest != nil {
		return false
	}
	return o.Postgres || (o.IngestAfterSync == nil && os.Getenv(StoreEnv) == "postgres")
}

// OpenBadger opens the cloud's three embedded stores in dir, closed when
// tb ends: what outpost-cloud serve runs on without --database.
func OpenBadger(tb testing.TB, dir string) (store.Store, ingest.Store, ingest.BlobStore) {
	tb.Helper()
	st, err := badgerstore.Open(filepath.Join(dir, "fleet"), zap.NewNop())
	if err != nil {
		tb.Fatalf("cloudtest: open the fleet store: %v", err)
	}
	tb.Cleanup(func() { st.Close() })
	blobs, err := ingest.NewFileBlobStore(filepath.Join(dir, "blobs"))
	if err != nil {
		tb.Fatalf("cloudtest: open the blob store: %v", err)
	}
	ing, err := badgeringest.Open(badgeringest.Options{Dir: filepath.Join(dir, "ingest"), Blobs: blobs})
	if err != nil {
		tb.Fatalf("cloudtest: open the ingest store: %v", err)
	}
	tb.Cleanup(func() { ing.Close() })
	return st, ing, blobs
}

// OpenPostgres opens the cloud's three PostgreSQL stores on the database at
// url, closed when tb ends: what outpost-cloud serve --database runs on.
func OpenPostgres(tb testing.TB, url string) (store.Store, ingest.Store, ingest.BlobStore) {
	tb.Helper()
	ctx := context.Background()
	st, err := pgstore.Open(ctx, url)
	if err != nil {
		tb.Fatalf("cloudtest: open the fleet store on PostgreSQL: %v", err)
	}
	tb.Cleanup(func() { st.Close() })
	blobs, err := pgingest.OpenBlobStore(ctx, url)
	if err != nil {
		tb.Fatalf("cloudtest: open the blob store on PostgreSQL: %v", err)
	}
	tb.Cleanup(func() { blobs.Close() })
	ing, err := pgingest.Open(ctx, pgingest.Options{URL: url, Blobs: blobs})
	if err != nil {
		tb.Fatalf("cloudtest: open the ingest store on PostgreSQL: %v", err)
	}
	tb.Cleanup(func() { ing.Close() })
	return st, ing, blobs
}

// Cloud is a running outpost-cloud. Its fields are set by New and must not
// be changed.
type Cloud struct {
	// URL is the cloud's base URL: http:// or https://127.0.0.1:PORT.
	URL string
	// CAFile is a PEM file of the CA that signed the cloud's certificate,
	// or "" without TLS.
	CAFile string
	// Clock is the cloud's clock.
	Clock clock.Clock
	// Server is the fleet API server.
	Server *cloud.Server
	// Mail is the SMTP relay the cloud mails invitation codes through.
	Mail *mailtest.Server

	srv     *httptest.Server
	hc      *http.Client
	signer  *auth.Signer
	adminID string
	store   store.Store
	ingest  ingest.Store
	wire    atomic.Int64
	names   atomic.Int64
	log     *Log
}

// New starts a cloud that stops when tb ends.
func New(tb testing.TB, opts Options) *Cloud {
	tb.Helper()
	ctx := context.Background()
	// Made first, so its check runs last: after the server and the stores
	// have stopped and written their last line.
	c := &Cloud{Clock: opts.Clock, log: NewLog(tb)}
	if c.Clock == nil {
		c.Clock = clock.NewReal()
	}
	log := c.log.Logger()
	if opts.DiscardLog {
		log = zap.NewNop()
	}
	if opts.Log != nil {
		log = zap.New(zapcore.NewTee(log.Core(), opts.Log.Core()))
	}
	dir := tb.TempDir()
	st, ing := opts.Store, opts.Ingest
	var blobs ingest.BlobStore
	if opts.usePostgres() {
		st, ing, blobs = OpenPostgres(tb, pgtest.Database(tb))
	}
	if st == nil {
		bs, err := badgerstore.Open(filepath.Join(dir, "fleet"), log)
		if err != nil {
			tb.Fatalf("cloudtest: open the fleet store: %v", err)
		}
		tb.Cleanup(func() {
			if err := bs.Close(); err != nil {
				tb.Errorf("cloudtest: close the fleet store: %v", err)
			}
		})
		st = bs
	}
	signer, _, err := cloud.Bootstrap(ctx, st, dir, c.Clock, log)
	if err != nil {
		tb.Fatalf("cloudtest: %v", err)
	}
	c.signer, c.store = signer, st
	raw, err := os.ReadFile(filepath.Join(dir, cloud.AdminTokenFile))
	if err != nil {
		tb.Fatalf("cloudtest: read the admin token: %v", err)
	}
	c.remember(strings.TrimSpace(string(raw)))
	adminKey, err := credential.ParseKey(string(raw))
	if err != nil {
		tb.Fatalf("cloudtest: the admin session Bootstrap wrote does not parse: %v", err)
	}
	claims, err := signer.Verify(adminKey.Token, c.Clock.Now())
	if err != nil {
		tb.Fatalf("cloudtest: the admin token Bootstrap wrote does not verify: %v", err)
	}
	c.adminID = claims.Subject

	if blobs == nil {
		fb, err := ingest.NewFileBlobStore(filepath.Join(dir, "blobs"))
		if err != nil {
			tb.Fatalf("cloudtest: %v", err)
		}
		blobs = fb
	}
	if ing == nil {
		bi, err := badgeringest.Open(badgeringest.Options{Dir: filepath.Join(dir, "ingest"), Blobs: blobs, AfterSync: opts.IngestAfterSync})
		if err != nil {
			tb.Fatalf("cloudtest: open the ingest store: %v", err)
		}
		tb.Cleanup(func() {
			if err := bi.Close(); err != nil {
				tb.Errorf("cloudtest: close the ingest store: %v", err)
			}
		})
		ing = bi
	}
	c.ingest = ing
	// The listener first: invitation mails name the cloud's URL.
	c.srv = httptest.NewUnstartedServer(nil)
	scheme := "http://"
	if opts.TLS {
		scheme = "https://"
	}
	c.Mail = mailtest.New(tb)
	c.remember(c.Mail.Password)
	mailer, err := cloud.NewSMTPMailer(cloud.SMTPConfig{Host: c.Mail.Host, Port: c.Mail.Port, From: "outpost@cloudtest.example",
		Username: c.Mail.Username, Password: c.Mail.Password, TLSConfig: c.Mail.TLSConfig, CloudURL: scheme + c.srv.Listener.Addr().String()})
	if err != nil {
		tb.Fatalf("cloudtest: %v", err)
	}
	c.Server, err = cloud.New(cloud.Config{Store: st, Signer: signer, Clock: c.Clock, Log: log, Ingest: ing, Blobs: blobs, Sync: opts.Sync, Mailer: mailer, Alerts: opts.Alerts, Packages: opts.Packages})
	if err != nil {
		tb.Fatalf("cloudtest: %v", err)
	}

	c.srv.Config.Handler = c.Server.Handler()
	lim := opts.Limits
	if lim.MaxConns == 0 {
		lim.MaxConns = cloud.Limits().MaxConns
	}
	lim.Apply(c.srv.Config)
	c.srv.Listener = lim.Listener(countingListener{Listener: c.srv.Listener, n: &c.wire})
	c.srv.Config.ErrorLog = zap.NewStdLog(log.Named("http"))
	if opts.TLS {
		pair, caPEM, err := newCertificate(opts.Hostnames)
		if err != nil {
			tb.Fatalf("cloudtest: %v", err)
		}
		c.CAFile = filepath.Join(dir, "ca.pem")
		if err := os.WriteFile(c.CAFile, caPEM, 0o644); err != nil {
			tb.Fatalf("cloudtest: write the CA file: %v", err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(caPEM)
		c.srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
		c.srv.EnableHTTP2 = true
		c.srv.StartTLS()
		c.hc = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, ForceAttemptHTTP2: true}}
	} else {
		c.srv.Start()
		c.hc = &http.Client{Transport: &http.Transport{}}
	}
	c.URL = c.srv.URL
	tb.Cleanup(func() {
		c.hc.CloseIdleConnections()
		// A long poll (a relay's NextOffer on a fake clock) would keep
		// Close waiting: cut every connection first.
		c.srv.CloseClientConnections()
		c.srv.Close()
	})
	return c
}

// Addr is the cloud's host:port on loopback.
func (c *Cloud) Addr() string { return c.srv.Listener.Addr().String() }

// HTTPClient returns a client that trusts the cloud's certificate.
func (c *Cloud) HTTPClient() *http.Client { return c.hc }

// Ingest is the cloud's ingest store, for reading back what parts uploaded
// beyond Ingested's counts (watermarks, lost ranges, blobs).
func (c *Cloud) Ingest() ingest.Store { return c.ingest }

// WireBytes is how many bytes the cloud has read from its connections:
// what crossed the wire towards it, after compression (and TLS).
func (c *Cloud) WireBytes() int64 { return c.wire.Load() }

// DocumentSigner is the key the cloud signs configs and grant bundles with.
// Only a test that must make what a broken or compromised cloud would send
// (an expired bundle with a valid signature) has a use for it.
func (c *Cloud) DocumentSigner() signed.Signer { return c.signer.Documents() }

// AdminToken returns a fresh session of the cloud's admin, issued now on
// the cloud's clock (so it is valid however far a fake clock has moved), in
// the printed form the CLI takes as --token: "ops_<private key>_<token>".
func (c *Cloud) AdminToken(tb testing.TB) string {
	tb.Helper()
	return c.UserSession(tb, c.adminID)
}

// AdminID is the cloud admin's user id.
func (c *Cloud) AdminID() string { return c.adminID }

// UserSession returns a fresh session of the user userID, as `outpost
// login` would get, in its printed form: a new session key and an access
// token bound to it, valid for an hour of the cloud's clock.
func (c *Cloud) UserSession(tb testing.TB, userID string) string {
	tb.Helper()
	sk := credential.NewPrivateKey()
	tok, _, err := c.signer.Issue(userID, sk.Public().(ed25519.PublicKey), c.Clock.Now(), time.Hour)
	if err != nil {
		tb.Fatalf("cloudtest: issue a session: %v", err)
	}
	s := credential.Session(tok, sk).String()
	c.remember(s)
	c.remember(s[:4+43]) // the private key
	return s
}

// Logs returns the cloud's log so far, one JSON object per line.
func (c *Cloud) Logs() string { return c.log.String() }

// Remember notes credentials the test came by itself (a generated
// password, a token SignIn returned, an invitation's code): like those
// handed out here, the cloud's log must never hold them.
func (c *Cloud) Remember(secrets ...string) { c.log.Remember(secrets...) }

// Store is the cloud's fleet store, for fixtures too many to make through
// the fleet API (the permission matrix makes thousands); the cloud sees
// what is written as it sees its own changes.
func (c *Cloud) Store() store.Store { return c.store }

// Keys are the cloud's public keys, by key ID, as parts and clients verify
// its documents, tokens and relay assertions with.
func (c *Cloud) Keys() signed.Keys { return c.signer.Keys() }

// Clients are the fleet API's clients, each call carrying one credential.
type Clients struct {
	Server   fleetv1connect.ServerServiceClient
	Org      fleetv1connect.OrgServiceClient
	Location fleetv1connect.LocationServiceClient
	Machine  fleetv1connect.MachineServiceClient
	Config   fleetv1connect.ConfigServiceClient
	Fragment fleetv1connect.FragmentServiceClient
	APIKey   fleetv1connect.APIKeyServiceClient
	Role     fleetv1connect.RoleServiceClient
	Data     fleetv1connect.DataServiceClient
	Dataset  fleetv1connect.DatasetServiceClient
	Access   fleetv1connect.AccessServiceClient
	Audit    fleetv1connect.AuditServiceClient
	Auth     fleetv1connect.AuthServiceClient
	User     fleetv1connect.UserServiceClient
	Relay    fleetv1connect.RelayServiceClient
	Package  fleetv1connect.PackageServiceClient
	Alert    fleetv1connect.AlertServiceClient
}

// NewClients returns the fleet API's clients for the cloud at base,
// reached by hc, every call made with opts: an interceptor carrying a
// credential (CloudAuth, credential.Bearer), a protocol. It serves a test
// holding only a URL, such as one of a cloud that cloud.Run serves.
func NewClients(hc connect.HTTPClient, base string, opts ...connect.ClientOption) *Clients {
	return &Clients{
		Server:   fleetv1connect.NewServerServiceClient(hc, base, opts...),
		Org:      fleetv1connect.NewOrgServiceClient(hc, base, opts...),
		Location: fleetv1connect.NewLocationServiceClient(hc, base, opts...),
		Machine:  fleetv1connect.NewMachineServiceClient(hc, base, opts...),
		Config:   fleetv1connect.NewConfigServiceClient(hc, base, opts...),
		Fragment: fleetv1connect.NewFragmentServiceClient(hc, base, opts...),
		APIKey:   fleetv1connect.NewAPIKeyServiceClient(hc, base, opts...),
		Role:     fleetv1connect.NewRoleServiceClient(hc, base, opts...),
		Data:     fleetv1connect.NewDataServiceClient(hc, base, opts...),
		Dataset:  fleetv1connect.NewDatasetServiceClient(hc, base, opts...),
		Access:   fleetv1connect.NewAccessServiceClient(hc, base, opts...),
		Audit:    fleetv1connect.NewAuditServiceClient(hc, base, opts...),
		Auth:     fleetv1connect.NewAuthServiceClient(hc, base, opts...),
		User:     fleetv1connect.NewUserServiceClient(hc, base, opts...),
		Relay:    fleetv1connect.NewRelayServiceClient(hc, base, opts...),
		Package:  fleetv1connect.NewPackageServiceClient(hc, base, opts...),
		Alert:    fleetv1connect.NewAlertServiceClient(hc, base, opts...),
	}
}

// Admin returns clients acting as the cloud's admin.
func (c *Cloud) Admin(tb testing.TB) *Clients {
	return c.As(c.AdminToken(tb))
}

// As returns clients presenting key: a printed API key or session
// ("opk_..." or "ops_..."), with a fresh proof for the cloud on every
// call, as a real client does. Anything else is sent as the Authorization
// header as is, for tests of hostile or old credentials.
func (c *Cloud) As(key string) *Clients {
	c.remember(key)
	return NewClients(c.hc, c.URL, connect.WithInterceptors(CloudAuth(key, c.Clock.Now)))
}

// CloudAuth is the interceptor a client holding the printed key uses with
// the fleet API; see As.
func CloudAuth(key string, now func() time.Time) connect.Interceptor {
	if k, err := credential.ParseKey(key); err == nil {
		return credential.NewCloudProver(k, now)
	}
	return credential.Bearer{Authorization: key}
}

// PartAuth is the interceptor a client holding the printed key uses with
// the part whose control port is base (reached by hc) and whose
// certificate has the given fingerprint: proofs for that part, with its
// nonce. Anything but a printed key is sent as the Authorization header.
func PartAuth(key, fingerprint string, hc connect.HTTPClient, base string, now func() time.Time) connect.Interceptor {
	if k, err := credential.ParseKey(key); err == nil {
		return credential.NewPartProver(k, fingerprint, now, controlclient.HealthNonce(hc, base))
	}
	return credential.Bearer{Authorization: key}
}

// PartOptions describes the part Provision makes.
type PartOptions struct {
	// CloudURL is the URL written into the bootstrap file, as the part
	// reaches the cloud: through a fault proxy, or by a name on the TLS
	// certificate. Empty means URL.
	CloudURL string
	// Config, when set, is the machine's first config revision.
	Config *configv1.RobotConfig
}

// Part is a provisioned part: what `outpost part bootstrap` writes for it,
// and where it sits in the fleet.
type Part struct {
	// ID and Secret are the part's credentials.
	ID, Secret string
	// MachineID, LocationID and OrgID place it in the fleet.
	MachineID, LocationID, OrgID string
	// CloudURL is the cloud's URL from the bootstrap file.
	CloudURL string
	// Keys are the cloud's signing keys from the bootstrap file, ready to
	// verify documents with.
	Keys signed.Keys
	// Bootstrap is the bootstrap file's content, with ca_file set to
	// CAFile on a TLS cloud.
	Bootstrap *syncv1.Bootstrap
}

// Provision creates an organization, a location and a machine through the
// fleet API, optionally gives the machine a config, and bootstraps the
// machine's main part, as an admin would before installing a robot.
func (c *Cloud) Provision(tb testing.TB, opts PartOptions) Part {
	tb.Helper()
	ctx := context.Background()
	admin := c.Admin(tb)
	n := c.names.Add(1)
	org := must(tb, "create an organization", func() (*fleetv1.CreateOrgResponse, error) {
		return unwrap(admin.Org.CreateOrg(ctx, connect.NewRequest(&fleetv1.CreateOrgRequest{Name: fmt.Sprintf("org %d", n)})))
	}).GetOrg()
	loc := must(tb, "create a location", func() (*fleetv1.CreateLocationResponse, error) {
		return unwrap(admin.Location.CreateLocation(ctx, connect.NewRequest(&fleetv1.CreateLocationRequest{OrgId: org.GetId(), Name: fmt.Sprintf("site %d", n)})))
	}).GetLocation()
	mres := must(tb, "create a machine", func() (*fleetv1.CreateMachineResponse, error) {
		return unwrap(admin.Machine.CreateMachine(ctx, connect.NewRequest(&fleetv1.CreateMachineRequest{LocationId: loc.GetId(), Name: fmt.Sprintf("robot %d", n)})))
	})
	c.remember(mres.GetMainPartSecret())
	m := mres.GetMachine()
	if len(m.GetParts()) == 0 {
		tb.Fatalf("cloudtest: machine/%s was created without a main part", m.GetId())
	}
	if opts.Config != nil {
		c.SetMachineConfig(tb, m.GetId(), opts.Config)
	}
	url := opts.CloudURL
	if url == "" {
		url = c.URL
	}
	boot := must(tb, "bootstrap the main part", func() (*fleetv1.BootstrapPartResponse, error) {
		return unwrap(admin.Machine.BootstrapPart(ctx, connect.NewRequest(&fleetv1.BootstrapPartRequest{PartId: m.GetParts()[0].GetId(), CloudUrl: url})))
	}).GetBootstrap()
	c.remember(boot.GetPartSecret())
	boot.CaFile = c.CAFile
	keys, err := signed.KeysFromProto(boot.GetCloudKeys())
	if err != nil {
		tb.Fatalf("cloudtest: the bootstrap file's cloud keys: %v", err)
	}
	return Part{
		ID: boot.GetPartId(), Secret: boot.GetPartSecret(),
		MachineID: m.GetId(), LocationID: loc.GetId(), OrgID: org.GetId(),
		CloudURL: boot.GetCloudUrl(), Keys: keys, Bootstrap: boot,
	}
}

// WriteBootstrap writes the part's bootstrap file into dir as
// `outpost part bootstrap` output installed with mode 0600, and returns its path.
func (p Part) WriteBootstrap(tb testing.TB, dir string) string {
	tb.Helper()
	raw, err := protojson.Marshal(p.Bootstrap)
	if err != nil {
		tb.Fatalf("cloudtest: encode the bootstrap file: %v", err)
	}
	path := filepath.Join(dir, "outpostd.json")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		tb.Fatalf("cloudtest: write the bootstrap file: %v", err)
	}
	return path
}

// UploadPackage uploads the file or directory at path as version of the
// organization's package name for platform, as `outpost package upload`
// does, acting as the cloud's admin, and returns the version stored.
func (c *Cloud) UploadPackage(tb testing.TB, orgID, name, version, typ, platform, path string) *fleetv1.PackageVersion {
	tb.Helper()
	res, err := pkgupload.Upload(context.Background(), c.Admin(tb).Package, pkgupload.Request{
		OrgID: orgID, Name: name, Version: version, Type: typ, Platform: platform, Path: path})
	if err != nil {
		tb.Fatalf("cloudtest: upload package %s %s: %v", name, version, err)
	}
	return res.Version
}

// TagPackage points tag at version of the organization's package name.
func (c *Cloud) TagPackage(tb testing.TB, orgID, name, version, tag string) {
	tb.Helper()
	must(tb, "tag a package version", func() (*fleetv1.TagVersionResponse, error) {
		return unwrap(c.Admin(tb).Package.TagVersion(context.Background(), connect.NewRequest(&fleetv1.TagVersionRequest{OrgId: orgID, Name: name, Version: version, Tag: tag})))
	})
}

// SetMachineConfig writes cfg as the machine's next config revision and
// returns the revision number.
func (c *Cloud) SetMachineConfig(tb testing.TB, machineID string, cfg *configv1.RobotConfig) uint64 {
	tb.Helper()
	ctx := context.Background()
	admin := c.Admin(tb)
	cur := must(tb, "read machine/"+machineID+"'s config", func() (*fleetv1.GetMachineConfigResponse, error) {
		return unwrap(admin.Config.GetMachineConfig(ctx, connect.NewRequest(&fleetv1.GetMachineConfigRequest{MachineId: machineID})))
	})
	rev := must(tb, "update machine/"+machineID+"'s config", func() (*fleetv1.UpdateMachineConfigResponse, error) {
		return unwrap(admin.Config.UpdateMachineConfig(ctx, connect.NewRequest(&fleetv1.UpdateMachineConfigRequest{
			MachineId: machineID, BaseRevision: cur.GetRevision().GetRevision(), Config: cfg,
		})))
	})
	return rev.GetRevision().GetRevision()
}

// APIKey is a created API key.
type APIKey struct {
	// ID is the key's id.
	ID string
	// Token is the key's printed form, "opk_<key id>_<private key>": the
	// key pair was made here, as `outpost apikey create` makes it, and the
	// cloud holds only the public key.
	Token string
}

// CreateAPIKey creates a key holding role ("owner" or "operator") on scope
// ("org/ID", "location/ID" or "machine/ID").
func (c *Cloud) CreateAPIKey(tb testing.TB, role, scope string) APIKey {
	tb.Helper()
	priv := credential.NewPrivateKey()
	res := must(tb, "create an API key", func() (*fleetv1.CreateAPIKeyResponse, error) {
		return unwrap(c.Admin(tb).APIKey.CreateAPIKey(context.Background(), connect.NewRequest(&fleetv1.CreateAPIKeyRequest{
			Name: fmt.Sprintf("key %d", c.names.Add(1)), Role: role, Scope: scope, PublicKey: priv.Public().(ed25519.PublicKey),
		})))
	})
	k := credential.APIKey(res.GetKey().GetId(), priv).String()
	c.remember(k)
	c.remember(k[len(k)-43:]) // the private key
	return APIKey{ID: res.GetKey().GetId(), Token: k}
}

// CreateUser creates a user with password holding role on scope (none for
// ""), as the admin, and returns its ID.
func (c *Cloud) CreateUser(tb testing.TB, email, password, role, scope string) string {
	tb.Helper()
	c.remember(password)
	ctx := context.Background()
	admin := c.Admin(tb)
	u := must(tb, "create user "+email, func() (*fleetv1.CreateUserResponse, error) {
		return unwrap(admin.User.CreateUser(ctx, connect.NewRequest(&fleetv1.CreateUserRequest{Email: email, Password: password})))
	}).GetUser()
	if role != "" {
		must(tb, "grant "+email+" "+role+" on "+scope, func() (*fleetv1.GrantRoleResponse, error) {
			return unwrap(admin.Role.GrantRole(ctx, connect.NewRequest(&fleetv1.GrantRoleRequest{Subject: authz.User(u.GetId()).String(), Role: role, Scope: scope})))
		})
	}
	return u.GetId()
}

// SignIn signs a user in with a new session key and returns the session
// (the token with its private key, as `outpost login` saves it; As takes it).
func (c *Cloud) SignIn(tb testing.TB, email, password string) string {
	tb.Helper()
	sk := credential.NewPrivateKey()
	res := must(tb, "sign in as "+email, func() (*fleetv1.SignInResponse, error) {
		return unwrap(fleetv1connect.NewAuthServiceClient(c.hc, c.URL).SignIn(context.Background(),
			connect.NewRequest(&fleetv1.SignInRequest{Email: email, Password: password, SessionPublicKey: sk.Public().(ed25519.PublicKey)})))
	})
	session := credential.Session(res.GetAccessToken(), sk).String()
	c.remember(res.GetAccessToken())
	c.remember(session)
	return session
}

// RevokeAPIKey deletes a key and its grants.
func (c *Cloud) RevokeAPIKey(tb testing.TB, id string) {
	tb.Helper()
	must(tb, "revoke API key "+id, func() (*fleetv1.RevokeAPIKeyResponse, error) {
		return unwrap(c.Admin(tb).APIKey.RevokeAPIKey(context.Background(), connect.NewRequest(&fleetv1.RevokeAPIKeyRequest{KeyId: id})))
	})
}

// Streams returns the streams a part uploads, as the cloud names them.
func Streams() []string {
	return []string{
		partsync.StreamAudit, partsync.StreamGaps, partsync.StreamProposals, partsync.StreamLogsWarn,
		partsync.StreamLogsInfo, partsync.StreamLogsDebug, partsync.StreamCaptures,
	}
}

// Ingested returns what the cloud holds of each stream of the part, over
// all its store incarnations; streams it holds nothing of are left out.
func (c *Cloud) Ingested(tb testing.TB, partID string) map[string]ingest.Count {
	tb.Helper()
	out := map[string]ingest.Count{}
	for _, st := range Streams() {
		n, err := c.ingest.Count(context.Background(), partID, st)
		if err != nil {
			tb.Fatalf("cloudtest: count %s of part/%s: %v", st, partID, err)
		}
		if n != (ingest.Count{}) {
			out[st] = n
		}
	}
	return out
}

// remember notes a credential the log must never hold.
func (c *Cloud) remember(secret string) { c.log.Remember(secret) }

// Log is a cloud's log, kept in memory and checked when the test ends: the
// test fails if a line holds a credential given to Remember. New keeps one
// for the cloud it starts; a test starting the cloud another way (cloud.Run,
// as outpost-cloud serve does) makes its own.
type Log struct {
	buf     lockedBuffer
	secrets sync.Map // string -> struct{}
}

// NewLog returns a log checked when tb ends, after the cleanups registered
// later than this call (a cloud's shutdown among them) have run.
func NewLog(tb testing.TB) *Log {
	l := &Log{}
	tb.Cleanup(func() { l.check(tb) })
	return l
}

// Logger returns a logger writing JSON lines, every level, into l.
func (l *Log) Logger() *zap.Logger {
	return zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), &l.buf, zap.DebugLevel))
}

// Remember notes credentials the log must never hold.
func (l *Log) Remember(secrets ...string) {
	for _, s := range secrets {
		// Short strings would match by chance; no credential here is short.
		if len(s) >= 12 {
			l.secrets.Store(s, struct{}{})
		}
	}
}

// String returns the log so far, one JSON object per line.
func (l *Log) String() string { return l.buf.String() }

// check fails the test if a log line holds a remembered credential.
func (l *Log) check(tb testing.TB) {
	text := l.buf.String()
	l.secrets.Range(func(k, _ any) bool {
		if s := k.(string); strings.Contains(text, s) {
			// Never print the secret itself: this message is a log line too.
			tb.Errorf("cloudtest: a credential (%d bytes) appears in the cloud's log", len(s))
		}
		return true
	})
}

// HoldUploads puts a fault proxy in front of the cloud that answers every
// upload with 503 until release is called; pulls go through. A part given
// the returned URL as its cloud keeps what it captured, as one on a
// flaky uplink would, and sends it once released.
func (c *Cloud) HoldUploads(tb testing.TB) (url string, release func()) {
	tb.Helper()
	var hold atomic.Bool
	hold.Store(true)
	proxy, err := faultproxy.New(c.URL, func(_ int64, r *http.Request) faultproxy.Fault {
		if hold.Load() && strings.Contains(r.URL.Path, "/Upload") {
			return faultproxy.Status503
		}
		return faultproxy.Pass
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = proxy.Close() })
	return proxy.URL(), func() { hold.Store(false) }
}

// Eventually polls cond until it returns nil, failing tb with what and
// cond's last error after a generous deadline. It is for waiting on the
// cloud and parts converging, which has no event to wait on; it asserts
// what happened, never how fast.
func Eventually(tb testing.TB, what string, cond func() error) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func unwrap[T any](res *connect.Response[T], err error) (*T, error) {
	if err != nil {
		return nil, err
	}
	return res.Msg, nil
}

func must[T any](tb testing.TB, what string, call func() (*T, error)) *T {
	tb.Helper()
	v, err := call()
	if err != nil {
		tb.Fatalf("cloudtest: %s: %v", what, err)
	}
	return v
}

// newCertificate makes a CA and a server certificate it signs for
// localhost, the loopback addresses and names; it returns the server's key
// pair and the CA's certificate as PEM. The validity is fixed and wide:
// the TLS stack checks it against the machine's clock, not the test's.
func newCertificate(names []string) (tls.Certificate, []byte, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("make the CA key: %w", err)
	}
	notBefore, notAfter := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "cloudtest CA"},
		NotBefore: notBefore, NotAfter: notAfter, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("make the CA certificate: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("make the server key: %w", err)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "outpost-cloud"},
		NotBefore: notBefore, NotAfter: notAfter,
		DNSNames:    append([]string{"localhost"}, names...),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("make the server certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), nil
}

// countingListener counts the bytes the server reads.
type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	conn, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countingConn{Conn: conn, n: l.n}, nil
}

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// lockedBuffer is a zap sink several goroutines write to.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) Sync() error { return nil }

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
