package partsync

import (
	"errors"
	"strings"
	"sync"
	"time"
)

// Bounds of the Authorization header's parts.
const (
	maxAuthHeader = 1024
	maxPartIDLen  = 128
	maxSecretLen  = 512
)

// errBadHeader is the one error ParseAuthorization returns: it names the
// expected form and never the value, which may hold a secret.
var errBadHeader = errors.New(`authorization header is not "Part <part_id>:<part_secret>"`)

// ParseAuthorization reads the sync API's credential,
// "Part <part_id>:<part_secret>". The scheme is case-insensitive (RFC 9110);
// everything else is strict: one space, a part id of letters, digits, '.',
// '_' or '-', a colon, and a secret of visible ASCII. Its error never
// contains the header.
func ParseAuthorization(header string) (partID, secret string, err error) {
	if len(header) > maxAuthHeader {
		return "", "", errBadHeader
	}
	scheme, rest, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Part") {
		return "", "", errBadHeader
	}
	partID, secret, ok = strings.Cut(rest, ":")
	if !ok || !validPartID(partID) || !validSecret(secret) {
		return "", "", errBadHeader
	}
	return partID, secret, nil
}

func validPartID(s string) bool {
	if s == "" || len(s) > maxPartIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func validSecret(s string) bool {
	if s == "" || len(s) > maxSecretLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// failLimiter is a token bucket per remote address that only failed
// authentications drain: an address may fail burst times at once, then once
// per refill. Time is the injected clock's uptime, which never jumps.
type failLimiter struct {
	burst  float64
	refill time.Duration

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Duration
}

// maxBuckets bounds the limiter's memory under a flood from many addresses;
// past it, buckets that have refilled completely are dropped.
const maxBuckets = 100_000

func newFailLimiter(burst int, refill time.Duration) *failLimiter {
	return &failLimiter{burst: float64(burst), refill: refill, buckets: map[string]*bucket{}}
}

// refilled returns addr's bucket brought up to now, or nil if it is full.
func (l *failLimiter) refilledLocked(addr string, now time.Duration) *bucket {
	b := l.buckets[addr]
	if b == nil {
		return nil
	}
	b.tokens = min(l.burst, b.tokens+float64(now-b.at)/float64(l.refill))
	b.at = now
	if b.tokens >= l.burst {
		delete(l.buckets, addr)
		return nil
	}
	return b
}

// allow reports whether addr may try to authenticate at now.
func (l *failLimiter) allow(addr string, now time.Duration) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.refilledLocked(addr, now)
	return b == nil || b.tokens >= 1
}

// fail takes a token from addr's bucket.
func (l *failLimiter) fail(addr string, now time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.refilledLocked(addr, now)
	if b == nil {
		if len(l.buckets) >= maxBuckets {
			for a := range l.buckets {
				l.refilledLocked(a, now)
			}
		}
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[addr] = b
	}
	b.tokens = max(0, b.tokens-1)
}
