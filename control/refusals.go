package control

import (
	"fmt"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
)

// Refused calls are audited in aggregate, so that a flood of them costs the
// part a bounded number of audit records however many calls it makes: the
// audit stream is never evicted, and every record in it would otherwise
// count against the store's budget and push captures out.
const (
	// refusalWindow is how long refusals of one kind are counted into one
	// record.
	refusalWindow = time.Minute
	// maxRefusalKinds bounds the kinds counted at once; refusals of further
	// kinds in the same window are counted together in one overflow record.
	maxRefusalKinds = 1024
)

// refusalKind is what makes two refusals the same for the audit log: who
// (as far as they were identified), from which address, trying what.
type refusalKind struct {
	subject, peer, action, procedure, transport string
}

// refusalCount is one kind's open window: the first refusal (written at
// once), and how many more came after it.
type refusalCount struct {
	first *syncv1.AuditEvent
	start time.Time
	more  uint64
}

// refusals aggregates refused calls into audit records. note says whether
// a refusal is the first of its kind in its window (write it now); due
// returns one record per kind whose window ended with more refusals than
// the first, carrying their count.
type refusals struct {
	mu       sync.Mutex
	open     map[refusalKind]*refusalCount
	overflow *refusalCount
	// counting is signalled when a window starts counting refusals after
	// its first, so a record will be due when it ends. No timer is armed
	// while nothing is counted.
	counting chan struct{}
}

func newRefusals() *refusals {
	return &refusals{open: map[refusalKind]*refusalCount{}, counting: make(chan struct{}, 1)}
}

func (r *refusals) signal() {
	select {
	case r.counting <- struct{}{}:
	default:
	}
}

// note counts a refusal at now. It returns true when ev opens a window:
// the caller writes it, with a count of 1.
func (r *refusals) note(ev *syncv1.AuditEvent, now time.Time) bool {
	k := refusalKind{subject: ev.GetSubject(), peer: peerHost(ev.GetPeer()), action: ev.GetAction(), procedure: ev.GetProcedure(), transport: ev.GetTransport()}
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.open[k]; ok {
		c.more++
		if c.more == 1 {
			r.signal()
		}
		return false
	}
	if len(r.open) >= maxRefusalKinds {
		if r.overflow == nil {
			r.overflow = &refusalCount{start: now, first: &syncv1.AuditEvent{Peer: "*", Action: "*", Procedure: "*", Resource: ev.GetResource()}}
		}
		r.overflow.more++
		r.signal()
		return false
	}
	first := proto.CloneOf(ev)
	first.Count = 1
	r.open[k] = &refusalCount{first: first, start: now}
	return true
}

// due closes the windows that ended by now (every window when all is
// set) and returns a record for each that counted refusals after its first.
func (r *refusals) due(now time.Time, all bool) []*syncv1.AuditEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*syncv1.AuditEvent
	closeOne := func(c *refusalCount) {
		if c.more == 0 {
			return
		}
		ev := proto.CloneOf(c.first)
		ev.Count = c.more
		ev.Reason = fmt.Sprintf("%d more refusals like this between %s and %s; the first: %s",
			c.more, c.start.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), c.first.GetReason())
		if c == r.overflow {
			ev.Reason = fmt.Sprintf("%d refusals between %s and %s, beyond the %d kinds counted one by one",
				c.more, c.start.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), maxRefusalKinds)
		}
		out = append(out, ev)
	}
	for k, c := range r.open {
		if all || !now.Before(c.start.Add(refusalWindow)) {
			closeOne(c)
			delete(r.open, k)
		}
	}
	if r.overflow != nil && (all || !now.Before(r.overflow.start.Add(refusalWindow))) {
		closeOne(r.overflow)
		r.overflow = nil
	}
	// Windows still counting will be due later.
	for _, c := range r.open {
		if c.more > 0 {
			r.signal()
			break
		}
	}
	if r.overflow != nil {
		r.signal()
	}
	return out
}

// keep puts back counts whose record could not be written, so that they
// are written with the next ones rather than lost.
func (r *refusals) keep(evs []*syncv1.AuditEvent, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ev := range evs {
		if r.overflow == nil {
			r.overflow = &refusalCount{start: now, first: &syncv1.AuditEvent{Peer: "*", Action: "*", Procedure: "*", Resource: ev.GetResource()}}
		}
		r.overflow.more += max(ev.GetCount(), 1)
	}
	r.signal()
}
