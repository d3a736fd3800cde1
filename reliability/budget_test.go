package reliability

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/cache"
	"github.com/outpost-robotics/outpost/cloud/ingest"
)

// budgetBytes is the store budget of the scenario: the smallest a config
// may set (config.Validate's minimum).
const budgetBytes = 1 << 20

// commitSlack is how long a record may wait between getting its time and
// being committed: a record younger than that at an eviction may have
// been committed after it, so the order check leaves it out.
const commitSlack = time.Second

// TestByteBudgetExhausted cuts a part off from the cloud while it captures
// two sensors (priorities 1 and 5) with debug logging into a 1 MiB store,
// until it has evicted several times its budget. Then the network heals and
// the part drains. The daemon must stay up throughout; every eviction must
// reach the cloud as a gap record that declares its range lost; every
// record the part wrote must be in the cloud or declared lost; the
// evictions must follow the documented order: a class is evicted only
// when no record of a lower class was waiting (debug logs, then info logs,
// then captures from the lowest priority), oldest first within a class;
// and the store must stay within its budget, which the records that are
// never evicted (gap records, warn lines) could break: a capture refused
// for lack of room must be logged once per failure streak, not per tick.
func TestByteBudgetExhausted(t *testing.T) {
	rep := newReport(t, "byte-budget")
	ctx := context.Background()
	begin := time.Now()
	evictTarget := float64(2 * budgetBytes)
	if *long {
		evictTarget = 40 * budgetBytes
	}

	cfg := sensors(40, 6000, map[string]uint32{"low": 1, "high": 5})
	// The low-priority sensor is the slower one: once the high one filled
	// the store, its captures find nothing they may evict and are refused.
	for _, c := range cfg.Captures {
		if c.GetComponent() == "low" {
			c.FrequencyHz = 10
		}
	}
	cfg.LogLevel = "debug"
	cfg.StoreBudget = &configv1.StoreBudget{MaxBytes: budgetBytes}
	r := newRig(ctx, t, rep, cfg)
	cl, f, ln, p, m := r.cloud, r.fleet, r.link, r.part, r.m

	daemon := r.startWithBudget(ctx, rep)
	// Cut off: nothing leaves the part, so the store fills and evicts.
	t.Logf("online with the budget after %s", time.Since(begin))
	ln.setDown(true)
	cut := time.Now()
	var maxStore float64
	controlFailures := 0
	bg := breakGlass(p.socket())
	polls := 0
	if err := waitFor(4*waitDeadline, func() (bool, error) {
		if !daemon.running() {
			return false, fmt.Errorf("outpostd exited while over budget: %v", daemon.err)
		}
		// The control plane answers too; not at every poll, as each
		// break-glass call is an audit event, which is never evicted.
		if polls++; polls%20 == 0 {
			if _, err := bg.Status(ctx, connect.NewRequest(&controlv1.StatusRequest{})); err != nil {
				controlFailures++
			}
		}
		mt, err := p.scrape(ctx)
		if err != nil {
			controlFailures++
			return false, nil
		}
		maxStore = max(maxStore, mt["outpost_store_bytes"])
		return mt["outpost_store_evicted_bytes_total"] >= evictTarget, nil
	}); err != nil {
		rep.fatal("eviction did not reach %.0f bytes: %v", evictTarget, err)
	}
	ln.setDown(false)
	healed := time.Now()
	t.Logf("evicted %.0f bytes in %s cut off", evictTarget, healed.Sub(cut))

	last, err := drain(ctx, f, &m, p, cfg)
	if err != nil {
		explainStuck(ctx, t, p, cl, m.partID)
		rep.fatal("drain: %v", err)
	}
	t.Logf("drained in %s", time.Since(healed))
	sameProcess := p.c == daemon
	sv, cv := r.settle(ctx, rep)
	tl := account(cv, sv, nil)
	gaps, err := gapsIn(cv, sv.id)
	if err != nil {
		rep.fatal("%v", err)
	}

	// Every eviction is a gap record in the cloud, declaring its range lost.
	var evictions []eviction
	var gapCount uint64
	classes := map[string]int{}
	undeclared := 0
	for _, g := range gaps {
		if !strings.HasPrefix(g.rec.GetReason(), "over byte budget") {
			continue
		}
		ev, err := evictionOf(g)
		if err != nil {
			rep.fail("%v", err)
			continue
		}
		evictions = append(evictions, ev)
		gapCount += g.rec.GetCount()
		classes[ev.class.String()]++
		if !declared(cv.lost[sv.id][cache.Stream(g.rec.GetStream())], g.rec.GetFirstSeq(), g.rec.GetLastSeq()) {
			undeclared++
		}
	}
	violations := orderViolations(t, cv, sv.id, evictions, cut, healed)
	warned, allowed, err := repeatedWarnings(cv, sv.id, gaps, len(cfg.GetCaptures()))
	if err != nil {
		rep.fail("%v", err)
	}

	evicted := uint64(last["outpost_store_evicted_records_total"])
	rep.set("budget_bytes", budgetBytes)
	rep.set("evicted", evicted)
	rep.set("gap_records", len(evictions))
	rep.set("gap_count", gapCount)
	rep.set("classes", formatClasses(classes))
	rep.set("order_violations", violations)
	rep.set("declared_lost", tl.lost)
	rep.set("in_cloud", tl.inCloud)
	rep.set("missing", tl.missing)
	rep.set("dup", tl.dup)
	rep.set("max_store_bytes", int64(maxStore))
	rep.set("failure_warnings", warned)
	rep.set("up_throughout", sameProcess && controlFailures == 0)
	for _, pr := range tl.problems {
		t.Log(pr)
	}
	rep.check(sameProcess && controlFailures == 0, "the daemon was not up throughout: restarted=%v, %d failed control or metrics calls", !sameProcess, controlFailures)
	rep.check(len(evictions) > 0, "no eviction gap record reached the cloud")
	rep.check(gapCount == evicted, "the gap records count %d evicted records, the daemon %d", gapCount, evicted)
	rep.check(undeclared == 0, "%d eviction gap records are not declared lost in the cloud", undeclared)
	rep.check(classes[classDebug.String()] > 0, "no debug logs were evicted (classes %v)", classes)
	rep.check(classes[evictClass{rank: 2, prio: 1}.String()] > 0, "no priority-1 captures were evicted (classes %v)", classes)
	rep.check(violations == 0, "%d evictions broke the documented order", violations)
	// Records that are never evicted may take the store past its budget,
	// but here they are a few: gap records and the odd warn line.
	rep.check(maxStore <= budgetBytes, "the store reached %.0f bytes, over its %d budget: never-evicted records piled up", maxStore, budgetBytes)
	rep.check(warned <= allowed, "%d warn lines for failing captures, at most %d expected (one per failure streak): a persistent failure is logged at every tick, and warn lines are never evicted", warned, allowed)
	rep.check(tl.ok(), "records lost silently or duplicated: %s", strings.Join(tl.problems, "; "))
	rep.check(tl.lost > 0, "nothing was declared lost, yet %d records were evicted", evicted)
}

