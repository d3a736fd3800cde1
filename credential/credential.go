// Package credential is the one definition of how callers prove who they
// are to Outpost's cloud and to its daemons: the Authorization header, API
// key secrets checked against their SHA-256 in constant time, and user
// access tokens (EdDSA JWTs) verified with a set of public keys. The cloud
// issues credentials; the cloud and every part verify them with this code, so
// the two can never disagree about what a valid credential is.
package credential

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// ErrBad is wrapped by every error about a malformed, forged, unknown or
// expired credential. Messages name what was wrong, never the credential.
var ErrBad = errors.New("bad credential")

// ErrUnknownKey is wrapped, with ErrBad, when a token's key id is not among
// the keys given: on a part it usually means the grants are out of date.
var ErrUnknownKey = errors.New("token signed with an unknown key")

// MaxHeaderLen bounds what is parsed from a header.
const MaxHeaderLen = 4096

// MaxTokenTTL caps access token lifetimes: a token claiming to live longer
// was not issued by an Outpost cloud. Sixty days is the offline limit.
const MaxTokenTTL = 60 * 24 * time.Hour

// maxSecretLen bounds an API key secret (the cloud makes 43-character ones).
const maxSecretLen = 128

// Credential is what an Authorization header carried: a user's token, or an
// API key's id and secret, or nothing.
type Credential struct {
	// Token is a user's JWT, or "".
	Token string
	// KeyID and KeySecret are an API key's, or "".
	KeyID, KeySecret string
}

// Parse reads "Bearer <JWT>" or "Bearer <key id>:<secret>". An empty header
// is the zero Credential and no error.
func Parse(header string) (Credential, error) {
	if header == "" {
		return Credential{}, nil
	}
	if len(header) > MaxHeaderLen {
		return Credential{}, fmt.Errorf("authorization header longer than %d bytes: %w", MaxHeaderLen, ErrBad)
	}
	scheme, rest, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || rest == "" {
		return Credential{}, fmt.Errorf("authorization header is not \"Bearer <token>\" or \"Bearer <key id>:<secret>\": %w", ErrBad)
	}
	if id, secret, ok := strings.Cut(rest, ":"); ok {
		if !IsID(id) || secret == "" || len(secret) > maxSecretLen {
			return Credential{}, fmt.Errorf("API key credential is not \"<key id>:<secret>\": %w", ErrBad)
		}
		return Credential{KeyID: id, KeySecret: secret}, nil
	}
	if strings.Count(rest, ".") != 2 {
		return Credential{}, fmt.Errorf("bearer value is neither an access token nor \"<key id>:<secret>\": %w", ErrBad)
	}
	return Credential{Token: rest}, nil
}

// IsID reports whether s looks like a cloud id: 128 bits in hex.
func IsID(s string) bool {
	if len(s) != 32 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// SecretHash returns what is stored for a secret: its SHA-256. Secrets are
// at least 256 random bits, so a fast hash is enough.
func SecretHash(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// SecretMatches compares a presented secret with a stored SHA-256 in
// constant time.
func SecretMatches(secret string, hash []byte) bool {
	h := sha256.Sum256([]byte(secret))
	return len(hash) == sha256.Size && subtle.ConstantTimeCompare(h[:], hash) == 1
}

// Claims are an access token's claims: Subject is the user's id.
type Claims = jwt.RegisteredClaims

// VerifyToken checks a token's algorithm (EdDSA only), its signature with the
// key its "kid" names among keys, its expiry at now, and that its claims are
// within what the cloud issues; it returns the claims.
func VerifyToken(token string, keys map[string]ed25519.PublicKey, now time.Time) (*Claims, error) {
	claims := &Claims{}
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
		jwt.WithTimeFunc(func() time.Time { return now }),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
	)
	unknown := false
	_, err := parser.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		k, ok := keys[kid]
		if !ok {
			unknown = true
			return nil, ErrUnknownKey
		}
		return k, nil
	})
	if err != nil {
		if unknown {
			return nil, fmt.Errorf("verify access token: %w: %w", ErrUnknownKey, ErrBad)
		}
		// jwt's errors describe the failure, never the token.
		return nil, fmt.Errorf("verify access token: %v: %w", err, ErrBad)
	}
	if claims.Subject == "" || claims.ExpiresAt == nil || claims.IssuedAt == nil ||
		claims.ExpiresAt.Sub(claims.IssuedAt.Time) > MaxTokenTTL+time.Minute {
		return nil, fmt.Errorf("verify access token: claims out of bounds: %w", ErrBad)
	}
	return claims, nil
}
