// Package clock injects time into Outpost's logic.
//
// Nothing outside this package calls time.Now, time.Sleep, time.After or
// time.NewTicker directly: it takes a Clock. Real is the clock of the machine;
// Fake is a clock a test moves by hand, so sixty days of offline life run in
// milliseconds and no test passes by sleeping long enough.
//
// A Clock has two readings because a robot has two kinds of time. Now is the
// wall clock, which on a Raspberry Pi without a real-time clock may start in
// 1970 and jump years when NTP arrives. Uptime is monotonic: it only grows
// while the process runs and never jumps, so it measures how long something
// really lasted, which is what judges how long a part has been offline.
package clock

import (
	"context"
	"time"
)

// Clock is the source of time for all logic.
type Clock interface {
	// Now returns the wall-clock time. It may jump in either direction.
	Now() time.Time
	// Uptime returns monotonic time elapsed since the clock was created. It
	// never decreases and is unaffected by wall-clock changes.
	Uptime() time.Duration
	// NewTimer returns a timer that fires once after d of monotonic time.
	NewTimer(d time.Duration) Timer
	// NewTicker returns a ticker that fires every d of monotonic time.
	NewTicker(d time.Duration) Ticker
	// Sleep waits for d or until ctx is done, whichever is first; it returns
	// ctx.Err() when the context ended the wait.
	Sleep(ctx context.Context, d time.Duration) error
}

// Timer is the subset of *time.Timer that logic uses.
type Timer interface {
	// C delivers the time when the timer fires.
	C() <-chan time.Time
	// Stop prevents the timer from firing; it reports whether it was active.
	Stop() bool
	// Reset changes the timer to fire after d; it reports whether it was active.
	Reset(d time.Duration) bool
}

// Ticker is the subset of *time.Ticker that logic uses.
type Ticker interface {
	// C delivers the time of each tick. Ticks are dropped, not queued, for a
	// slow reader, as with time.Ticker.
	C() <-chan time.Time
	// Stop turns the ticker off.
	Stop()
	// Reset changes the period and restarts the ticker.
	Reset(d time.Duration)
}

// Real is the machine's clock.
type Real struct {
	start time.Time
}

// NewReal returns the machine's clock; its Uptime counts from this call.
func NewReal() *Real { return &Real{start: time.Now()} }

// Now returns the machine's wall-clock time.
func (r *Real) Now() time.Time { return time.Now() }

// Uptime returns monotonic time since NewReal, from Go's monotonic reading.
func (r *Real) Uptime() time.Duration { return time.Since(r.start) }

// NewTimer wraps time.NewTimer.
func (r *Real) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

// NewTicker wraps time.NewTicker.
func (r *Real) NewTicker(d time.Duration) Ticker { return realTicker{time.NewTicker(d)} }

// Sleep waits for d or until ctx is done.
func (r *Real) Sleep(ctx context.Context, d time.Duration) error {
	return sleep(ctx, r, d)
}

func sleep(ctx context.Context, c Clock, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := c.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C():
		return nil
	}
}

type realTimer struct{ t *time.Timer }

func (t realTimer) C() <-chan time.Time        { return t.t.C }
func (t realTimer) Stop() bool                 { return t.t.Stop() }
func (t realTimer) Reset(d time.Duration) bool { return t.t.Reset(d) }

type realTicker struct{ t *time.Ticker }

func (t realTicker) C() <-chan time.Time   { return t.t.C }
func (t realTicker) Stop()                 { t.t.Stop() }
func (t realTicker) Reset(d time.Duration) { t.t.Reset(d) }
