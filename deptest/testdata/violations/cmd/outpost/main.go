// Command outpost is the CLI, which links package cli and through it the
// daemon and Badger: a violation.
package main

import "github.com/outpost-robotics/outpost/cli"

func main() { _ = cli.Main }
