package clock

import (
	"context"
	"errors"
	"testing"
	"time"
)

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestFakeTimerFiresOnlyWhenAdvancedPast(t *testing.T) {
	tests := []struct {
		name    string
		after   time.Duration
		advance []time.Duration
		fired   bool
	}{
		{"not yet", 10 * time.Second, []time.Duration{9 * time.Second}, false},
		{"exactly", 10 * time.Second, []time.Duration{10 * time.Second}, true},
		{"in steps", 10 * time.Second, []time.Duration{4 * time.Second, 4 * time.Second, 2 * time.Second}, true},
		{"zero fires at once", 0, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := NewFake(epoch)
			tm := f.NewTimer(tc.after)
			for _, d := range tc.advance {
				f.Advance(d)
			}
			select {
			case at := <-tm.C():
				if !tc.fired {
					t.Fatalf("fired at %v, want not fired", at)
				}
				if want := epoch.Add(tc.after); !at.Equal(want) {
					t.Errorf("fired with %v, want %v", at, want)
				}
			default:
				if tc.fired {
					t.Fatal("did not fire")
				}
			}
		})
	}
}

func TestFakeTickerDropsTicksForSlowReader(t *testing.T) {
	f := NewFake(epoch)
	tk := f.NewTicker(time.Second)
	f.Advance(5 * time.Second)
	got := 0
	for {
		select {
		case <-tk.C():
			got++
			continue
		default:
		}
		break
	}
	if got != 1 {
		t.Fatalf("got %d pending ticks, want 1 (ticks are dropped, not queued)", got)
	}
	if d := f.sortedDeadlines(); len(d) != 1 || d[0] != time.Second {
		t.Fatalf("next deadlines %v, want [1s]", d)
	}
	tk.Stop()
	if n := f.Waiters(); n != 0 {
		t.Fatalf("%d waiters after Stop, want 0", n)
	}
}

func TestFakeTickerDeliversEveryTickToAPromptReader(t *testing.T) {
	f := NewFake(epoch)
	tk := f.NewTicker(10 * time.Millisecond)
	defer tk.Stop()
	for i := 1; i <= 100; i++ {
		f.Advance(10 * time.Millisecond)
		select {
		case at := <-tk.C():
			if want := epoch.Add(time.Duration(i) * 10 * time.Millisecond); !at.Equal(want) {
				t.Fatalf("tick %d at %v, want %v", i, at, want)
			}
		default:
			t.Fatalf("tick %d missing", i)
		}
	}
}

func TestFakeWallAndUptimeAreIndependent(t *testing.T) {
	f := NewFake(epoch)
	f.Advance(time.Hour)
	f.SetWall(time.Unix(0, 0)) // a Pi that booted without a clock
	if got := f.Uptime(); got != time.Hour {
		t.Fatalf("uptime %v after SetWall, want 1h", got)
	}
	f.Advance(time.Minute)
	if got, want := f.Now(), time.Unix(60, 0); !got.Equal(want) {
		t.Fatalf("wall %v, want %v", got, want)
	}
	if got := f.Uptime(); got != time.Hour+time.Minute {
		t.Fatalf("uptime %v, want 1h1m", got)
	}
}

func TestFakeSleepWakesOnAdvanceAndOnCancel(t *testing.T) {
	f := NewFake(epoch)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- f.Sleep(ctx, time.Minute) }()
	if err := f.BlockUntil(ctx, 1); err != nil {
		t.Fatal(err)
	}
	f.Advance(time.Minute)
	if err := <-done; err != nil {
		t.Fatalf("Sleep returned %v, want nil", err)
	}

	go func() { done <- f.Sleep(ctx, time.Minute) }()
	if err := f.BlockUntil(ctx, 1); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep returned %v, want context.Canceled", err)
	}
}

func TestFakeTimerResetAndStop(t *testing.T) {
	f := NewFake(epoch)
	tm := f.NewTimer(time.Second)
	if !tm.Stop() {
		t.Fatal("Stop of an armed timer reported inactive")
	}
	f.Advance(2 * time.Second)
	select {
	case <-tm.C():
		t.Fatal("stopped timer fired")
	default:
	}
	if tm.Reset(time.Second) {
		t.Fatal("Reset of a stopped timer reported active")
	}
	if d, ok := f.NextDeadline(); !ok || d != time.Second {
		t.Fatalf("NextDeadline = %v, %v; want 1s, true", d, ok)
	}
	f.Advance(time.Second)
	select {
	case <-tm.C():
	default:
		t.Fatal("reset timer did not fire")
	}
}

// TestFakeTimerResetToZeroFiresNow: as with a real timer, a timer reset to
// a duration of zero or less is due at once and fires without an Advance.
func TestFakeTimerResetToZeroFiresNow(t *testing.T) {
	f := NewFake(epoch)
	tm := f.NewTimer(time.Hour)
	if !tm.Reset(0) {
		t.Fatal("Reset of an armed timer reported inactive")
	}
	select {
	case got := <-tm.C():
		if !got.Equal(epoch) {
			t.Fatalf("fired with %v, want the fake's wall time %v", got, epoch)
		}
	default:
		t.Fatal("a timer reset to 0 did not fire")
	}
	if _, ok := f.NextDeadline(); ok {
		t.Fatal("a fired timer is still scheduled")
	}
	if tm.Reset(-time.Second) {
		t.Fatal("Reset of a fired timer reported active")
	}
	<-tm.C()
}

func TestRealClockMovesForward(t *testing.T) {
	c := NewReal()
	a := c.Uptime()
	b := c.Uptime()
	if b < a {
		t.Fatalf("uptime went backwards: %v then %v", a, b)
	}
	if err := c.Sleep(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	tm := c.NewTimer(0)
	<-tm.C()
}
