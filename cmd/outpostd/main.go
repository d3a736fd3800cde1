// Command outpostd is the daemon every robot part runs under systemd.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/outpost-robotics/outpost/version"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run parses flags; exit code 2 is a usage or bootstrap-file error, as
// systemd's RestartPreventExitStatus can then tell it from a crash.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("outpostd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.String("config", "/etc/outpost/outpostd.json", "bootstrap file written when the part was provisioned")
	fs.String("data-dir", "/var/lib/outpost", "folder of the local store")
	fs.String("listen", ":8443", "control plane address")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *showVersion {
		fmt.Fprintln(stdout, version.String("outpostd"))
		return 0
	}
	fmt.Fprintln(stderr, "outpostd: the daemon runtime is not part of this build yet; only --version works")
	return 1
}
