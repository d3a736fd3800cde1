// Package cli is the CLI's code, which links the daemon and so Badger: a
// violation.
package cli

import "github.com/outpost-robotics/outpost/daemon"

// Main runs the CLI.
func Main() error { return daemon.Run() }
