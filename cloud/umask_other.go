//go:build !unix

package cloud

// ownerOnlyFiles does nothing where there is no umask; the data folder's
// own permissions protect the files.
func ownerOnlyFiles() {}
