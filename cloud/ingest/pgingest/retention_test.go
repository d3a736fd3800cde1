package pgingest_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/cloud/ingest"
	"github.com/outpost-robotics/outpost/cloud/ingest/pgingest"
	"github.com/outpost-robotics/outpost/cloud/pgtest"
)

// TestRetention: records received on days a part's organization no longer
// keeps are erased, and nothing else. A day's partition that holds only
// such records is dropped whole; one that also holds records kept longer
// loses only the expired part's rows; today's and yesterday's are not
// touched. The keys stay: watermarks are unchanged, counters drop by what
// went, and a part sending an erased record again stores nothing.
func TestRetention(t *testing.T) {
	ctx := context.Background()
	url := pgtest.Database(t)
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	clk := clock.NewFake(now)
	s, _ := open(t, url, pgingest.Options{Clock: clk})
	defer s.Close()
	key := func(part string) ingest.StreamKey {
		return ingest.StreamKey{PartID: part, StoreID: "s", Stream: "captures"}
	}
	put := func(part string, daysAgo int, seq uint64) {
		t.Helper()
		clk.SetWall(now.AddDate(0, 0, -daysAgo))
		if _, err := s.PutRecords(ctx, key(part), []ingest.Record{{Seq: seq, Payload: []byte{byte(seq), 1, 2}}}); err != nil {
			t.Fatal(err)
		}
	}
	// a keeps 7 days, c 20 days, b for ever.
	put("a", 30, 1)
	put("c", 30, 1)
	put("a", 10, 2)
	put("b", 10, 1)
	put("a", 1, 3)
	put("a", 0, 4)
	clk.SetWall(now)
	cutoffs := map[string]time.Time{"a": now.AddDate(0, 0, -7), "c": now.AddDate(0, 0, -20)}
	res, err := s.ApplyRetention(ctx, func(p string) (time.Time, bool) { c, ok := cutoffs[p]; return c, ok })
	if err != nil {
		t.Fatal(err)
	}
	day := func(daysAgo int) string { return "ingest_payloads_p" + now.AddDate(0, 0, -daysAgo).Format("20060102") }
	if !slices.Equal(res.Dropped, []string{day(30)}) || res.Pruned != 1 {
		t.Fatalf("dropped %v and pruned %d rows; want %s dropped whole and a's row of 10 days ago pruned", res.Dropped, res.Pruned, day(30))
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	for d, want := range map[int]bool{30: false, 10: true, 1: true, 0: true, -1: true} {
		var exists bool
		if err := pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", day(d)).Scan(&exists); err != nil || exists != want {
			t.Errorf("partition %s exists %v, %v; want %v", day(d), exists, err, want)
		}
	}
	// What is left is exactly what is kept.
	recs, _, err := s.Records(ctx, ingest.Query{})
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, r := range recs {
		left = append(left, r.PartID+string(rune('0'+r.Seq)))
	}
	if want := []string{"a3", "a4", "b1"}; !slices.Equal(left, want) {
		t.Fatalf("records left %v, want %v", left, want)
	}
	var keys int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM ingest_records").Scan(&keys); err != nil || keys != 6 {
		t.Fatalf("%d record keys, %v; want all 6 kept as tombstones or records", keys, err)
	}
	for part, want := range map[string][2]uint64{"a": {4, 2}, "b": {1, 1}, "c": {1, 0}} {
		w, err := s.AckedThrough(ctx, key(part))
		c, cerr := s.Count(ctx, part, "captures")
		if err != nil || cerr != nil || w != want[0] || c.Records != want[1] || c.Bytes != 3*want[1] {
			t.Errorf("part %s: watermark %d, count %+v (%v, %v); want %d and %d records", part, w, c, err, cerr, want[0], want[1])
		}
	}
	if r, err := s.PutRecords(ctx, key("a"), []ingest.Record{{Seq: 1, Payload: []byte{1, 1, 2}}}); err != nil || r.Stored != 0 || r.Duplicates != 1 {
		t.Fatalf("an erased record sent again: %+v, %v; want a repeat", r, err)
	}
	// Run again: nothing more goes.
	if res, err := s.ApplyRetention(ctx, func(p string) (time.Time, bool) { c, ok := cutoffs[p]; return c, ok }); err != nil || len(res.Dropped) != 0 || res.Pruned != 0 {
		t.Fatalf("a second run: %+v, %v; want nothing", res, err)
	}
}
