package control

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCLI drives the real `outpost robot` binary against a running control
// plane. It needs the binary, so it runs only when $OUTPOST_CLI names one:
//
//	go build -o /tmp/outpost ./cmd/outpost && OUTPOST_CLI=/tmp/outpost go test -run TestCLI ./control/
func TestCLI(t *testing.T) {
	bin := os.Getenv("OUTPOST_CLI")
	if bin == "" {
		t.Skip("set OUTPOST_CLI to an outpost binary")
	}
	e := newEnv(t)
	home := t.TempDir()
	run := func(wantErr bool, args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, ".config"), "OUTPOST_ROBOT="+e.addr,
			"OUTPOST_TOKEN=", "OUTPOST_API_KEY=")
		out, err := cmd.CombinedOutput()
		if (err != nil) != wantErr {
			t.Fatalf("outpost %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	owner := "--api-key=" + e.creds.key(ownerKey)
	operator := "--api-key=" + e.creds.key(opKey)
	if out := run(true, "robot", owner, "status"); !strings.Contains(out, "not a trusted robot") {
		t.Fatalf("untrusted: %s", out)
	}
	if out := run(false, "robot", "trust", e.addr); !strings.Contains(out, e.srv.Fingerprint()) || !strings.Contains(out, "--yes") {
		t.Fatalf("trust: %s", out)
	}
	run(false, "robot", "trust", e.addr, "--yes")
	cfg := filepath.Join(home, "cfg.json")
	if err := os.WriteFile(cfg, []byte(`{}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"status"}, "offline"},
		{[]string{"whoami"}, "owner of machine/m1"},
		{[]string{"components"}, "arm"},
		{[]string{"do", "arm", `{"move":1}`}, `"move": 1`},
		{[]string{"readings", "temp"}, "21.5"},
		{[]string{"stop"}, "every component stopped"},
		{[]string{"config"}, "{}"},
		{[]string{"config", "edit", cfg}, "proposal 1"},
		{[]string{"logs"}, "careful"},
		{[]string{"logs", "--follow"}, "hello"},
		{[]string{"restart"}, "restarting"},
		{[]string{"data", "ls"}, "cam"},
		{[]string{"data", "export", "--out", filepath.Join(home, "export")}, "exported 2 captures"},
		{[]string{"data", "tag", "1", "--add", "checked"}, "tags changed on 1 of 1 captures"},
		{[]string{"data", "rm", "2", "--yes"}, "deleted 1 of 1 captures"},
		{[]string{"--webrtc", "whoami"}, "webrtc"},
	} {
		if out := run(false, append([]string{"robot", owner}, tc.args...)...); !strings.Contains(out, tc.want) {
			t.Errorf("%v: %s", tc.args, out)
		}
	}
	if out := run(true, "robot", operator, "restart"); !strings.Contains(out, "permission_denied") {
		t.Errorf("operator restart: %s", out)
	}
	if out := run(true, "robot", operator, "--webrtc", "config"); !strings.Contains(out, "permission_denied") {
		t.Errorf("operator config over webrtc: %s", out)
	}
	if out := run(true, "robot", operator, "data", "rm", "1", "--yes"); !strings.Contains(out, "may not data.edit") {
		t.Errorf("operator deletes a capture: %s", out)
	}
}
