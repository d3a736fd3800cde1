package daemon

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/control/v1/controlv1connect"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/cloud/cloudtest"
)

// TestHelperSocketPeer is not a test of its own: it is the process that
// TestChildrenCannotUseTheBreakGlassSocket has the part start. It calls
// the break-glass socket as an owner would (StopAll) and writes what
// happened to a file.
func TestHelperSocketPeer(t *testing.T) {
	sock, out := os.Getenv("OUTPOST_TEST_SOCKET"), os.Getenv("OUTPOST_TEST_RESULT")
	if sock == "" || out == "" {
		t.Skip("a helper process of TestChildrenCannotUseTheBreakGlassSocket")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ctl := controlv1connect.NewControlServiceClient(socketClient(sock), "http://outpostd")
	result := "allowed"
	if _, err := ctl.StopAll(ctx, connect.NewRequest(&controlv1.StopAllRequest{})); err != nil {
		result = "refused: " + err.Error()
	}
	if err := os.WriteFile(out+".tmp", []byte(result), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(out+".tmp", out); err != nil {
		t.Fatal(err)
	}
}

// TestChildrenCannotUseTheBreakGlassSocket: processes the part starts run
// as the daemon's user, yet one calling the break-glass socket, directly
// or through a shell, is refused; the owner at the socket (this process,
// not started by the daemon) still gets in.
func TestChildrenCannotUseTheBreakGlassSocket(t *testing.T) {
	p := newPart(t)
	results := t.TempDir()
	sock := filepath.Join(p.RunDir, "control.sock")
	helper := func(id, command string, args ...string) *configv1.Process {
		return &configv1.Process{Id: id, Command: command, Args: args, Restart: configv1.RestartPolicy_RESTART_POLICY_NEVER,
			Env: map[string]string{"OUTPOST_TEST_SOCKET": sock, "OUTPOST_TEST_RESULT": filepath.Join(results, id)}}
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cfg := &configv1.RobotConfig{LogLevel: "info", Processes: []*configv1.Process{
		helper("direct", self, "-test.run=^TestHelperSocketPeer$"),
		helper("shell", "/bin/sh", "-c", `"$0" -test.run='^TestHelperSocketPeer$'; exit $?`, self),
	}}
	now := time.Now()
	p.hold(t, now, cfg)
	r := run(t, p, clock.NewReal(), nil)
	ep := <-r.ready
	if ep.Socket != sock {
		t.Fatalf("socket at %s, want %s", ep.Socket, sock)
	}
	for _, id := range []string{"direct", "shell"} {
		var got string
		cloudtest.Eventually(t, "the "+id+" process's call on the socket", func() error {
			b, err := os.ReadFile(filepath.Join(results, id))
			if err != nil {
				return err
			}
			got = string(b)
			return nil
		})
		if !strings.HasPrefix(got, "refused: ") {
			t.Errorf("a process the part started (%s) calls the break-glass socket: %s", id, got)
		}
	}
	ctl := controlv1connect.NewControlServiceClient(socketClient(ep.Socket), "http://outpostd")
	if _, err := ctl.Status(context.Background(), connect.NewRequest(&controlv1.StatusRequest{})); err != nil {
		t.Errorf("the owner at the socket: %v", err)
	}
	if err := r.stop(t); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}
