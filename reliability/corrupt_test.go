package reliability

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"connectrpc.com/connect"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	"github.com/outpost-robotics/outpost/cache"
	"github.com/outpost-robotics/outpost/cloudsync"
)

// TestCorruptStore kills a part that holds records the cloud has not got
// yet (the network is down), wrecks its store's MANIFEST as a bad SD card
// would, and starts it again. The store must be moved aside (kept, never
// deleted), a fresh store must start and reach READY within 2 s, the part
// must get its config from the cloud again and capture into the new store,
// and the loss must reach the cloud: a gap record of the new store naming
// the folder the old one was moved to.
func TestCorruptStore(t *testing.T) {
	rep := newReport(t, "corrupt-store")
	ctx := context.Background()

	cfg := sensors(20, 0, map[string]uint32{"imu": 5})
	r := newRig(ctx, t, rep, cfg)
	f, ln, p, m := r.fleet, r.link, r.part, r.m
	if _, err := p.start(); err != nil {
		rep.fatal("start: %v", err)
	}
	// Some captures reach the cloud, then the network goes down and more
	// pile up on the part only.
	if err := waitFor(waitDeadline, func() (bool, error) {
		res, err := f.Data.ListCaptures(ctx, connect.NewRequest(&fleetv1.ListCapturesRequest{MachineId: m.machineID}))
		return err == nil && len(res.Msg.GetCaptures()) > 0, nil
	}); err != nil {
		rep.fatal("no capture reached the cloud: %v", err)
	}
	ln.setDown(true)
	if err := waitFor(waitDeadline, func() (bool, error) {
		mt, err := p.scrape(ctx)
		return err == nil && mt[`outpost_backlog_records{stream="captures"}`] >= 20, nil
	}); err != nil {
		rep.fatal("no backlog piled up on the part: %v", err)
	}
	p.kill()

	// What is about to be lost: every record the old store held that the
	// cloud had not acknowledged.
	old, err := inspectStore(ctx, p.data, false)
	if err != nil {
		rep.fatal("inspect the store before wrecking it: %v", err)
	}
	var unsynced uint64
	for _, st := range cloudsync.UploadOrder {
		unsynced += old.stats[st].Last - old.stats[st].AckedThrough
	}
	storeDir := filepath.Join(p.data, "store")
	if err := os.WriteFile(filepath.Join(storeDir, "MANIFEST"), []byte("this is not a Badger manifest"), 0o600); err != nil {
		rep.fatal("wreck the store: %v", err)
	}

	ln.setDown(false)
	ready, err := p.start()
	if err != nil {
		rep.fatal("start on the wrecked store: %v", err)
	}
	aside, _ := filepath.Glob(storeDir + ".corrupt-*")
	kept := len(aside) == 1
	if kept {
		if _, err := os.Stat(filepath.Join(aside[0], "MANIFEST")); err != nil {
			kept = false
		}
	}
	// The fresh store gets the config from the cloud again and captures.
	if err := waitFor(waitDeadline, func() (bool, error) {
		rev, err := runningRevision(ctx, p.socket())
		return err == nil && rev == m.revision, nil
	}); err != nil {
		rep.fatal("the fresh part never ran its config from the cloud: %v", err)
	}
	if _, err := drain(ctx, f, &m, p, cfg); err != nil {
		rep.fatal("drain: %v", err)
	}
	sv, cv := r.settle(ctx, rep, old.id)
	gaps, err := gapsIn(cv, sv.id)
	if err != nil {
		rep.fatal("%v", err)
	}
	reported := false
	var gapCount uint64
	for _, g := range gaps {
		if g.rec.GetStream() == "" && kept && strings.Contains(g.rec.GetReason(), "store corrupted; moved aside to "+aside[0]) {
			reported = true
			gapCount = g.rec.GetCount()
		}
	}
	// The cloud's own view of the old store: what it acknowledged.
	var cloudHadOld uint64
	for _, st := range cloudsync.UploadOrder {
		cloudHadOld += cv.watermark[old.id][st]
	}
	// The store says so on stderr before the log streams exist; the
	// daemon says it again once they do, so the loss is in the cloud's logs.
	logInCloud := false
	for _, st := range []cache.Stream{cache.StreamLogsWarn} {
		for _, r := range cv.records[sv.id][st] {
			if strings.Contains(string(r.payload), "corrupted") {
				logInCloud = true
			}
		}
	}
	onStderr := false
	if b, err := os.ReadFile(p.log); err == nil {
		onStderr = strings.Contains(string(b), "store is corrupted")
	}
	tl := account(cv, sv, nil)

	rep.set("moved_aside", kept)
	rep.set("fresh_store", sv.id != "" && sv.id != old.id)
	rep.set("ready_ms", ready.Milliseconds())
	rep.set("gap_in_cloud", reported)
	rep.set("records_lost", unsynced)
	rep.set("gap_count", gapCount)
	rep.set("log_in_cloud", logInCloud)
	rep.set("log_on_stderr", onStderr)
	rep.set("old_store_in_cloud", cloudHadOld)
	rep.set("new_store_in_cloud", tl.inCloud)
	rep.check(kept, "the wrecked store was not moved aside whole (found %v)", aside)
	rep.check(sv.id != "" && sv.id != old.id, "no fresh store: store id %q before, %q after", old.id, sv.id)
	rep.check(ready <= maxReady, "READY took %s on a wrecked store", ready)
	rep.check(reported, "no gap record in the cloud reports the lost store")
	rep.check(logInCloud, "the loss never reached the cloud's logs")
	rep.check(unsynced > 0, "the scenario lost nothing it could report (the old store was fully synced)")
	rep.check(tl.ok() && sv.stats[cache.StreamCaptures].Last > 0, "the fresh store does not sync exactly once: %s", strings.Join(tl.problems, "; "))
}
