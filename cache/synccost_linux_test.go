//go:build linux

package cache

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// BenchmarkSyncCost measures what one msync(MS_SYNC) costs on the disk
// under the test's temporary directory, in the shapes a group commit meets
// (a measurement of the machine, not of the store; docs/PERFORMANCE.md, "64
// producers, second pass"):
//   - clean: nothing written since the last sync, as Badger's value log is
//     when a group's values all stayed in the write-ahead log; on ext4 this
//     still sends the device a cache flush;
//   - append-sparse: 15 KB appended to a file made by ftruncate, as Badger
//     makes its .mem and .vlog files, so each sync also allocates blocks (a
//     journal commit);
//   - overwrite: 15 KB written over blocks that write(2) filled first: no
//     allocation, but the page cache may hold those blocks in large folios,
//     and a dirtied folio is written back whole (dirtied-KiB/sync).
func BenchmarkSyncCost(b *testing.B) {
	const size = 16 << 20
	const step = 15 << 10
	for _, tc := range []struct {
		name  string
		fill  bool // blocks written (allocated) before the mapping is used
		write bool // bytes written before each sync
	}{
		{"clean", false, false},
		{"append-sparse", false, true},
		{"overwrite", true, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			f, err := os.OpenFile(filepath.Join(b.TempDir(), "map"), os.O_RDWR|os.O_CREATE, 0o600)
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			if tc.fill {
				if _, err := f.Write(make([]byte, size)); err != nil {
					b.Fatal(err)
				}
			} else if err := f.Truncate(size); err != nil {
				b.Fatal(err)
			}
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
			m, err := syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
			if err != nil {
				b.Fatal(err)
			}
			defer syscall.Munmap(m)
			io0 := procWriteBytes(b)
			off := 0
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if tc.write {
					if off+step > size {
						off = 0
					}
					for j := off; j < off+step; j++ {
						m[j] = byte(i)
					}
					off += step
				}
				if err := unix.Msync(m, unix.MS_SYNC); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "syncs/s")
			b.ReportMetric(float64(procWriteBytes(b)-io0)/float64(b.N)/1024, "dirtied-KiB/sync")
		})
	}
}
