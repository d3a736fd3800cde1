package cache

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// Kind names a signed document.
type Kind string

// The signed documents the store keeps.
const (
	KindConfig Kind = "config"
	KindGrants Kind = "grants"
)

// Document is a signed document exactly as the cloud sent it. The store does
// not verify signatures (that is the sync package's job); it keeps the bytes.
type Document struct {
	Raw       []byte
	Version   uint64
	FetchedAt time.Time
}

// PutDocument durably stores doc as the current document of kind. A version
// lower than the stored one is refused with ErrStaleVersion (rollback).
func (s *Store) PutDocument(ctx context.Context, kind Kind, doc Document) error {
	if kind != KindConfig && kind != KindGrants {
		return fmt.Errorf("put document %q: unknown kind", kind)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put document %s: %w", kind, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return fmt.Errorf("put document %s: %w", kind, ErrClosed)
	}
	key := append([]byte{nsDocument}, kind...)
	err := s.update(func(txn *badger.Txn) error {
		cur, err := getDocument(txn, key)
		switch {
		case errors.Is(err, ErrNotFound):
		case err != nil:
			return err
		case doc.Version < cur.Version:
			return fmt.Errorf("version %d, stored %d: %w", doc.Version, cur.Version, ErrStaleVersion)
		}
		return txn.Set(key, encodeDocument(doc))
	})
	if err != nil {
		return fmt.Errorf("put document %s: %w", kind, err)
	}
	return nil
}

// GetDocument returns the current document of kind, or ErrNotFound.
func (s *Store) GetDocument(ctx context.Context, kind Kind) (Document, error) {
	var d Document
	err := s.view(ctx, func(txn *badger.Txn) error {
		var err error
		d, err = getDocument(txn, append([]byte{nsDocument}, kind...))
		return err
	})
	if err != nil {
		return Document{}, fmt.Errorf("get document %s: %w", kind, err)
	}
	return d, nil
}

func getDocument(txn *badger.Txn, key []byte) (Document, error) {
	v, err := getValue(txn, key)
	if err != nil {
		return Document{}, err
	}
	return decodeDocument(v)
}

func getValue(txn *badger.Txn, key []byte) ([]byte, error) {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return item.ValueCopy(nil)
}

func (s *Store) view(ctx context.Context, fn func(txn *badger.Txn) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.closed.Load() {
		return ErrClosed
	}
	return s.db.View(fn)
}

// State keys the daemon uses. Callers may use other keys too.
const (
	StateControlCert  = "control.cert"  // the control plane's TLS certificate and key (secret: never log)
	stateOfflineClock = "offline.clock" // see PutOfflineClock
	stateCursorPrefix = "cursor/"
)

// MaxStateBytes bounds one state value; state is for small things.
const MaxStateBytes = 64 << 10

// PutState durably stores a small value under key.
func (s *Store) PutState(ctx context.Context, key string, value []byte) error {
	if key == "" {
		return errors.New("put state: empty key")
	}
	if len(value) > MaxStateBytes {
		return fmt.Errorf("put state %s: %d bytes, max %d: %w", key, len(value), MaxStateBytes, ErrTooLarge)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put state %s: %w", key, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return fmt.Errorf("put state %s: %w", key, ErrClosed)
	}
	err := s.update(func(txn *badger.Txn) error {
		return txn.Set(append([]byte{nsState}, key...), value)
	})
	if err != nil {
		return fmt.Errorf("put state %s: %w", key, err)
	}
	return nil
}

// GetState returns the value under key, or ErrNotFound.
func (s *Store) GetState(ctx context.Context, key string) ([]byte, error) {
	var v []byte
	err := s.view(ctx, func(txn *badger.Txn) error {
		var err error
		v, err = getValue(txn, append([]byte{nsState}, key...))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("get state %s: %w", key, err)
	}
	return v, nil
}

// SetCursor durably stores a named position (for example the last sequence
// the sync package sent on a stream).
func (s *Store) SetCursor(ctx context.Context, name string, pos uint64) error {
	return s.PutState(ctx, stateCursorPrefix+name, binary.BigEndian.AppendUint64(nil, pos))
}

// Cursor returns a named position; 0 when never set.
func (s *Store) Cursor(ctx context.Context, name string) (uint64, error) {
	v, err := s.GetState(ctx, stateCursorPrefix+name)
	if errors.Is(err, ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("cursor %s: %w", name, ErrCorruptRecord)
	}
	return binary.BigEndian.Uint64(v), nil
}

// OfflineClock is the persisted state of the offline clock, which judges
// expiry in a way setting the part's clock back cannot fool; the logic that
// uses it lives in the sync package.
type OfflineClock struct {
	// LastCloudTime is the last wall time the cloud confirmed.
	LastCloudTime time.Time
	// UptimeSince is the uptime accumulated since LastCloudTime, across reboots.
	UptimeSince time.Duration
	// PartWallAtContact is the part's own wall clock when the cloud last
	// confirmed the time (zero when unknown, as in stores written before
	// it was kept).
	PartWallAtContact time.Time
}

// PutOfflineClock durably stores the offline clock.
func (s *Store) PutOfflineClock(ctx context.Context, c OfflineClock) error {
	b := binary.AppendVarint([]byte{encVersion1}, unixNanoOrZero(c.LastCloudTime))
	b = binary.AppendVarint(b, int64(c.UptimeSince))
	// A third field, after the two every version wrote: older stores end
	// here, and read back as "unknown".
	b = binary.AppendVarint(b, unixNanoOrZero(c.PartWallAtContact))
	return s.PutState(ctx, stateOfflineClock, b)
}

// GetOfflineClock returns the offline clock; the zero value when never stored.
func (s *Store) GetOfflineClock(ctx context.Context) (OfflineClock, error) {
	v, err := s.GetState(ctx, stateOfflineClock)
	if errors.Is(err, ErrNotFound) {
		return OfflineClock{}, nil
	}
	if err != nil {
		return OfflineClock{}, err
	}
	if len(v) < 1 || v[0] != encVersion1 {
		return OfflineClock{}, fmt.Errorf("offline clock: %w", ErrCorruptRecord)
	}
	ns, n := binary.Varint(v[1:])
	if n <= 0 {
		return OfflineClock{}, fmt.Errorf("offline clock: %w", ErrCorruptRecord)
	}
	up, m := binary.Varint(v[1+n:])
	if m <= 0 {
		return OfflineClock{}, fmt.Errorf("offline clock: %w", ErrCorruptRecord)
	}
	c := OfflineClock{UptimeSince: time.Duration(up), LastCloudTime: timeOrZero(ns)}
	if rest := v[1+n+m:]; len(rest) > 0 {
		wall, k := binary.Varint(rest)
		if k != len(rest) {
			return OfflineClock{}, fmt.Errorf("offline clock: %w", ErrCorruptRecord)
		}
		c.PartWallAtContact = timeOrZero(wall)
	}
	return c, nil
}

// unixNanoOrZero and timeOrZero encode a time as Unix nanoseconds, the zero
// time as 0.
func unixNanoOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func timeOrZero(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}
