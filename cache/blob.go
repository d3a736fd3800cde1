package cache

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// BlobInfo describes a blob: a file from a sync folder or a camera image,
// stored in chunks and uploaded resumably.
type BlobInfo struct {
	ID string
	// Size is the bytes stored so far.
	Size int64
	// Uploaded is the offset the cloud confirmed; upload resumes from here.
	Uploaded int64
	// Sealed is true once the writer said the blob is complete.
	Sealed  bool
	Created time.Time
	// deleted: the capture naming the blob was deleted on the part; the
	// blob is invisible and its chunks are being removed (purgeBlobLocked).
	deleted bool
}

// MaxChunkBytes bounds one blob chunk.
const MaxChunkBytes = 8 << 20

func checkBlobID(id string) error {
	if id == "" || len(id) > 512 || strings.IndexByte(id, 0) >= 0 {
		return fmt.Errorf("blob id %q: must be 1-512 bytes without NUL", id)
	}
	return nil
}

// PutBlobChunk durably stores data at offset of blob id, creating the blob
// on its first chunk. Chunks must continue the blob (offset == Size); a
// chunk the store already holds (offset+len(data) <= Size) is accepted and
// ignored, so a writer may resume after a crash from any earlier offset.
// Blob bytes count against the budget; blobs are never evicted, and a chunk
// that does not fit after evicting debug and info logs fails with
// ErrOverBudget.
func (s *Store) PutBlobChunk(ctx context.Context, id string, offset int64, data []byte) error {
	if err := checkBlobID(id); err != nil {
		return fmt.Errorf("put blob chunk: %w", err)
	}
	if len(data) > MaxChunkBytes {
		return fmt.Errorf("put blob %s chunk: %d bytes, max %d: %w", id, len(data), MaxChunkBytes, ErrTooLarge)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put blob %s chunk: %w", id, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return fmt.Errorf("put blob %s chunk: %w", id, ErrClosed)
	}
	if err := s.checkDisk(); err != nil {
		return fmt.Errorf("put blob %s chunk: %w", id, err)
	}
	bi, err := s.rawBlobInfo(id)
	if errors.Is(err, ErrNotFound) {
		bi = BlobInfo{ID: id, Created: s.clk.Now().UTC()}
	} else if err != nil {
		return fmt.Errorf("put blob %s chunk: %w", id, err)
	}
	switch {
	case bi.deleted:
		return fmt.Errorf("put blob %s chunk: the blob was deleted and is being removed: %w", id, ErrBlobOffset)
	case offset < 0 || offset > bi.Size:
		return fmt.Errorf("put blob %s chunk at %d, size %d: %w", id, offset, bi.Size, ErrBlobOffset)
	case offset+int64(len(data)) <= bi.Size:
		return nil // already stored
	case offset < bi.Size:
		data = data[bi.Size-offset:]
		offset = bi.Size
	}
	if bi.Sealed {
		return fmt.Errorf("put blob %s chunk: blob is sealed: %w", id, ErrBlobOffset)
	}
	if maxBytes := s.opts.Budget.MaxBytes; maxBytes > 0 {
		if over := s.totalLocked() + int64(len(data)) - maxBytes; over > 0 {
			if err := s.evictLocked(over+maxBytes/64, StreamLogsInfo, 0); err != nil {
				return fmt.Errorf("put blob %s chunk: %w", id, err)
			}
			if s.totalLocked()+int64(len(data)) > maxBytes {
				return fmt.Errorf("put blob %s chunk: %w", id, ErrOverBudget)
			}
		}
	}
	b := s.newBatch()
	defer b.discard()
	bi.Size += int64(len(data))
	if err := b.set(chunkKey(id, offset), data, 0); err != nil {
		return fmt.Errorf("put blob %s chunk: %w", id, err)
	}
	if err := b.set(blobMetaKey(id), encodeBlobMeta(bi), 0); err != nil {
		return fmt.Errorf("put blob %s chunk: %w", id, err)
	}
	b.blobs = int64(len(data))
	if err := b.commit(); err != nil {
		return fmt.Errorf("put blob %s chunk: %w", id, err)
	}
	s.noteWritten(int64(len(data)))
	return nil
}

// SealBlob marks blob id complete: no more chunks will come.
func (s *Store) SealBlob(ctx context.Context, id string) error {
	return s.updateBlob(ctx, id, "seal", func(bi *BlobInfo) error {
		bi.Sealed = true
		return nil
	})
}

// SetBlobUploaded durably records that the cloud holds blob id up to offset.
func (s *Store) SetBlobUploaded(ctx context.Context, id string, offset int64) error {
	return s.updateBlob(ctx, id, "set upload offset of", func(bi *BlobInfo) error {
		if offset < 0 || offset > bi.Size {
			return fmt.Errorf("offset %d, size %d: %w", offset, bi.Size, ErrBlobOffset)
		}
		bi.Uploaded = offset
		return nil
	})
}

