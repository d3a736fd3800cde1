package cloudtest_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/outpost-robotics/outpost/api/codec"
	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1/syncv1connect"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/cloud/cloudtest"
	"github.com/outpost-robotics/outpost/cloud/ingest"
	"github.com/outpost-robotics/outpost/credential"
	"github.com/outpost-robotics/outpost/signed"
)

var epoch = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// partClient is a part's sync client as the wire sees it: connect over
// the given HTTP client, with the part's credentials in the header.
func partClient(hc *http.Client, url string, p cloudtest.Part) syncv1connect.SyncServiceClient {
	auth := connect.WithInterceptors(credential.Bearer{Authorization: "Part " + p.ID + ":" + p.Secret})
	return syncv1connect.NewSyncServiceClient(hc, url, append(codec.ClientOptions(), auth)...)
}

func sensorConfig(name string) *configv1.RobotConfig {
	return &configv1.RobotConfig{LogLevel: "info", Components: []*configv1.Component{{Name: name, Type: configv1.ComponentType_COMPONENT_TYPE_SENSOR, Model: "fake"}}}
}

// TestProvisionedPartSyncs provisions a part through the fleet API and
// plays its side by hand: its first pull brings a config and grants signed
// with the keys of its bootstrap file; a config edit, an API key and its
// revocation each bring a newer version; uploads are counted per stream.
func TestProvisionedPartSyncs(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewFake(epoch)
	c := cloudtest.New(t, cloudtest.Options{Clock: clk})
	p := c.Provision(t, cloudtest.PartOptions{Config: sensorConfig("sensor1")})
	if p.CloudURL != c.URL || p.Bootstrap.GetPartSecret() != p.Secret || p.Bootstrap.GetCaFile() != "" || len(p.Keys) != 1 {
		t.Fatalf("part %+v", p)
	}
	part := partClient(c.HTTPClient(), p.CloudURL, p)

	var cfgVersion, grantsVersion uint64
	pull := func() (*syncv1.ConfigDocument, *syncv1.GrantBundle) {
		t.Helper()
		res, err := part.Pull(ctx, connect.NewRequest(&syncv1.PullRequest{ConfigVersion: cfgVersion, GrantsVersion: grantsVersion}))
		if err != nil {
			t.Fatal(err)
		}
		if !res.Msg.GetServerTime().AsTime().Equal(clk.Now()) {
			t.Errorf("server time %v, want the injected clock's %v", res.Msg.GetServerTime().AsTime(), clk.Now())
		}
		var cfg *syncv1.ConfigDocument
		var g *syncv1.GrantBundle
		if d := res.Msg.GetConfig(); d != nil {
			cfg = &syncv1.ConfigDocument{}
			if err := signed.Verify(p.Keys, d, cfg); err != nil {
				t.Fatalf("config does not verify with the bootstrap file's keys: %v", err)
			}
			cfgVersion = cfg.GetVersion()
		}
		if d := res.Msg.GetGrants(); d != nil {
			g = &syncv1.GrantBundle{}
			if err := signed.Verify(p.Keys, d, g); err != nil {
				t.Fatalf("grants do not verify with the bootstrap file's keys: %v", err)
			}
			grantsVersion = g.GetVersion()
		}
		return cfg, g
	}
	hasKey := func(g *syncv1.GrantBundle, id string) bool {
		for _, pr := range g.GetPrincipals() {
			if pr.GetId() == id {
				return true
			}
		}
		return false
	}

	cfg, g := pull()
	if cfg == nil || g == nil || cfg.GetPartId() != p.ID || cfg.GetMachineId() != p.MachineID || len(cfg.GetConfig().GetComponents()) != 1 {
		t.Fatalf("first pull: config %v, grants %v", cfg, g)
	}
	if !g.GetExpiresAt().AsTime().Equal(epoch.Add(60 * 24 * time.Hour)) {
		t.Fatalf("grants expire at %v, want 60 days after the cloud's now", g.GetExpiresAt().AsTime())
	}
	if cfg, g := pull(); cfg != nil || g != nil {
		t.Fatalf("a pull with nothing changed sent %v, %v", cfg, g)
	}

	if rev := c.SetMachineConfig(t, p.MachineID, sensorConfig("sensor2")); rev != 2 {
		t.Fatalf("revision %d, want 2", rev)
	}
	if cfg, _ := pull(); cfg == nil || cfg.GetConfig().GetComponents()[0].GetName() != "sensor2" {
		t.Fatalf("after the edit: config %v", cfg)
	}

	key := c.CreateAPIKey(t, "operator", "machine/"+p.MachineID)
	if _, g := pull(); g == nil || !hasKey(g, key.ID) {
		t.Fatalf("after creating key %s: grants %v", key.ID, g)
	}
	c.RevokeAPIKey(t, key.ID)
	if _, g := pull(); g == nil || hasKey(g, key.ID) {
		t.Fatalf("after revoking key %s: grants %v", key.ID, g)
	}

	recs := make([]*syncv1.Record, 5)
	for i := range recs {
		recs[i] = &syncv1.Record{Seq: uint64(i + 1), Time: timestamppb.New(clk.Now()), Payload: fmt.Appendf(nil, "line %d", i)}
	}
	for range 2 { // the repeat is a no-op
		res, err := part.Upload(ctx, connect.NewRequest(&syncv1.UploadRequest{StoreId: "store-1", Stream: "logs.info", Records: recs}))
		if err != nil || res.Msg.GetAckedThrough() != 5 {
			t.Fatalf("upload: %v, %v", res, err)
		}
	}
	got := c.Ingested(t, p.ID)
	if len(got) != 1 || got["logs.info"].Records != 5 || got["logs.info"].Conflicts != 0 {
		t.Fatalf("ingested %+v, want 5 info log lines", got)
	}
	if w, err := c.Ingest().AckedThrough(ctx, ingest.StreamKey{PartID: p.ID, StoreID: "store-1", Stream: "logs.info"}); err != nil || w != 5 {
		t.Fatalf("watermark %d, %v", w, err)
	}
	if c.WireBytes() == 0 {
		t.Fatal("no wire bytes counted")
	}

	// The admin's token is minted on the cloud's clock: it works however far
	// a fake clock moved.
	clk.Advance(90 * 24 * time.Hour)
	c.SetMachineConfig(t, p.MachineID, sensorConfig("sensor3"))

	// Another part's credentials reach nothing of this one.
	other := c.Provision(t, cloudtest.PartOptions{})
	wrong := other
	wrong.ID = p.ID
	if _, err := partClient(c.HTTPClient(), c.URL, wrong).Pull(ctx, connect.NewRequest(&syncv1.PullRequest{})); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("a pull with another part's secret: %v", err)
	}
}

