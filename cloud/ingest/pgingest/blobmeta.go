package pgingest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outpost-robotics/outpost/cloud/ingest"
)

// querier is a connection or a transaction.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// blobMeta is a blob's progress, a row of ingest_blobs. HashState is the
// SHA-256 state over the bytes received, so completing a blob never reads
// it back.
type blobMeta struct {
	Size      uint64
	SHA256    []byte
	Name      string
	Meta      []byte
	Received  uint64
	Complete  bool
	Deleted   bool
	HashState []byte
}

// lockBlob takes the blob's session advisory lock on a connection of its
// own and returns that connection and how to release both. The lock is
// held across the blob store's write, which is not in this store's
// transactions; a replica that dies releases it with its session.
func (s *Store) lockBlob(ctx context.Context, key ingest.BlobKey) (*pgxpool.Conn, func(), error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("lock blob %s/%s: %w", key.PartID, key.BlobID, err)
	}
	id := lockKey('b', key.PartID, key.BlobID)
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", id); err != nil {
		conn.Release()
		return nil, nil, fmt.Errorf("lock blob %s/%s: %w", key.PartID, key.BlobID, err)
	}
	return conn, func() {
		bg := context.WithoutCancel(ctx)
		if _, err := conn.Exec(bg, "SELECT pg_advisory_unlock($1)", id); err != nil {
			// Closing the session releases its locks.
			_ = conn.Conn().Close(bg)
		}
		conn.Release()
	}, nil
}

func loadBlob(ctx context.Context, q querier, key ingest.BlobKey) (blobMeta, bool, error) {
	var m blobMeta
	var size, received int64
	err := q.QueryRow(ctx, `SELECT size, sha256, name, meta, received, complete, deleted, hash_state FROM ingest_blobs
		WHERE part_id = $1 AND blob_id = $2`, key.PartID, key.BlobID).
		Scan(&size, &m.SHA256, &m.Name, &m.Meta, &received, &m.Complete, &m.Deleted, &m.HashState)
	if errors.Is(err, pgx.ErrNoRows) {
		return blobMeta{}, false, nil
	}
	if err != nil {
		return blobMeta{}, false, fmt.Errorf("read blob %s/%s: %w", key.PartID, key.BlobID, err)
	}
	m.Size, m.Received = uint64(size), uint64(received)
	return m, true, nil
}

// saveBlob saves a blob's progress, dated now for the expiry sweep.
func (s *Store) saveBlob(ctx context.Context, q querier, key ingest.BlobKey, m blobMeta) error {
	sha := m.SHA256
	if sha == nil {
		sha = []byte{}
	}
	_, err := q.Exec(ctx, `INSERT INTO ingest_blobs (part_id, blob_id, size, sha256, name, meta, received, complete, deleted, hash_state, touched_ns)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
		ON CONFLICT (part_id, blob_id) DO UPDATE SET size = excluded.size, sha256 = excluded.sha256, name = excluded.name,
			meta = excluded.meta, received = excluded.received, complete = excluded.complete, deleted = excluded.deleted,
			hash_state = excluded.hash_state, touched_ns = excluded.touched_ns`,
		key.PartID, key.BlobID, int64(m.Size), sha, text(m.Name, 0), m.Meta, int64(m.Received), m.Complete, m.Deleted, m.HashState,
		s.clock.Now().UnixNano())
	if err != nil {
		return fmt.Errorf("save blob %s/%s: %w", key.PartID, key.BlobID, err)
	}
	return nil
}

func (s *Store) dropBlob(ctx context.Context, q querier, key ingest.BlobKey) error {
	if _, err := q.Exec(ctx, "DELETE FROM ingest_blobs WHERE part_id = $1 AND blob_id = $2", key.PartID, key.BlobID); err != nil {
		return fmt.Errorf("drop blob %s/%s: %w", key.PartID, key.BlobID, err)
	}
	return nil
}

// reservePartial admits a new blob of key declaring m.Size bytes within
// its part's quota and saves it, started, in one transaction that holds
// the part's lock, so two blobs starting at once cannot both take the
// last room.
func (s *Store) reservePartial(ctx context.Context, conn *pgxpool.Conn, key ingest.BlobKey, m blobMeta) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", lockKey('p', key.PartID)); err != nil {
			return fmt.Errorf("put blob %s/%s: lock the part's incomplete blobs: %w", key.PartID, key.BlobID, err)
		}
		count, declared, err := partialUsage(ctx, tx, key.PartID, key.BlobID)
		if err != nil {
			return fmt.Errorf("put blob %s/%s: read the part's incomplete blobs: %w", key.PartID, key.BlobID, err)
		}
		if err := s.limits.Admit(key, count, declared, m.Size); err != nil {
			return err
		}
		return s.saveBlob(ctx, tx, key, m)
	})
}

// partialUsage sums the part's incomplete blobs other than except.
func partialUsage(ctx context.Context, q querier, partID, except string) (int, uint64, error) {
	var count int
	var declared int64
	err := q.QueryRow(ctx, `SELECT count(*), LEAST(coalesce(sum(size), 0), 9223372036854775807)::bigint FROM ingest_blobs
		WHERE part_id = $1 AND blob_id <> $2 AND NOT complete AND NOT deleted`, partID, except).Scan(&count, &declared)
	return count, uint64(declared), err
}

