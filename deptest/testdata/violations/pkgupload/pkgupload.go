// Package pkgupload imports pkgformat, which it may, and the daemon, which
// it may not: a violation.
package pkgupload

import (
	"github.com/outpost-robotics/outpost/daemon"
	"github.com/outpost-robotics/outpost/pkgformat"
)

// Upload uploads through the daemon.
func Upload() error {
	_ = pkgformat.Open
	return daemon.Run()
}
