// Command outpost is the CLI, which links the daemon and so Badger: a
// violation.
package main

import "github.com/outpost-robotics/outpost/daemon"

func main() { _ = daemon.Run }