func (s *Store) updateBlob(ctx context.Context, id, what string, fn func(*BlobInfo) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s blob %s: %w", what, id, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return fmt.Errorf("%s blob %s: %w", what, id, ErrClosed)
	}
	bi, err := s.blobInfo(id)
	if err != nil {
		return fmt.Errorf("%s blob %s: %w", what, id, err)
	}
	if err := fn(&bi); err != nil {
		return fmt.Errorf("%s blob %s: %w", what, id, err)
	}
	err = s.update(func(txn *badger.Txn) error { return txn.Set(blobMetaKey(id), encodeBlobMeta(bi)) })
	if err != nil {
		return fmt.Errorf("%s blob %s: %w", what, id, err)
	}
	return nil
}

// DeleteBlob removes blob id and its chunks (after the cloud has all of it).
// Deleting a blob that does not exist is a no-op.
func (s *Store) DeleteBlob(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete blob %s: %w", id, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return fmt.Errorf("delete blob %s: %w", id, ErrClosed)
	}
	if err := s.purgeBlobLocked(id); err != nil {
		return fmt.Errorf("delete blob %s: %w", id, err)
	}
	return nil
}

// purgeBlobLocked removes blob id's chunks and then its meta; a blob that
// does not exist is a no-op. The caller holds s.mu.
func (s *Store) purgeBlobLocked(id string) error {
	bi, err := s.rawBlobInfo(id)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	// Chunks first, in as many transactions as needed, the meta last: a
	// crash in between leaves a blob whose size still counts what remains.
	var keys [][]byte
	err = s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: chunkPrefix(id)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			keys = append(keys, it.Item().KeyCopy(nil))
		}
		return nil
	})
	if err != nil {
		return err
	}
	b := s.newBatch()
	for _, k := range keys {
		if b.full() {
			if err := b.commit(); err != nil {
				return err
			}
			b = s.newBatch()
		}
		if err := b.del(k); err != nil {
			b.discard()
			return err
		}
	}
	if err := b.del(blobMetaKey(id)); err != nil {
		b.discard()
		return err
	}
	b.blobs = -bi.Size
	if err := b.commit(); err != nil {
		return err
	}
	s.noteFreed(bi.Size)
	return nil
}

// BlobInfo describes blob id, or returns ErrNotFound.
func (s *Store) BlobInfo(ctx context.Context, id string) (BlobInfo, error) {
	if err := ctx.Err(); err != nil {
		return BlobInfo{}, fmt.Errorf("blob %s: %w", id, err)
	}
	bi, err := s.blobInfo(id)
	if err != nil {
		return BlobInfo{}, fmt.Errorf("blob %s: %w", id, err)
	}
	return bi, nil
}

// blobInfo is rawBlobInfo without deleted blobs.
func (s *Store) blobInfo(id string) (BlobInfo, error) {
	bi, err := s.rawBlobInfo(id)
	if err == nil && bi.deleted {
		return BlobInfo{}, ErrNotFound
	}
	return bi, err
}

// rawBlobInfo reads blob id's meta, deleted or not.
func (s *Store) rawBlobInfo(id string) (BlobInfo, error) {
	if s.closed.Load() {
		return BlobInfo{}, ErrClosed
	}
	var bi BlobInfo
	err := s.db.View(func(txn *badger.Txn) error {
		v, err := getValue(txn, blobMetaKey(id))
		if err != nil {
			return err
		}
		bi, err = decodeBlobMeta(id, v)
		return err
	})
	return bi, err
}

// Blobs lists every blob, for the uploader to find pending work.
func (s *Store) Blobs(ctx context.Context) ([]BlobInfo, error) {
	var out []BlobInfo
	err := s.view(ctx, func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, Prefix: []byte{nsBlobMeta}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			id := string(item.Key()[1:])
			err := item.Value(func(v []byte) error {
				bi, err := decodeBlobMeta(id, v)
				if !bi.deleted {
					out = append(out, bi)
				}
				return err
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list blobs: %w", err)
	}
	return out, nil
}

// ReadBlob returns up to limit bytes of blob id from offset; fewer (or none)
// at its end.
func (s *Store) ReadBlob(ctx context.Context, id string, offset int64, limit int) ([]byte, error) {
	if offset < 0 || limit < 0 {
		return nil, fmt.Errorf("read blob %s: %w", id, ErrBlobOffset)
	}
	var out []byte
	err := s.view(ctx, func(txn *badger.Txn) error {
		v, err := getValue(txn, blobMetaKey(id))
		if err != nil {
			return err
		}
		if bi, err := decodeBlobMeta(id, v); err != nil || bi.deleted {
			return cmp.Or(err, ErrNotFound)
		}
		// The chunk holding offset is the last one starting at or before it.
		it := txn.NewIterator(badger.IteratorOptions{Reverse: true, Prefix: chunkPrefix(id)})
		it.Seek(chunkKey(id, offset))
		start := offset
		if it.Valid() {
			start = int64(seqOf(it.Item().Key()))
		}
		it.Close()
		it = txn.NewIterator(badger.IteratorOptions{PrefetchValues: true, Prefix: chunkPrefix(id)})
		defer it.Close()
		for it.Seek(chunkKey(id, start)); it.Valid() && len(out) < limit; it.Next() {
			off := int64(seqOf(it.Item().Key()))
			err := it.Item().Value(func(v []byte) error {
				if off+int64(len(v)) <= offset {
					return nil
				}
				from := max(0, offset-off)
				out = append(out, v[from:min(int64(len(v)), from+int64(limit-len(out)))]...)
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read blob %s at %d: %w", id, offset, err)
	}
	return out, nil
}