// evictClass is what eviction ranks: debug logs (0),
// info logs (1), captures (2) by priority.
type evictClass struct {
	rank int
	prio int
}

var (
	classDebug = evictClass{rank: 0}
	classInfo  = evictClass{rank: 1}
)

// before reports whether c goes before o in the eviction order.
func (c evictClass) before(o evictClass) bool {
	return c.rank < o.rank || (c.rank == 2 && o.rank == 2 && c.prio < o.prio)
}

func (c evictClass) String() string {
	switch c.rank {
	case 0:
		return string(cache.StreamLogsDebug)
	case 1:
		return string(cache.StreamLogsInfo)
	}
	return fmt.Sprintf("captures/p%d", c.prio)
}

// eviction is one eviction gap record.
type eviction struct {
	class       evictClass
	first, last uint64
	at          time.Time
}

// evictionOf reads an eviction gap record; a capture eviction's priority
// is only in its reason ("... evicted oldest captures of priority N").
func evictionOf(g gapInCloud) (eviction, error) {
	ev := eviction{first: g.rec.GetFirstSeq(), last: g.rec.GetLastSeq(), at: g.at}
	switch cache.Stream(g.rec.GetStream()) {
	case cache.StreamLogsDebug:
		ev.class = classDebug
	case cache.StreamLogsInfo:
		ev.class = classInfo
	case cache.StreamCaptures:
		i := strings.LastIndex(g.rec.GetReason(), "priority ")
		prio, err := strconv.Atoi(g.rec.GetReason()[i+len("priority "):])
		if i < 0 || err != nil {
			return ev, fmt.Errorf("capture eviction gap %d names no priority: %q", g.seq, g.rec.GetReason())
		}
		ev.class = evictClass{rank: 2, prio: prio}
	default:
		return ev, fmt.Errorf("gap %d: eviction of %q, a stream that is never evicted", g.seq, g.rec.GetStream())
	}
	return ev, nil
}

