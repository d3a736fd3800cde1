package daemon

import (
	"strings"
	"testing"

	"github.com/outpost-robotics/outpost/qemutest"
)

// TestArm64UnderQemu runs the lifecycle tests that touch the store on
// linux/arm64 under qemu-user: the Badger store on the Pi's architecture,
// opened, written under heavy capture, stopped by a real SIGTERM and
// reopened with nothing acknowledged lost. Then the package path: a part
// reporting linux/arm64 gets blinker's arm64 build from the real cloud,
// downloads, verifies, unpacks and runs it.
func TestArm64UnderQemu(t *testing.T) {
	tests := []string{"TestSIGTERMDuringHeavyCaptureLosesNothing", "TestStartsOfflineWithCachedConfig", "TestPackageForThePartsPlatform"}
	out := qemutest.RunArm64(t, "^("+strings.Join(tests, "|")+")$", tests...)
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "appends acknowledged") || strings.HasPrefix(l, "--- PASS: ") {
			t.Log("arm64:", strings.TrimSpace(l))
		}
	}
}
