//go:build unix

package cloud

import "syscall"

// ownerOnlyFiles makes every file and folder the process creates from now
// on readable by its user alone. The stores hold the signing key and
// credential hashes, and Badger and its memory-mapped files ask for 0644
// and 0666, so the mask is what keeps them private.
func ownerOnlyFiles() { syscall.Umask(0o077) }
