//go:build !linux

package cache

// releaseMappedPages is a no-op where /proc/self/maps does not exist.
func (s *Store) releaseMappedPages() {}
