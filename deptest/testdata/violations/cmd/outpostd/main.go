// Command outpostd is the daemon. It links text/template, which it may not.
package main

import (
	"text/template"

	"github.com/outpost-robotics/outpost/daemon"
)

func main() {
	_ = template.New
	_ = daemon.Run()
}
