package reliability

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/outpost-robotics/outpost/cache"
	"github.com/outpost-robotics/outpost/faultproxy"
)

// TestCloudKillAndFlappingPartition runs a capturing part through a
// network that goes down and up every few seconds (the fault proxy's
// partition), while the cloud itself is SIGKILLed and restarted on the same
// address. When the weather clears, the part drains, and every record it
// ever wrote must be in the cloud exactly once: nothing lost to a cloud
// that died after storing but before answering, nothing stored twice
// because the part sent it again.
func TestCloudKillAndFlappingPartition(t *testing.T) {
	rep := newReport(t, "cloud-kill-flap")
	ctx := context.Background()
	flaps, cloudKills := 6, 2
	if *long {
		flaps, cloudKills = 60, 12
	}
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 12))

	cfg := sensors(50, 0, map[string]uint32{"imu": 5, "gps": 3})
	r := newRig(ctx, t, rep, cfg)
	cl, f, ln, p, m := r.cloud, r.fleet, r.link, r.part, r.m
	if _, err := p.start(); err != nil {
		rep.fatal("start: %v", err)
	}
	if err := waitFor(waitDeadline, func() (bool, error) {
		rev, err := runningRevision(ctx, p.socket())
		return err == nil && rev == m.revision, nil
	}); err != nil {
		rep.fatal("the part never ran its config from the cloud: %v", err)
	}

	// The weather: each flap is 1-3 s down then 1-4 s up ("every few
	// seconds"); the cloud is killed during some of the up phases, and
	// comes back after 0-2 s. The sleeps are the fault schedule: the
	// checks below wait for conditions, never for time.
	killAt := map[int]bool{}
	for len(killAt) < cloudKills {
		killAt[rng.IntN(flaps)] = true
	}
	ms := func(lo, hi int) time.Duration { return time.Duration(lo+rng.IntN(hi-lo)) * time.Millisecond }
	for i := range flaps {
		ln.setDown(true)
		time.Sleep(ms(1000, 3000))
		ln.setDown(false)
		up := ms(1000, 4000)
		if !killAt[i] {
			time.Sleep(up)
			continue
		}
		time.Sleep(up / 2)
		// Killed while an upload is on its way to it: the cloud may die
		// before, while or after storing it, never answering.
		ln.forget()
		if err := waitCall(ln, "Upload"); err != nil {
			rep.fatal("before cloud kill %d: %v", i, err)
		}
		cl.kill()
		time.Sleep(ms(0, 2000))
		if err := cl.start(); err != nil {
			rep.fatal("the cloud did not come back after SIGKILL %d: %v", i, err)
		}
		time.Sleep(up / 2)
	}
	if !p.c.running() {
		rep.fatal("outpostd exited during the flapping: %v", p.c.err)
	}

	calm := time.Now()
	if _, err := drain(ctx, f, &m, p, cfg); err != nil {
		rep.fatal("drain: %v", err)
	}
	converged := time.Since(calm)
	sv, cv := r.settle(ctx, rep)
	tl := account(cv, sv, nil)
	rep.set("flaps", flaps)
	rep.set("cloud_kills", cloudKills)
	rep.set("records", tl.acked)
	rep.set("in_cloud", tl.inCloud)
	rep.set("on_part", tl.onPart)
	rep.set("dup", tl.dup)
	rep.set("missing", tl.missing)
	rep.set("lost", tl.lost)
	rep.set("reset_requests", ln.proxy.Count(faultproxy.ResetBefore))
	rep.set("converge_ms", converged.Milliseconds())
	rep.set("seed", seed)
	for _, pr := range tl.problems {
		t.Log(pr)
	}
	rep.check(tl.ok(), "not exactly once: %s", strings.Join(tl.problems, "; "))
	rep.check(tl.lost == 0, "%d records declared lost without budget pressure", tl.lost)
	rep.check(sv.stats[cache.StreamCaptures].Last > 0 && sv.stats[cache.StreamCaptures].Count == 0,
		"captures: last %d, %d left on the part after the drain", sv.stats[cache.StreamCaptures].Last, sv.stats[cache.StreamCaptures].Count)
}
