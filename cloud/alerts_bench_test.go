package cloud_test

import (
	"context"
	"testing"
	"time"

	"github.com/outpost-robotics/outpost/cloud/cloudtest"
	"github.com/outpost-robotics/outpost/cloud/store"
)

// BenchmarkEvaluateAlerts is one evaluation round of six organization-wide
// rules (one of each kind) over the ListFleet benchmark's fleet: 10,000
// parts in 1,000 locations, 9,500 of which reported, one in 50 failing.
// The first round records the failing parts' transitions (outside the
// timing); the timed rounds are the steady state, in which nothing
// changes: the rules and states read, each rule's scope walked, every
// status read in chunks, the error logs of the window counted, each
// condition decided. It reports CPU per round (user and system, the whole
// process) beside wall time.
func BenchmarkEvaluateAlerts(b *testing.B) {
	st, ing, _ := cloudtest.OpenBadger(b, b.TempDir())
	cl, org := fleetBenchCloud(b, st, ing)
	ctx := context.Background()
	// Written to the store directly, with a webhook the cloud refuses at
	// delivery: the first round's transitions are recorded without a
	// network round trip.
	err := st.Update(ctx, func(tx store.Tx) error {
		for i, r := range []store.AlertRule{
			{Kind: "offline", Window: 5 * time.Minute},
			{Kind: "failing"},
			{Kind: "error_logs", Threshold: 10, Window: 10 * time.Minute},
			{Kind: "capture_backlog", Threshold: 50},
			{Kind: "store_bytes", Threshold: 1 << 30},
			{Kind: "rollout_failed"},
		} {
			r.ID, r.OrgID, r.Scope, r.Name = newBenchID(1<<27+i), org, "org/"+org, r.Kind
			r.WebhookURL, r.Secret = "https://127.0.0.1:1/", []byte("bench")
			if err := tx.PutAlertRule(ctx, r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := cl.Server.EvaluateAlerts(ctx); err != nil {
		b.Fatal(err)
	}
	var firing int
	err = st.View(ctx, func(tx store.Tx) error {
		states, err := tx.ListAlertStates(ctx, "")
		firing = len(states)
		return err
	})
	if err != nil || firing != 200 {
		b.Fatalf("after the first round %d states firing (%v), want the 200 failing parts", firing, err)
	}
	cpu0, start := cpuSeconds(b, 0), time.Now()
	for b.Loop() {
		if err := cl.Server.EvaluateAlerts(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric((cpuSeconds(b, 0)-cpu0)*1000/float64(b.N), "cpu-ms/round")
	b.ReportMetric(float64(time.Since(start).Microseconds())/1000/float64(b.N), "ms/round")
}