// PutBlobChunk stores one chunk; see ingest.Store.
func (s *Store) PutBlobChunk(ctx context.Context, c ingest.BlobChunk) (ingest.BlobProgress, error) {
	key := ingest.BlobKey{PartID: c.PartID, BlobID: c.BlobID}
	if err := ingest.ValidateID("part id", c.PartID); err != nil {
		return ingest.BlobProgress{}, fmt.Errorf("put blob chunk: %w", err)
	}
	if err := ingest.ValidateID("blob id", c.BlobID); err != nil {
		return ingest.BlobProgress{}, fmt.Errorf("put blob chunk: %w", err)
	}
	if len(c.SHA256) != sha256.Size {
		return ingest.BlobProgress{}, fmt.Errorf("put blob %s/%s: SHA-256 of %d bytes, want 32: %w", c.PartID, c.BlobID, len(c.SHA256), ingest.ErrInvalid)
	}
	if c.Size > math.MaxInt64 || c.Offset > c.Size || uint64(len(c.Data)) > c.Size-c.Offset {
		return ingest.BlobProgress{}, fmt.Errorf("put blob %s/%s: chunk at %d of %d bytes ends past the blob's %d bytes (at most 2^63-1): %w", c.PartID, c.BlobID, c.Offset, len(c.Data), c.Size, ingest.ErrInvalid)
	}
	if err := ctx.Err(); err != nil {
		return ingest.BlobProgress{}, fmt.Errorf("put blob %s/%s: %w", c.PartID, c.BlobID, err)
	}
	conn, unlock, err := s.lockBlob(ctx, key)
	if err != nil {
		return ingest.BlobProgress{}, err
	}
	defer unlock()

	m, found, err := loadBlob(ctx, conn, key)
	if err != nil {
		return ingest.BlobProgress{}, err
	}
	if found && m.Deleted {
		// Deleted data never comes back: the part may forget the blob.
		return ingest.BlobProgress{Received: c.Size, Complete: true}, nil
	}
	restart := false
	if found && (m.Size != c.Size || !bytes.Equal(m.SHA256, c.SHA256)) {
		if m.Complete || c.Offset != 0 {
			return ingest.BlobProgress{Received: m.Received, Complete: m.Complete}, fmt.Errorf("put blob %s/%s: size or SHA-256 differ from the blob's earlier chunks: %w", c.PartID, c.BlobID, ingest.ErrBlobConflict)
		}
		// The part started the blob over with other contents. The new size
		// is admitted before the old bytes go, so a refusal leaves the blob
		// as its progress says.
		found, restart = false, true
	}
	if !found {
		st, err := ingest.EmptyHashState()
		if err != nil {
			return ingest.BlobProgress{}, fmt.Errorf("put blob %s/%s: %w", c.PartID, c.BlobID, err)
		}
		started := blobMeta{Size: c.Size, SHA256: bytes.Clone(c.SHA256), Name: c.Name, Meta: c.Meta, HashState: st}
		if err := s.reservePartial(ctx, conn, key, started); err != nil {
			return ingest.BlobProgress{}, err
		}
		if restart {
			if err := s.blobs.Discard(ctx, key); err != nil {
				return ingest.BlobProgress{}, err
			}
		}
		m = started
	}
	progress := func() ingest.BlobProgress { return ingest.BlobProgress{Received: m.Received, Complete: m.Complete} }
	if m.Complete {
		return progress(), nil
	}
	if m.Received < m.Size {
		data, next, sum, err := ingest.NextChunk(c, m.Received, m.HashState)
		if err != nil {
			return ingest.BlobProgress{}, fmt.Errorf("put blob %s/%s: %w", c.PartID, c.BlobID, err)
		}
		if data == nil {
			// A gap, or bytes received before: store nothing; the answer
			// says where to resume.
			return progress(), nil
		}
		if err := s.blobs.WriteAt(ctx, key, m.Received, data); err != nil {
			return progress(), err
		}
		m.HashState = next
		m.Received += uint64(len(data))
		if m.Received == m.Size && !bytes.Equal(sum, m.SHA256) {
			// Keep nothing of it: the part sends the whole blob again.
			if err := s.blobs.Discard(ctx, key); err != nil {
				return ingest.BlobProgress{}, err
			}
			if err := s.dropBlob(ctx, conn, key); err != nil {
				return ingest.BlobProgress{}, err
			}
			return ingest.BlobProgress{}, fmt.Errorf("put blob %s/%s: %w; discarded, send it again from the start", c.PartID, c.BlobID, ingest.ErrBlobMismatch)
		}
	} else if m.Size == 0 {
		// An empty blob: nothing to write, but a blob to commit.
		if !bytes.Equal(sha256.New().Sum(nil), m.SHA256) {
			return ingest.BlobProgress{}, fmt.Errorf("put blob %s/%s: %w", c.PartID, c.BlobID, ingest.ErrBlobMismatch)
		}
		if err := s.blobs.WriteAt(ctx, key, 0, nil); err != nil {
			return progress(), err
		}
	}
	// Received == Size is saved before the commit, so a retry after a
	// crash in between finishes the commit instead of writing again.
	if err := s.saveBlob(ctx, conn, key, m); err != nil {
		return ingest.BlobProgress{}, err
	}
	if m.Received == m.Size {
		if err := s.blobs.Commit(ctx, key); err != nil {
			return ingest.BlobProgress{Received: m.Received}, err
		}
		m.Complete, m.HashState = true, nil
		if err := s.saveBlob(ctx, conn, key, m); err != nil {
			return ingest.BlobProgress{}, err
		}
	}
	return progress(), nil
}

