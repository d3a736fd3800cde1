// Package durable writes files so that a crash or a power loss leaves a
// file's old contents or its new ones, never part of either, and makes a
// folder's changed entries survive a power loss. The part's store, its
// package cache, its budget file, the cloud's blob and record files and the
// CLI's credentials all write this way.
package durable

import (
	"fmt"
	"os"
	"path/filepath"
)

// WriteFile replaces path with data: the data goes to a new file in path's
// folder, which is synced and given perm before it is renamed over path,
// and the folder is synced after. A crash at any point leaves the old file
// or the new one, and once WriteFile returns nil the new one survives a
// power loss. A temporary file a crash leaves behind is named
// ".NAME.tmp-*".
func WriteFile(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	if err := Replace(dir, path, data, perm); err != nil {
		return err
	}
	if err := SyncDir(dir); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// Replace is WriteFile without the sync of path's folder, and with the
// temporary file in tmpDir, a folder on path's file system that its owner
// empties at start, so that a crash leaves nothing beside path. A crash
// still leaves the old file or the new one, but a power loss may undo the
// replacement until path's folder is synced. A caller that writes many
// files to one folder, and can lose some of them to a power loss (a cache
// it fetches again), syncs the folder once after them, or not at all.
func Replace(tmpDir, path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(tmpDir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// SyncDir syncs the folder dir, so that the files created, renamed or
// removed in it are durable: call it after such a change, before anything
// refers to the result.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync folder %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync folder %s: %w", dir, err)
	}
	return nil
}
