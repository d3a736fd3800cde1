// Package daemon links the store, so the CLI must not link it.
package daemon

import (
	"github.com/outpost-robotics/outpost/cache"
	"github.com/outpost-robotics/outpost/capture"
	"github.com/outpost-robotics/outpost/control"
	"github.com/outpost-robotics/outpost/robot"
	"github.com/outpost-robotics/outpost/sync"
)

var _ = capture.Name

// Run runs the daemon.
func Run() error {
	_ = cache.Open("/var/lib/outpost")
	_ = robot.Open
	_ = sync.Serve
	_, err := control.Listen(":8443")
	return err
}
