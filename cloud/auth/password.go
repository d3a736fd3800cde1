package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/crypto/argon2"
	"golang.org/x/sync/semaphore"
)

// Password bounds: long enough to resist guessing, short enough that a
// hostile request cannot make hashing expensive.
const (
	MinPasswordLen = 12
	MaxPasswordLen = 256
)

// argon2id parameters: OWASP's minimum recommendation (19 MiB, 2 passes, 1
// lane), so a small cloud answers sign-ins without starving other calls.
// They are stored in each hash, so raising them later keeps old hashes valid.
const (
	argonTime    = 2
	argonMemory  = 19 * 1024
	argonThreads = 1
	argonKeyLen  = 32
)

// ErrPasswordMismatch says a password does not match its hash.
var ErrPasswordMismatch = errors.New("password does not match")

// ValidatePassword checks a new password's length.
func ValidatePassword(pw string) error {
	if len(pw) < MinPasswordLen || len(pw) > MaxPasswordLen {
		return fmt.Errorf("a password is %d to %d bytes long", MinPasswordLen, MaxPasswordLen)
	}
	return nil
}

// HashPassword returns the PHC-format argon2id hash of pw.
func HashPassword(pw string) string {
	var salt [16]byte
	_, _ = rand.Read(salt[:])
	key := argon2.IDKey([]byte(pw), salt[:], argonTime, argonMemory, argonThreads, argonKeyLen)
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		enc.EncodeToString(salt[:]), enc.EncodeToString(key))
}

// CheckPassword compares pw with a hash from HashPassword in constant time,
// using the parameters stored in the hash.
func CheckPassword(hash, pw string) error {
	if len(pw) > MaxPasswordLen {
		return ErrPasswordMismatch
	}
	p, err := parseHash(hash)
	if err != nil {
		return err
	}
	got := argon2.IDKey([]byte(pw), p.salt, p.iters, p.mem, p.threads, uint32(len(p.key)))
	if subtle.ConstantTimeCompare(got, p.key) != 1 {
		return ErrPasswordMismatch
	}
	return nil
}

// argonHash is a parsed PHC-format argon2id hash.
type argonHash struct {
	mem, iters uint32 // memory in KiB, passes
	threads    uint8
	salt, key  []byte
}

// parseHash reads a hash from HashPassword, refusing parameters that would
// make checking it absurdly expensive.
func parseHash(hash string) (argonHash, error) {
	var p argonHash
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return p, fmt.Errorf("stored password hash is not argon2id")
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return p, fmt.Errorf("stored password hash has an unknown version")
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.mem, &p.iters, &p.threads); err != nil ||
		p.mem == 0 || p.mem > 1<<20 || p.iters == 0 || p.iters > 16 || p.threads == 0 {
		return p, fmt.Errorf("stored password hash has bad parameters")
	}
	enc := base64.RawStdEncoding
	var err error
	if p.salt, err = enc.DecodeString(parts[4]); err != nil {
		return p, fmt.Errorf("stored password hash has a bad salt")
	}
	p.key, err = enc.DecodeString(parts[5])
	if err != nil || len(p.key) == 0 || len(p.key) > 64 {
		return p, fmt.Errorf("stored password hash has a bad key")
	}
	return p, nil
}

// dummyHash is checked against when an account does not exist, so a
// sign-in for an unknown email costs as much as one for a known email. It
// is made on first use, not at start, and never changes after.
var dummyHash = sync.OnceValue(func() string { return HashPassword("not-a-password-of-anyone") })

// CheckNoPassword spends the time of one password check and fails.
func CheckNoPassword(pw string) error {
	_ = CheckPassword(dummyHash(), pw)
	return ErrPasswordMismatch
}

// DefaultHashMemory is the memory a Hasher lets argon2 use at once unless
// told otherwise: six sign-ins hashing together with the default parameters.
const DefaultHashMemory = 6 * argonMemory * 1024

// ErrBusy says too many password checks are waiting already; the caller
// should try again shortly.
var ErrBusy = errors.New("the cloud is checking too many passwords at once: try again in a few seconds")

// Hasher hashes and checks passwords with a bound on the memory argon2 uses
// at once: each hash weighs its memory parameter, and a hash waits while
// the weights in flight would pass the budget, so concurrent sign-ins cannot
// grow the process by more than the budget. Waiters are bounded too: past
// four per slot, a check fails at once with ErrBusy.
type Hasher struct {
	sem       *semaphore.Weighted
	budgetKiB int64
	waiting   atomic.Int64
	maxWait   int64

	running, peak atomic.Int64 // for tests: hashes in flight, and the most ever
}

// NewHasher returns a Hasher letting argon2 use budget bytes at once (0
// means DefaultHashMemory); it always allows one hash at a time.
func NewHasher(budget int64) *Hasher {
	if budget <= 0 {
		budget = DefaultHashMemory
	}
	kib := max(budget/1024, 1)
	return &Hasher{sem: semaphore.NewWeighted(kib), budgetKiB: kib, maxWait: 4 * max(kib/argonMemory, 1)}
}

// run runs fn holding memKiB of the budget.
func (h *Hasher) run(ctx context.Context, memKiB int64, fn func()) error {
	w := min(max(memKiB, 1), h.budgetKiB)
	if !h.sem.TryAcquire(w) {
		if h.waiting.Add(1) > h.maxWait {
			h.waiting.Add(-1)
			return ErrBusy
		}
		err := h.sem.Acquire(ctx, w)
		h.waiting.Add(-1)
		if err != nil {
			return fmt.Errorf("wait to check a password: %w", err)
		}
	}
	defer h.sem.Release(w)
	n := h.running.Add(1)
	for p := h.peak.Load(); n > p && !h.peak.CompareAndSwap(p, n); p = h.peak.Load() {
	}
	defer h.running.Add(-1)
	fn()
	return nil
}

// Check is CheckPassword within the budget.
func (h *Hasher) Check(ctx context.Context, hash, pw string) error {
	p, err := parseHash(hash)
	if err != nil {
		return err
	}
	var res error
	if err := h.run(ctx, int64(p.mem), func() { res = CheckPassword(hash, pw) }); err != nil {
		return err
	}
	return res
}

// CheckNone is CheckNoPassword within the budget: it spends one check and
// fails with ErrPasswordMismatch (or ErrBusy).
func (h *Hasher) CheckNone(ctx context.Context, pw string) error {
	if err := h.run(ctx, argonMemory, func() { _ = CheckNoPassword(pw) }); err != nil {
		return err
	}
	return ErrPasswordMismatch
}

// Hash is HashPassword within the budget.
func (h *Hasher) Hash(ctx context.Context, pw string) (string, error) {
	var out string
	if err := h.run(ctx, argonMemory, func() { out = HashPassword(pw) }); err != nil {
		return "", err
	}
	return out, nil
}
