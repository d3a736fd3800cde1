package cloud_test

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	"github.com/outpost-robotics/outpost/cloud"
	"github.com/outpost-robotics/outpost/cloud/cloudtest"
	"github.com/outpost-robotics/outpost/cloud/pgtest"
)

// TestRun starts the cloud as `outpost-cloud serve` does, on an empty data
// folder, signs in with the admin.token it wrote, and shuts it down.
func TestRun(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	r := startRun(t, dir)
	who, err := r.admin.Auth.WhoAmI(r.ctx, connect.NewRequest(&fleetv1.WhoAmIRequest{}))
	if err != nil || !who.Msg.GetAdmin() {
		t.Fatalf("whoami: %v %v", who, err)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	if err := cloud.Run(context.Background(), cloud.RunConfig{DataDir: dir, Listen: "127.0.0.1:0", CertFile: "x", Log: r.log.Logger()}); err == nil || !strings.Contains(err.Error(), "go together") {
		t.Fatalf("a certificate without a key: %v", err)
	}
}

// TestRunOnPostgreSQL serves the cloud from PostgreSQL, as `outpost-cloud
// serve --database` does: what the admin makes survives a restart of the
// cloud, the signing key and the admin's session come from the database (a
// second start signs with the same key; a second replica on another data
// folder writes the same admin token), and the data folder holds nothing
// but the admin's token.
func TestRunOnPostgreSQL(t *testing.T) {
	db := pgtest.Database(t)
	dir := filepath.Join(t.TempDir(), "data")
	r := startRunWith(t, cloud.RunConfig{DataDir: dir, Database: db})
	if _, err := r.admin.Org.CreateOrg(r.ctx, connect.NewRequest(&fleetv1.CreateOrgRequest{Name: "Acme"})); err != nil {
		t.Fatal(err)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != cloud.AdminTokenFile {
		t.Fatalf("the data folder of a cloud on PostgreSQL holds %v, want only %s", entries, cloud.AdminTokenFile)
	}
	// The admin's token from the first start still works: the key that
	// signed it came back from the database.
	r = startRunWith(t, cloud.RunConfig{DataDir: dir, Database: db})
	defer r.stop()
	orgs, err := r.admin.Org.ListOrgs(r.ctx, connect.NewRequest(&fleetv1.ListOrgsRequest{}))
	if err != nil || len(orgs.Msg.GetOrgs()) != 1 || orgs.Msg.GetOrgs()[0].GetName() != "Acme" {
		t.Fatalf("the orgs after a restart: %v, %v", orgs, err)
	}
	other := filepath.Join(t.TempDir(), "replica")
	r2 := startRunWith(t, cloud.RunConfig{DataDir: other, Database: db})
	defer r2.stop()
	first, err1 := os.ReadFile(filepath.Join(dir, cloud.AdminTokenFile))
	second, err2 := os.ReadFile(filepath.Join(other, cloud.AdminTokenFile))
	if err1 != nil || err2 != nil || string(first) != string(second) {
		t.Fatalf("a second replica's admin token differs from the first's (%v, %v): the session is not the database's", err1, err2)
	}
}

// running is a cloud that Run serves on a data folder, as `outpost-cloud
// serve` runs it, with clients acting as its admin.
type running struct {
	ctx    context.Context
	admin  *cloudtest.Clients
	url    string
	log    *cloudtest.Log
	cancel context.CancelFunc
	done   chan error
}

// startRun starts Run on dir and waits until it serves; the admin's token
// comes from the admin.token it wrote.
func startRun(t *testing.T, dir string) *running {
	t.Helper()
	return startRunWith(t, cloud.RunConfig{DataDir: dir})
}

// startRunWith is startRun with more of the configuration.
func startRunWith(t *testing.T, cfg cloud.RunConfig) *running {
	t.Helper()
	dir := cfg.DataDir
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{ctx: ctx, cancel: cancel, done: make(chan error, 1), log: cloudtest.NewLog(t)}
	addr := make(chan string, 1)
	go func() {
		cfg.Listen, cfg.Log, cfg.Ready = "127.0.0.1:0", r.log.Logger(), func(a string) { addr <- a }
		r.done <- cloud.Run(ctx, cfg)
	}()
	var url string
	select {
	case a := <-addr:
		url = "http://" + a
	case err := <-r.done:
		t.Fatal(err)
	}
	tok, err := os.ReadFile(filepath.Join(dir, cloud.AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	admin := strings.TrimSpace(string(tok))
	r.log.Remember(admin)
	r.admin = cloudtest.NewClients(http.DefaultClient, url, connect.WithInterceptors(cloudtest.CloudAuth(admin, time.Now)))
	r.url = url
	return r
}

// stop ends Run and returns what it returned.
func (r *running) stop() error {
	r.cancel()
	return <-r.done
}
