//go:build linux

package cache

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// releaseMappedPages drops this process's page-table mappings of the
// store's files, so that the resident set stays small while the store holds
// gigabytes (the goal: at most 60 MB resident holding 1 GB of captures).
//
// Badger memory-maps its value-log, WAL and table files; every page it
// wrote or read stays mapped and counts in VmRSS (as RssFile) although it
// is only page cache. MADV_DONTNEED on a shared file mapping unmaps the
// pages from this process without touching the data: dirty state moves to
// the page cache, which writes it back as usual, and the next access
// faults the page in again from the cache or the file. The memory then
// shows up where it belongs, as reclaimable page cache.
func (s *Store) releaseMappedPages() {
	dir, err := filepath.Abs(s.dir)
	if err != nil {
		return
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// start-end perms offset dev inode path
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || !strings.Contains(fields[1], "s") {
			continue // private mappings hold real memory: leave them
		}
		path := fields[5]
		if filepath.Dir(path) != dir {
			continue
		}
		if ext := filepath.Ext(path); ext != ".vlog" && ext != ".mem" && ext != ".sst" {
			continue
		}
		from, to, ok := strings.Cut(fields[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(from, 16, 64)
		end, err2 := strconv.ParseUint(to, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		_, _, _ = syscall.Syscall(syscall.SYS_MADVISE, uintptr(start), uintptr(end-start), syscall.MADV_DONTNEED)
	}
}
