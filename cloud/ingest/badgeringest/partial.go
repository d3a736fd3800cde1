package badgeringest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/cloud/ingest"
)

// partialLimits bound and date each part's incomplete blobs, kept under
// p\0PART\0BLOB so that the quota check and the expiry sweep read only
// incomplete blobs, never the many a part has finished.
type partialLimits struct {
	ingest.PartialLimits
	clock clock.Clock
	// mu serializes, per part, the quota check with the reservation it
	// makes, so two blobs starting at once cannot both fit the last room.
	mu [lockStripes]sync.Mutex
}

func newPartialLimits(opts Options) *partialLimits {
	p := &partialLimits{clock: opts.Clock, PartialLimits: ingest.PartialLimits{
		Quota: opts.PartialBlobQuota, MaxCount: opts.MaxPartialBlobs, TTL: opts.PartialBlobTTL}.WithDefaults()}
	if p.clock == nil {
		p.clock = clock.NewReal()
	}
	return p
}

// encodePartial is an incomplete blob's entry: its declared size and when
// it last received a chunk, each 8 bytes big-endian.
func encodePartial(size uint64, touched time.Time) []byte {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 16), size)
	return binary.BigEndian.AppendUint64(b, uint64(touched.UnixNano()))
}

func decodePartial(v []byte) (size uint64, touched time.Time, err error) {
	if len(v) != 16 {
		return 0, time.Time{}, fmt.Errorf("incomplete blob entry of %d bytes, want 16", len(v))
	}
	return binary.BigEndian.Uint64(v), time.Unix(0, int64(binary.BigEndian.Uint64(v[8:]))), nil
}

// partialUsage sums the part's incomplete blobs other than except.
func (s *Store) partialUsage(txn *badger.Txn, partID, except string) (count int, declared uint64, err error) {
	prefix := append(join('p', partID), 0)
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		if string(item.Key()[len(prefix):]) == except {
			continue
		}
		var size uint64
		if err := item.Value(func(v []byte) error {
			var err error
			size, _, err = decodePartial(v)
			return err
		}); err != nil {
			return 0, 0, err
		}
		count++
		declared += size
	}
	return count, declared, nil
}

// reservePartial admits a new blob of key declaring size bytes within its
// part's quota, and records it among the part's incomplete blobs.
func (s *Store) reservePartial(key ingest.BlobKey, size uint64) error {
	defer s.lock(&s.partial.mu, key.PartID)()
	return s.db.Update(func(txn *badger.Txn) error {
		count, declared, err := s.partialUsage(txn, key.PartID, key.BlobID)
		if err != nil {
			return fmt.Errorf("put blob %s/%s: read the part's incomplete blobs: %w", key.PartID, key.BlobID, err)
		}
		if err := s.partial.Admit(key, count, declared, size); err != nil {
			return err
		}
		return txn.Set(join('p', key.PartID, key.BlobID), encodePartial(size, s.partial.clock.Now()))
	})
}

// PartialBlobUsage returns the part's incomplete blobs; see ingest.PartialBlobs.
func (s *Store) PartialBlobUsage(_ context.Context, partID string) (count int, declared uint64, err error) {
	if err := ingest.ValidateID("part id", partID); err != nil {
		return 0, 0, fmt.Errorf("incomplete blobs: %w", err)
	}
	err = s.db.View(func(txn *badger.Txn) error {
		count, declared, err = s.partialUsage(txn, partID, "")
		return err
	})
	if err != nil {
		return 0, 0, fmt.Errorf("incomplete blobs of %s: %w", partID, err)
	}
	return count, declared, nil
}

// ExpirePartialBlobs discards abandoned incomplete blobs; see ingest.PartialBlobs.
func (s *Store) ExpirePartialBlobs(ctx context.Context) (int, error) {
	cutoff := s.partial.clock.Now().Add(-s.partial.TTL)
	var stale []ingest.BlobKey
	err := s.db.View(func(txn *badger.Txn) error {
		prefix := []byte{'p', 0}
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			part, blob, ok := bytes.Cut(it.Item().Key()[len(prefix):], []byte{0})
			if !ok {
				continue
			}
			var touched time.Time
			err := it.Item().Value(func(v []byte) error {
				var err error
				_, touched, err = decodePartial(v)
				return err
			})
			if err != nil || touched.Before(cutoff) {
				// An entry that does not decode is expired too, rather than
				// counted against its part for ever.
				stale = append(stale, ingest.BlobKey{PartID: string(part), BlobID: string(blob)})
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("expire incomplete blobs: %w", err)
	}
	return ingest.ExpireEach(ctx, stale, func(ctx context.Context, key ingest.BlobKey) (bool, error) {
		return s.expirePartial(ctx, key, cutoff)
	})
}

// expirePartial discards one incomplete blob if, under its lock, it is
// still incomplete and untouched since before cutoff.
func (s *Store) expirePartial(ctx context.Context, key ingest.BlobKey, cutoff time.Time) (bool, error) {
	defer s.lock(&s.blobMu, key.PartID, key.BlobID)()
	still := false
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(join('p', key.PartID, key.BlobID))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			_, touched, err := decodePartial(v)
			still = err != nil || touched.Before(cutoff)
			return nil
		})
	})
	if err != nil || !still {
		return false, err
	}
	if err := s.blobs.Discard(ctx, key); err != nil {
		return false, fmt.Errorf("expire blob %s/%s: %w", key.PartID, key.BlobID, err)
	}
	if err := s.dropBlob(key); err != nil {
		return false, err
	}
	return true, nil
}
