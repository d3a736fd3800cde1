package cache

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"
)

func FuzzDecodeRecord(f *testing.F) {
	f.Add(encodeRecord(Record{Payload: []byte("hello"), Priority: 3, Time: t0}))
	f.Add(encodeRecord(Record{}))
	f.Add([]byte{1, 0})
	f.Add([]byte{1, 0, 0x80, 0x80, 0x80})
	f.Add([]byte{2, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRecord(b)
		if err != nil {
			return
		}
		// Whatever decodes re-encodes to something that decodes the same.
		r2, err := decodeRecord(encodeRecord(r))
		if err != nil || !bytes.Equal(r.Payload, r2.Payload) || r.Priority != r2.Priority || !r.Time.Equal(r2.Time) {
			t.Fatalf("round trip: %+v -> %+v, %v", r, r2, err)
		}
	})
}

func FuzzDecodeMeta(f *testing.F) {
	f.Add(encodeMeta(streamMeta{Last: 10, AckedThrough: 3, Count: 7, Bytes: 700}))
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMeta(b)
		if err != nil {
			return
		}
		if m2, err := decodeMeta(encodeMeta(m)); err != nil || m2 != m {
			t.Fatalf("round trip: %+v -> %+v, %v", m, m2, err)
		}
	})
}

func FuzzDecodeDocument(f *testing.F) {
	f.Add(encodeDocument(Document{Raw: []byte("signed"), Version: 9, FetchedAt: t0}))
	f.Add([]byte{1, 0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := decodeDocument(b)
		if err != nil {
			return
		}
		d2, err := decodeDocument(encodeDocument(d))
		if err != nil || !bytes.Equal(d.Raw, d2.Raw) || d.Version != d2.Version || !d.FetchedAt.Equal(d2.FetchedAt) {
			t.Fatalf("round trip: %+v -> %+v, %v", d, d2, err)
		}
	})
}

func FuzzDecodeBlobMeta(f *testing.F) {
	f.Add(encodeBlobMeta(BlobInfo{Size: 100, Uploaded: 50, Sealed: true, Created: t0}))
	f.Add([]byte{1, 5, 6, 0, 0, 0})
	f.Add(encodeBlobMeta(BlobInfo{Size: 7, Sealed: true, deleted: true}))
	f.Fuzz(func(t *testing.T, b []byte) {
		bi, err := decodeBlobMeta("id", b)
		if err != nil {
			return
		}
		if bi.Size < 0 || bi.Uploaded < 0 || bi.Uploaded > bi.Size {
			t.Fatalf("decoded impossible blob %+v", bi)
		}
		bi2, err := decodeBlobMeta("id", encodeBlobMeta(bi))
		if err != nil || bi2.Size != bi.Size || bi2.Uploaded != bi.Uploaded || bi2.Sealed != bi.Sealed || bi2.deleted != bi.deleted || !bi2.Created.Equal(bi.Created) {
			t.Fatalf("round trip: %+v -> %+v, %v", bi, bi2, err)
		}
	})
}

func FuzzDecodeGap(f *testing.F) {
	f.Add([]byte(`{"stream":"captures","from":1,"through":9,"count":3,"bytes":300,"reason":"x","at":"2026-01-01T00:00:00Z"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = DecodeGap(b)
	})
}

func TestRecordEncodingRoundTrip(t *testing.T) {
	tests := []Record{
		{},
		{Payload: []byte("x"), Priority: 255, Time: t0},
		{Payload: make([]byte, 5000), Time: time.Unix(0, -5).UTC()}, // before 1970: a Pi without RTC
	}
	for _, r := range tests {
		got, err := decodeRecord(encodeRecord(r))
		if err != nil || !bytes.Equal(got.Payload, r.Payload) || got.Priority != r.Priority || !got.Time.Equal(r.Time) {
			t.Fatalf("round trip of %+v = %+v, %v", r, got, err)
		}
	}
}

func TestKeyLens(t *testing.T) {
	for _, st := range append(slices.Clone(allStreams), "", Stream(strings.Repeat("s", 300))) {
		if got, want := recordKeyLen(st), len(recordKey(st, 1<<63, 1<<31)); got != want {
			t.Errorf("recordKeyLen(%q) = %d, want %d", st, got, want)
		}
	}
	if got, want := prioKeyLen, len(prioKey(9, 1<<63, 1<<31)); got != want {
		t.Errorf("prioKeyLen = %d, want %d", got, want)
	}
}

func FuzzDecodeRun(f *testing.F) {
	recs := []runRec{{seq: 7, ns: t0.UnixNano(), payload: []byte("a")}, {seq: 8, payload: []byte("bb")}, {seq: 12, ns: -5, payload: nil}}
	f.Add(uint64(12), encodeRun(3, recs))
	f.Add(uint64(7), encodeRun(3, recs[:1]))
	f.Add(uint64(12), []byte{2, 0, 2, 12, 0, 0, 0, 0, 0})
	f.Add(uint64(0), []byte{2, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, last uint64, v []byte) {
		got, prio, err := decodeRun(last, v, nil)
		if err != nil {
			return
		}
		shares := 0
		for i, r := range got {
			if i > 0 && r.seq <= got[i-1].seq {
				t.Fatalf("sequences do not increase: %+v", got)
			}
			shares += r.share
		}
		if got[len(got)-1].seq != last || shares > len(v) {
			t.Fatalf("run of %d records ends at %d (key %d), shares %d of %d bytes", len(got), got[len(got)-1].seq, last, shares, len(v))
		}
		// Whatever decodes re-encodes to a run that decodes the same.
		again, prio2, err := decodeRun(last, encodeRun(prio, got), nil)
		if err != nil || prio2 != prio || len(again) != len(got) {
			t.Fatalf("round trip: %+v -> %+v, %v", got, again, err)
		}
		for i := range got {
			if again[i].seq != got[i].seq || again[i].ns != got[i].ns || !bytes.Equal(again[i].payload, got[i].payload) {
				t.Fatalf("round trip of record %d: %+v -> %+v", i, got[i], again[i])
			}
		}
		c, n := runLive(20, len(v), got, got[0].seq)
		if c != uint64(len(got)-1) || (c > 0 && n > uint64(20+len(v))) {
			t.Fatalf("runLive after the first: %d records, %d bytes", c, n)
		}
	})
}
