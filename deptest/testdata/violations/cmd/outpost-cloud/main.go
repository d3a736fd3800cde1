// Command outpost-cloud links the relay, whose tests (not its code) import
// the part's server: no violation.
package main

import "github.com/outpost-robotics/outpost/cloud/relay"

func main() { _ = relay.Name }
