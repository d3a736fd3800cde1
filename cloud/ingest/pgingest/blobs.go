package pgingest

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outpost-robotics/outpost/cloud/ingest"
	"github.com/outpost-robotics/outpost/cloud/pgmigrate"
)

// ChunkSize is the size of the rows a blob is kept in: large enough that
// a blob costs few rows, small enough that one row is cheap to rewrite
// when a part resumes mid-chunk.
const ChunkSize = 1 << 20

// BlobMigrations are the blob store's schema versions.
func BlobMigrations() pgmigrate.Set {
	return pgmigrate.Embedded("blobs", migrationFiles, "migrations/blobs")
}

// BlobStore is an ingest.BlobStore in PostgreSQL, in chunks of ChunkSize
// bytes: the blobs live where the rest of the cloud's state does, backed
// up and replicated with it. An object store can take its place behind
// the same interface.
type BlobStore struct {
	pool *pgxpool.Pool
}

var _ ingest.BlobStore = (*BlobStore)(nil)

// OpenBlobStore connects to the database at url and applies the blob
// store's migrations. It keeps its own connections: the ingest store holds
// a blob's lock on one of its own while this one writes, so the two never
// wait on each other's pool.
func OpenBlobStore(ctx context.Context, url string) (*BlobStore, error) {
	pool, err := pgmigrate.Connect(ctx, url, BlobMigrations())
	if err != nil {
		return nil, fmt.Errorf("open blob store: %w", err)
	}
	return &BlobStore{pool: pool}, nil
}

// Close closes the blob store's connections.
func (b *BlobStore) Close() error {
	b.pool.Close()
	return nil
}

func checkBlobKey(key ingest.BlobKey) error {
	if err := ingest.ValidateID("part id", key.PartID); err != nil {
		return err
	}
	return ingest.ValidateID("blob id", key.BlobID)
}

// WriteAt writes data at offset of the partial copy, replacing the chunks
// it touches and dropping those past its end, in one transaction.
func (b *BlobStore) WriteAt(ctx context.Context, key ingest.BlobKey, offset uint64, data []byte) error {
	if err := checkBlobKey(key); err != nil {
		return err
	}
	err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		// The last row locks the copy against another writer.
		var lastIdx, lastLen int64
		err := tx.QueryRow(ctx, `SELECT idx, length(data) FROM blob_chunks
			WHERE part_id = $1 AND blob_id = $2 AND NOT committed ORDER BY idx DESC LIMIT 1 FOR UPDATE`,
			key.PartID, key.BlobID).Scan(&lastIdx, &lastLen)
		held := uint64(0)
		switch {
		case err == nil:
			held = uint64(lastIdx)*ChunkSize + uint64(lastLen)
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		if offset > held {
			return fmt.Errorf("at %d: the partial copy holds only %d bytes: %w", offset, held, ingest.ErrInvalid)
		}
		end := offset + uint64(len(data))
		lastNew := uint64(0)
		if end > 0 {
			lastNew = (end - 1) / ChunkSize
		}
		first := offset / ChunkSize
		var prefix []byte // what the first chunk keeps before offset
		if offset%ChunkSize != 0 {
			if err := tx.QueryRow(ctx, `SELECT substring(data FROM 1 FOR $4) FROM blob_chunks
				WHERE part_id = $1 AND blob_id = $2 AND NOT committed AND idx = $3`,
				key.PartID, key.BlobID, int64(first), int64(offset%ChunkSize)).Scan(&prefix); err != nil {
				return fmt.Errorf("read chunk %d: %w", first, err)
			}
		}
		put := func(idx uint64, chunk []byte) error {
			_, err := tx.Exec(ctx, `INSERT INTO blob_chunks (part_id, blob_id, committed, idx, data) VALUES ($1, $2, false, $3, $4)
				ON CONFLICT (part_id, blob_id, committed, idx) DO UPDATE SET data = excluded.data`,
				key.PartID, key.BlobID, int64(idx), chunk)
			return err
		}
		if end == 0 {
			if err := put(0, []byte{}); err != nil {
				return err
			}
		}
		for k := first; end > 0 && k <= lastNew; k++ {
			start, stop := k*ChunkSize, min((k+1)*ChunkSize, end)
			chunk := make([]byte, 0, stop-start)
			if k == first {
				chunk = append(chunk, prefix...)
			}
			chunk = append(chunk, data[max(start, offset)-offset:stop-offset]...)
			if err := put(k, chunk); err != nil {
				return fmt.Errorf("write chunk %d: %w", k, err)
			}
		}
		_, err = tx.Exec(ctx, "DELETE FROM blob_chunks WHERE part_id = $1 AND blob_id = $2 AND NOT committed AND idx > $3",
			key.PartID, key.BlobID, int64(lastNew))
		return err
	})
	if err != nil {
		return fmt.Errorf("write blob %s/%s: %w", key.PartID, key.BlobID, err)
	}
	return nil
}

