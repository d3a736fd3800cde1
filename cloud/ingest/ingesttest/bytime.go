package ingesttest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/outpost-robotics/outpost/cloud/ingest"
)

// AllByTime follows q's cursors to the end and returns every record the
// pages held, failing t on an error, a page over q.Limit or more than
// maxPages pages.
func AllByTime(t testing.TB, s ingest.Store, q ingest.TimeQuery, maxPages int) []ingest.StoredRecord {
	t.Helper()
	var got []ingest.StoredRecord
	for pages := 0; ; pages++ {
		recs, next, err := s.RecordsByTime(context.Background(), q)
		if err != nil {
			t.Fatalf("%+v: %v", q, err)
		}
		if q.Limit > 0 && len(recs) > q.Limit || pages > maxPages {
			t.Fatalf("%+v: %d records, %d pages", q, len(recs), pages)
		}
		got = append(got, recs...)
		if next == "" {
			return got
		}
		q.After = next
	}
}

// testRecordsByTime checks the fleet-wide order: records of several parts,
// stores and streams merged by time (ties by part, store, stream, seq),
// every filter, paging through a cursor at every page size, deleted
// records and records without a time left out, and hostile cursors.
func testRecordsByTime(t *testing.T, s ingest.Store, _ ingest.BlobStore) {
	ctx := context.Background()
	type put struct {
		part, store, stream string
		seq                 uint64
		at                  int // seconds after t0; -1 for no time
	}
	puts := []put{
		{"p1", "s1", "captures", 1, 5}, {"p1", "s1", "captures", 2, 1}, {"p1", "s1", "captures", 3, 9},
		{"p2", "s1", "captures", 1, 1}, {"p2", "s1", "captures", 2, 3}, {"p2", "s2", "captures", 1, 3},
		{"p3", "s1", "captures", 1, 2}, {"p3", "s1", "captures", 2, -1}, {"p3", "s1", "captures", 3, 7},
		{"p1", "s1", "logs.info", 1, 1}, {"p1", "s1", "logs.warn", 1, 1}, {"p2", "s1", "logs.info", 1, 4},
		{"p1", "s1", "captures", 4, -3600}, // before t0: an hour early clock
	}
	for _, p := range puts {
		r := ingest.Record{Seq: p.seq, Payload: fmt.Appendf(nil, "%s/%s/%s/%d", p.part, p.store, p.stream, p.seq)}
		if p.at != -1 {
			r.Time = t0.Add(time.Duration(p.at) * time.Second)
		}
		if _, err := s.PutRecords(ctx, ingest.StreamKey{PartID: p.part, StoreID: p.store, Stream: p.stream}, []ingest.Record{r}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.DeleteRecords(ctx, ingest.StreamKey{PartID: "p3", StoreID: "s1", Stream: "captures"}, []uint64{3}); err != nil {
		t.Fatal(err)
	}
	all := func(q ingest.TimeQuery) []string {
		t.Helper()
		var got []string
		for _, r := range AllByTime(t, s, q, 100) {
			got = append(got, fmt.Sprintf("%d %s", r.Time.Sub(t0)/time.Second, r.Payload))
		}
		return got
	}
	captures := []string{
		"-3600 p1/s1/captures/4", "1 p1/s1/captures/2", "1 p2/s1/captures/1", "2 p3/s1/captures/1",
		"3 p2/s1/captures/2", "3 p2/s2/captures/1", "5 p1/s1/captures/1", "9 p1/s1/captures/3",
	}
	for _, limit := range []int{0, 1, 2, 3, 7, 8, 1000} {
		if got := all(ingest.TimeQuery{Streams: []string{"captures"}, Limit: limit}); !slices.Equal(got, captures) {
			t.Errorf("captures, limit %d:\n got %q\nwant %q", limit, got, captures)
		}
	}
	logs := []string{"1 p1/s1/logs.info/1", "1 p1/s1/logs.warn/1", "4 p2/s1/logs.info/1"}
	for _, limit := range []int{1, 2, 10} {
		if got := all(ingest.TimeQuery{Streams: []string{"logs.warn", "logs.info", "logs.info"}, Limit: limit}); !slices.Equal(got, logs) {
			t.Errorf("logs, limit %d:\n got %q\nwant %q", limit, got, logs)
		}
	}
	merged := []string{"1 p1/s1/captures/2", "1 p1/s1/logs.info/1", "1 p1/s1/logs.warn/1", "5 p1/s1/captures/1"}
	for _, limit := range []int{1, 2, 3} {
		got := all(ingest.TimeQuery{Streams: []string{"captures", "logs.info", "logs.warn"}, PartIDs: []string{"p1"}, From: t0, To: t0.Add(9 * time.Second), Limit: limit})
		if !slices.Equal(got, merged) {
			t.Errorf("p1 from 0 to 9, limit %d:\n got %q\nwant %q", limit, got, merged)
		}
	}
	if got, want := all(ingest.TimeQuery{Streams: []string{"captures"}, PartIDs: []string{"p2", "p3", "nobody"}, From: t0.Add(2 * time.Second)}),
		[]string{"2 p3/s1/captures/1", "3 p2/s1/captures/2", "3 p2/s2/captures/1"}; !slices.Equal(got, want) {
		t.Errorf("p2 and p3 from 2:\n got %q\nwant %q", got, want)
	}
	if got := all(ingest.TimeQuery{Streams: []string{"nothing"}}); len(got) != 0 {
		t.Errorf("an unknown stream: %q", got)
	}
	got, err := s.Record(ctx, ingest.StreamKey{PartID: "p2", StoreID: "s2", Stream: "captures"}, 1)
	if err != nil || string(got.Payload) != "p2/s2/captures/1" || !got.Time.Equal(t0.Add(3*time.Second)) {
		t.Errorf("record p2/s2/captures/1: %+v, %v", got, err)
	}
	for _, seq := range []uint64{3, 9, 0} { // deleted, never held, never valid
		if _, err := s.Record(ctx, ingest.StreamKey{PartID: "p3", StoreID: "s1", Stream: "captures"}, seq); !errors.Is(err, ingest.ErrNotFound) {
			t.Errorf("record p3/s1/captures/%d: %v, want ErrNotFound", seq, err)
		}
	}
	first, next, err := s.RecordsByTime(ctx, ingest.TimeQuery{Streams: []string{"captures"}, Limit: 1})
	if err != nil || len(first) != 1 || next == "" {
		t.Fatalf("first page: %v %q %v", first, next, err)
	}
	for _, bad := range []ingest.TimeQuery{
		{},
		{Streams: []string{""}},
		{Streams: []string{"captures"}, PartIDs: []string{"a\x00b"}},
		{Streams: []string{"captures"}, After: "not a cursor!"},
		{Streams: []string{"captures"}, After: next[:len(next)-3]},
		{Streams: []string{"captures"}, After: ingest.EncodeTimeCursor(ingest.TimeKey{Time: t0, StreamKey: ingest.StreamKey{PartID: "p", StoreID: "s", Stream: "captures"}})},
		{Streams: []string{"captures"}, After: ingest.EncodeTimeCursor(ingest.TimeKey{Time: t0, StreamKey: ingest.StreamKey{PartID: "p\x01", StoreID: "s", Stream: "c"}, Seq: 1})},
	} {
		if _, _, err := s.RecordsByTime(ctx, bad); !errors.Is(err, ingest.ErrInvalid) {
			t.Errorf("%+v: %v, want ErrInvalid", bad, err)
		}
	}
}

// BulkLoader is a store that loads fresh streams whole (benchmarks).
type BulkLoader interface {
	BulkLoad(ctx context.Context, streams []ingest.Bulk) error
}

// testBulkLoad checks that bulk-loaded streams read back as if put: in
// time order, counted, with their watermark, and still exactly once.
func testBulkLoad(t *testing.T, s ingest.Store, _ ingest.BlobStore) {
	bl, ok := s.(BulkLoader)
	if !ok {
		t.Skip("no bulk load")
	}
	ctx := context.Background()
	var streams []ingest.Bulk
	for _, part := range []string{"p1", "p2"} {
		b := ingest.Bulk{Key: ingest.StreamKey{PartID: part, StoreID: "s", Stream: "captures"}}
		for seq := uint64(1); seq <= 3; seq++ {
			b.Records = append(b.Records, ingest.Record{Seq: seq, Time: t0.Add(time.Duration(seq) * time.Second), Payload: fmt.Appendf(nil, "%s/%d", part, seq)})
		}
		streams = append(streams, b)
	}
	if err := bl.BulkLoad(ctx, streams); err != nil {
		t.Fatal(err)
	}
	recs, _, err := s.RecordsByTime(ctx, ingest.TimeQuery{Streams: []string{"captures"}})
	var got []string
	for _, r := range recs {
		got = append(got, string(r.Payload))
	}
	if want := []string{"p1/1", "p2/1", "p1/2", "p2/2", "p1/3", "p2/3"}; err != nil || !slices.Equal(got, want) {
		t.Errorf("bulk-loaded records by time: %q, %v; want %q", got, err, want)
	}
	if c, err := s.Count(ctx, "p2", "captures"); err != nil || c.Records != 3 {
		t.Errorf("count of p2: %+v, %v", c, err)
	}
	res, err := s.PutRecords(ctx, streams[0].Key, streams[0].Records[:1])
	if err != nil || res.Duplicates != 1 || res.AckedThrough != 3 {
		t.Errorf("a repeat after a bulk load: %+v, %v", res, err)
	}
}
