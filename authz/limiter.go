package authz

import (
	"sync"
	"time"
)

// Limiter slows failed authentications, per key (a client address, an
// account, a credential and address). It is the one policy of the cloud
// and the parts:
//
//   - A key may fail Free times without waiting.
//   - From its Free-th failure on, each failure makes the key wait
//     Base·2^(failures−Free) from that failure, at most the key's Max.
//   - While a key waits, every attempt under it is answered at once
//     (ResourceExhausted), without the credential being looked at, so a
//     guesser learns nothing and a flood costs no verification.
//   - A key with no failure for Forget starts over.
//
// Wait and Fail check and count separately, for credentials that are
// cheap to verify. Begin checks and counts in one step, so concurrent
// attempts cannot all pass the check before any of them has failed (at
// one instant at most Free attempts per key are evaluated): for password
// checks, whose cost is the point. Succeed or Cancel then takes the count
// back. Time comes from the caller (the injected clock).
//
// State is in memory, bounded by MaxKeys: each replica limits on its own.
type Limiter struct {
	// Free is the number of failures allowed without waiting.
	Free int
	// Base is the first wait.
	Base time.Duration
	// Max caps the wait of keys that set no Max of their own.
	Max time.Duration
	// Forget is how long a key's failures count.
	Forget time.Duration
	// Known is how long a pair noted by Remember stays known.
	Known time.Duration
	// MaxKeys bounds the keys held; past it, keys that are not waiting
	// are dropped, and if every key waits, all of them (which at worst
	// gives a flood from that many addresses a fresh start).
	MaxKeys int

	mu    sync.Mutex
	state map[string]*limitState
	known map[string]time.Time
}

// Key is one thing failures are counted by.
type Key struct {
	// Name identifies it, such as "address:HOST" or "account:EMAIL".
	Name string
	// Max caps how long the key is ever made to wait (0: the Limiter's).
	Max time.Duration
	// ClearOnSuccess forgets the key's failures when an attempt Begin
	// counted succeeds; otherwise a success only takes back its own count.
	ClearOnSuccess bool
}

type limitState struct {
	failures int
	next     time.Time // earliest attempt once failures ≥ Free
	last     time.Time // the latest failure
}

// SignIn is the cloud's sign-in limiter: 5 free failures, then 1 s, 2 s,
// 4 s ... up to each key's Max; known pairs are remembered for 30 days.
func SignIn() *Limiter {
	return &Limiter{Free: 5, Base: time.Second, Max: 15 * time.Minute, Forget: 24 * time.Hour, Known: 30 * 24 * time.Hour}
}

// Credentials is the limiter of credentials that are cheap to verify (a
// part's secret at the cloud, a key or token at a part): 10 free failures
// per key, then waits of 6 s, 12 s, 24 s ... at most a minute, forgotten
// after an hour without a failure.
func Credentials() *Limiter {
	return &Limiter{Free: 10, Base: 6 * time.Second, Max: time.Minute, Forget: time.Hour}
}

func (l *Limiter) maxKeys() int {
	if l.MaxKeys > 0 {
		return l.MaxKeys
	}
	return 100_000
}

// waitLocked is how long k must still wait at now.
func (l *Limiter) waitLocked(k Key, now time.Time) time.Duration {
	s, ok := l.state[k.Name]
	if !ok || s.failures < l.Free || !now.Before(s.next) || l.forgotten(s, now) {
		return 0
	}
	return s.next.Sub(now)
}

func (l *Limiter) forgotten(s *limitState, now time.Time) bool {
	return l.Forget > 0 && now.Sub(s.last) >= l.Forget
}

// Wait returns the longest any of keys must wait at now (0: go ahead).
func (l *Limiter) Wait(keys []Key, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	var wait time.Duration
	for _, k := range keys {
		wait = max(wait, l.waitLocked(k, now))
	}
	return wait
}

// Fail counts a failure against every key at now.
func (l *Limiter) Fail(keys []Key, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failLocked(keys, now)
}

func (l *Limiter) failLocked(keys []Key, now time.Time) {
	if l.state == nil {
		l.state = map[string]*limitState{}
	}
	for _, k := range keys {
		s, ok := l.state[k.Name]
		if ok && l.forgotten(s, now) {
			*s = limitState{}
		}
		if !ok {
			if len(l.state) >= l.maxKeys() {
				l.gcLocked(now)
			}
			s = &limitState{}
			l.state[k.Name] = s
		}
		s.failures++
		s.last = now
		if over := s.failures - l.Free; over >= 0 {
			s.next = now.Add(l.delay(k, over))
		}
	}
}

// delay is Base·2^over, capped at the key's Max.
func (l *Limiter) delay(k Key, over int) time.Duration {
	limit := k.Max
	if limit <= 0 {
		limit = l.Max
	}
	d := l.Base
	for i := 0; i < over && d < limit; i++ {
		d *= 2
	}
	if limit > 0 {
		d = min(d, limit)
	}
	return d
}

// Begin starts an attempt at now: if any key must still wait it returns the
// longest wait and counts nothing; otherwise it counts the attempt as a
// failure against every key, until Succeed or Cancel takes it back, and
// returns 0.
func (l *Limiter) Begin(keys []Key, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	var wait time.Duration
	for _, k := range keys {
		wait = max(wait, l.waitLocked(k, now))
	}
	if wait > 0 {
		return wait
	}
	l.failLocked(keys, now)
	return 0
}

// Succeed ends an attempt Begin counted that turned out right.
func (l *Limiter) Succeed(keys []Key) { l.end(keys, true) }

// Cancel takes back an attempt Begin counted that was never decided (the
// store failed, the password checks were busy, the code was real).
func (l *Limiter) Cancel(keys []Key) { l.end(keys, false) }

func (l *Limiter) end(keys []Key, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range keys {
		s, found := l.state[k.Name]
		switch {
		case !found:
		case (ok && k.ClearOnSuccess) || s.failures <= 1:
			delete(l.state, k.Name)
		default:
			s.failures--
			if s.failures < l.Free {
				s.next = time.Time{}
			}
		}
	}
}

// Remember notes that pair (such as an account and an address) succeeded
// at now.
func (l *Limiter) Remember(pair string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.known == nil {
		l.known = map[string]time.Time{}
	}
	if len(l.known) >= l.maxKeys() {
		for k, at := range l.known {
			if now.Sub(at) >= l.Known {
				delete(l.known, k)
			}
		}
		if len(l.known) >= l.maxKeys() {
			clear(l.known)
		}
	}
	l.known[pair] = now
}

// Knows reports whether pair succeeded within Known before now.
func (l *Limiter) Knows(pair string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	at, ok := l.known[pair]
	return ok && now.Sub(at) < l.Known
}

// Len is the number of keys held.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.state)
}

// gcLocked bounds memory: keys not waiting at now are dropped, and if
// every key still waits, all of them.
func (l *Limiter) gcLocked(now time.Time) {
	for name, s := range l.state {
		if s.failures < l.Free || !now.Before(s.next) || l.forgotten(s, now) {
			delete(l.state, name)
		}
	}
	if len(l.state) >= l.maxKeys() {
		clear(l.state)
	}
}
