// Package cli is the CLI's code, which links the daemon and so Badger, and
// the cloud's relay: violations.
package cli

import (
	"github.com/outpost-robotics/outpost/cloud/relay"
	"github.com/outpost-robotics/outpost/daemon"
)

// Main runs the CLI.
func Main() error {
	_ = relay.Name
	return daemon.Run()
}
