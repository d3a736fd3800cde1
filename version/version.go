// Package version holds what the build stamped into the binary.
//
// The Makefile sets Version and Commit with -ldflags "-X ..."; they are
// written by the linker and never changed at run time.
package version

import (
	"fmt"
	"runtime"
)

// Version is the release version, or "dev" for an unstamped build.
var Version = "dev"

// Commit is the git commit the binary was built from, or "unknown".
var Commit = "unknown"

// String returns the line every binary prints for --version.
func String(binary string) string {
	return fmt.Sprintf("%s %s (commit %s, %s, %s/%s)", binary, Version, Commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
