// Package ingest keeps what robot parts hand over to the fleet cloud: the
// records of their streams (logs, captures, audit events, gap records,
// config proposals), the ranges their gap records declare lost, their blobs
// and their last status.
//
// It is the storage half of exactly once, end to end: a
// record is keyed by (part, store_id, stream, seq); the first copy stored
// wins and every repeat is a no-op, in any order; and each put answers the
// stream's watermark, the highest sequence held with nothing missing before
// it, counting ranges declared lost (evicted or deleted on the part and
// said so with a gap record). The part deletes
// only what the watermark covers, so a record is never lost between them.
//
// Store is the interface; badgeringest is the embedded implementation and
// pgingest the PostgreSQL one, both checked by the ingesttest conformance
// suite. Blob bytes go to a BlobStore (FileBlobStore here, pgingest's in
// the database; S3-compatible later), while the Store keeps each blob's
// progress.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
)

// Errors a Store returns; each error it returns about these wraps one.
var (
	// ErrInvalid is a key, range or chunk the store refuses to hold.
	ErrInvalid = errors.New("invalid ingest input")
	// ErrNotFound is a status or blob that is not held.
	ErrNotFound = errors.New("not found")
	// ErrBlobMismatch is a completed blob whose bytes do not match its
	// SHA-256; the partial blob is discarded so the part sends it again.
	ErrBlobMismatch = errors.New("blob does not match its SHA-256")
	// ErrBlobConflict is a chunk whose size or SHA-256 differs from what
	// earlier chunks of the same blob id said.
	ErrBlobConflict = errors.New("blob id already used for another blob")
)

// Limits on identifiers, so keys and file names stay bounded.
const (
	// MaxIDLen bounds part ids, store ids, stream names and blob ids in bytes.
	MaxIDLen = 128
)

// StreamKey names one stream of one store incarnation of one part.
type StreamKey struct {
	// PartID is the part, as authenticated; never taken from a request body.
	PartID string
	// StoreID is the part's store incarnation (UploadRequest.store_id).
	StoreID string
	// Stream is the stream name, such as "logs.info".
	Stream string
}

// String names the key for errors and logs.
func (k StreamKey) String() string { return k.PartID + "/" + k.StoreID + "/" + k.Stream }

// Validate checks that every part of the key is a usable identifier.
func (k StreamKey) Validate() error {
	for _, f := range []struct{ what, v string }{{"part id", k.PartID}, {"store id", k.StoreID}, {"stream", k.Stream}} {
		if err := ValidateID(f.what, f.v); err != nil {
			return err
		}
	}
	return nil
}

// ValidateID checks that an identifier is non-empty, at most MaxIDLen bytes
// of valid UTF-8 and free of control characters (NUL separates key parts).
func ValidateID(what, v string) error {
	if v == "" || len(v) > MaxIDLen || !utf8.ValidString(v) {
		return fmt.Errorf("%s must be 1 to %d bytes of UTF-8: %w", what, MaxIDLen, ErrInvalid)
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%s contains a control character: %w", what, ErrInvalid)
		}
	}
	return nil
}

// Record is one record as a part sent it.
type Record struct {
	// Seq is the record's sequence number within its stream, from 1.
	Seq uint64
	// Time is when the part wrote it, by the part's clock; zero if unknown.
	Time time.Time
	// Payload is the serialized entry.
	Payload []byte
}

// StoredRecord is a record read back, with its key.
type StoredRecord struct {
	StreamKey
	Record
}

// PutResult says what a PutRecords call did.
type PutResult struct {
	// AckedThrough is the stream's watermark after the put.
	AckedThrough uint64
	// Stored counts records stored for the first time.
	Stored int
	// Duplicates counts records already held with the same bytes.
	Duplicates int
	// Conflicts lists sequences already held with different bytes: the
	// first copy stays, and the caller should log them.
	Conflicts []uint64
}

// Loss is a range of one stream that a part declared lost: what one gap
// record says. It comes with a put of the same part and store.
type Loss struct {
	// Stream is the stream that lost the range.
	Stream string
	// First and Last bound the range, inclusive: 0 < First <= Last.
	First, Last uint64
	// Reason is the part's explanation, for people.
	Reason string
}

// LostRange is a range of sequences a part declared lost.
type LostRange struct {
	// First and Last bound the range, inclusive.
	First, Last uint64
	// Reason is the part's explanation, for people.
	Reason string
}

// Query selects stored records. Results come in key order: part, store id,
// stream, sequence.
type Query struct {
	// PartIDs restricts the parts; empty means every part.
	PartIDs []string
	// Stream restricts the stream; empty means every stream.
	Stream string
	// From and To bound the records' times, From inclusive and To
	// exclusive; zero means unbounded.
	From, To time.Time
	// After is the cursor a previous call returned; empty starts at the
	// beginning.
	After string
	// Limit bounds the results; 0 means DefaultLimit, and it is capped at
	// MaxLimit.
	Limit int
}

// Bounds of Query.Limit.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// Count is what is held of one stream of one part, over all its stores.
type Count struct {
	// Records and Bytes count stored records and their payload bytes.
	Records, Bytes uint64
	// Conflicts counts repeats that arrived with different bytes.
	Conflicts uint64
}

