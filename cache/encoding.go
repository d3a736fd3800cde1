package cache

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Key layout. One byte of namespace first so that prefixes never overlap.
//
//	s <stream> 0x00 <seq:8 BE> <size:4 BE>  a run of records, keyed by its last
//	                                        sequence (size of the value, so a delete knows
//	                                        what it frees without reading it)
//	m <stream>                              stream meta
//	p <priority:1> <seq:8 BE> <size:4 BE>   captures eviction index, one key per run
//	                                        (its key's seq and size; oldest first per priority)
//	d <kind>                           signed document
//	k <key>                            small state
//	c <blob id> 0x00 <offset:8 BE>     blob chunk
//	b <blob id>                        blob meta
//	z                                  flush sentinel (see reclaim)
const (
	nsRecord    = 's'
	nsMeta      = 'm'
	nsPrio      = 'p'
	nsDocument  = 'd'
	nsState     = 'k'
	nsChunk     = 'c'
	nsBlobMeta  = 'b'
	nsSentinel  = 'z'
	encVersion1 = 1
	encRun      = 2
)

// ErrCorruptRecord is returned when bytes read from the store do not decode.
var ErrCorruptRecord = errors.New("corrupt record encoding")

func streamPrefix(st Stream) []byte {
	k := make([]byte, 0, len(st)+2)
	k = append(k, nsRecord)
	k = append(k, st...)
	return append(k, 0)
}

// recordSeek is where a Seek lands on the record with seq, or the next one.
func recordSeek(st Stream, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(streamPrefix(st), seq)
}

func recordKey(st Stream, seq uint64, size uint32) []byte {
	return binary.BigEndian.AppendUint32(recordSeek(st, seq), size)
}

// recordKeyLen is len(recordKey(st, ...)), without making the key: the
// accounting of every queued record needs it.
func recordKeyLen(st Stream) int { return 1 + len(st) + 1 + 8 + 4 }

// seqSize returns the sequence number and value size at the end of a record
// or index key.
func seqSize(k []byte) (uint64, uint32) {
	if len(k) < 12 {
		return 0, 0
	}
	return binary.BigEndian.Uint64(k[len(k)-12:]), binary.BigEndian.Uint32(k[len(k)-4:])
}

func metaKey(st Stream) []byte { return append([]byte{nsMeta}, st...) }

func prioPrefix(prio uint8) []byte { return []byte{nsPrio, prio} }

// prioKeyLen is len(prioKey(...)): the namespace, the priority, the
// sequence number and the size.
const prioKeyLen = 1 + 1 + 8 + 4

func prioKey(prio uint8, seq uint64, size uint32) []byte {
	return binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint64(prioPrefix(prio), seq), size)
}

func chunkPrefix(id string) []byte {
	k := append([]byte{nsChunk}, id...)
	return append(k, 0)
}

func chunkKey(id string, off int64) []byte {
	return binary.BigEndian.AppendUint64(chunkPrefix(id), uint64(off))
}

func blobMetaKey(id string) []byte { return append([]byte{nsBlobMeta}, id...) }

// encodeRecord is the on-disk form of a Record:
//
//	version:1 | priority:1 | time: varint unix nanoseconds (0 = zero time) | payload
func encodeRecord(r Record) []byte {
	b := make([]byte, 0, 2+binary.MaxVarintLen64+len(r.Payload))
	b = append(b, encVersion1, r.Priority)
	var ns int64
	if !r.Time.IsZero() {
		ns = r.Time.UnixNano()
	}
	b = binary.AppendVarint(b, ns)
	return append(b, r.Payload...)
}

// decodeRecord parses encodeRecord's output. The payload aliases b.
func decodeRecord(b []byte) (Record, error) {
	if len(b) < 3 {
		return Record{}, fmt.Errorf("%w: %d bytes is too short", ErrCorruptRecord, len(b))
	}
	if b[0] != encVersion1 {
		return Record{}, fmt.Errorf("%w: unknown version %d", ErrCorruptRecord, b[0])
	}
	r := Record{Priority: b[1]}
	ns, n := binary.Varint(b[2:])
	if n <= 0 {
		return Record{}, fmt.Errorf("%w: bad time", ErrCorruptRecord)
	}
	if ns != 0 {
		r.Time = time.Unix(0, ns).UTC()
	}
	r.Payload = b[2+n:]
	return r, nil
}

// A run is the records of one stream (for captures, of one priority) that
// one group commit wrote, stored as one Badger entry keyed by the run's last
// sequence, so that Seek(recordSeek(st, seq)) lands on the run holding seq
// (runs of a stream cover disjoint, increasing ranges: a run is only ever
// made of consecutive appends, and rewritten only by dropping or changing
// records). One entry per group rather than per record is what makes the
// store's cost per batch: one key, one index key, one tombstone at ack.
//
// A run of one record is encodeRecord's form (version 1), which every
// store written before runs holds; a longer run is:
//
//	version:1 = 2 | priority:1 | count: uvarint | count × entry
//	entry: seq: uvarint (the first entry's absolute, the others' increase
//	       over the previous one, at least 1) | time: varint unix ns (0 =
//	       zero time) | payload length: uvarint | payload
//
// Deleting a record from a run leaves a hole in it; the last entry's
// sequence is always the key's.
type runRec struct {
	seq     uint64
	ns      int64
	payload []byte
	// share is the bytes the record accounts for inside the value: its
	// entry. The key and the run's header are counted while any record of
	// the run is live (see runLive).
	share int
}

