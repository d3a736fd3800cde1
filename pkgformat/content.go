package pkgformat

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/restic/chunker"

	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
)

// Contents is what WriteTar wrote.
type Contents struct {
	// Files and Dirs count the entries.
	Files, Dirs int
	// UnpackedSize is the bytes the regular files take.
	UnpackedSize uint64
}

// WriteTar writes the content stream of path to w: a POSIX tar (PAX where
// a name needs it) of the directory's files with paths relative to it, or
// of the one file at its base name. Entries come in lexical path order,
// with modes kept (permission bits only), mtimes zeroed and owners 0, so
// the same files always make the same stream. Symbolic links, hard links,
// devices, sockets and pipes are refused: a part unpacks regular files and
// directories only.
func WriteTar(ctx context.Context, w io.Writer, path string) (Contents, error) {
	info, err := os.Lstat(path)
	if err != nil {
		return Contents{}, fmt.Errorf("package content: %w", err)
	}
	type entry struct {
		rel  string
		full string
		info fs.FileInfo
	}
	var entries []entry
	switch {
	case info.Mode().IsRegular():
		entries = append(entries, entry{rel: filepath.Base(path), full: path, info: info})
	case info.IsDir():
		err := filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if p == path {
				return nil
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(path, p)
			if err != nil {
				return err
			}
			if !fi.Mode().IsRegular() && !fi.IsDir() {
				return fmt.Errorf("%s is a %s: a package holds regular files and directories only", p, kind(fi.Mode()))
			}
			entries = append(entries, entry{rel: filepath.ToSlash(rel), full: p, info: fi})
			return nil
		})
		if err != nil {
			return Contents{}, fmt.Errorf("package content: %w", err)
		}
	default:
		return Contents{}, fmt.Errorf("package content: %s is a %s: upload a file or a directory", path, kind(info.Mode()))
	}
	slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.rel, b.rel) })

	var c Contents
	tw := tar.NewWriter(w)
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return c, err
		}
		hdr := &tar.Header{
			Name:    e.rel,
			Mode:    int64(e.info.Mode().Perm()),
			ModTime: time.Unix(0, 0),
			Format:  tar.FormatPAX,
		}
		if e.info.IsDir() {
			hdr.Typeflag = tar.TypeDir
			hdr.Name += "/"
			c.Dirs++
		} else {
			hdr.Typeflag = tar.TypeReg
			hdr.Size = e.info.Size()
			c.Files++
			c.UnpackedSize += uint64(e.info.Size())
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return c, fmt.Errorf("package content: %s: %w", e.rel, err)
		}
		if hdr.Typeflag == tar.TypeReg {
			if err := copyFile(tw, e.full, hdr.Size); err != nil {
				return c, fmt.Errorf("package content: %s: %w", e.rel, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return c, fmt.Errorf("package content: %w", err)
	}
	return c, nil
}

// copyFile copies exactly size bytes of the file at p, failing if it
// changed size while it was read.
func copyFile(w io.Writer, p string, size int64) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := io.Copy(w, io.LimitReader(f, size))
	if err != nil {
		return err
	}
	if n != size {
		return fmt.Errorf("changed size while it was read (%d bytes, then %d)", size, n)
	}
	return nil
}

// kind names a file mode's type for an error message.
func kind(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "symbolic link"
	case m&fs.ModeDevice != 0:
		return "device"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	}
	return "special file"
}

// NewChunker returns a chunker that cuts r the way every side does.
func NewChunker(r io.Reader) *chunker.Chunker {
	c := chunker.NewWithBoundaries(r, Polynomial, MinChunk, MaxChunk)
	c.SetAverageBits(AverageBits)
	return c
}

// Split cuts the content stream r into chunks, calling fn with each chunk's
// bytes (valid only during the call) and its SHA-256, and returns the
// stream's chunk list, size and SHA-256. It holds one chunk in memory at a
// time. A stream larger than MaxSize is refused.
func Split(ctx context.Context, r io.Reader, fn func(data []byte, sum [sha256.Size]byte) error) (chunks []*syncv1.PackageChunk, size uint64, sum []byte, err error) {
	whole := sha256.New()
	ch := NewChunker(io.TeeReader(r, whole))
	buf := make([]byte, MaxChunk)
	for {
		if err := ctx.Err(); err != nil {
			return nil, 0, nil, err
		}
		c, err := ch.Next(buf)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, 0, nil, fmt.Errorf("cut content: %w", err)
		}
		size += uint64(c.Length)
		if size > MaxSize || len(chunks) >= MaxChunks {
			return nil, 0, nil, fmt.Errorf("cut content: larger than %d bytes", uint64(MaxSize))
		}
		h := sha256.Sum256(c.Data)
		if fn != nil {
			if err := fn(c.Data, h); err != nil {
				return nil, 0, nil, err
			}
		}
		chunks = append(chunks, &syncv1.PackageChunk{Sha256: h[:], Size: uint32(c.Length)})
	}
	if len(chunks) == 0 {
		return nil, 0, nil, errors.New("cut content: empty")
	}
	return chunks, size, whole.Sum(nil), nil
}
