package control

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// throttle slows failed authentications per peer address: each peer has a
// bucket of failBurst failures refilled at failRate; an empty bucket answers
// ResourceExhausted without looking at the credential. Answering fast rather
// than sleeping keeps a flood from tying up goroutines. Time comes from the
// injected clock, through the *At methods of rate.Limiter.
type throttle struct {
	mu    sync.Mutex
	peers map[string]*rate.Limiter
	limit rate.Limit
	burst int
	max   int
}

const (
	failBurst    = 10
	failInterval = 6 * time.Second // ten failures a minute once the burst is spent
	maxPeers     = 4096
)

func newThrottle() *throttle {
	return &throttle{peers: map[string]*rate.Limiter{}, limit: rate.Every(failInterval), burst: failBurst, max: maxPeers}
}

// wait returns how long peer must wait before its credentials are looked at
// again (0: go ahead).
func (t *throttle) wait(peer string, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	l, ok := t.peers[peer]
	if !ok {
		return 0
	}
	tok := l.TokensAt(now)
	if tok >= 1 {
		return 0
	}
	return time.Duration((1 - tok) / float64(t.limit) * float64(time.Second))
}

// fail records a failed authentication by peer at now.
func (t *throttle) fail(peer string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	l, ok := t.peers[peer]
	if !ok {
		if len(t.peers) >= t.max {
			t.gcLocked(now)
		}
		l = rate.NewLimiter(t.limit, t.burst)
		t.peers[peer] = l
	}
	l.AllowN(now, 1)
}

// gcLocked bounds memory: peers whose bucket refilled are forgotten; if
// every peer is still throttled the oldest state is dropped wholesale,
// which at worst gives a flood from thousands of addresses a fresh burst.
func (t *throttle) gcLocked(now time.Time) {
	for k, l := range t.peers {
		if l.TokensAt(now) >= float64(t.burst) {
			delete(t.peers, k)
		}
	}
	if len(t.peers) >= t.max {
		clear(t.peers)
	}
}