func (r runRec) record(prio uint8) Record {
	rec := Record{Payload: r.payload, Priority: prio}
	if r.ns != 0 {
		rec.Time = time.Unix(0, r.ns).UTC()
	}
	return rec
}

func recNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// runMaxBytes bounds the payloads the committer puts into one run: a Read
// of a 1 MiB batch decodes about one run, and a run acked in part keeps its
// acknowledged records on disk until its last one is acked. A record
// larger than this is a run of its own.
const runMaxBytes = 1 << 20

// encodeRun encodes recs (increasing sequences, at least one) as one value.
func encodeRun(prio uint8, recs []runRec) []byte {
	if len(recs) == 1 {
		b := make([]byte, 0, 2+binary.MaxVarintLen64+len(recs[0].payload))
		b = append(b, encVersion1, prio)
		b = binary.AppendVarint(b, recs[0].ns)
		return append(b, recs[0].payload...)
	}
	size := 2 + binary.MaxVarintLen64
	for _, r := range recs {
		size += 3*binary.MaxVarintLen64 + len(r.payload)
	}
	b := make([]byte, 0, size)
	b = append(b, encRun, prio)
	b = binary.AppendUvarint(b, uint64(len(recs)))
	var prev uint64
	for i, r := range recs {
		if i == 0 {
			b = binary.AppendUvarint(b, r.seq)
		} else {
			b = binary.AppendUvarint(b, r.seq-prev)
		}
		prev = r.seq
		b = binary.AppendVarint(b, r.ns)
		b = binary.AppendUvarint(b, uint64(len(r.payload)))
		b = append(b, r.payload...)
	}
	return b
}

// decodeRun parses the value of the run whose key ends in last, appending
// its records to buf[:0]; payloads alias v. It validates everything (the
// value is outside data: it comes off the disk): sequences increase and end
// at last, lengths stay inside v, nothing trails.
func decodeRun(last uint64, v []byte, buf []runRec) ([]runRec, uint8, error) {
	buf = buf[:0]
	if len(v) > 0 && v[0] == encVersion1 {
		rec, err := decodeRecord(v)
		if err != nil {
			return nil, 0, err
		}
		return append(buf, runRec{seq: last, ns: recNanos(rec.Time), payload: rec.Payload, share: len(v)}), rec.Priority, nil
	}
	if len(v) < 3 || v[0] != encRun {
		return nil, 0, fmt.Errorf("%w: not a record or run (%d bytes)", ErrCorruptRecord, len(v))
	}
	prio := v[1]
	p := v[2:]
	count, n := binary.Uvarint(p)
	// Every entry takes at least three bytes.
	if n <= 0 || count == 0 || count > uint64(len(p))/3 {
		return nil, 0, fmt.Errorf("%w: run count", ErrCorruptRecord)
	}
	p = p[n:]
	var seq uint64
	for i := uint64(0); i < count; i++ {
		start := len(p)
		d, n := binary.Uvarint(p)
		if n <= 0 || (i > 0 && (d == 0 || seq+d < seq)) {
			return nil, 0, fmt.Errorf("%w: run entry %d sequence", ErrCorruptRecord, i)
		}
		if i == 0 {
			seq = d
		} else {
			seq += d
		}
		p = p[n:]
		ns, n := binary.Varint(p)
		if n <= 0 {
			return nil, 0, fmt.Errorf("%w: run entry %d time", ErrCorruptRecord, i)
		}
		p = p[n:]
		l, n := binary.Uvarint(p)
		if n <= 0 || l > uint64(len(p)-n) {
			return nil, 0, fmt.Errorf("%w: run entry %d length", ErrCorruptRecord, i)
		}
		p = p[n:]
		buf = append(buf, runRec{seq: seq, ns: ns, payload: p[:l:l], share: start - len(p) + int(l)})
		p = p[l:]
	}
	if len(p) != 0 || seq != last {
		return nil, 0, fmt.Errorf("%w: run ends at %d with %d bytes left, key says %d", ErrCorruptRecord, seq, len(p), last)
	}
	return buf, prio, nil
}

// runLive is what a run still holds once everything through acked is
// acknowledged: records after acked, and its key and value's bytes less the
// entries of the acknowledged ones (all of it, key and header included,
// while one record is live; nothing once none is).
func runLive(keyLen, valLen int, recs []runRec, acked uint64) (count, bytes uint64) {
	if len(recs) == 0 || recs[len(recs)-1].seq <= acked {
		return 0, 0
	}
	bytes = uint64(keyLen + valLen)
	for _, r := range recs {
		if r.seq <= acked {
			bytes -= uint64(r.share)
		} else {
			count++
		}
	}
	return count, bytes
}

