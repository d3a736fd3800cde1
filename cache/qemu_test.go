package cache

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestCrashKillArm64UnderQemu cross-compiles this package's tests for
// linux/arm64 and runs the SIGKILL crash test under qemu-user, so a
// regression of the store on a Raspberry Pi's or a Jetson's architecture is
// caught without one. Children are started through qemu as well
// (OUTPOST_TEST_EXEC_WRAPPER): this kernel may have no binfmt_misc.
func TestCrashKillArm64UnderQemu(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiles and emulates")
	}
	if runtime.GOARCH == "arm64" || os.Getenv(execWrapperEnv) != "" {
		t.Skip("already on arm64: TestCrashKill runs natively")
	}
	qemu, err := exec.LookPath("qemu-aarch64-static")
	if err != nil {
		t.Fatal("qemu-aarch64-static is not installed: scripts/deps installs it (Debian package qemu-user-static)")
	}
	bin := filepath.Join(t.TempDir(), "cache-arm64.test")
	build := exec.Command("go", "test", "-c", "-trimpath", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("cross-compile the tests for arm64: %v\n%s", err, out)
	}
	run := exec.Command(qemu, bin, "-test.run", "^TestCrashKill$", "-test.v", "-test.count=1")
	run.Env = append(os.Environ(), execWrapperEnv+"="+qemu)
	out, err := run.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestCrashKill") {
		t.Fatalf("arm64 crash test under qemu: %v\n%s", err, lastLines(string(out), 30))
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "kills") {
			t.Log("arm64:", strings.TrimSpace(l))
		}
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
