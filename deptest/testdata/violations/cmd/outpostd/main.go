// Command outpostd is the daemon.
package main

import "github.com/outpost-robotics/outpost/daemon"

func main() { _ = daemon.Run() }
