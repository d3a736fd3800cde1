package systemd

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestUnitPassesSystemdAnalyzeVerify runs the real systemd-analyze on the
// unit, with ExecStart pointed at an executable that exists here.
func TestUnitPassesSystemdAnalyzeVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatal("systemd-analyze is not installed: scripts/deps installs it (Debian package systemd)")
	}
	dir := t.TempDir()
	unit := bytes.ReplaceAll(Unit, []byte("/usr/bin/outpostd"), []byte("/bin/true"))
	path := filepath.Join(dir, "outpostd.service")
	if err := os.WriteFile(path, unit, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", "--man=no", path).CombinedOutput()
	// systemd-analyze also reports on units the host lacks (in a container,
	// network-online.target's dependencies); only lines about our unit count.
	var ours []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "outpostd.service") {
			ours = append(ours, line)
		}
	}
	if len(ours) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, strings.Join(ours, "\n"))
	}
}

func TestUnitIsHardened(t *testing.T) {
	for _, want := range []string{
		"Type=notify", "WatchdogSec=30s", "Restart=on-failure", "ProtectSystem=strict",
		"ProtectHome=yes", "PrivateTmp=yes", "NoNewPrivileges=yes", "StateDirectory=outpost", "User=outpost",
		"ReadWritePaths=-/srv/outpost -/mnt -/media",
	} {
		if !bytes.Contains(Unit, []byte("\n"+want+"\n")) {
			t.Errorf("unit lacks %q", want)
		}
	}
}
