package cloud_test

import (
	"testing"

	"github.com/outpost-robotics/outpost/cloud/pgtest"
)

// TestMain stops the private PostgreSQL the tests on it start (pgtest).
func TestMain(m *testing.M) { pgtest.Main(m) }