// declared reports whether first..last lies in one range declared lost.
func declared(lost []ingest.LostRange, first, last uint64) bool {
	for _, r := range lost {
		if r.First <= first && last <= r.Last {
			return true
		}
	}
	return false
}

// orderViolations checks each eviction made while the part was cut off
// against the records that survived it (they reached the cloud later):
// a survivor written after the cut and before the eviction was waiting in
// the store when it ran, so it must not be of a class that goes first, nor
// of the same class and older than what was evicted.
func orderViolations(t *testing.T, cv *cloudView, storeID string, evs []eviction, cut, healed time.Time) int {
	type survivor struct {
		class evictClass
		seq   uint64
		at    time.Time
	}
	var survivors []survivor
	for st, class := range map[cache.Stream]evictClass{cache.StreamLogsDebug: classDebug, cache.StreamLogsInfo: classInfo} {
		for _, r := range cv.records[storeID][st] {
			if r.time.After(cut) {
				survivors = append(survivors, survivor{class: class, seq: r.seq, at: r.time})
			}
		}
	}
	for _, r := range cv.records[storeID][cache.StreamCaptures] {
		var c syncv1.Capture
		if !r.time.After(cut) || proto.Unmarshal(r.payload, &c) != nil {
			continue
		}
		survivors = append(survivors, survivor{class: evictClass{rank: 2, prio: int(c.GetPriority())}, seq: r.seq, at: r.time})
	}
	slices.SortFunc(survivors, func(a, b survivor) int { return a.at.Compare(b.at) })
	n, checked := 0, 0
	for _, ev := range evs {
		if !ev.at.After(cut) || ev.at.After(healed) {
			continue // uploads ran then: a survivor may have left before the eviction
		}
		checked++
		for _, s := range survivors {
			if !s.at.Before(ev.at.Add(-commitSlack)) {
				break
			}
			if s.class.before(ev.class) || (s.class == ev.class && s.seq <= ev.last) {
				n++
				if n <= 5 {
					t.Logf("eviction of %s %d..%d at %s while %s sequence %d from %s was waiting",
						ev.class, ev.first, ev.last, ev.at.Format(time.RFC3339Nano), s.class, s.seq, s.at.Format(time.RFC3339Nano))
				}
			}
		}
	}
	t.Logf("order: %d evictions while cut off, checked against %d records written after the cut", checked, len(survivors))
	return n
}

// repeatedWarnings counts the part's warn lines for failing captures and
// the most that capture's promise allows: a failure is logged when it starts
// or changes, not at every tick, so after each collector's first one every
// further warning needs a "capture recovered" line in between: held in the
// cloud, or accounted for by a gap record (info logs evicted, lines dropped).
// It matters because warn lines are never evicted: one per tick would grow
// the store past its budget for as long as the part stays offline.
func repeatedWarnings(cv *cloudView, storeID string, gaps []gapInCloud, collectors int) (warned, allowed int, err error) {
	count := func(st cache.Stream, msg string) (int, error) {
		n := 0
		for _, r := range cv.records[storeID][st] {
			var e syncv1.LogEntry
			if err := proto.Unmarshal(r.payload, &e); err != nil {
				return 0, fmt.Errorf("%s record %d does not decode: %w", st, r.seq, err)
			}
			if e.GetMessage() == msg {
				n++
			}
		}
		return n, nil
	}
	if warned, err = count(cache.StreamLogsWarn, "capture failing"); err != nil {
		return 0, 0, err
	}
	recovered, err := count(cache.StreamLogsInfo, "capture recovered")
	if err != nil {
		return 0, 0, err
	}
	allowed = collectors + recovered
	for _, g := range gaps {
		if g.rec.GetStream() == string(cache.StreamLogsInfo) || (g.rec.GetStream() == "" && strings.Contains(g.rec.GetReason(), "log lines dropped")) {
			allowed += int(g.rec.GetCount())
		}
	}
	return warned, allowed, nil
}

// formatClasses prints eviction counts per class in eviction order.
func formatClasses(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s:%d", k, m[k]))
	}
	return strings.Join(parts, ",")
}
