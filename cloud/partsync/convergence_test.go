package partsync_test

import (
	"bytes"
	"context"
	"testing"

	"connectrpc.com/connect"

	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/cloud/ingest"
	"github.com/outpost-robotics/outpost/cloud/partsync"
	"github.com/outpost-robotics/outpost/faultproxy"
)

// TestConvergenceThroughFaults runs a scripted part through a network that
// fails a third of its requests in every way the fault proxy knows except
// hanging (which only costs the client's deadline): refused before the
// cloud, reset after the cloud stored the batch, truncated answers,
// requests delivered twice. The part behaves as the daemon does: gap
// records first, batches from its acknowledged watermark, deletion only
// through min(acked_through, last seq of the batch), and a failed batch
// sent again. At the end every record is held exactly once.
func TestConvergenceThroughFaults(t *testing.T) {
	e := newEnv(t, partsync.Options{})
	secret := e.backend.provision("part-a")
	proxy, err := faultproxy.New(e.url, faultproxy.Random(42, map[faultproxy.Fault]float64{
		faultproxy.Status503:     0.04,
		faultproxy.Status429:     0.03,
		faultproxy.ResetBefore:   0.05,
		faultproxy.ResetAfter:    0.08,
		faultproxy.TruncateAfter: 0.05,
		faultproxy.Duplicate:     0.08,
		faultproxy.SlowAfter:     0.02,
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	c, err := outsyncClient(proxy.URL(), "part-a", secret, "gzip")
	if err != nil {
		t.Fatal(err)
	}

	// What the part holds: logs.info 1..1200 with 201..250 evicted (and a
	// gap record saying so), captures 1..1000.
	type stream struct {
		name   string
		seqs   []uint64
		recs   map[uint64]*syncv1.Record
		acked  uint64
		expect int
	}
	logs := span(1, 200)
	logs = append(logs, span(251, 1200)...)
	streams := []*stream{
		{name: "gaps", seqs: []uint64{1}, recs: map[uint64]*syncv1.Record{1: gap(t, 1, "logs.info", 201, 250)}, expect: 1},
		{name: "logs.info", seqs: logs, expect: 1150},
		{name: "captures", seqs: span(1, 1000), expect: 1000},
	}
	for _, s := range streams {
		if s.recs == nil {
			s.recs = map[uint64]*syncv1.Record{}
			for _, r := range records(s.name, s.seqs...) {
				s.recs[r.Seq] = r
			}
		}
	}
	batch := 0
	calls, failures := 0, 0
	for _, s := range streams {
		for s.acked < s.seqs[len(s.seqs)-1] {
			if calls++; calls > 2000 {
				t.Fatalf("no convergence after %d calls (%d failed); %s acked through %d", calls, failures, s.name, s.acked)
			}
			// The next batch: the records past the watermark, 1..37 of them.
			batch = batch%37 + 1
			var recs []*syncv1.Record
			for _, q := range s.seqs {
				if q > s.acked && len(recs) < batch {
					recs = append(recs, s.recs[q])
				}
			}
			ans, err := c.Upload(context.Background(), connect.NewRequest(&syncv1.UploadRequest{StoreId: "store-1", Stream: s.name, Records: recs}))
			if err != nil {
				failures++
				continue // sent again, unchanged in content, next round
			}
			through := min(ans.Msg.GetAckedThrough(), recs[len(recs)-1].Seq)
			if through <= s.acked {
				t.Fatalf("%s: acked through %d, nothing past %d", s.name, ans.Msg.GetAckedThrough(), s.acked)
			}
			s.acked = through
		}
	}
	if failures == 0 || proxy.Count(faultproxy.Duplicate) == 0 || proxy.Count(faultproxy.ResetAfter) == 0 {
		t.Fatalf("the network was too kind: %d failures, %d duplicates, %d resets after", failures, proxy.Count(faultproxy.Duplicate), proxy.Count(faultproxy.ResetAfter))
	}
	t.Logf("%d uploads, %d failed after retries; %d requests through the proxy", calls, failures, proxy.Requests())

	ctx := context.Background()
	for _, s := range streams {
		n, err := e.store.Count(ctx, "part-a", s.name)
		if err != nil || int(n.Records) != s.expect || n.Conflicts != 0 {
			t.Errorf("%s: %+v, %v; want %d records, no conflicts", s.name, n, err, s.expect)
		}
		var got []uint64
		var rs []ingest.StoredRecord
		q := ingest.Query{PartIDs: []string{"part-a"}, Stream: s.name, Limit: ingest.MaxLimit}
		for {
			page, next, err := e.store.Records(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			rs = append(rs, page...)
			if next == "" {
				break
			}
			q.After = next
		}
		for _, r := range rs {
			if !bytes.Equal(r.Payload, s.recs[r.Seq].GetPayload()) {
				t.Errorf("%s %d: payload differs", s.name, r.Seq)
			}
			got = append(got, r.Seq)
		}
		if len(got) != len(s.seqs) {
			t.Fatalf("%s: %d records held, want %d", s.name, len(got), len(s.seqs))
		}
		for i := range got {
			if got[i] != s.seqs[i] {
				t.Fatalf("%s: held %v, want %v", s.name, got, s.seqs)
			}
		}
	}
	if w, _ := e.store.AckedThrough(ctx, ingest.StreamKey{PartID: "part-a", StoreID: "store-1", Stream: "logs.info"}); w != 1200 {
		t.Errorf("logs.info watermark %d, want 1200", w)
	}
}
