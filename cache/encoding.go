package cache

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Key layout. One byte of namespace first so that prefixes never overlap.
//
//	s <stream> 0x00 <seq:8 BE> <size:4 BE>  record (size of the value, so a
//	                                        delete knows what it frees without reading it)
//	m <stream>                              stream meta
//	p <priority:1> <seq:8 BE> <size:4 BE>   captures eviction index (oldest first per priority)
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
