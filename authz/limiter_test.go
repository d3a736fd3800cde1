package authz

import (
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func TestThrottle(t *testing.T) {
	th := SignIn()
	at := t0
	k := []Key{{Name: "k", Max: 15 * time.Minute, ClearOnSuccess: true}}
	for range th.Free {
		if w := th.Begin(k, at); w != 0 {
			t.Fatalf("waited %v within the free failures", w)
		}
	}
	if w := th.Begin(k, at); w != time.Second {
		t.Fatalf("after %d failures wait %v, want 1s", th.Free, w)
	}
	if w := th.Begin(k, at.Add(time.Second)); w != 0 {
		t.Fatalf("after the wait: %v", w)
	}
	if w := th.Begin(k, at.Add(time.Second)); w != 2*time.Second {
		t.Fatalf("after %d failures wait %v, want 2s", th.Free+1, w)
	}
	if w := th.Begin([]Key{{Name: "other", Max: time.Minute}}, at); w != 0 {
		t.Fatalf("other key waits %v", w)
	}
	// A refused attempt names every key; none is counted.
	if w := th.Begin(append(k, Key{Name: "other", Max: time.Minute}), at.Add(time.Second)); w != 2*time.Second {
		t.Fatalf("two keys wait %v", w)
	}
	for i := range 40 {
		th.Begin(k, at.Add(time.Duration(i)*time.Hour))
	}
	last := at.Add(39 * time.Hour)
	if w := th.Begin(k, last); w != 15*time.Minute {
		t.Fatalf("capped wait %v", w)
	}
	if w := th.Begin([]Key{{Name: "k", Max: time.Minute}}, last); w != 15*time.Minute {
		t.Fatalf("a wait already set stands: %v", w)
	}
	th.Succeed(k)
	if w := th.Begin(k, last); w != 0 {
		t.Fatalf("after success: %v", w)
	}
	// Without ClearOnSuccess a success takes back only its own attempt.
	a := []Key{{Name: "a", Max: time.Minute}}
	for range th.Free {
		th.Begin(a, at)
	}
	th.Succeed(a)
	if w := th.Begin(a, at); w != 0 {
		t.Fatalf("a success did not take back its attempt: %v", w)
	}
	if w := th.Begin(a, at); w != time.Second {
		t.Fatalf("a success cleared the other failures: %v", w)
	}
	th.Remember("pair", at)
	if !th.Knows("pair", at.Add(th.Known-time.Second)) || th.Knows("pair", at.Add(th.Known)) || th.Knows("other", at) {
		t.Fatal("Knows")
	}
}

// TestThrottleIsAtomic: of many concurrent attempts at one instant, at
// most Free are let through.
func TestThrottleIsAtomic(t *testing.T) {
	th := SignIn()
	var passed atomic.Int64
	var wg sync.WaitGroup
	for range 200 {
		wg.Go(func() {
			if th.Begin([]Key{{Name: "k", Max: time.Minute}}, t0) == 0 {
				passed.Add(1)
			}
		})
	}
	wg.Wait()
	if passed.Load() != int64(th.Free) {
		t.Fatalf("%d of 200 concurrent attempts went through, want %d", passed.Load(), th.Free)
	}
}

// TestCredentialsLimiter: Wait and Fail check and count separately; Free
// failures pass, then the key waits Base, doubling to Max; a success
// counts nothing; a key quiet for Forget starts over.
func TestCredentialsLimiter(t *testing.T) {
	l := Credentials()
	k := []Key{{Name: "address:10.0.0.1"}}
	for i := range l.Free {
		if w := l.Wait(k, t0); w != 0 {
			t.Fatalf("failure %d waited %v", i, w)
		}
		l.Fail(k, t0)
	}
	if w := l.Wait(k, t0); w != l.Base {
		t.Fatalf("after %d failures wait %v, want %v", l.Free, w, l.Base)
	}
	if w := l.Wait([]Key{{Name: "address:10.0.0.2"}}, t0); w != 0 {
		t.Fatalf("another key waits %v", w)
	}
	at := t0.Add(l.Base)
	if w := l.Wait(k, at); w != 0 {
		t.Fatalf("after the wait: %v", w)
	}
	for range 10 {
		l.Fail(k, at)
	}
	if w := l.Wait(k, at); w != l.Max {
		t.Fatalf("capped wait %v, want %v", w, l.Max)
	}
	if w := l.Wait(k, at.Add(l.Forget)); w != 0 {
		t.Fatalf("after Forget: %v", w)
	}
	l.Fail(k, at.Add(l.Forget))
	if w := l.Wait(k, at.Add(l.Forget)); w != 0 {
		t.Fatalf("a forgotten key starts over, with its free failures: %v", w)
	}
}

// TestLimiterMemoryIsBounded: a flood of distinct keys never holds more
// than MaxKeys.
func TestLimiterMemoryIsBounded(t *testing.T) {
	l := Credentials()
	l.MaxKeys = 100
	for i := range 1000 {
		l.Fail([]Key{{Name: string(rune('a'+i%26)) + strings.Repeat("x", i)}}, t0)
	}
	if n := l.Len(); n > l.MaxKeys {
		t.Fatalf("%d keys kept, max %d", n, l.MaxKeys)
	}
	for i := range 1000 {
		l.Remember(strings.Repeat("y", i), t0)
	}
	if n := len(l.known); n > l.MaxKeys {
		t.Fatalf("%d pairs kept, max %d", n, l.MaxKeys)
	}
}
