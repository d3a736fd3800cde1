package packages

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"connectrpc.com/connect"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/durable"
)

// Fetcher fetches one chunk by its hash: the part's authenticated sync
// client (syncv1connect.SyncServiceClient) is one. A download calls it
// from a few goroutines at once.
type Fetcher interface {
	GetPackageChunk(context.Context, *connect.Request[syncv1.GetPackageChunkRequest]) (*connect.Response[syncv1.GetPackageChunkResponse], error)
}

// ErrBudget marks a version refused because it would not fit the disk
// budget; nothing of it was downloaded.
var ErrBudget = errors.New("package does not fit the disk budget")

// ErrContent marks content that disagrees with its signed manifest or
// would escape its directory.
var ErrContent = errors.New("package content refused")

// Budget bounds what packages take on disk; zero fields mean no limit. The
// daemon fills it from the part's store budget (partfile.Budget).
type Budget struct {
	// MaxBytes bounds the bytes under the packages directory: chunks and
	// unpacked versions.
	MaxBytes int64
	// MinFreeBytes is the free disk a download leaves alone.
	MinFreeBytes int64
}

// store is the chunk cache and the unpacked versions under one directory.
type store struct {
	dir    string
	budget Budget
}

func newStore(dir string, b Budget) (*store, error) {
	for _, sub := range []string{"chunks", "versions", "manifests", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o750); err != nil {
			return nil, fmt.Errorf("create the package directory: %w", err)
		}
	}
	// Whatever tmp holds is a download or unpack a restart cut short: a
	// chunk that was in flight is fetched again, an unpack starts again.
	entries, err := os.ReadDir(filepath.Join(dir, "tmp"))
	if err != nil {
		return nil, fmt.Errorf("read the package directory: %w", err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, "tmp", e.Name())); err != nil {
			return nil, fmt.Errorf("clear an unfinished download: %w", err)
		}
	}
	return &store{dir: dir, budget: b}, nil
}

func (s *store) chunkPath(sum []byte) string {
	return filepath.Join(s.dir, "chunks", hex.EncodeToString(sum))
}

// versionDir is where m's files are unpacked.
func (s *store) versionDir(m *syncv1.PackageManifest) string {
	return filepath.Join(s.dir, "versions", m.GetOrgId(), m.GetName(), versionKey(m))
}

// have reports whether m is unpacked on disk.
func (s *store) have(m *syncv1.PackageManifest) bool {
	fi, err := os.Stat(s.versionDir(m))
	return err == nil && fi.IsDir()
}

// missing returns the bytes of m's content stream the cache lacks, and
// the bytes it holds.
func (s *store) missing(m *syncv1.PackageManifest) (lack, held uint64) {
	seen := map[string]bool{}
	for _, c := range m.GetChunks() {
		k := string(c.GetSha256())
		if seen[k] {
			continue
		}
		seen[k] = true
		if fi, err := os.Stat(s.chunkPath(c.GetSha256())); err == nil && fi.Size() == int64(c.GetSize()) {
			held += uint64(c.GetSize())
		} else {
			lack += uint64(c.GetSize())
		}
	}
	return lack, held
}

// fits refuses a version that needs need more bytes when they would break
// the budget.
func (s *store) fits(m *syncv1.PackageManifest, need uint64) error {
	if s.budget.MaxBytes > 0 {
		used, err := diskUsage(s.dir)
		if err != nil {
			return fmt.Errorf("measure the package directory: %w", err)
		}
		if used+need > uint64(s.budget.MaxBytes) {
			return fmt.Errorf("%w: %s/%s %s needs %d bytes more (chunks it lacks and its unpacked files), the packages hold %d, and the budget is %d bytes",
				ErrBudget, m.GetOrgId(), m.GetName(), m.GetVersion(), need, used, s.budget.MaxBytes)
		}
	}
	var st unix.Statfs_t
	if err := unix.Statfs(s.dir, &st); err != nil {
		return fmt.Errorf("read the free disk space: %w", err)
	}
	free := st.Bavail * uint64(st.Bsize)
	if free < need || free-need < uint64(s.budget.MinFreeBytes) {
		return fmt.Errorf("%w: %s/%s %s needs %d bytes more, the disk has %d free, and %d must stay free",
			ErrBudget, m.GetOrgId(), m.GetName(), m.GetVersion(), need, free, s.budget.MinFreeBytes)
	}
	return nil
}

