package ingest

import (
	"context"
	"errors"
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
