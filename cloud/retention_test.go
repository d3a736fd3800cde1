package cloud_test

import (
	"context"
	"testing"
	"time"

	"connectrpc.com/connect"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/cloud"
	"github.com/outpost-robotics/outpost/cloud/cloudtest"
	"github.com/outpost-robotics/outpost/cloud/ingest"
	"github.com/outpost-robotics/outpost/cloud/ingest/pgingest"
	"github.com/outpost-robotics/outpost/cloud/pgtest"
	"github.com/outpost-robotics/outpost/cloud/store"
	"github.com/outpost-robotics/outpost/cloud/store/pgstore"
)

// TestDataRetention: an organization's retention, set through the API
// (hostile values refused), erases on PostgreSQL what its parts uploaded
// on days past it, and keeps another organization's records of the same
// days.
func TestDataRetention(t *testing.T) {
	cl := cloudtest.New(t, cloudtest.Options{})
	admin := cl.Admin(t)
	ctx := context.Background()
	org, err := admin.Org.CreateOrg(ctx, connect.NewRequest(&fleetv1.CreateOrgRequest{Name: "Acme"}))
	if err != nil {
		t.Fatal(err)
	}
	id := org.Msg.GetOrg().GetId()
	for _, days := range []int32{-1, 3651, -2147483648, 2147483647} {
		if _, err := admin.Org.SetDataRetention(ctx, connect.NewRequest(&fleetv1.SetDataRetentionRequest{OrgId: id, Days: days})); connect.CodeOf(err) != connect.CodeInvalidArgument {
			t.Errorf("retention of %d days: %v, want InvalidArgument", days, err)
		}
	}
	res, err := admin.Org.SetDataRetention(ctx, connect.NewRequest(&fleetv1.SetDataRetentionRequest{OrgId: id, Days: 30}))
	if err != nil || res.Msg.GetOrg().GetDataRetentionDays() != 30 {
		t.Fatalf("set retention: %v, %v", res, err)
	}

	// On PostgreSQL, two organizations' parts, records 40 days old.
	url := pgtest.Database(t)
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	clk := clock.NewFake(now.AddDate(0, 0, -40))
	st, err := pgstore.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	blobs, err := pgingest.OpenBlobStore(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer blobs.Close()
	ing, err := pgingest.Open(ctx, pgingest.Options{URL: url, Blobs: blobs, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	defer ing.Close()
	err = st.Update(ctx, func(tx store.Tx) error {
		for _, o := range []struct {
			org, part string
			keep      time.Duration
		}{{"o1", "p1", 30 * 24 * time.Hour}, {"o2", "p2", 0}} {
			for _, err := range []error{
				tx.PutOrg(ctx, store.Org{ID: o.org, Name: o.org, Retention: o.keep}),
				tx.PutLocation(ctx, store.Location{ID: "l" + o.org, OrgID: o.org, Name: "l"}),
				tx.PutMachine(ctx, store.Machine{ID: "m" + o.org, LocationID: "l" + o.org, Name: "m"}),
				tx.PutPart(ctx, store.Part{ID: o.part, MachineID: "m" + o.org, Name: "main", Main: true}),
			} {
				if err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"p1", "p2"} {
		if _, err := ing.PutRecords(ctx, ingest.StreamKey{PartID: p, StoreID: "s", Stream: "captures"}, []ingest.Record{{Seq: 1, Payload: []byte("x")}}); err != nil {
			t.Fatal(err)
		}
	}
	clk.SetWall(now)
	signer, _, err := cloud.BootstrapShared(ctx, st, t.TempDir(), clk, cloudtest.NewLog(t).Logger())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := cloud.New(cloud.Config{Store: st, Signer: signer, Clock: clk, Log: cloudtest.NewLog(t).Logger(), Ingest: ing, Blobs: blobs})
	if err != nil {
		t.Fatal(err)
	}
	srv.ApplyRetention(ctx)
	for p, want := range map[string]uint64{"p1": 0, "p2": 1} {
		if c, err := ing.Count(ctx, p, "captures"); err != nil || c.Records != want {
			t.Errorf("part %s holds %d records, %v; want %d", p, c.Records, err, want)
		}
	}
}
