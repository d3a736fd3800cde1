// Package auth holds the fleet cloud's credentials: the Ed25519 signing key
// and the access tokens it signs (JWT, EdDSA), argon2id password hashes, API
// key secrets, random IDs, and the sign-in throttle.
//
// Wire format of credentials, in the Authorization header:
//
//	Bearer <JWT>                 a user's access token (three base64url parts)
//	Bearer <key id>:<secret>     an API key; the secret is 43 base64url chars (256 bits)
//
// Neither form appears in a log line: errors name the form that was wrong,
// never the value.
package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// MaxTokenTTL is the longest an access token lives: a field tech works
// offline with it for up to 60 days (DESIGN.md, offline expiry).
const MaxTokenTTL = 60 * 24 * time.Hour

// DefaultTokenTTL is the lifetime of a token when none is asked for.
const DefaultTokenTTL = 12 * time.Hour

// maxCredentialLen bounds what is parsed from a header.
const maxCredentialLen = 4096

// ErrBadCredential is wrapped by every error about a malformed, forged or expired credential.
var ErrBadCredential = errors.New("bad credential")

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
func HashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// SecretMatches compares a presented secret with a stored hash in constant time.
func SecretMatches(secret string, hash []byte) bool {
	h := sha256.Sum256([]byte(secret))
	return len(hash) == sha256.Size && subtle.ConstantTimeCompare(h[:], hash) == 1
}

// Credential is what an Authorization header carried.
type Credential struct {
	// Token is a user's JWT, or "".
	Token string
	// KeyID and KeySecret are an API key's, or "".
	KeyID, KeySecret string
}

// ParseAuthorization reads "Bearer <JWT>" or "Bearer <key id>:<secret>". An
// empty header is the zero Credential and no error.
func ParseAuthorization(header string) (Credential, error) {
	if header == "" {
		return Credential{}, nil
	}
	if len(header) > maxCredentialLen {
		return Credential{}, fmt.Errorf("authorization header longer than %d bytes: %w", maxCredentialLen, ErrBadCredential)
	}
	scheme, rest, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || rest == "" {
		return Credential{}, fmt.Errorf("authorization header is not \"Bearer <token>\": %w", ErrBadCredential)
	}
	if id, secret, ok := strings.Cut(rest, ":"); ok {
		if !isHexID(id) || secret == "" || len(secret) > 128 {
			return Credential{}, fmt.Errorf("API key credential is not \"<key id>:<secret>\": %w", ErrBadCredential)
		}
		return Credential{KeyID: id, KeySecret: secret}, nil
	}
	if strings.Count(rest, ".") != 2 {
		return Credential{}, fmt.Errorf("bearer value is neither an access token nor \"<key id>:<secret>\": %w", ErrBadCredential)
	}
	return Credential{Token: rest}, nil
}

// isHexID reports whether s looks like an ID from NewID.
func isHexID(s string) bool {
	if len(s) != 32 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

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

// GenerateKey returns a new Ed25519 private key.
func GenerateKey() ed25519.PrivateKey {
	_, priv, _ := ed25519.GenerateKey(rand.Reader) // never fails with crypto/rand
	return priv
}

// KeyID returns the key's ID, carried in each token's "kid" header.
func (s *Signer) KeyID() string { return s.keyID }

// PublicKey returns the verification key, for daemons to pin.
func (s *Signer) PublicKey() ed25519.PublicKey { return s.pub }

// Claims are an access token's claims: sub is the user ID.
type Claims = jwt.RegisteredClaims

// Issue signs a token for userID valid from now for ttl (capped at MaxTokenTTL).
func (s *Signer) Issue(userID string, now time.Time, ttl time.Duration) (string, time.Time, error) {
	if ttl <= 0 {
		ttl = DefaultTokenTTL
	}
	ttl = min(ttl, MaxTokenTTL)
	exp := now.Add(ttl).Truncate(time.Second)
	claims := Claims{
		Subject:   userID,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(exp),
		ID:        NewID(),
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	tok.Header["kid"] = s.keyID
	signed, err := tok.SignedString(s.priv)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign access token: %w", err)
	}
	return signed, exp, nil
}

// Verify checks a token's signature, algorithm, key ID and expiry at now,
// and returns its claims.
func (s *Signer) Verify(token string, now time.Time) (*Claims, error) {
	claims := &Claims{}
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
		jwt.WithTimeFunc(func() time.Time { return now }),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
	)
	_, err := parser.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		if kid, _ := t.Header["kid"].(string); kid != s.keyID {
			return nil, errors.New("token signed with an unknown key")
		}
		return s.pub, nil
	})
	if err != nil {
		// jwt's errors describe the failure, never the token.
		return nil, fmt.Errorf("verify access token: %v: %w", err, ErrBadCredential)
	}
	if claims.Subject == "" || claims.ExpiresAt == nil || claims.IssuedAt == nil ||
		claims.ExpiresAt.Sub(claims.IssuedAt.Time) > MaxTokenTTL+time.Minute {
		return nil, fmt.Errorf("verify access token: claims out of bounds: %w", ErrBadCredential)
	}
	return claims, nil
}