// TestTLSWithAName serves HTTPS with a certificate for a name no DNS knows:
// a client that trusts the CA file and dials the loopback address for
// that name gets through; a client that trusts only the system roots does not.
func TestTLSWithAName(t *testing.T) {
	c := cloudtest.New(t, cloudtest.Options{TLS: true, Hostnames: []string{"cloud.outpost.test"}})
	if !strings.HasPrefix(c.URL, "https://127.0.0.1:") || c.CAFile == "" {
		t.Fatalf("URL %q, CA file %q", c.URL, c.CAFile)
	}
	_, port, _ := net.SplitHostPort(c.Addr())
	named := "https://cloud.outpost.test:" + port
	p := c.Provision(t, cloudtest.PartOptions{CloudURL: named})
	if p.CloudURL != named || p.Bootstrap.GetCaFile() != c.CAFile {
		t.Fatalf("bootstrap file %v", p.Bootstrap)
	}
	pem, err := os.ReadFile(c.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("the CA file holds no certificate")
	}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		if addr != "cloud.outpost.test:"+port {
			return nil, errors.New("unexpected address " + addr)
		}
		return (&net.Dialer{}).DialContext(ctx, network, c.Addr())
	}
	hc := &http.Client{Transport: &http.Transport{DialContext: dial, TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	res, err := partClient(hc, named, p).Pull(context.Background(), connect.NewRequest(&syncv1.PullRequest{}))
	if err != nil || res.Msg.GetGrants() == nil {
		t.Fatalf("pull over HTTPS by name: %v, %v", res, err)
	}
	untrusting := &http.Client{Transport: &http.Transport{DialContext: dial}}
	if _, err := partClient(untrusting, named, p).Pull(context.Background(), connect.NewRequest(&syncv1.PullRequest{})); err == nil {
		t.Fatal("a client without the CA file trusted the cloud")
	}
}

// recordingTB catches the secret check's verdict.
type recordingTB struct {
	testing.TB
	errors []string
}

func (r *recordingTB) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

// TestLeakedCredentialFailsTheTest logs a part secret through the cloud's
// logger and checks the check at the end of the test catches it, without
// quoting it.
func TestLeakedCredentialFailsTheTest(t *testing.T) {
	var rec *recordingTB
	var secret string
	t.Run("leaky", func(t *testing.T) {
		rec = &recordingTB{TB: t}
		c := cloudtest.New(rec, cloudtest.Options{})
		p := c.Provision(rec, cloudtest.PartOptions{})
		secret = p.Secret
		// A wrong-part pull logs the refusal; a part id carrying the
		// secret stands in for a handler that would quote its input.
		leak := p
		leak.ID = "x" + p.Secret
		_, _ = partClient(c.HTTPClient(), c.URL, leak).Pull(context.Background(), connect.NewRequest(&syncv1.PullRequest{}))
	})
	if len(rec.errors) != 1 || !strings.Contains(rec.errors[0], "credential") {
		t.Fatalf("check reported %q, want one leaked credential", rec.errors)
	}
	if strings.Contains(rec.errors[0], secret) {
		t.Fatal("the check quoted the secret")
	}
}