// fetches is how many chunks a download fetches at once, so that a link's
// round trip is paid once per few chunks rather than once per chunk. It is
// one fewer than the cloud serves one part at once
// (partsync.MaxChunkFetches), which leaves room for a request the cloud
// is still finishing after a cut.
const fetches = 3

// ensure makes m's version unpacked on disk: it fetches the chunks the
// cache lacks, a few at a time, then unpacks. progress is told the content
// bytes held after each chunk. A version already unpacked costs nothing.
// After a failed fetch no other starts, but those in flight finish and
// are kept: each is whole and verified on its own.
func (s *store) ensure(ctx context.Context, f Fetcher, m *syncv1.PackageManifest, progress func(done uint64)) error {
	if s.have(m) {
		progress(m.GetSize())
		return nil
	}
	lack, held := s.missing(m)
	if err := s.fits(m, lack+m.GetUnpackedSize()); err != nil {
		return err
	}
	progress(held)
	var (
		g      errgroup.Group
		mu     sync.Mutex // guards held and progress's order
		failed atomic.Bool
		seen   = map[string]bool{}
	)
	g.SetLimit(fetches)
	for i, c := range m.GetChunks() {
		if failed.Load() || ctx.Err() != nil {
			break
		}
		if seen[string(c.GetSha256())] {
			continue
		}
		seen[string(c.GetSha256())] = true
		if _, err := os.Stat(s.chunkPath(c.GetSha256())); err == nil {
			continue
		}
		g.Go(func() error {
			if failed.Load() {
				return nil
			}
			if err := s.fetch(ctx, f, c); err != nil {
				failed.Store(true)
				return fmt.Errorf("download chunk %d of %d of %s/%s %s: %w", i+1, len(m.GetChunks()), m.GetOrgId(), m.GetName(), m.GetVersion(), err)
			}
			mu.Lock()
			defer mu.Unlock()
			held += uint64(c.GetSize())
			progress(held)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.unpack(ctx, m)
}

// fetch downloads one chunk into the cache: verified, written to a
// temporary file, synced, then renamed, so the cache never holds a chunk
// that is not its hash.
func (s *store) fetch(ctx context.Context, f Fetcher, c *syncv1.PackageChunk) error {
	if f == nil {
		return errors.New("no connection to the cloud to download from")
	}
	resp, err := f.GetPackageChunk(ctx, connect.NewRequest(&syncv1.GetPackageChunkRequest{Sha256: c.GetSha256()}))
	if err != nil {
		return err
	}
	data := resp.Msg.GetData()
	if len(data) != int(c.GetSize()) {
		return fmt.Errorf("%w: chunk %x is %d bytes, the manifest says %d: tampered with or cut on the way", ErrContent, c.GetSha256()[:8], len(data), c.GetSize())
	}
	if sum := sha256.Sum256(data); !bytes.Equal(sum[:], c.GetSha256()) {
		return fmt.Errorf("%w: chunk %x has another hash (%x): tampered with or corrupted on the way", ErrContent, c.GetSha256()[:8], sum[:8])
	}
	return durable.Replace(filepath.Join(s.dir, "tmp"), s.chunkPath(c.GetSha256()), data, 0o600)
}

// unpack unpacks m's stream from the cache into its version directory,
// through a temporary directory renamed whole.
func (s *store) unpack(ctx context.Context, m *syncv1.PackageManifest) error {
	tmp, err := os.MkdirTemp(filepath.Join(s.dir, "tmp"), "unpack-")
	if err != nil {
		return fmt.Errorf("unpack: %w", err)
	}
	defer os.RemoveAll(tmp)
	root := filepath.Join(tmp, "v")
	r := &streamReader{ctx: ctx, s: s, chunks: m.GetChunks(), whole: sha256.New()}
	defer r.close()
	if err := untar(r, root, m.GetUnpackedSize()); err != nil {
		return fmt.Errorf("unpack %s/%s %s: %w", m.GetOrgId(), m.GetName(), m.GetVersion(), err)
	}
	// The tar's end marker and padding are part of the stream too.
	if _, err := io.Copy(io.Discard, r); err != nil {
		return fmt.Errorf("unpack %s/%s %s: %w", m.GetOrgId(), m.GetName(), m.GetVersion(), err)
	}
	if r.n != m.GetSize() || !bytes.Equal(r.whole.Sum(nil), m.GetSha256()) {
		return fmt.Errorf("%w: %s/%s %s: the content stream is not the one the manifest signed", ErrContent, m.GetOrgId(), m.GetName(), m.GetVersion())
	}
	if err := durable.SyncDir(root); err != nil {
		return err
	}
	dst := s.versionDir(m)
	if err := os.MkdirAll(filepath.Dir(dst), 0o750); err != nil {
		return fmt.Errorf("unpack: %w", err)
	}
	if err := os.Rename(root, dst); err != nil {
		return fmt.Errorf("move the unpacked version in place: %w", err)
	}
	if err := durable.SyncDir(filepath.Dir(dst)); err != nil {
		return err
	}
	raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return fmt.Errorf("keep the manifest: %w", err)
	}
	return durable.Replace(filepath.Join(s.dir, "tmp"), filepath.Join(s.dir, "manifests", streamID(m)), raw, 0o600)
}

// streamReader reads a content stream from the cached chunks in order,
// checking each chunk's hash as it ends (a chunk rotted on disk is removed,
// so the next attempt fetches it again) and the whole stream's hash.
type streamReader struct {
	ctx    context.Context // a stop ends a long unpack between chunks
	s      *store
	chunks []*syncv1.PackageChunk
	i      int
	cur    *os.File
	left   int64
	chunk  hash.Hash
	whole  hash.Hash
	n      uint64
}

func (r *streamReader) Read(p []byte) (int, error) {
	for r.cur == nil {
		if r.i >= len(r.chunks) {
			return 0, io.EOF
		}
		if err := r.ctx.Err(); err != nil {
			return 0, err
		}
		c := r.chunks[r.i]
		f, err := os.Open(r.s.chunkPath(c.GetSha256()))
		if err != nil {
			return 0, fmt.Errorf("read cached chunk %d: %w", r.i, err)
		}
		r.cur, r.left, r.chunk = f, int64(c.GetSize()), sha256.New()
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.cur.Read(p)
	r.chunk.Write(p[:n])
	r.whole.Write(p[:n])
	r.left -= int64(n)
	r.n += uint64(n)
	if r.left == 0 {
		c := r.chunks[r.i]
		_ = r.cur.Close()
		r.cur = nil
		r.i++
		if !bytes.Equal(r.chunk.Sum(nil), c.GetSha256()) {
			_ = os.Remove(r.s.chunkPath(c.GetSha256()))
			return n, fmt.Errorf("%w: cached chunk %x changed on disk; it will be downloaded again", ErrContent, c.GetSha256()[:8])
		}
		return n, nil
	}
	if errors.Is(err, io.EOF) {
		_ = r.cur.Close()
		return n, fmt.Errorf("%w: cached chunk %d is shorter than the manifest says", ErrContent, r.i)
	}
	return n, err
}

func (r *streamReader) close() {
	if r.cur != nil {
		_ = r.cur.Close()
	}
}

// diskUsage adds up the sizes of the regular files under dir.
func diskUsage(dir string) (uint64, error) {
	var total uint64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				total += uint64(fi.Size())
			}
		}
		return nil
	})
	return total, err
}
