package packages

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/outpost-robotics/outpost/pkgformat"
)

// untar unpacks a package's tar stream into root, which it creates. It
// accepts regular files and directories only, each named by a local,
// clean, slash-separated path (no "..", nothing absolute), each once, and
// file sizes adding up to exactly unpacked bytes; anything else is refused
// with an error naming the entry. Modes keep their permission bits only.
// Since nothing but directories and regular files is ever created under
// root, no entry can reach outside it.
func untar(r io.Reader, root string, unpacked uint64) error {
	if err := os.Mkdir(root, 0o755); err != nil {
		return fmt.Errorf("create the version directory: %w", err)
	}
	tr := tar.NewReader(r)
	seen := map[string]bool{}
	var total uint64
	buf := make([]byte, 128<<10)
	for n := 0; ; n++ {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("%w: entry %d: not a valid tar: %w", ErrContent, n, err)
		}
		if n >= MaxEntries {
			return fmt.Errorf("%w: more than %d entries", ErrContent, MaxEntries)
		}
		// Names are the uploader's: an error shows a bounded part of one.
		shown := pkgformat.Printable(h.Name)
		name, err := entryName(h.Name)
		if err != nil {
			return fmt.Errorf("%w: entry %q: %w", ErrContent, shown, err)
		}
		if seen[name] {
			return fmt.Errorf("%w: entry %q appears twice", ErrContent, shown)
		}
		seen[name] = true
		dst := filepath.Join(root, filepath.FromSlash(name))
		mode := os.FileMode(h.Mode) & 0o777
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(dst, 0o755); err != nil {
				return fmt.Errorf("%w: entry %q: %w", ErrContent, shown, err)
			}
			if err := os.Chmod(dst, mode|0o700); err != nil {
				return fmt.Errorf("entry %q: %w", shown, err)
			}
		case tar.TypeReg:
			if h.Size < 0 || uint64(h.Size) > unpacked-total {
				return fmt.Errorf("%w: entry %q: the files are larger than the %d bytes the manifest says", ErrContent, shown, unpacked)
			}
			total += uint64(h.Size)
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return fmt.Errorf("%w: entry %q: %w", ErrContent, shown, err)
			}
			if err := writeFile(dst, mode, tr, h.Size, buf); err != nil {
				return fmt.Errorf("entry %q: %w", shown, err)
			}
		case tar.TypeSymlink:
			return fmt.Errorf("%w: entry %q is a symbolic link (to %q): packages hold regular files and directories only", ErrContent, shown, pkgformat.Printable(h.Linkname))
		case tar.TypeLink:
			return fmt.Errorf("%w: entry %q is a hard link (to %q): packages hold regular files and directories only", ErrContent, shown, pkgformat.Printable(h.Linkname))
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			return fmt.Errorf("%w: entry %q is a device or pipe: packages hold regular files and directories only", ErrContent, shown)
		default:
			return fmt.Errorf("%w: entry %q has type %q: packages hold regular files and directories only", ErrContent, shown, h.Typeflag)
		}
	}
	if total != unpacked {
		return fmt.Errorf("%w: the files add up to %d bytes but the manifest says %d", ErrContent, total, unpacked)
	}
	return nil
}

// entryName checks a tar entry's name and returns it clean, without a
// trailing slash.
func entryName(name string) (string, error) {
	trimmed := strings.TrimSuffix(name, "/")
	switch {
	case trimmed == "" || trimmed == ".":
		return "", errors.New("empty name")
	case strings.HasPrefix(name, "/"):
		return "", errors.New("an absolute path")
	case strings.ContainsAny(name, "\x00\\"):
		return "", errors.New("a NUL or backslash in the name")
	case path.Clean(trimmed) != trimmed:
		return "", errors.New(`not a clean path ("..", "." or "//")`)
	case trimmed == ".." || strings.HasPrefix(trimmed, "../"):
		return "", errors.New("escapes the package directory")
	case !filepath.IsLocal(filepath.FromSlash(trimmed)):
		return "", errors.New("not a local path")
	}
	return trimmed, nil
}

// writeFile writes exactly size bytes of r to a new file at dst, synced.
func writeFile(dst string, mode os.FileMode, r io.Reader, size int64, buf []byte) error {
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode|0o600)
	if err != nil {
		return err
	}
	n, err := io.CopyBuffer(f, io.LimitReader(r, size), buf)
	if err == nil && n != size {
		err = fmt.Errorf("%w: %d of %d bytes", ErrContent, n, size)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(dst, mode|0o400)
	}
	return err
}
