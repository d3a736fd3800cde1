package auth

import (
	"sync"
	"time"
)

// Throttle slows repeated failed sign-ins, per key (an account or a client
// address): after Free failures, each further attempt must wait
// Base·2^(failures−Free), capped at Max. A success clears the key. Time
// comes from the caller (the injected clock), so tests run it instantly.
//
// State is in memory: each replica throttles on its own, which bounds a
// guesser to replicas × the rate, still exponential.
type Throttle struct {
	// Free is the number of failures allowed without delay.
	Free int
	// Base is the first delay; Max caps it.
	Base, Max time.Duration
	// Forget drops a key after this long without failures.
	Forget time.Duration

	mu    sync.Mutex
	state map[string]*throttleState
}

type throttleState struct {
	failures int
	next     time.Time // earliest allowed attempt
	last     time.Time
}

// NewThrottle returns the cloud's sign-in throttle: 5 free failures, then
// 1s, 2s, 4s ... up to 15 minutes.
func NewThrottle() *Throttle {
	return &Throttle{Free: 5, Base: time.Second, Max: 15 * time.Minute, Forget: 24 * time.Hour, state: map[string]*throttleState{}}
}

// Wait returns how long key must still wait before another attempt at now (0: go ahead).
func (t *Throttle) Wait(key string, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, ok := t.state[key]
	if !ok || !now.Before(s.next) {
		return 0
	}
	return s.next.Sub(now)
}

// Fail records a failed attempt by key at now.
func (t *Throttle) Fail(key string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.gcLocked(now)
	s, ok := t.state[key]
	if !ok {
		s = &throttleState{}
		t.state[key] = s
	}
	s.failures++
	s.last = now
	if over := s.failures - t.Free; over > 0 {
		d := t.Base
		for i := 1; i < over && d < t.Max; i++ {
			d *= 2
		}
		s.next = now.Add(min(d, t.Max))
	}
}

// Succeed clears key's failures.
func (t *Throttle) Succeed(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.state, key)
}

// gcLocked bounds memory: keys quiet for Forget are dropped.
func (t *Throttle) gcLocked(now time.Time) {
	if len(t.state) < 10000 {
		return
	}
	for k, s := range t.state {
		if now.Sub(s.last) > t.Forget {
			delete(t.state, k)
		}
	}
}
