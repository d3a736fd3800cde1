package cache

import (
	"strings"
	"testing"

	"github.com/outpost-robotics/outpost/qemutest"
)

// TestCrashKillArm64UnderQemu runs the SIGKILL crash test on linux/arm64
// under qemu-user: the store on a Raspberry Pi's or a Jetson's architecture.
func TestCrashKillArm64UnderQemu(t *testing.T) {
	out := qemutest.RunArm64(t, "^TestCrashKill$", "TestCrashKill")
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "kills") {
			t.Log("arm64:", strings.TrimSpace(l))
		}
	}
}
