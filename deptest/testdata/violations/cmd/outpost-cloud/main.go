// Command outpost-cloud links the relay, whose tests (not its code) import
// the part's server: no violation; and the front end, which links the
// browser driver: a violation.
package main

import (
	"github.com/outpost-robotics/outpost/cloud/relay"
	"github.com/outpost-robotics/outpost/web"
)

func main() { _, _ = relay.Name, web.Handler }
