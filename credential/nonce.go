package credential

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"time"
)

// NonceTTL is how long a part's nonce is accepted, by the part's own
// monotonic clock.
const NonceTTL = 5 * time.Minute

// nonceLen is a nonce's length in bytes before base64url: 8 of time, 16 of MAC.
const nonceLen = 24

// NonceIssuer makes and checks a part's nonces without keeping any: a nonce
// is the time since the issuer started (monotonic, so a wall clock set
// wrong or changed offline does not matter) with an HMAC under a key made at
// start. A restart makes every nonce stale, and clients ask again.
type NonceIssuer struct {
	key   [32]byte
	start time.Time
}

// NewNonceIssuer starts an issuer at start, a reading of the part's clock.
func NewNonceIssuer(start time.Time) *NonceIssuer {
	n := &NonceIssuer{start: start}
	_, _ = rand.Read(n.key[:])
	return n
}

func (n *NonceIssuer) mac(ms []byte) []byte {
	m := hmac.New(sha256.New, n.key[:])
	m.Write(ms)
	return m.Sum(nil)[:16]
}

// Issue returns a nonce made at now.
func (n *NonceIssuer) Issue(now time.Time) string {
	var b [nonceLen]byte
	binary.BigEndian.PutUint64(b[:8], uint64(max(now.Sub(n.start), 0)/time.Millisecond))
	copy(b[8:], n.mac(b[:8]))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Check verifies a nonce this issuer made and returns when it stops being
// accepted.
func (n *NonceIssuer) Check(nonce string, now time.Time) (time.Time, error) {
	b, err := base64.RawURLEncoding.DecodeString(nonce)
	if err != nil || len(b) != nonceLen || !hmac.Equal(b[8:], n.mac(b[:8])) {
		return time.Time{}, fmt.Errorf("the proof carries no nonce of this part: %w", ErrBad)
	}
	ms := binary.BigEndian.Uint64(b[:8])
	if ms > uint64(100*365*24*time.Hour/time.Millisecond) {
		return time.Time{}, fmt.Errorf("nonce out of bounds: %w", ErrBad)
	}
	until := n.start.Add(time.Duration(ms)*time.Millisecond + NonceTTL)
	if !now.Before(until) {
		return time.Time{}, fmt.Errorf("the part's nonce is stale: %w", ErrBad)
	}
	return until, nil
}
