package cloud

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"connectrpc.com/connect"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
)

// TestRun starts the cloud as `outpost-cloud serve` does, on an empty data
// folder, signs in with the admin.token it wrote, and shuts it down.
func TestRun(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	r := startRun(t, dir)
	who, err := r.admin.auth.WhoAmI(r.ctx, connect.NewRequest(&fleetv1.WhoAmIRequest{}))
	if err != nil || !who.Msg.GetAdmin() {
		t.Fatalf("whoami: %v %v", who, err)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	if err := Run(context.Background(), RunConfig{DataDir: dir, Listen: "127.0.0.1:0", CertFile: "x", Log: testLogger()}); err == nil || !strings.Contains(err.Error(), "go together") {
		t.Fatalf("a certificate without a key: %v", err)
	}
}

// running is a cloud that Run serves on a data folder, as `outpost-cloud
// serve` runs it, with clients acting as its admin.
type running struct {
	ctx    context.Context
	admin  *clients
	cancel context.CancelFunc
	done   chan error
}

// startRun starts Run on dir and waits until it serves; the admin's token
// comes from the admin.token it wrote.
func startRun(t *testing.T, dir string) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{ctx: ctx, cancel: cancel, done: make(chan error, 1)}
	addr := make(chan string, 1)
	go func() {
		r.done <- Run(ctx, RunConfig{DataDir: dir, Listen: "127.0.0.1:0", Log: testLogger(), Ready: func(a string) { addr <- a }})
	}()
	var url string
	select {
	case a := <-addr:
		url = "http://" + a
	case err := <-r.done:
		t.Fatal(err)
	}
	tok, err := os.ReadFile(filepath.Join(dir, AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	secrets.add(strings.TrimSpace(string(tok)))
	r.admin = (&env{t: t, url: url}).client(strings.TrimSpace(string(tok)))
	return r
}

// stop ends Run and returns what it returned.
func (r *running) stop() error {
	r.cancel()
	return <-r.done
}
