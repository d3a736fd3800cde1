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
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, RunConfig{DataDir: dir, Listen: "127.0.0.1:0", Log: testLogger(), Ready: func(a string) { addr <- a }})
	}()
	var url string
	select {
	case a := <-addr:
		url = "http://" + a
	case err := <-done:
		t.Fatal(err)
	}
	tok, err := os.ReadFile(filepath.Join(dir, AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	secrets.add(strings.TrimSpace(string(tok)))
	e := &env{t: t, url: url}
	who, err := e.client(strings.TrimSpace(string(tok))).auth.WhoAmI(ctx, connect.NewRequest(&fleetv1.WhoAmIRequest{}))
	if err != nil || !who.Msg.GetAdmin() {
		t.Fatalf("whoami: %v %v", who, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := Run(context.Background(), RunConfig{DataDir: dir, Listen: "127.0.0.1:0", CertFile: "x", Log: testLogger()}); err == nil || !strings.Contains(err.Error(), "go together") {
		t.Fatalf("a certificate without a key: %v", err)
	}
}