// Discard removes the partial copy.
func (b *BlobStore) Discard(ctx context.Context, key ingest.BlobKey) error {
	if err := checkBlobKey(key); err != nil {
		return err
	}
	if _, err := b.pool.Exec(ctx, "DELETE FROM blob_chunks WHERE part_id = $1 AND blob_id = $2 AND NOT committed", key.PartID, key.BlobID); err != nil {
		return fmt.Errorf("discard blob %s/%s: %w", key.PartID, key.BlobID, err)
	}
	return nil
}

// Delete removes the blob and its partial copy.
func (b *BlobStore) Delete(ctx context.Context, key ingest.BlobKey) error {
	if err := checkBlobKey(key); err != nil {
		return err
	}
	if _, err := b.pool.Exec(ctx, "DELETE FROM blob_chunks WHERE part_id = $1 AND blob_id = $2", key.PartID, key.BlobID); err != nil {
		return fmt.Errorf("delete blob %s/%s: %w", key.PartID, key.BlobID, err)
	}
	return nil
}

// Commit turns the partial copy into the blob, replacing any committed
// before, in one transaction.
func (b *BlobStore) Commit(ctx context.Context, key ingest.BlobKey) error {
	if err := checkBlobKey(key); err != nil {
		return err
	}
	err := pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		// Locking the partial copy's first row orders two commits: the
		// second finds it committed and does nothing.
		var one int
		err := tx.QueryRow(ctx, "SELECT 1 FROM blob_chunks WHERE part_id = $1 AND blob_id = $2 AND NOT committed AND idx = 0 FOR UPDATE",
			key.PartID, key.BlobID).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			var committed bool
			if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM blob_chunks WHERE part_id = $1 AND blob_id = $2 AND committed)",
				key.PartID, key.BlobID).Scan(&committed); err != nil {
				return err
			}
			if committed {
				return nil // committed before
			}
			return fmt.Errorf("no partial copy: %w", ingest.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "DELETE FROM blob_chunks WHERE part_id = $1 AND blob_id = $2 AND committed", key.PartID, key.BlobID); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, "UPDATE blob_chunks SET committed = true WHERE part_id = $1 AND blob_id = $2 AND NOT committed", key.PartID, key.BlobID)
		return err
	})
	if err != nil {
		return fmt.Errorf("commit blob %s/%s: %w", key.PartID, key.BlobID, err)
	}
	return nil
}

// Open reads a committed blob a chunk at a time, so a large blob is never
// held in memory whole.
func (b *BlobStore) Open(ctx context.Context, key ingest.BlobKey) (io.ReadCloser, error) {
	if err := checkBlobKey(key); err != nil {
		return nil, err
	}
	var n int64
	if err := b.pool.QueryRow(ctx, "SELECT count(*) FROM blob_chunks WHERE part_id = $1 AND blob_id = $2 AND committed",
		key.PartID, key.BlobID).Scan(&n); err != nil {
		return nil, fmt.Errorf("open blob %s/%s: %w", key.PartID, key.BlobID, err)
	}
	if n == 0 {
		return nil, fmt.Errorf("open blob %s/%s: %w", key.PartID, key.BlobID, ingest.ErrNotFound)
	}
	return &blobReader{ctx: ctx, pool: b.pool, key: key, chunks: n}, nil
}

type blobReader struct {
	ctx    context.Context
	pool   *pgxpool.Pool
	key    ingest.BlobKey
	chunks int64
	next   int64
	buf    []byte
}

func (r *blobReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.next >= r.chunks {
			return 0, io.EOF
		}
		err := r.pool.QueryRow(r.ctx, "SELECT data FROM blob_chunks WHERE part_id = $1 AND blob_id = $2 AND committed AND idx = $3",
			r.key.PartID, r.key.BlobID, r.next).Scan(&r.buf)
		if errors.Is(err, pgx.ErrNoRows) {
			return 0, fmt.Errorf("read blob %s/%s: chunk %d is gone: the blob was deleted while read", r.key.PartID, r.key.BlobID, r.next)
		}
		if err != nil {
			return 0, fmt.Errorf("read blob %s/%s: %w", r.key.PartID, r.key.BlobID, err)
		}
		r.next++
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

func (r *blobReader) Close() error { return nil }
