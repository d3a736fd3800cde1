package cloud_test

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/cloud/ingest"
	"github.com/outpost-robotics/outpost/cloud/ingest/ingesttest"
)

// benchCaptures is how many captures BenchmarkFleetCaptures loads:
// $OUTPOST_BENCH_CAPTURES (make bench sets 10,000,000, the goal's size),
// else 100,000, so `go test -bench` stays cheap.
func benchCaptures(b *testing.B) int {
	if v := os.Getenv("OUTPOST_BENCH_CAPTURES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 10_000 {
			b.Fatalf("OUTPOST_BENCH_CAPTURES=%q: want a number from 10000", v)
		}
		return n
	}
	return 100_000
}

// BenchmarkFleetCaptures is the server's time for the first page (100
// captures, merged by time) of the fleet-wide capture query over the
// benchmark fleet's 10,000 parts holding benchCaptures captures between
// them (goal ≤ 200 ms over 10 million), as the admin, over loopback, on
// Badger and on PostgreSQL (pgtest) side by side; also a page filtered by
// method that steps over most captures, and a location's subtree (a
// hundredth of the fleet). The captures are bulk loaded (write batches,
// COPY).
func BenchmarkFleetCaptures(b *testing.B) {
	n := benchCaptures(b)
	for _, be := range storeBackends() {
		b.Run(be.name, func(b *testing.B) {
			st, ing := be.open(b)
			cl, org := fleetBenchCloud(b, st, ing)
			loadBenchCaptures(b, ing, n)
			c := cl.Admin(b)
			ctx := context.Background()
			loc := check(c.Location.ListLocations(ctx, req(&fleetv1.ListLocationsRequest{OrgId: org})))(b).GetLocations()[0].GetId()
			for _, q := range []struct {
				name string
				q    *fleetv1.FleetDataQuery
			}{
				{"first-page", &fleetv1.FleetDataQuery{OrgId: org}},
				{"method", &fleetv1.FleetDataQuery{OrgId: org, Method: "readings"}},
				{"location", &fleetv1.FleetDataQuery{LocationId: loc}},
			} {
				b.Run(q.name, func(b *testing.B) {
					r := &fleetv1.ListFleetCapturesRequest{Query: q.q, PageSize: 100}
					for b.Loop() {
						res, err := c.Data.ListFleetCaptures(ctx, req(r))
						if err != nil {
							b.Fatal(err)
						}
						if len(res.Msg.GetCaptures()) == 0 {
							b.Fatal("an empty first page")
						}
					}
				})
			}
		})
	}
}

// loadBenchCaptures gives the benchmark fleet's parts n captures between
// them, a second apart across the fleet, one in 100 readings, the rest
// images: bulk loaded 100 parts at a time.
func loadBenchCaptures(b *testing.B, ing ingest.Store, n int) {
	b.Helper()
	bl, ok := ing.(ingesttest.BulkLoader)
	if !ok {
		b.Fatal("the ingest store cannot bulk load")
	}
	const parts, chunk = benchSites * benchLines * benchCells * benchPerLoc, 100
	image, _ := proto.Marshal(&syncv1.Capture{Component: "cam", Method: "image", MimeType: "image/jpeg", BlobId: "blob"})
	readings, _ := proto.Marshal(&syncv1.Capture{Component: "imu", Method: "readings", MimeType: "application/json", Data: []byte(`{"g":9.8}`)})
	per := n / parts
	start := time.Now()
	for p0 := 0; p0 < parts; p0 += chunk {
		var streams []ingest.Bulk
		for p := p0; p < p0+chunk; p++ {
			bk := ingest.Bulk{Key: ingest.StreamKey{PartID: newBenchID(1<<28 + p), StoreID: "s1", Stream: "captures"}, Records: make([]ingest.Record, per)}
			for i := range per {
				payload := image
				if (i*parts+p)%100 == 0 {
					payload = readings
				}
				bk.Records[i] = ingest.Record{Seq: uint64(i + 1), Time: epoch.Add(time.Duration(i*parts+p) * time.Millisecond), Payload: payload}
			}
			streams = append(streams, bk)
		}
		if err := bl.BulkLoad(context.Background(), streams); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("loaded %d captures in %v", per*parts, time.Since(start).Round(time.Millisecond))
}