// DeleteBlob erases a blob and keeps its id as deleted; see ingest.Store.
func (s *Store) DeleteBlob(ctx context.Context, partID, blobID string) error {
	key := ingest.BlobKey{PartID: partID, BlobID: blobID}
	if err := ingest.ValidateID("part id", partID); err != nil {
		return fmt.Errorf("delete blob: %w", err)
	}
	if err := ingest.ValidateID("blob id", blobID); err != nil {
		return fmt.Errorf("delete blob: %w", err)
	}
	conn, unlock, err := s.lockBlob(ctx, key)
	if err != nil {
		return err
	}
	defer unlock()
	// The mark is saved first: a crash before the bytes are gone leaves a
	// deleted blob whose bytes the next delete removes, never a readable one.
	if err := s.saveBlob(ctx, conn, key, blobMeta{Deleted: true}); err != nil {
		return err
	}
	return s.blobs.Delete(ctx, key)
}

// Blob returns a blob's progress.
func (s *Store) Blob(ctx context.Context, partID, blobID string) (ingest.BlobInfo, error) {
	key := ingest.BlobKey{PartID: partID, BlobID: blobID}
	if err := ingest.ValidateID("part id", partID); err != nil {
		return ingest.BlobInfo{}, fmt.Errorf("read blob: %w", err)
	}
	if err := ingest.ValidateID("blob id", blobID); err != nil {
		return ingest.BlobInfo{}, fmt.Errorf("read blob: %w", err)
	}
	m, found, err := loadBlob(ctx, s.pool, key)
	if err != nil {
		return ingest.BlobInfo{}, err
	}
	if !found || m.Deleted {
		return ingest.BlobInfo{}, fmt.Errorf("read blob %s/%s: %w", partID, blobID, ingest.ErrNotFound)
	}
	return ingest.BlobInfo{
		BlobKey: key, BlobProgress: ingest.BlobProgress{Received: m.Received, Complete: m.Complete},
		Size: m.Size, SHA256: m.SHA256, Name: m.Name, Meta: m.Meta,
	}, nil
}

// PartialBlobUsage returns the part's incomplete blobs; see ingest.PartialBlobs.
func (s *Store) PartialBlobUsage(ctx context.Context, partID string) (int, uint64, error) {
	if err := ingest.ValidateID("part id", partID); err != nil {
		return 0, 0, fmt.Errorf("incomplete blobs: %w", err)
	}
	count, declared, err := partialUsage(ctx, s.pool, partID, "")
	if err != nil {
		return 0, 0, fmt.Errorf("incomplete blobs of %s: %w", partID, err)
	}
	return count, declared, nil
}

// ExpirePartialBlobs discards abandoned incomplete blobs; see ingest.PartialBlobs.
func (s *Store) ExpirePartialBlobs(ctx context.Context) (int, error) {
	cutoff := s.clock.Now().Add(-s.limits.TTL).UnixNano()
	rows, _ := s.pool.Query(ctx, "SELECT part_id, blob_id FROM ingest_blobs WHERE NOT complete AND NOT deleted AND touched_ns < $1", cutoff)
	stale, err := pgx.CollectRows(rows, pgx.RowToStructByPos[ingest.BlobKey])
	if err != nil {
		return 0, fmt.Errorf("expire incomplete blobs: %w", err)
	}
	return ingest.ExpireEach(ctx, stale, func(ctx context.Context, key ingest.BlobKey) (bool, error) {
		return s.expirePartial(ctx, key, cutoff)
	})
}

// expirePartial discards one incomplete blob if, under its lock, it is
// still incomplete and untouched since before cutoff.
func (s *Store) expirePartial(ctx context.Context, key ingest.BlobKey, cutoff int64) (bool, error) {
	conn, unlock, err := s.lockBlob(ctx, key)
	if err != nil {
		return false, err
	}
	defer unlock()
	var still bool
	err = conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM ingest_blobs WHERE part_id = $1 AND blob_id = $2 AND NOT complete AND NOT deleted AND touched_ns < $3)",
		key.PartID, key.BlobID, cutoff).Scan(&still)
	if err != nil || !still {
		return false, err
	}
	if err := s.blobs.Discard(ctx, key); err != nil {
		return false, fmt.Errorf("expire blob %s/%s: %w", key.PartID, key.BlobID, err)
	}
	if err := s.dropBlob(ctx, conn, key); err != nil {
		return false, err
	}
	return true, nil
}
