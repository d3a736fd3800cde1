package clock

import (
	"context"
	"sort"
	"sync"
	"time"
)

// Fake is a Clock that moves only when a test says so. It is safe for
// concurrent use. Advance moves both readings; SetWall moves only the wall
// clock, as an NTP step or a user with `date -s` would.
type Fake struct {
	mu      sync.Mutex
	wall    time.Time
	uptime  time.Duration
	waiters []*fakeWaiter
	// changed is closed and replaced whenever the set of waiters changes, so
	// BlockUntil can wait for goroutines to arm timers without sleeping.
	changed chan struct{}
}

type fakeWaiter struct {
	at     time.Duration // uptime at which it fires
	period time.Duration // > 0 for tickers
	ch     chan time.Time
	active bool
}

// NewFake returns a fake clock whose wall time starts at wall and whose
// uptime starts at zero.
func NewFake(wall time.Time) *Fake {
	return &Fake{wall: wall, changed: make(chan struct{})}
}

// Now returns the fake wall-clock time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.wall
}

// Uptime returns the fake monotonic time.
func (f *Fake) Uptime() time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.uptime
}

// SetWall sets the wall clock to t without moving uptime or firing timers.
func (f *Fake) SetWall(t time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.wall = t
}

// Advance moves both readings forward by d, firing every timer and ticker
// whose time has come, in order. A ticker that fell several periods behind
// delivers at most one pending tick, as time.Ticker does.
func (f *Fake) Advance(d time.Duration) {
	if d < 0 {
		panic("clock: Fake.Advance with a negative duration")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	target := f.uptime + d
	for {
		w := f.nextLocked(target)
		if w == nil {
			break
		}
		// Move time to the firing moment so the value delivered is right.
		f.wall = f.wall.Add(w.at - f.uptime)
		f.uptime = w.at
		select {
		case w.ch <- f.wall:
		default: // a slow reader drops the tick, like time.Ticker
		}
		if w.period > 0 {
			w.at += w.period
		} else {
			w.active = false
		}
	}
	f.wall = f.wall.Add(target - f.uptime)
	f.uptime = target
	f.pruneLocked()
}

// nextLocked returns the active waiter that fires earliest at or before
// target, or nil.
func (f *Fake) nextLocked(target time.Duration) *fakeWaiter {
	var next *fakeWaiter
	for _, w := range f.waiters {
		if w.active && w.at <= target && (next == nil || w.at < next.at) {
			next = w
		}
	}
	return next
}

func (f *Fake) pruneLocked() {
	kept := f.waiters[:0]
	for _, w := range f.waiters {
		if w.active {
			kept = append(kept, w)
		}
	}
	for i := len(kept); i < len(f.waiters); i++ {
		f.waiters[i] = nil
	}
	f.waiters = kept
}

func (f *Fake) signalLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// Waiters returns how many timers and tickers are armed.
func (f *Fake) Waiters() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, w := range f.waiters {
		if w.active {
			n++
		}
	}
	return n
}

// BlockUntil waits until at least n timers or tickers are armed, or ctx ends.
// Tests call it before Advance so that the goroutine under test has reached
// its wait: that is how a test synchronises without sleeping.
func (f *Fake) BlockUntil(ctx context.Context, n int) error {
	for {
		f.mu.Lock()
		armed := 0
		for _, w := range f.waiters {
			if w.active {
				armed++
			}
		}
		ch := f.changed
		f.mu.Unlock()
		if armed >= n {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// NextDeadline returns how far ahead the earliest armed timer or ticker
// fires, and false if none is armed.
func (f *Fake) NextDeadline() (time.Duration, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w := f.nextLocked(1<<63 - 1)
	if w == nil {
		return 0, false
	}
	return w.at - f.uptime, true
}

func (f *Fake) arm(d, period time.Duration) *fakeWaiter {
	f.mu.Lock()
	defer f.mu.Unlock()
	w := &fakeWaiter{at: f.uptime + max(d, 0), period: period, ch: make(chan time.Time, 1), active: true}
	f.waiters = append(f.waiters, w)
	if d <= 0 && period == 0 {
		w.ch <- f.wall
		w.active = false
		f.pruneLocked()
	}
	f.signalLocked()
	return w
}

// NewTimer returns a timer that fires when Advance passes d.
func (f *Fake) NewTimer(d time.Duration) Timer {
	return &fakeTimer{f: f, w: f.arm(d, 0)}
}

// NewTicker returns a ticker that fires every d as Advance passes it.
func (f *Fake) NewTicker(d time.Duration) Ticker {
	if d <= 0 {
		panic("clock: non-positive interval for NewTicker")
	}
	return &fakeTicker{f: f, w: f.arm(d, d)}
}

// Sleep waits until Advance passes d, or ctx ends.
func (f *Fake) Sleep(ctx context.Context, d time.Duration) error {
	return sleep(ctx, f, d)
}

type fakeTimer struct {
	f *Fake
	w *fakeWaiter
}

func (t *fakeTimer) C() <-chan time.Time { return t.w.ch }

func (t *fakeTimer) Stop() bool {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	was := t.w.active
	t.w.active = false
	t.f.pruneLocked()
	t.f.signalLocked()
	return was
}

func (t *fakeTimer) Reset(d time.Duration) bool {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	was := t.w.active
	t.w.at = t.f.uptime + max(d, 0)
	if d <= 0 {
		// As a real timer: due now, so it fires now, without an Advance.
		select {
		case t.w.ch <- t.f.wall:
		default: // a value not yet received stands for this firing too
		}
		t.w.active = false
		t.f.pruneLocked()
		t.f.signalLocked()
		return was
	}
	if !t.w.active {
		t.w.active = true
		t.f.waiters = append(t.f.waiters, t.w)
	}
	t.f.signalLocked()
	return was
}

type fakeTicker struct {
	f *Fake
	w *fakeWaiter
}

func (t *fakeTicker) C() <-chan time.Time { return t.w.ch }

func (t *fakeTicker) Stop() {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	t.w.active = false
	t.f.pruneLocked()
	t.f.signalLocked()
}

func (t *fakeTicker) Reset(d time.Duration) {
	if d <= 0 {
		panic("clock: non-positive interval for Ticker.Reset")
	}
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	t.w.period = d
	t.w.at = t.f.uptime + d
	if !t.w.active {
		t.w.active = true
		t.f.waiters = append(t.f.waiters, t.w)
	}
	t.f.signalLocked()
}

// sortedDeadlines is used by tests to see the schedule.
func (f *Fake) sortedDeadlines() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []time.Duration
	for _, w := range f.waiters {
		if w.active {
			out = append(out, w.at-f.uptime)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
