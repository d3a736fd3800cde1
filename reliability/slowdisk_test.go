package reliability

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	"github.com/outpost-robotics/outpost/cache"
)

// fsyncDelay is the slow disk of the slow-disk scenario: what each synced
// commit costs on top of this machine's disk, the order of an SD card's
// flush. Badger has no file-system hook and this machine has no
// device-mapper delay target, so both binaries inject it where a slow
// device's flush is paid: after each synced commit of their stores
// (--fault-fsync-delay).
const fsyncDelay = 20 * time.Millisecond

// TestSlowDiskCatchUp is a part back from a long outage on slow storage:
// cut off from the cloud, it captures forty sensors into a 1 MiB store
// until it has evicted 100,000 records (5,000 in the CI-sized run), with
// the part's store and the cloud's ingest both on the slow disk. Once the
// link heals the part must drain its backlog exactly once, every eviction
// declared lost in the cloud by a handful of gap records, and the time to
// drain is reported.
func TestSlowDiskCatchUp(t *testing.T) {
	rep := newReport(t, "slow-disk-catch-up")
	ctx := context.Background()
	target := 5_000.0
	if *long {
		target = 100_000
	}
	// Many sensors, so that appends share the slow commits (the store
	// group-commits concurrent appends): a sensor waits for each of its
	// captures to be durable, one slow flush at a time.
	prio := map[string]uint32{}
	for i := range 40 {
		prio[fmt.Sprintf("s%02d", i)] = uint32(1 + i%2)
	}
	cfg := sensors(200, 0, prio)
	cfg.StoreBudget = &configv1.StoreBudget{MaxBytes: budgetBytes}
	r := newRigWith(ctx, t, rep, cfg, "--fault-fsync-delay", fsyncDelay.String())
	daemon := r.startWithBudget(ctx, rep)

	r.link.setDown(true)
	cut := time.Now()
	if err := waitFor(10*waitDeadline, func() (bool, error) {
		if !daemon.running() {
			rep.fatal("outpostd exited while over budget: %v", daemon.err)
		}
		mt, err := r.part.scrape(ctx)
		return err == nil && mt["outpost_store_evicted_records_total"] >= target, nil
	}); err != nil {
		rep.fatal("eviction did not reach %.0f records: %v", target, err)
	}
	r.link.setDown(false)
	healed := time.Now()
	t.Logf("evicted %.0f records in %s cut off", target, healed.Sub(cut))

	last, err := drain(ctx, r.fleet, &r.m, r.part, cfg)
	if err != nil {
		explainStuck(ctx, t, r.part, r.cloud, r.m.partID)
		rep.fatal("drain: %v", err)
	}
	drained := time.Since(healed)
	sv, cv := r.settle(ctx, rep)
	tl := account(cv, sv, nil)
	gaps, err := gapsIn(cv, sv.id)
	if err != nil {
		rep.fatal("%v", err)
	}
	var records, counted uint64
	undeclared := 0
	for _, g := range gaps {
		if !strings.HasPrefix(g.rec.GetReason(), "over byte budget") {
			continue
		}
		records++
		counted += g.rec.GetCount()
		if !declared(cv.lost[sv.id][cache.Stream(g.rec.GetStream())], g.rec.GetFirstSeq(), g.rec.GetLastSeq()) {
			undeclared++
		}
	}
	evicted := uint64(last["outpost_store_evicted_records_total"])
	rep.set("fsync_delay", fsyncDelay)
	rep.set("evicted", evicted)
	rep.set("gap_records", records)
	rep.set("drain_s", drained.Round(100*time.Millisecond).Seconds())
	rep.set("in_cloud", tl.inCloud)
	rep.set("declared_lost", tl.lost)
	rep.set("missing", tl.missing)
	rep.set("dup", tl.dup)
	for _, pr := range tl.problems {
		t.Log(pr)
	}
	rep.check(counted == evicted, "the gap records count %d evicted records, the daemon %d", counted, evicted)
	rep.check(undeclared == 0, "%d eviction gap records are not declared lost in the cloud", undeclared)
	// Consecutive evictions merge: a few records per stream and priority
	// (one more after each upload froze the open one), not one per eviction.
	rep.check(records <= 20, "%d gap records for %d evictions: consecutive evictions did not merge", records, evicted)
	rep.check(tl.ok(), "records lost silently or duplicated: %s", strings.Join(tl.problems, "; "))
	rep.check(tl.lost > 0, "nothing was declared lost, yet %d records were evicted", evicted)
}
