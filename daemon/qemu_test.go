package daemon

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestArm64UnderQemu cross-compiles this package's tests for linux/arm64
// and runs the lifecycle tests that touch the store under qemu-user: the
// Badger store on the Pi's architecture, opened, written under heavy
// capture, stopped by a real SIGTERM and reopened with nothing
// acknowledged lost. The child process is started through qemu too
// (OUTPOST_TEST_EXEC_WRAPPER), since this kernel may have no binfmt_misc.
func TestArm64UnderQemu(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiles and emulates")
	}
	if runtime.GOARCH == "arm64" || os.Getenv(wrapperEnv) != "" {
		t.Skip("already on arm64")
	}
	qemu, err := exec.LookPath("qemu-aarch64-static")
	if err != nil {
		t.Skip("qemu-aarch64-static not installed (scripts/deps installs it)")
	}
	bin := filepath.Join(t.TempDir(), "daemon-arm64.test")
	build := exec.Command("go", "test", "-c", "-trimpath", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("cross-compile the tests for arm64: %v\n%s", err, out)
	}
	run := exec.Command(qemu, bin, "-test.run", "^(TestSIGTERMDuringHeavyCaptureLosesNothing|TestStartsOfflineWithCachedConfig)$", "-test.v", "-test.count=1")
	run.Env = append(os.Environ(), wrapperEnv+"="+qemu)
	out, err := run.CombinedOutput()
	if err != nil {
		t.Fatalf("arm64 tests under qemu: %v\n%s", err, tail(string(out)))
	}
	for _, want := range []string{"--- PASS: TestSIGTERMDuringHeavyCaptureLosesNothing", "--- PASS: TestStartsOfflineWithCachedConfig"} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("arm64 run lacks %q:\n%s", want, tail(string(out)))
		}
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "appends acknowledged") {
			t.Log("arm64:", strings.TrimSpace(l))
		}
	}
}
