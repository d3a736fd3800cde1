package ingest

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrBlobQuota is a new blob that would take its part's incomplete blobs
// past their quota (declared bytes or count). The part finishes or
// abandons its other blobs first; abandoned ones expire.
var ErrBlobQuota = errors.New("the part's incomplete blobs are at their quota")

// Bounds of a part's incomplete blobs, when a Store is not told others. A
// blob counts with the size it declares from its first chunk, not with
// what has arrived, so a part cannot reserve more than the quota by
// starting blobs it never finishes. The byte quota equals the largest blob
// the part sync API accepts, so any one blob can always be sent.
const (
	// DefaultPartialBlobQuota bounds the declared bytes of a part's
	// incomplete blobs.
	DefaultPartialBlobQuota = 64 << 30
	// DefaultMaxPartialBlobs bounds how many incomplete blobs a part has.
	DefaultMaxPartialBlobs = 1000
	// DefaultPartialBlobTTL is how long an incomplete blob is kept
	// without receiving a chunk before it is discarded.
	DefaultPartialBlobTTL = 7 * 24 * time.Hour
)

// PartialBlobs is implemented by a Store that bounds and expires
// incomplete blobs: PutBlobChunk refuses, with ErrBlobQuota, a new blob
// past the part's quota, and ExpirePartialBlobs discards abandoned ones.
type PartialBlobs interface {
	// PartialBlobUsage returns how many incomplete blobs the part has and
	// the sum of the sizes they declare.
	PartialBlobUsage(ctx context.Context, partID string) (count int, declared uint64, err error)
	// ExpirePartialBlobs discards the bytes and progress of every
	// incomplete blob that has received no chunk for the store's TTL, and
	// returns how many it discarded. A part still sending one starts it
	// again from offset 0.
	ExpirePartialBlobs(ctx context.Context) (int, error)
}

// PartialLimits bound a part's incomplete blobs; a Store that implements
// PartialBlobs admits new blobs with Admit and expires them after TTL.
type PartialLimits struct {
	// Quota bounds the declared bytes of a part's incomplete blobs.
	Quota uint64
	// MaxCount bounds how many incomplete blobs a part has.
	MaxCount int
	// TTL is how long an incomplete blob is kept without a chunk.
	TTL time.Duration
}

// WithDefaults returns l with each unset bound at its Default* value.
func (l PartialLimits) WithDefaults() PartialLimits {
	if l.Quota == 0 {
		l.Quota = DefaultPartialBlobQuota
	}
	if l.MaxCount <= 0 {
		l.MaxCount = DefaultMaxPartialBlobs
	}
	if l.TTL <= 0 {
		l.TTL = DefaultPartialBlobTTL
	}
	return l
}

// Admit refuses, with ErrBlobQuota, a new blob of key declaring size bytes
// beside the part's count other incomplete blobs declaring declared bytes.
func (l PartialLimits) Admit(key BlobKey, count int, declared, size uint64) error {
	if count >= l.MaxCount {
		return fmt.Errorf("put blob %s/%s: the part has %d incomplete blobs, the most it may have: finish or abandon some (they expire after %v without a chunk): %w",
			key.PartID, key.BlobID, count, l.TTL, ErrBlobQuota)
	}
	if size > l.Quota-min(declared, l.Quota) {
		return fmt.Errorf("put blob %s/%s: it declares %d bytes and the part's incomplete blobs already declare %d of their %d-byte quota: finish or abandon some (they expire after %v without a chunk): %w",
			key.PartID, key.BlobID, size, declared, l.Quota, l.TTL, ErrBlobQuota)
	}
	return nil
}

// ExpireEach runs expire on each stale incomplete blob, for
// PartialBlobs.ExpirePartialBlobs, and counts those it discarded. It stops
// at the first error, or when ctx ends, with the count so far.
func ExpireEach(ctx context.Context, stale []BlobKey, expire func(context.Context, BlobKey) (bool, error)) (int, error) {
	n := 0
	for _, key := range stale {
		if err := ctx.Err(); err != nil {
			return n, fmt.Errorf("expire incomplete blobs: %w", err)
		}
		expired, err := expire(ctx, key)
		if err != nil {
			return n, err
		}
		if expired {
			n++
		}
	}
	return n, nil
}
