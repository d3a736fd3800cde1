package auth

import (
	"sync"
	"time"
)

// Throttle slows repeated failed sign-ins, per key (an account, a client
// address). Checking a key and counting the attempt against it are one step
// (Begin), so concurrent attempts cannot all pass the check before any of
// them has failed: at one instant, at most Free attempts per key are ever
// evaluated. After Free failures each further attempt must wait
// Base·2^(failures−Free), capped at the key's Max. Time comes from the
// caller (the injected clock), so tests run it instantly.
//
// State is in memory: each replica throttles on its own, which bounds a
// guesser to replicas × the rate, still exponential.
type Throttle struct {
	// Free is the number of failures allowed without delay.
	Free int
	// Base is the first delay.
	Base time.Duration
	// Forget drops a key after this long without attempts.
	Forget time.Duration
	// Known is how long a client address that signed in to an account stays
	// known to it (see Knows).
	Known time.Duration

	mu    sync.Mutex
	state map[string]*throttleState
	known map[string]time.Time
}

// Key is one thing attempts are counted by.
type Key struct {
	// Name identifies it, such as "account:EMAIL" or "address:HOST".
	Name string
	// Max caps how long the key is ever made to wait.
	Max time.Duration
	// ClearOnSuccess forgets the key's failures when an attempt succeeds;
	// otherwise a success only takes back its own attempt.
	ClearOnSuccess bool
}

type throttleState struct {
	failures int
	next     time.Time // earliest allowed attempt once failures ≥ Free
	last     time.Time
}

// NewThrottle returns the cloud's sign-in throttle: 5 free failures, then
// 1 s, 2 s, 4 s ... up to each key's Max; known addresses are remembered
// for 30 days.
func NewThrottle() *Throttle {
	return &Throttle{Free: 5, Base: time.Second, Forget: 24 * time.Hour, Known: 30 * 24 * time.Hour,
		state: map[string]*throttleState{}, known: map[string]time.Time{}}
}

// Begin starts an attempt at now: if any key must still wait it returns the
// longest wait and counts nothing; otherwise it counts the attempt as a
// failure against every key, until Succeed takes it back, and returns 0.
func (t *Throttle) Begin(keys []Key, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	var wait time.Duration
	for _, k := range keys {
		if s, ok := t.state[k.Name]; ok && s.failures >= t.Free && now.Before(s.next) {
			wait = max(wait, s.next.Sub(now))
		}
	}
	if wait > 0 {
		return wait
	}
	t.gcLocked(now)
	for _, k := range keys {
		s, ok := t.state[k.Name]
		if !ok {
			s = &throttleState{}
			t.state[k.Name] = s
		}
		s.failures++
		s.last = now
		if over := s.failures - t.Free; over >= 0 {
			d := t.Base
			for i := 0; i < over && d < k.Max; i++ {
				d *= 2
			}
			s.next = now.Add(min(d, k.Max))
		}
	}
	return 0
}

// Succeed ends an attempt Begin counted that turned out right.
func (t *Throttle) Succeed(keys []Key) { t.end(keys, true) }

// Cancel takes back an attempt Begin counted that was never decided (the
// store failed, the password checks were busy).
func (t *Throttle) Cancel(keys []Key) { t.end(keys, false) }

func (t *Throttle) end(keys []Key, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, k := range keys {
		s, found := t.state[k.Name]
		switch {
		case !found:
		case (ok && k.ClearOnSuccess) || s.failures <= 1:
			delete(t.state, k.Name)
		default:
			s.failures--
			if s.failures < t.Free {
				s.next = time.Time{}
			}
		}
	}
}

// Remember notes that pair (an account and an address) succeeded at now.
func (t *Throttle) Remember(pair string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.gcLocked(now)
	t.known[pair] = now
}

// Knows reports whether pair succeeded within Known before now.
func (t *Throttle) Knows(pair string, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	at, ok := t.known[pair]
	return ok && now.Sub(at) < t.Known
}

// gcLocked bounds memory: keys quiet for Forget, and pairs not seen for
// Known, are dropped once there are many.
func (t *Throttle) gcLocked(now time.Time) {
	if len(t.state) >= 10000 {
		for k, s := range t.state {
			if now.Sub(s.last) > t.Forget {
				delete(t.state, k)
			}
		}
	}
	if len(t.known) >= 10000 {
		for k, at := range t.known {
			if now.Sub(at) >= t.Known {
				delete(t.known, k)
			}
		}
	}
}
