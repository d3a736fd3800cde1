package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"

	"golang.org/x/crypto/argon2"
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
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return fmt.Errorf("stored password hash is not argon2id")
	}
	var version int
	var mem, iters uint32
	var threads uint8
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return fmt.Errorf("stored password hash has an unknown version")
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &mem, &iters, &threads); err != nil ||
		mem == 0 || mem > 1<<20 || iters == 0 || iters > 16 || threads == 0 {
		return fmt.Errorf("stored password hash has bad parameters")
	}
	enc := base64.RawStdEncoding
	salt, err := enc.DecodeString(parts[4])
	if err != nil {
		return fmt.Errorf("stored password hash has a bad salt")
	}
	want, err := enc.DecodeString(parts[5])
	if err != nil || len(want) == 0 || len(want) > 64 {
		return fmt.Errorf("stored password hash has a bad key")
	}
	got := argon2.IDKey([]byte(pw), salt, iters, mem, threads, uint32(len(want)))
	if subtle.ConstantTimeCompare(got, want) != 1 {
		return ErrPasswordMismatch
	}
	return nil
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
