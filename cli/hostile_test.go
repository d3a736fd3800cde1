package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/cloud/cloudtest"
	"github.com/outpost-robotics/outpost/cloudsync"
)

// assertNoEscapes fails when out holds anything a terminal acts on, and
// checks that the hostile text is still shown, escaped.
func assertNoEscapes(t *testing.T, what, out string, shown ...string) {
	t.Helper()
	for _, bad := range []string{"\x1b", "\x07", "\u009b", "\u202e", "\r"} {
		if strings.Contains(out, bad) {
			t.Errorf("%s prints %q raw:\n%q", what, bad, out)
		}
	}
	for _, s := range shown {
		if !strings.Contains(out, s) {
			t.Errorf("%s does not show %s:\n%s", what, s, out)
		}
	}
}

// TestLogsEscapePartText: a part uploads log entries built to take over
// the terminal of whoever reads them; `outpost logs`, in text and in JSON,
// shows them escaped, and so does the part's status in `machine status`.
func TestLogsEscapePartText(t *testing.T) {
	// The CLI dates its proofs by cliTestTime; the cloud's clock agrees.
	cl := cloudtest.New(t, cloudtest.Options{Clock: clock.NewFake(cliTestTime)})
	part := cl.Provision(t, cloudtest.PartOptions{})
	owner := cl.CreateAPIKey(t, "owner", "machine/"+part.MachineID)
	client, err := cloudsync.NewClient(cloudsync.ClientOptions{CloudURL: part.CloudURL, PartID: part.ID, PartSecret: part.Secret,
		RetryMax: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	entry := &syncv1.LogEntry{Level: "error", Logger: "robot\x1b[8m", Message: "\x1b]52;c;cm0gLXJmIH4=\x07\x1b[2J\u009b31mfine\r\nFAKE ok \u202egnp.exe",
		FieldsJson: `{"k":"\u001b[1m"}`}
	payload, err := proto.Marshal(entry)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Upload(ctx, connect.NewRequest(&syncv1.UploadRequest{StoreId: "s1", Stream: "logs.warn", Records: []*syncv1.Record{
		{Seq: 1, Time: timestamppb.New(cl.Clock.Now().Add(-time.Minute)), Payload: payload}}})); err != nil {
		t.Fatal(err)
	}
	if _, err := client.ReportStatus(ctx, connect.NewRequest(&syncv1.ReportStatusRequest{Status: &syncv1.PartStatus{Version: "0.6.0\x1b[2J"}})); err != nil {
		t.Fatal(err)
	}

	s := &session{t: t, configDir: t.TempDir(), vars: map[string]string{"OUTPOST_CLOUD": cl.URL, "OUTPOST_TOKEN": owner.Token}}
	out := s.run("", "logs", "--machine", part.MachineID, "--from", "2000-01-01T00:00:00Z")
	assertNoEscapes(t, "outpost logs", out, `\x1b]52;c;cm0gLXJmIH4=\x07\x1b[2J\u009b31mfine\r\nFAKE ok \u202egnp.exe`, `robot\x1b[8m`)
	if strings.Count(out, "\n") != 1 {
		t.Errorf("one entry printed as %d lines:\n%s", strings.Count(out, "\n"), out)
	}
	out = s.run("", "logs", "--machine", part.MachineID, "--from", "2000-01-01T00:00:00Z", "--json")
	assertNoEscapes(t, "outpost logs --json", out, `\u001b]52;c;`, `\u009b31mfine`, `\u202egnp.exe`)
	out = s.run("", "machine", "status", part.MachineID)
	assertNoEscapes(t, "outpost machine status", out, `0.6.0\x1b[2J`)
}

// TestRobotLogsEscapePartText: a process on the part prints escape
// sequences and invalid UTF-8; `outpost robot logs` shows the line, escaped
// (the bad bytes as U+FFFD: protobuf strings are UTF-8).
func TestRobotLogsEscapePartText(t *testing.T) {
	cfg := proto.Clone(robotConfig).(*configv1.RobotConfig)
	cfg.Processes = []*configv1.Process{{Id: "noisy", Command: "/bin/sh", Restart: configv1.RestartPolicy_RESTART_POLICY_NEVER,
		Args: []string{"-c", `printf 'hostile \033]0;pwned\007\033[2J\302\233\342\200\256 \377\376 end\n'`}}}
	cl := cloudtest.New(t, cloudtest.Options{})
	rp := startRobot(t, cl, robotOptions{syncEvery: time.Hour, config: cfg})
	s := newRobotSession(t, map[string]string{"OUTPOST_ROBOT": rp.ep.Control, "OUTPOST_API_KEY": rp.owner.Token})
	s.ok("robot", "trust", rp.ep.Control, "--yes")
	var out string
	cloudtest.Eventually(t, "the process's line in the part's log", func() error {
		out = s.ok("robot", "logs")
		if !strings.Contains(out, "hostile ") {
			return fmt.Errorf("%w:\n%s", errLineMissing, out)
		}
		return nil
	})
	assertNoEscapes(t, "outpost robot logs", out, `hostile \x1b]0;pwned\x07\x1b[2J\u009b\u202e`)
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "hostile") && !strings.Contains(line, " \ufffd end") {
			t.Errorf("the line lost its end: %q", line)
		}
	}
	out = s.ok("robot", "logs", "--json")
	assertNoEscapes(t, "outpost robot logs --json", out, `\u001b]0;pwned\u0007\u001b[2J\u009b\u202e`)
}

var errLineMissing = errors.New("not logged yet")
