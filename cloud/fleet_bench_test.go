package cloud_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/cloud/cloudtest"
	"github.com/outpost-robotics/outpost/cloud/ingest"
	"github.com/outpost-robotics/outpost/cloud/pgtest"
	"github.com/outpost-robotics/outpost/cloud/store"
)

// The benchmark fleet: 1,000 locations three deep (10 sites of 9 lines of
// 10 cells, with their sites and lines) of 10 machines each, one part
// each, every part having reported; one in 50 failing, one in 20 silent.
const (
	benchSites, benchLines, benchCells, benchPerLoc = 10, 9, 10, 10
)

// fleetBenchCloud builds the benchmark fleet on the given stores and
// returns the cloud and the organization.
func fleetBenchCloud(b *testing.B, st store.Store, ing ingest.Store) (*cloudtest.Cloud, string) {
	b.Helper()
	ctx := context.Background()
	clk := clock.NewFake(epoch)
	cl := cloudtest.New(b, cloudtest.Options{DiscardLog: true, Clock: clk, Store: st, Ingest: ing})
	org := newBenchID(1 << 30)
	var locs []store.Location
	for s := range benchSites {
		site := store.Location{ID: newBenchID(1<<29 + s*1000), OrgID: org, Name: fmt.Sprintf("site %d", s)}
		locs = append(locs, site)
		for l := range benchLines {
			line := store.Location{ID: newBenchID(1<<29 + s*1000 + (l+1)*100), OrgID: org, ParentID: site.ID, Name: fmt.Sprintf("line %d", l)}
			locs = append(locs, line)
			for c := range benchCells {
				locs = append(locs, store.Location{ID: newBenchID(1<<29 + s*1000 + (l+1)*100 + c + 1), OrgID: org, ParentID: line.ID, Name: fmt.Sprintf("cell %d", c)})
			}
		}
	}
	if len(locs) != 1000 {
		b.Fatalf("%d locations", len(locs))
	}
	write := func(fn func(ctx context.Context, tx store.Tx) error) {
		if err := st.Update(ctx, func(tx store.Tx) error { return fn(ctx, tx) }); err != nil {
			b.Fatal(err)
		}
	}
	write(func(ctx context.Context, tx store.Tx) error {
		if err := tx.PutOrg(ctx, store.Org{ID: org, Name: "Bench"}); err != nil {
			return err
		}
		for _, l := range locs {
			if err := tx.PutLocation(ctx, l); err != nil {
				return err
			}
		}
		return nil
	})
	for i, l := range locs { // a transaction per location keeps each small
		write(func(ctx context.Context, tx store.Tx) error {
			for j := range benchPerLoc {
				n := i*benchPerLoc + j
				m := store.Machine{ID: newBenchID(n), LocationID: l.ID, Name: fmt.Sprintf("robot-%05d", (n*7919)%10000)}
				if err := tx.PutMachine(ctx, m); err != nil {
					return err
				}
				if err := tx.PutPart(ctx, store.Part{ID: newBenchID(1<<28 + n), MachineID: m.ID, Name: "main", Main: true}); err != nil {
					return err
				}
			}
			return nil
		})
	}
	for n := range len(locs) * benchPerLoc {
		if n%20 == 0 {
			continue // never seen
		}
		st := &syncv1.PartStatus{Version: fmt.Sprintf("1.%d.0", n%3), ConfigVersion: 1,
			Backlog: []*syncv1.StreamBacklog{{Stream: "logs.info", Records: uint64(n % 100)}}}
		if n%50 == 1 {
			st.Resources = []*syncv1.ResourceStatus{{Name: "process/pump", State: "failed"}}
		}
		if err := ing.PutStatus(ctx, newBenchID(1<<28+n), st, clk.Now()); err != nil {
			b.Fatal(err)
		}
	}
	return cl, org
}

// BenchmarkListFleet is the server's time per page of ListFleet over an
// organization of 10,000 machines in 1,000 locations (goal ≤ 100 ms), as
// the cloud's admin (owner of everything), over loopback (Connect, HTTP/1.1
// keep-alive), on Badger and on PostgreSQL (pgtest; both stores on it).
// Each page is 50 machines with their parts' status: the first page, a
// page from deep in the list (its token), a name search, and the offline
// filter (which reads statuses until its page fills).
func BenchmarkListFleet(b *testing.B) {
	for _, be := range storeBackends() {
		b.Run(be.name, func(b *testing.B) {
			st, ing := be.open(b)
			cl, org := fleetBenchCloud(b, st, ing)
			c := cl.Admin(b)
			ctx := context.Background()
			deep := &fleetv1.ListFleetRequest{OrgId: org, PageSize: 50}
			for range 100 { // page 101 of 200
				res, err := c.Machine.ListFleet(ctx, req(deep))
				if err != nil {
					b.Fatal(err)
				}
				deep.PageToken = res.Msg.GetNextPageToken()
			}
			for _, q := range []struct {
				name string
				req  *fleetv1.ListFleetRequest
			}{
				{"first-page", &fleetv1.ListFleetRequest{OrgId: org, PageSize: 50}},
				{"deep-page", deep},
				{"search", &fleetv1.ListFleetRequest{OrgId: org, PageSize: 50, Search: "ROBOT-09"}},
				{"offline", &fleetv1.ListFleetRequest{OrgId: org, PageSize: 50, Offline: true}},
			} {
				b.Run(q.name, func(b *testing.B) {
					res, err := c.Machine.ListFleet(ctx, req(q.req))
					if err != nil || len(res.Msg.GetMachines()) == 0 || res.Msg.GetTotal() != 10000 {
						b.Fatalf("%v machines of %v, %v", len(res.Msg.GetMachines()), res.Msg.GetTotal(), err)
					}
					start := time.Now()
					for b.Loop() {
						if _, err := c.Machine.ListFleet(ctx, req(q.req)); err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(float64(time.Since(start).Microseconds())/1000/float64(b.N), "ms/page")
				})
			}
		})
	}
}

// storeBackend opens the cloud's fleet and ingest stores one way, for the
// benchmarks that run side by side on each.
type storeBackend struct {
	name string
	open func(b *testing.B) (store.Store, ingest.Store)
}

// storeBackends are the embedded stores and PostgreSQL (pgtest).
func storeBackends() []storeBackend {
	return []storeBackend{
		{"badger", func(b *testing.B) (store.Store, ingest.Store) {
			st, ing, _ := cloudtest.OpenBadger(b, b.TempDir())
			return st, ing
		}},
		{"postgres", func(b *testing.B) (store.Store, ingest.Store) {
			st, ing, _ := cloudtest.OpenPostgres(b, pgtest.Database(b))
			return st, ing
		}},
	}
}
