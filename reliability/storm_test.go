package reliability

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/outpost-robotics/outpost/cache"
	"github.com/outpost-robotics/outpost/cloudsync"
)

// TestSigkillStorm kills outpostd with SIGKILL at least 30 times while it
// captures two sensors and syncs every second through the real cloud: at
// READY, while an upload or a pull is on the wire, or at a random delay.
// Between kills (every other one, so that half of the restarts recover a
// crashed store by themselves) the test opens the store and notes the
// highest sequence of each stream: those records were acknowledged to
// their writers. At the end the part drains, and every acknowledged record
// must be in the cloud exactly once (or still on the part), no sequence may
// go backwards, and every restart must reach READY=1 within 2 s.
func TestSigkillStorm(t *testing.T) {
	rep := newReport(t, "sigkill-storm")
	ctx := context.Background()
	kills := 30
	if *long {
		kills = 300
	}
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 11))

	cfg := sensors(50, 0, map[string]uint32{"imu": 5, "gps": 3})
	r := newRig(ctx, t, rep, cfg)
	f, ln, p, m := r.fleet, r.link, r.part, r.m

	var readies []time.Duration
	start := func() {
		t.Helper()
		ln.forget()
		d, err := p.start()
		if err != nil {
			rep.fatal("start %d: %v", p.starts, err)
		}
		readies = append(readies, d)
		if d > maxReady {
			t.Logf("start %d: READY after %s from exec, %s inside outpostd", p.starts, d, p.ownStartup())
		}
	}
	start()
	if err := waitFor(waitDeadline, func() (bool, error) {
		rev, err := runningRevision(ctx, p.socket())
		return err == nil && rev == m.revision, nil
	}); err != nil {
		rep.fatal("the part never ran its config from the cloud: %v", err)
	}

	maxSeen := map[cache.Stream]uint64{}
	moments := map[string]int{}
	inspected := 0
	for i := 1; i <= kills; i++ {
		if i > 1 {
			start()
		}
		moment, err := killMoment(rng, ln)
		if err != nil {
			rep.fatal("kill %d: %v", i, err)
		}
		moments[moment]++
		p.kill()
		if i%2 == 1 && i != kills {
			continue // this restart recovers the crashed store by itself
		}
		v, err := inspectStore(ctx, p.data, false)
		if err != nil {
			rep.fatal("after kill %d: %v", i, err)
		}
		inspected++
		for _, st := range cloudsync.UploadOrder {
			last := v.stats[st].Last
			if last < maxSeen[st] {
				rep.fail("after kill %d: %s went back from sequence %d to %d: acknowledged records were lost", i, st, maxSeen[st], last)
			}
			maxSeen[st] = max(maxSeen[st], last)
		}
	}

	// The part comes back once more and drains; then the cloud stops so
	// its store can be read.
	start()
	if _, err := drain(ctx, f, &m, p, cfg); err != nil {
		rep.fatal("drain: %v", err)
	}
	sv, cv := r.settle(ctx, rep)
	tl := account(cv, sv, maxSeen)

	slow, maxR := 0, time.Duration(0)
	for _, d := range readies {
		maxR = max(maxR, d)
		if d > maxReady {
			slow++
		}
	}
	rep.set("kills", kills)
	rep.set("acked", tl.acked)
	rep.set("in_cloud", tl.inCloud)
	rep.set("on_part", tl.onPart)
	rep.set("dup", tl.dup)
	rep.set("missing", tl.missing)
	rep.set("max_ready_ms", maxR.Milliseconds())
	rep.set("inspected", inspected)
	rep.set("moments", formatCounts(moments))
	rep.set("seed", seed)
	for _, pr := range tl.problems {
		t.Log(pr)
	}
	rep.check(tl.ok(), "the cloud and the part disagree: %s", strings.Join(tl.problems, "; "))
	rep.check(tl.lost == 0, "%d records were declared lost, with no budget pressure", tl.lost)
	rep.check(tl.inCloud > 0 && sv.stats[cache.StreamCaptures].Last > 0, "nothing was captured or synced")
	rep.check(sv.stats[cache.StreamCaptures].Count == 0, "%d captures were left on the part after the drain", sv.stats[cache.StreamCaptures].Count)
	rep.check(slow == 0, "%d of %d starts took longer than %s to READY (max %s)", slow, len(readies), maxReady, maxR)
}

// killMoment waits for a random moment of the daemon's life to kill it
// at, and names it: at READY (applying its cached config), while an upload
// or a pull is on the wire (the cloud may or may not act on it), or after
// a random delay (anywhere in capture and sync).
func killMoment(rng *rand.Rand, ln *link) (string, error) {
	wait := func(method string, n int) error {
		for range n {
			if err := waitCall(ln, method); err != nil {
				return err
			}
		}
		return nil
	}
	switch rng.IntN(4) {
	case 0:
		return "ready", nil
	case 1:
		return "upload", wait("Upload", 1+rng.IntN(4))
	case 2:
		return "pull", wait("Pull", 1+rng.IntN(2))
	default:
		// A random moment: this delay only picks when to inject the
		// fault; nothing waits for anything to happen in it.
		time.Sleep(time.Duration(rng.IntN(1500)) * time.Millisecond)
		return "random", nil
	}
}

// formatCounts prints the kill moments as "moment:n" pairs in a fixed order.
func formatCounts(m map[string]int) string {
	var parts []string
	for _, k := range []string{"ready", "upload", "pull", "random"} {
		if m[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s:%d", k, m[k]))
		}
	}
	return strings.Join(parts, ",")
}

// waitCall waits until a sync call of method passes through the link.
func waitCall(ln *link, method string) error {
	deadline := time.After(startDeadline)
	for {
		select {
		case m := <-ln.calls:
			if m == method {
				return nil
			}
		case <-deadline:
			return fmt.Errorf("no %s reached the cloud within %s", method, startDeadline)
		}
	}
}
