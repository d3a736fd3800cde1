// Package auth holds the fleet cloud's credentials: the Ed25519 signing key
// and what it signs (access tokens bound to session keys, relay
// assertions), argon2id password hashes, secrets and random IDs. The
// sign-in throttle is an authz.Limiter.
//
// The wire format of credentials, and their verification, are package
// credential's, shared with the daemons. No credential appears in a log
// line: errors name the form that was wrong, never the value.
package auth

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/outpost-robotics/outpost/credential"
	"github.com/outpost-robotics/outpost/signed"
)

// MaxTokenTTL is the longest an access token lives: a field tech works
// offline with it for up to 60 days, as long as a part's grants last.
const MaxTokenTTL = credential.MaxTokenTTL

// DefaultTokenTTL is the lifetime of a token when none is asked for.
const DefaultTokenTTL = 12 * time.Hour

// ErrBadCredential is wrapped by every error about a malformed, forged or
// expired credential; it is credential.ErrBad.
var ErrBadCredential = credential.ErrBad

// NewID returns a random 128-bit ID in hex: unguessable, so an ID reveals nothing.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

// NewSecret returns a random 256-bit secret, base64url without padding.
func NewSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// HashSecret returns the SHA-256 of a secret: all the cloud keeps of API key
// secrets, part secrets and invitation codes.
func HashSecret(secret string) []byte { return credential.SecretHash(secret) }

// SecretMatches compares a presented secret with a stored hash in constant time.
func SecretMatches(secret string, hash []byte) bool { return credential.SecretMatches(secret, hash) }

// Signer signs and verifies access tokens with one Ed25519 key.
type Signer struct {
	keyID string
	priv  ed25519.PrivateKey
	pub   ed25519.PublicKey
}

// NewSigner wraps a private key; the key ID is derived from the public key
// so it is stable across restarts and distinct after a rotation.
func NewSigner(priv ed25519.PrivateKey) (*Signer, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("signing key is %d bytes, want %d", len(priv), ed25519.PrivateKeySize)
	}
	pub := priv.Public().(ed25519.PublicKey)
	sum := sha256.Sum256(pub)
	return &Signer{keyID: hex.EncodeToString(sum[:8]), priv: priv, pub: pub}, nil
}

// MAC returns an HMAC-SHA256 of msg under a key derived from the signing key
// for purpose alone, for values the cloud hands out and must recognise when
// they come back (list page tokens): a replica sharing the signing key
// checks another's, and a MAC for one purpose is useless for any other.
// The derived key never leaves the process and signs nothing.
func (s *Signer) MAC(purpose string, msg []byte) []byte {
	k := sha256.Sum256(append([]byte("outpost mac key\x00"+purpose+"\x00"), s.priv.Seed()...))
	m := hmac.New(sha256.New, k[:])
	m.Write(msg)
	return m.Sum(nil)
}

// GenerateKey returns a new Ed25519 private key.
func GenerateKey() ed25519.PrivateKey {
	_, priv, _ := ed25519.GenerateKey(rand.Reader) // never fails with crypto/rand
	return priv
}

// KeyID returns the key's ID, carried in each token's "kid" header.
func (s *Signer) KeyID() string { return s.keyID }

// Documents returns a signer of part documents (configs and grant bundles)
// with the same key and key id: the cloud has one key, which parts pin from
// their bootstrap file and use for both documents and access tokens.
func (s *Signer) Documents() signed.Signer { return signed.Signer{KeyID: s.keyID, Key: s.priv} }

// PublicKey returns the verification key, for daemons to pin.
func (s *Signer) PublicKey() ed25519.PublicKey { return s.pub }

// Claims are an access token's claims: sub is the user ID.
type Claims = credential.Claims

// Issue signs a token for userID bound to the session key sessionKey,
// valid from now for ttl (0 means DefaultTokenTTL; capped at MaxTokenTTL).
func (s *Signer) Issue(userID string, sessionKey ed25519.PublicKey, now time.Time, ttl time.Duration) (string, time.Time, error) {
	if ttl <= 0 {
		ttl = DefaultTokenTTL
	}
	return credential.IssueToken(s.priv, s.keyID, userID, sessionKey, now, ttl)
}

// IssueBrowserSession signs a browser session token for userID, valid
// from now for ttl (0 means, and at most, credential.MaxBrowserSessionTTL).
func (s *Signer) IssueBrowserSession(userID string, now time.Time, ttl time.Duration) (string, time.Time, error) {
	if ttl <= 0 {
		ttl = credential.MaxBrowserSessionTTL
	}
	return credential.IssueBrowserSession(s.priv, s.keyID, userID, now, ttl)
}

// Assert signs the relay's assertion that subject ("user/ID" or
// "apikey/ID") offers sdp to partID.
func (s *Signer) Assert(subject, partID, sdp string, now time.Time) (string, error) {
	return credential.SignAssertion(s.priv, s.keyID, subject, partID, sdp, now)
}

// Keys returns the verification keys by key id.
func (s *Signer) Keys() map[string]ed25519.PublicKey {
	return map[string]ed25519.PublicKey{s.keyID: s.pub}
}

// Verify checks a token's signature, algorithm, key ID and expiry at now,
// and returns its claims.
func (s *Signer) Verify(token string, now time.Time) (*Claims, error) {
	return credential.VerifyToken(token, s.Keys(), now)
}
