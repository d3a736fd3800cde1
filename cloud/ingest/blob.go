package ingest

import (
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/outpost-robotics/outpost/durable"
)

// BlobKey names one blob of one part.
type BlobKey struct {
	PartID, BlobID string
}

// BlobStore holds blob bytes: a partial copy while chunks arrive, then the
// committed blob. A Store keeps the progress and decides when to commit;
// a BlobStore only moves bytes, so it can be a folder or an object store.
type BlobStore interface {
	// WriteAt writes data at offset of the blob's partial copy, drops
	// anything past the end of data, and makes it durable before
	// returning. It refuses (ErrInvalid) an offset past the partial copy's
	// end, so a blob never gets a hole.
	WriteAt(ctx context.Context, key BlobKey, offset uint64, data []byte) error
	// Discard removes the partial copy, if there is one.
	Discard(ctx context.Context, key BlobKey) error
	// Commit turns the partial copy into the blob atomically: a reader
	// sees the whole blob or none. Committing again is a no-op.
	Commit(ctx context.Context, key BlobKey) error
	// Open reads a committed blob; ErrNotFound when there is none.
	Open(ctx context.Context, key BlobKey) (io.ReadCloser, error)
	// Delete removes the blob and any partial copy; a missing one is no error.
	Delete(ctx context.Context, key BlobKey) error
}

// FileBlobStore is a BlobStore in a folder: partial copies under
// ROOT/partial, committed blobs under ROOT/blobs, each as
// PART/BLOB with both names in unpadded base64url, so no id a part chooses
// can name a path outside the folder.
type FileBlobStore struct {
	root string
}

var _ BlobStore = (*FileBlobStore)(nil)

// NewFileBlobStore returns a FileBlobStore rooted at root, creating it.
func NewFileBlobStore(root string) (*FileBlobStore, error) {
	for _, sub := range []string{"partial", "blobs"} {
		if err := os.MkdirAll(filepath.Join(root, sub), 0o700); err != nil {
			return nil, fmt.Errorf("create blob folder: %w", err)
		}
	}
	return &FileBlobStore{root: root}, nil
}

func (f *FileBlobStore) path(kind string, key BlobKey) (string, error) {
	if err := ValidateID("part id", key.PartID); err != nil {
		return "", err
	}
	if err := ValidateID("blob id", key.BlobID); err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	return filepath.Join(f.root, kind, enc.EncodeToString([]byte(key.PartID)), enc.EncodeToString([]byte(key.BlobID))), nil
}

// WriteAt writes a chunk into the partial copy and syncs it.
func (f *FileBlobStore) WriteAt(_ context.Context, key BlobKey, offset uint64, data []byte) (err error) {
	p, err := f.path("partial", key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return fmt.Errorf("write blob %s/%s: %w", key.PartID, key.BlobID, err)
	}
	fh, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("write blob %s/%s: %w", key.PartID, key.BlobID, err)
	}
	defer func() {
		if cerr := fh.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("write blob %s/%s: %w", key.PartID, key.BlobID, cerr)
		}
	}()
	st, err := fh.Stat()
	if err != nil {
		return fmt.Errorf("write blob %s/%s: %w", key.PartID, key.BlobID, err)
	}
	if uint64(st.Size()) < offset {
		return fmt.Errorf("write blob %s/%s at %d: the partial copy holds only %d bytes: %w", key.PartID, key.BlobID, offset, st.Size(), ErrInvalid)
	}
	if _, err := fh.WriteAt(data, int64(offset)); err != nil {
		return fmt.Errorf("write blob %s/%s: %w", key.PartID, key.BlobID, err)
	}
	// Bytes past this chunk are from an attempt the store never recorded.
	if err := fh.Truncate(int64(offset) + int64(len(data))); err != nil {
		return fmt.Errorf("write blob %s/%s: %w", key.PartID, key.BlobID, err)
	}
	if err := fh.Sync(); err != nil {
		return fmt.Errorf("sync blob %s/%s: %w", key.PartID, key.BlobID, err)
	}
	return nil
}

// Discard removes the partial copy.
func (f *FileBlobStore) Discard(_ context.Context, key BlobKey) error {
	p, err := f.path("partial", key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("discard blob %s/%s: %w", key.PartID, key.BlobID, err)
	}
	return nil
}

// Delete removes the committed blob and the partial copy.
func (f *FileBlobStore) Delete(_ context.Context, key BlobKey) error {
	for _, kind := range []string{"partial", "blobs"} {
		p, err := f.path(kind, key)
		if err != nil {
			return err
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("delete blob %s/%s: %w", key.PartID, key.BlobID, err)
		}
	}
	return nil
}

// Commit renames the partial copy into place and syncs the folder.
func (f *FileBlobStore) Commit(_ context.Context, key BlobKey) error {
	from, err := f.path("partial", key)
	if err != nil {
		return err
	}
	to, _ := f.path("blobs", key)
	if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
		return fmt.Errorf("commit blob %s/%s: %w", key.PartID, key.BlobID, err)
	}
	if err := os.Rename(from, to); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			if _, serr := os.Stat(to); serr == nil {
				return nil // committed before
			}
		}
		return fmt.Errorf("commit blob %s/%s: %w", key.PartID, key.BlobID, err)
	}
	// The rename is durable only once the folder is synced.
	if err := durable.SyncDir(filepath.Dir(to)); err != nil {
		return fmt.Errorf("commit blob %s/%s: %w", key.PartID, key.BlobID, err)
	}
	return nil
}

// Open opens a committed blob.
func (f *FileBlobStore) Open(_ context.Context, key BlobKey) (io.ReadCloser, error) {
	p, err := f.path("blobs", key)
	if err != nil {
		return nil, err
	}
	fh, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("open blob %s/%s: %w", key.PartID, key.BlobID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("open blob %s/%s: %w", key.PartID, key.BlobID, err)
	}
	return fh, nil
}

// EmptyHashState is the running SHA-256 of a blob that has received no
// bytes, marshalled as a Store keeps it between chunks.
func EmptyHashState() ([]byte, error) {
	st, err := sha256.New().(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("hash state: %w", err)
	}
	return st, nil
}

// NextChunk is what chunk c adds to a blob that holds its first received
// bytes, with state the running SHA-256 of them: the bytes to write at
// offset received, the running state after them and the digest so far.
// data is nil when c leaves a gap (the part resumes where the progress
// says) or brings nothing new, and then nothing is to be written.
func NextChunk(c BlobChunk, received uint64, state []byte) (data, next, sum []byte, err error) {
	if c.Offset > received || c.Offset+uint64(len(c.Data)) <= received {
		return nil, nil, nil, nil
	}
	data = c.Data[received-c.Offset:]
	h := sha256.New()
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(state); err != nil {
		return nil, nil, nil, fmt.Errorf("hash state: %w", err)
	}
	h.Write(data)
	if next, err = h.(encoding.BinaryMarshaler).MarshalBinary(); err != nil {
		return nil, nil, nil, fmt.Errorf("hash state: %w", err)
	}
	return data, next, h.Sum(nil), nil
}