// BlobChunk is one chunk of a blob as a part sent it.
type BlobChunk struct {
	// PartID is the part, as authenticated.
	PartID string
	// BlobID is the part's id for the blob.
	BlobID string
	// Offset is where Data starts.
	Offset uint64
	// Data is the chunk.
	Data []byte
	// Size is the blob's total size.
	Size uint64
	// SHA256 is the digest of the whole blob.
	SHA256 []byte
	// Name is where the blob came from, for people.
	Name string
	// Meta is the serialized syncv1.Capture the blob belongs with, if any.
	Meta []byte
}

// BlobProgress says how much of a blob is held.
type BlobProgress struct {
	// Received is the number of bytes held: where the next chunk starts.
	Received uint64
	// Complete is true once the whole blob arrived and matched its SHA-256.
	Complete bool
}

// BlobInfo describes a held blob.
type BlobInfo struct {
	BlobKey
	BlobProgress
	// Size and SHA256 are what the part declared.
	Size   uint64
	SHA256 []byte
	// Name and Meta are as in BlobChunk.
	Name string
	Meta []byte
}

// PartStatus is the last status a part reported.
type PartStatus struct {
	// Status is what the part said.
	Status *syncv1.PartStatus
	// At is when the cloud received it (its clock): the part's last seen.
	At time.Time
}

// Store holds what parts hand over. Every method is safe for concurrent use;
// two puts to the same stream at once still store each record exactly once.
type Store interface {
	// PutRecords stores the records of one stream that are not held yet
	// and returns the watermark. The records may come in any order and
	// repeat earlier puts; a repeated (key, seq) is never stored twice.
	// When it returns without error, the stored records are durable.
	PutRecords(ctx context.Context, key StreamKey, recs []Record) (PutResult, error)
	// PutBatch is PutRecords with losses of streams of the same part and
	// store declared with it (the ranges the gap records among recs
	// declare). The losses take effect no later than the records are
	// stored, so an acknowledged gap record has always taken effect. A
	// batch costs one durable commit, not one per record or loss, so a
	// part back from a long outage is answered within its deadline even
	// on a slow disk. A batch that changes nothing (every record and loss
	// already held) writes nothing.
	PutBatch(ctx context.Context, key StreamKey, recs []Record, losses []Loss) (PutResult, error)
	// DeclareLost records that first..last of the stream will never arrive
	// and returns the watermark, which counts the range as accounted for.
	// Declaring a range again is a no-op.
	DeclareLost(ctx context.Context, key StreamKey, first, last uint64, reason string) (ackedThrough uint64, err error)
	// AckedThrough returns the stream's watermark; 0 for an unknown stream.
	AckedThrough(ctx context.Context, key StreamKey) (uint64, error)
	// Lost returns the ranges declared lost for the stream, by last sequence.
	Lost(ctx context.Context, key StreamKey) ([]LostRange, error)
	// Records returns records matching q and the cursor of the next page,
	// which is empty after the last page.
	Records(ctx context.Context, q Query) (recs []StoredRecord, next string, err error)
	// RecordsByTime returns records of q.Streams in time order (TimeKey)
	// and the cursor of the next page, empty after the last. Records
	// without a time are not listed. A page holds fewer than q.Limit
	// records, with a cursor, when the store stepped over MaxTimeScan
	// records of other parts: continue while the cursor is set.
	RecordsByTime(ctx context.Context, q TimeQuery) (recs []StoredRecord, next string, err error)
	// Record returns one record, or ErrNotFound when it is not held or was
	// deleted.
	Record(ctx context.Context, key StreamKey, seq uint64) (StoredRecord, error)
	// Count returns what is held of one stream of one part over all its stores.
	Count(ctx context.Context, partID, stream string) (Count, error)
	// DeleteRecords erases records of one stream (people deleting data).
	// Each erased record's payload is gone, and its key stays as a
	// tombstone, so a part sending it again (its upload was not yet
	// acknowledged when the delete ran) is a repeat and a no-op: deleted
	// data never comes back. Records skips tombstones and Count no longer
	// counts them; the watermark is unchanged. Sequences not held are
	// ignored. It returns how many records it erased.
	DeleteRecords(ctx context.Context, key StreamKey, seqs []uint64) (int, error)

	// PutBlobChunk stores one chunk of a blob. The chunk must start where
	// the bytes received so far end; a chunk that starts earlier was
	// received already and is acknowledged without being stored again, and
	// one that starts later is not stored: the answer says where to
	// resume. When the last byte arrives the blob is checked against its
	// SHA-256: on a mismatch it is discarded and ErrBlobMismatch returned.
	PutBlobChunk(ctx context.Context, c BlobChunk) (BlobProgress, error)
	// Blob returns what is held of a blob, or ErrNotFound (also for a
	// deleted blob).
	Blob(ctx context.Context, partID, blobID string) (BlobInfo, error)
	// DeleteBlob erases a blob's bytes, whole or partial, and keeps its id
	// as deleted: chunks sent for it later are acknowledged as complete and
	// not stored. Deleting an unknown blob marks the id all the same, so a
	// blob whose capture was deleted before it arrived is never stored.
	DeleteBlob(ctx context.Context, partID, blobID string) error

	// PutStatus keeps a part's status, received at at, replacing the last.
	PutStatus(ctx context.Context, partID string, st *syncv1.PartStatus, at time.Time) error
	// Status returns a part's last status, or ErrNotFound.
	Status(ctx context.Context, partID string) (PartStatus, error)
	// Statuses returns the last status of each of the parts that has one,
	// by part ID, in one read (the fleet's lists read a page of parts at
	// once). A part without one, or an ID that is not one, is absent.
	Statuses(ctx context.Context, partIDs []string) (map[string]PartStatus, error)

	// Close releases the store.
	Close() error
}
