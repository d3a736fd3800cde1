// Package qemutest runs a package's own tests for linux/arm64 under
// qemu-user, so a regression on a Raspberry Pi's or a Jetson's architecture
// shows without one. Tests that start child processes (crash and signal
// tests) start them with Command, which goes through the emulator when the
// tests themselves run emulated: this machine's kernel may have no
// binfmt_misc entry for arm64 binaries.
package qemutest

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// WrapperEnv names the program children are started through ("" for none).
const WrapperEnv = "OUTPOST_TEST_EXEC_WRAPPER"

// qemu is the user-mode emulator Debian's qemu-user-static installs.
const qemu = "qemu-aarch64-static"

// Command is exec.Command, started through $OUTPOST_TEST_EXEC_WRAPPER when
// set. A signal sent to the command's process reaches the emulated program:
// qemu-user runs it inside that process.
func Command(name string, args ...string) *exec.Cmd {
	if w := os.Getenv(WrapperEnv); w != "" {
		return exec.Command(w, append([]string{name}, args...)...)
	}
	return exec.Command(name, args...)
}

// Emulated reports whether these tests run under the emulator, started by
// RunArm64. Crash tests use it to kill fewer times there: each emulated start
// costs seconds, and the native run already covers the full count.
func Emulated() bool { return os.Getenv(WrapperEnv) != "" }

// RunArm64 cross-compiles the tests of the package in the working directory
// (a test's own package) for linux/arm64, runs those matching the regular
// expression run under qemu, and fails t unless every test named in want
// passed. It returns the output. It skips in -short runs, on arm64 itself
// and inside an emulated run.
func RunArm64(t testing.TB, run string, want ...string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("cross-compiles and emulates")
	}
	if runtime.GOARCH == "arm64" || Emulated() {
		t.Skip("already on arm64: the tests run natively")
	}
	emu, err := exec.LookPath(qemu)
	if err != nil {
		t.Fatalf("%s is not installed: scripts/deps installs it (Debian package qemu-user-static)", qemu)
	}
	bin := filepath.Join(t.TempDir(), "arm64.test")
	build := exec.Command("go", "test", "-c", "-trimpath", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("cross-compile the tests for arm64: %v\n%s", err, out)
	}
	cmd := exec.Command(emu, bin, "-test.run", run, "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), WrapperEnv+"="+emu)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("arm64 tests under qemu: %v\n%s", err, lastLines(string(out), 40))
	}
	for _, name := range want {
		if !strings.Contains(string(out), "--- PASS: "+name) {
			t.Fatalf("arm64 run lacks a pass of %s:\n%s", name, lastLines(string(out), 40))
		}
	}
	return string(out)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
