package ingest

import (
	"cmp"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strings"
	"time"
)

// TimeQuery selects records of some streams across parts in time order:
// the fleet-wide lists (captures of every machine of a location, logs of
// every part of an organization) merge many parts by time.
type TimeQuery struct {
	// Streams are the streams read, such as "captures"; at least one.
	Streams []string
	// PartIDs restricts the parts; empty means every part.
	PartIDs []string
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

// MaxTimeScan is the most records one RecordsByTime call may step over
// (records of parts it was not asked for) before it answers with what it
// found and a cursor, so a query for a few parts among many stays cheap.
const MaxTimeScan = 20_000

// TimeKey is a record's position in time order: by time, then part, store,
// stream and sequence, so records written at the same instant still have
// one order.
type TimeKey struct {
	Time time.Time
	StreamKey
	Seq uint64
}

// Compare orders two positions.
func (a TimeKey) Compare(b TimeKey) int {
	return cmp.Or(a.Time.Compare(b.Time), strings.Compare(a.PartID, b.PartID), strings.Compare(a.StoreID, b.StoreID),
		strings.Compare(a.Stream, b.Stream), cmp.Compare(a.Seq, b.Seq))
}

// TimeKeyOf is the position of a stored record.
func TimeKeyOf(r StoredRecord) TimeKey {
	return TimeKey{Time: r.Time, StreamKey: r.StreamKey, Seq: r.Seq}
}

// EncodeTimeCursor is the cursor after k: Unix nanoseconds and sequence,
// then the part, store and stream separated by NUL, base64url.
func EncodeTimeCursor(k TimeKey) string {
	b := binary.BigEndian.AppendUint64(nil, uint64(k.Time.UnixNano()))
	b = binary.BigEndian.AppendUint64(b, k.Seq)
	b = append(b, k.PartID+"\x00"+k.StoreID+"\x00"+k.Stream...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeTimeCursor reads a cursor EncodeTimeCursor made. It may come from
// outside (inside a caller's page token), so anything else is ErrInvalid.
func DecodeTimeCursor(s string) (TimeKey, error) {
	bad := fmt.Errorf("malformed time cursor: %w", ErrInvalid)
	if len(s) > 4*MaxIDLen+64 {
		return TimeKey{}, bad
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) < 16 {
		return TimeKey{}, bad
	}
	k := TimeKey{Time: time.Unix(0, int64(binary.BigEndian.Uint64(b))).UTC(), Seq: binary.BigEndian.Uint64(b[8:])}
	parts := strings.Split(string(b[16:]), "\x00")
	if len(parts) != 3 || k.Seq == 0 {
		return TimeKey{}, bad
	}
	k.StreamKey = StreamKey{PartID: parts[0], StoreID: parts[1], Stream: parts[2]}
	if k.Validate() != nil {
		return TimeKey{}, bad
	}
	return k, nil
}

// CheckTimeQuery validates q and returns its limit and cursor (nil at the
// start).
func CheckTimeQuery(q TimeQuery) (limit int, after *TimeKey, err error) {
	if len(q.Streams) == 0 {
		return 0, nil, fmt.Errorf("read records by time: no stream: %w", ErrInvalid)
	}
	for _, st := range q.Streams {
		if err := ValidateID("stream", st); err != nil {
			return 0, nil, fmt.Errorf("read records by time: %w", err)
		}
	}
	for _, p := range q.PartIDs {
		if err := ValidateID("part id", p); err != nil {
			return 0, nil, fmt.Errorf("read records by time: %w", err)
		}
	}
	limit = q.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	limit = min(limit, MaxLimit)
	if q.After != "" {
		k, err := DecodeTimeCursor(q.After)
		if err != nil {
			return 0, nil, fmt.Errorf("read records by time: %w", err)
		}
		after = &k
	}
	return limit, after, nil
}
