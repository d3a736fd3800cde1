package authz_test

import (
	"testing"

	authzv1 "github.com/outpost-robotics/outpost/api/gen/outpost/authz/v1"
	"github.com/outpost-robotics/outpost/authz"
	"github.com/outpost-robotics/outpost/capture"
)

// TestDecide imports capture, which a test of authz may not either.
func TestDecide(t *testing.T) {
	if authz.Decide(authzv1.Rule{Action: capture.Name}) {
		t.Fatal("capture is no machine action")
	}
}
