package relay

import (
	"testing"

	"github.com/outpost-robotics/outpost/control"
)

// A test may start a real part server: allowed.
func TestWithAPart(t *testing.T) { _ = control.Listen }
