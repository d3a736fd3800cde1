// Package packaging_test builds the .deb with the real nfpm config and
// installs it with the real dpkg into a throwaway root, running the real
// maintainer scripts (chrootless, with DPKG_ROOT), and runs the arm64 daemon
// under qemu-user, so packaging and arm64 regressions show without a Pi.
package packaging_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: scripts/deps installs it", tool)
		}
	}
}

// buildDeb cross-builds the binaries for arch and packages them with the
// project's nfpm config, redirected to a scratch folder.
func buildDeb(t *testing.T, arch string) string {
	t.Helper()
	root := repoRoot(t)
	dir := t.TempDir()
	stage := filepath.Join(dir, "stage")
	for _, bin := range []string{"outpostd", "outpost"} {
		run(t, root, []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=" + arch}, "go", "build", "-trimpath", "-o", filepath.Join(stage, bin), "./cmd/"+bin)
	}
	cfg, err := os.ReadFile(filepath.Join(root, "packaging", "nfpm.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg = bytes.ReplaceAll(cfg, []byte("bin/deb-stage/"), []byte(stage+"/"))
	cfgPath := filepath.Join(dir, "nfpm.yaml")
	if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "outpost_"+arch+".deb")
	run(t, root, []string{"DEB_ARCH=" + arch, "DEB_VERSION=0.0.0~test"}, "go", "tool", "nfpm", "package", "--config", cfgPath, "--packager", "deb", "--target", out)
	return out
}

// throwawayRoot makes the least of a Debian root dpkg and shadow's tools
// need: a user database with video and dialout groups but no gpio or i2c.
func throwawayRoot(t *testing.T) string {
	t.Helper()
	r := t.TempDir()
	for _, d := range []string{"etc/systemd/system", "var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers", "var/log"} {
		if err := os.MkdirAll(filepath.Join(r, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"var/lib/dpkg/status":    "",
		"var/lib/dpkg/available": "",
		"etc/passwd":             "root:x:0:0:root:/root:/bin/bash\n",
		"etc/group":              "root:x:0:\nvideo:x:44:\ndialout:x:20:\n",
		"etc/shadow":             "root:*:19000:0:99999:7:::\n",
		"etc/gshadow":            "root:*::\nvideo:*::\ndialout:*::\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(r, name), []byte(body), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

func dpkg(t *testing.T, root string, args ...string) string {
	t.Helper()
	// Chrootless: the maintainer scripts run on the host with DPKG_ROOT set,
	// so the throwaway root needs no shell or libraries of its own.
	return run(t, "", nil, "dpkg", append([]string{"--root=" + root, "--force-script-chrootless", "--force-depends", "--log=/dev/null"}, args...)...)
}

func TestDebInstallsUpgradesRemovesAndPurges(t *testing.T) {
	need(t, "dpkg", "dpkg-deb", "useradd", "systemctl")
	if os.Geteuid() != 0 {
		t.Skip("installing into a throwaway root sets file owners, which needs root (CI runs as root)")
	}
	deb := buildDeb(t, "amd64")
	contents := run(t, "", nil, "dpkg-deb", "--contents", deb)
	for _, want := range []string{"./usr/bin/outpostd", "./usr/bin/outpost", "./lib/systemd/system/outpostd.service", "./etc/outpost/outpostd.json.example"} {
		if !strings.Contains(contents, want) {
			t.Errorf("package lacks %s", want)
		}
	}
	if conf := run(t, "", nil, "dpkg-deb", "--info", deb, "conffiles"); !strings.Contains(conf, "/etc/outpost/outpostd.json.example") {
		t.Errorf("example bootstrap file is not a conffile: %q", conf)
	}

	r := throwawayRoot(t)
	dpkg(t, r, "--install", deb)
	passwd, _ := os.ReadFile(filepath.Join(r, "etc/passwd"))
	group, _ := os.ReadFile(filepath.Join(r, "etc/group"))
	if !strings.Contains(string(passwd), "outpost:x:") || !strings.Contains(string(passwd), ":/var/lib/outpost:/usr/sbin/nologin") {
		t.Fatalf("no outpost system user:\n%s", passwd)
	}
	for _, g := range []string{"video", "dialout"} {
		if !strings.Contains(string(group), g+":x:") || !strings.Contains(string(group), ":outpost\n") {
			t.Errorf("outpost is not in group %s:\n%s", g, group)
		}
	}
	if strings.Contains(string(group), "gpio") {
		t.Errorf("a gpio group was invented:\n%s", group)
	}
	st, err := os.Stat(filepath.Join(r, "var/lib/outpost"))
	if err != nil || st.Mode().Perm() != 0o750 {
		t.Fatalf("state dir: %v %v", st, err)
	}
	if _, err := os.Lstat(filepath.Join(r, "etc/systemd/system/multi-user.target.wants/outpostd.service")); err != nil {
		t.Fatalf("unit not enabled: %v", err)
	}

	// A part's data and bootstrap file survive an upgrade and a remove.
	data := filepath.Join(r, "var/lib/outpost/store-marker")
	boot := filepath.Join(r, "etc/outpost/outpostd.json")
	for _, f := range []string{data, boot} {
		if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	dpkg(t, r, "--install", deb) // upgrade in place: scripts are idempotent
	passwd, _ = os.ReadFile(filepath.Join(r, "etc/passwd"))
	if n := strings.Count(string(passwd), "outpost:x:"); n != 1 {
		t.Fatalf("%d outpost users after upgrade", n)
	}
	dpkg(t, r, "--remove", "outpost")
	for _, f := range []string{data, boot} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("remove deleted %s: %v", f, err)
		}
	}
	if _, err := os.Stat(filepath.Join(r, "usr/bin/outpostd")); err == nil {
		t.Fatal("remove left the binary")
	}
	dpkg(t, r, "--purge", "outpost")
	for _, f := range []string{data, boot} {
		if _, err := os.Stat(f); err == nil {
			t.Fatalf("purge kept %s", f)
		}
	}
}

// TestArm64DaemonRunsUnderQemu runs the arm64 outpostd from the package
// under qemu-user, as on a Raspberry Pi or a Jetson.
func TestArm64DaemonRunsUnderQemu(t *testing.T) {
	if runtime.GOARCH == "arm64" {
		t.Skip("native arm64: the other tests already run arm64 code")
	}
	need(t, "qemu-aarch64-static")
	dir := t.TempDir()
	bin := filepath.Join(dir, "outpostd")
	run(t, repoRoot(t), []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64"}, "go", "build", "-trimpath", "-o", bin, "./cmd/outpostd")
	out := run(t, "", nil, "qemu-aarch64-static", bin, "--version")
	if !strings.Contains(out, "outpostd") || !strings.Contains(out, "linux/arm64") {
		t.Fatalf("arm64 outpostd --version printed %q", out)
	}
}