// streamMeta is what the store keeps per stream, in the same transaction as
// the records it describes, so the two can never disagree after a crash.
type streamMeta struct {
	Last         uint64 // last sequence number assigned (never reused)
	AckedThrough uint64 // highest sequence the cloud acknowledged
	Count        uint64 // records present
	Bytes        uint64 // bytes of keys and values present
}

func encodeMeta(m streamMeta) []byte {
	b := []byte{encVersion1}
	for _, v := range []uint64{m.Last, m.AckedThrough, m.Count, m.Bytes} {
		b = binary.AppendUvarint(b, v)
	}
	return b
}

func decodeMeta(b []byte) (streamMeta, error) {
	if len(b) < 1 || b[0] != encVersion1 {
		return streamMeta{}, fmt.Errorf("%w: stream meta version", ErrCorruptRecord)
	}
	b = b[1:]
	var vals [4]uint64
	for i := range vals {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return streamMeta{}, fmt.Errorf("%w: stream meta field %d", ErrCorruptRecord, i)
		}
		vals[i] = v
		b = b[n:]
	}
	return streamMeta{Last: vals[0], AckedThrough: vals[1], Count: vals[2], Bytes: vals[3]}, nil
}

// encodeDocument: version:1 | doc version uvarint | fetched-at varint ns | raw
func encodeDocument(d Document) []byte {
	b := []byte{encVersion1}
	b = binary.AppendUvarint(b, d.Version)
	var ns int64
	if !d.FetchedAt.IsZero() {
		ns = d.FetchedAt.UnixNano()
	}
	b = binary.AppendVarint(b, ns)
	return append(b, d.Raw...)
}

func decodeDocument(b []byte) (Document, error) {
	if len(b) < 1 || b[0] != encVersion1 {
		return Document{}, fmt.Errorf("%w: document version", ErrCorruptRecord)
	}
	b = b[1:]
	v, n := binary.Uvarint(b)
	if n <= 0 {
		return Document{}, fmt.Errorf("%w: document version number", ErrCorruptRecord)
	}
	b = b[n:]
	ns, n := binary.Varint(b)
	if n <= 0 {
		return Document{}, fmt.Errorf("%w: document time", ErrCorruptRecord)
	}
	d := Document{Version: v, Raw: append([]byte(nil), b[n:]...)}
	if ns != 0 {
		d.FetchedAt = time.Unix(0, ns).UTC()
	}
	return d, nil
}

// blobMeta: version:1 | size uvarint | uploaded uvarint | sealed:1 | deleted:1 | created varint ns
// (the deleted byte was reserved, always 0, before captures could be deleted)
func encodeBlobMeta(bi BlobInfo) []byte {
	b := []byte{encVersion1}
	b = binary.AppendUvarint(b, uint64(bi.Size))
	b = binary.AppendUvarint(b, uint64(bi.Uploaded))
	var sealed, deleted byte
	if bi.Sealed {
		sealed = 1
	}
	if bi.deleted {
		deleted = 1
	}
	b = append(b, sealed, deleted)
	var ns int64
	if !bi.Created.IsZero() {
		ns = bi.Created.UnixNano()
	}
	return binary.AppendVarint(b, ns)
}

func decodeBlobMeta(id string, b []byte) (BlobInfo, error) {
	if len(b) < 1 || b[0] != encVersion1 {
		return BlobInfo{}, fmt.Errorf("%w: blob meta version", ErrCorruptRecord)
	}
	b = b[1:]
	size, n := binary.Uvarint(b)
	if n <= 0 || size > 1<<62 {
		return BlobInfo{}, fmt.Errorf("%w: blob size", ErrCorruptRecord)
	}
	b = b[n:]
	up, n := binary.Uvarint(b)
	if n <= 0 || up > size {
		return BlobInfo{}, fmt.Errorf("%w: blob upload offset", ErrCorruptRecord)
	}
	b = b[n:]
	if len(b) < 2 {
		return BlobInfo{}, fmt.Errorf("%w: blob flags", ErrCorruptRecord)
	}
	bi := BlobInfo{ID: id, Size: int64(size), Uploaded: int64(up), Sealed: b[0] == 1, deleted: b[1] == 1}
	ns, n := binary.Varint(b[2:])
	if n <= 0 {
		return BlobInfo{}, fmt.Errorf("%w: blob time", ErrCorruptRecord)
	}
	if ns != 0 {
		bi.Created = time.Unix(0, ns).UTC()
	}
	return bi, nil
}

// seqOf returns the 8-byte big-endian number that ends a chunk key.
func seqOf(k []byte) uint64 {
	if len(k) < 8 {
		return 0
	}
	return binary.BigEndian.Uint64(k[len(k)-8:])
}

// varintLen is the length of v as a varint.
func varintLen(v int64) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutVarint(b[:], v)
}
