// Package capture turns the running machine into data for the cloud: it
// polls configured component methods at their frequency into the captures
// stream, and takes files from sync folders as blobs.
//
// It writes through Sink, a small interface shaped like the daemon's store
// (package cache) so that the daemon's adapter is a line per method, and so
// capture does not depend on Badger. capturetest.Sink is an in-memory Sink
// for tests.
package capture

import (
	"context"
	"errors"
	"time"
)

// Stream names an append-only stream of the store.
type Stream string

// StreamCaptures is the stream captures and file records go to (the same
// name as cache.StreamCaptures).
const StreamCaptures Stream = "captures"

// Record is one entry of a stream (mirrors cache.Record).
type Record struct {
	// Payload is a JSON-encoded Capture.
	Payload []byte
	// Priority orders captures for eviction: lower goes first.
	Priority uint8
	// Time is when the data was read.
	Time time.Time
}

// ErrNotFound is what Sink.GetState wraps for a missing key.
var ErrNotFound = errors.New("not found")

// Sink is where captured data goes. Every method is durable when it returns
// nil, except Queue, whose record is durable when its Wait returns nil.
type Sink interface {
	// Append appends rec to stream and returns its sequence number.
	Append(ctx context.Context, stream Stream, rec Record) (uint64, error)
	// Queue queues rec for Append's durable append and returns without
	// waiting for it; the Queued it returns waits. One caller's queued
	// records are appended in the order it queued them. An error means
	// nothing was queued.
	Queue(ctx context.Context, stream Stream, rec Record) (Queued, error)
	// PutBlobChunk stores data at offset of blob id, creating the blob on
	// its first chunk; a chunk the blob already holds is accepted and
	// ignored, so a blob can be written again from offset 0 after a crash.
	PutBlobChunk(ctx context.Context, id string, offset int64, data []byte) error
	// SealBlob marks blob id complete, ready to upload.
	SealBlob(ctx context.Context, id string) error
	// PutState and GetState keep small values across restarts: which
	// files were already taken. GetState wraps ErrNotFound for a missing
	// key.
	PutState(ctx context.Context, key string, value []byte) error
	GetState(ctx context.Context, key string) ([]byte, error)
}

// Queued is an append a Sink has taken and may not yet have made durable.
// Until Wait returns nil the record may be lost with the process, and its
// payload must not change.
type Queued interface {
	// Done is closed once the outcome is known.
	Done() <-chan struct{}
	// Wait waits for the outcome: the record's sequence number once it is
	// durable, or the error that kept it from being written.
	Wait() (uint64, error)
}

// Await is Append made of Queue: it returns err, Queue's error, or waits
// for q. A Sink whose Append is its Queue followed by the wait writes
// Append as Await(s.Queue(ctx, st, rec)).
func Await(q Queued, err error) (uint64, error) {
	if err != nil {
		return 0, err
	}
	return q.Wait()
}

// Capture is the JSON payload of every record capture appends.
type Capture struct {
	// Kind is "method" for a polled method, "file" for a synced file.
	Kind string `json:"kind"`
	// Component and Method name a polled method.
	Component string `json:"component,omitempty"`
	Method    string `json:"method,omitempty"`
	// Time is the wall-clock time of the read.
	Time time.Time `json:"time"`
	// Tick is the poll's tick number since the method started (1, 2, ...).
	Tick uint64 `json:"tick,omitempty"`
	// Missed is how many ticks were skipped just before this one because
	// a read was slow, so the cloud sees the gap.
	Missed uint64   `json:"missed,omitempty"`
	Tags   []string `json:"tags,omitempty"`
	// Data is the method's result: readings, status, or is_moving.
	Data any `json:"data,omitempty"`
	// BlobID names the blob holding an image or a file.
	BlobID   string `json:"blob_id,omitempty"`
	MimeType string `json:"mime_type,omitempty"`
	// File describes a synced file.
	File *FileInfo `json:"file,omitempty"`
}

// FileInfo describes a file taken from a sync folder.
type FileInfo struct {
	Folder  string    `json:"folder"`
	Path    string    `json:"path"` // relative to Folder, with '/'
	Size    int64     `json:"size"`
	ModTime time.Time `json:"mod_time"`
}
