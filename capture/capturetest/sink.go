// Package capturetest provides an in-memory capture.Sink for tests, and
// sensor readings like a robot's for benchmarks.
package capturetest

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/outpost-robotics/outpost/capture"
)

// Sink keeps everything in memory. It is safe for concurrent use; OnAppend,
// when set before use, is called after every append.
type Sink struct {
	mu      sync.Mutex
	records map[capture.Stream][]capture.Record
	blobs   map[string][]byte
	sealed  map[string]bool
	state   map[string][]byte
	// OnAppend observes appends (for tests that wait for a count).
	OnAppend func(capture.Stream, capture.Record)
}

// New returns an empty Sink.
func New() *Sink {
	return &Sink{records: map[capture.Stream][]capture.Record{}, blobs: map[string][]byte{}, sealed: map[string]bool{}, state: map[string][]byte{}}
}

// Append stores rec.
func (s *Sink) Append(ctx context.Context, st capture.Stream, rec capture.Record) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	s.records[st] = append(s.records[st], rec)
	n := uint64(len(s.records[st]))
	f := s.OnAppend
	s.mu.Unlock()
	if f != nil {
		f(st, rec)
	}
	return n, nil
}

// Queue stores rec at once, as Append does: the Queued it returns is done.
func (s *Sink) Queue(ctx context.Context, st capture.Stream, rec capture.Record) (capture.Queued, error) {
	seq, err := s.Append(ctx, st, rec)
	if err != nil {
		return nil, err
	}
	return Done(seq), nil
}

// Done is a capture.Queued whose record is already durable.
func Done(seq uint64) capture.Queued {
	d := done{seq: seq, ch: make(chan struct{})}
	close(d.ch)
	return d
}

type done struct {
	seq uint64
	ch  chan struct{}
}

func (d done) Done() <-chan struct{} { return d.ch }
func (d done) Wait() (uint64, error) { return d.seq, nil }

// PutBlobChunk stores a chunk; it must continue the blob or repeat bytes it
// already holds, as the store demands.
func (s *Sink) PutBlobChunk(ctx context.Context, id string, offset int64, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.blobs[id]
	switch {
	case offset+int64(len(data)) <= int64(len(b)):
		return nil
	case offset != int64(len(b)):
		return fmt.Errorf("blob %s: chunk at %d, blob has %d bytes", id, offset, len(b))
	}
	s.blobs[id] = append(b, data...)
	return nil
}

// SealBlob seals a blob.
func (s *Sink) SealBlob(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.blobs[id]; !ok {
		s.blobs[id] = nil // an empty file is an empty blob
	}
	s.sealed[id] = true
	return nil
}

// PutState stores a value.
func (s *Sink) PutState(_ context.Context, key string, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.state[key] = append([]byte(nil), value...)
	return nil
}

// GetState returns a value or capture.ErrNotFound.
func (s *Sink) GetState(_ context.Context, key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.state[key]
	if !ok {
		return nil, fmt.Errorf("state %s: %w", key, capture.ErrNotFound)
	}
	return v, nil
}

// Records returns a copy of a stream's records.
func (s *Sink) Records(st capture.Stream) []capture.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]capture.Record(nil), s.records[st]...)
}

// Captures decodes a stream's payloads.
func (s *Sink) Captures(st capture.Stream) ([]capture.Capture, error) {
	var out []capture.Capture
	for _, r := range s.Records(st) {
		var c capture.Capture
		if err := json.Unmarshal(r.Payload, &c); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// Blob returns a blob's bytes and whether it is sealed.
func (s *Sink) Blob(id string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.blobs[id], s.sealed[id]
}

// Blobs counts blobs.
func (s *Sink) Blobs() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.blobs)
}
