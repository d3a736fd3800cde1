package control

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

// The credential formats are the fleet cloud's (cloud/auth), so one key or
// token works against the cloud and the part:
//
//	Authorization: Bearer <key id>:<secret>   an API key; key id is 32 hex digits
//	Authorization: Bearer <JWT>               a user access token: EdDSA, "kid" header, sub = user ID

// maxCredentialLen bounds what is parsed from a header.
const maxCredentialLen = 4096

// maxTokenTTL mirrors the cloud's cap on access token lifetimes: a token
// claiming to live longer was not issued by it.
const maxTokenTTL = 60 * 24 * time.Hour

// errBadCredential is wrapped by every authentication failure. Its messages
// name what was wrong with a credential, never the credential.
var errBadCredential = errors.New("bad credential")

// credential is what an Authorization header carried.
type credential struct {
	token            string // a user's JWT
	keyID, keySecret string // an API key
}

// parseAuthorization reads "Bearer <JWT>" or "Bearer <key id>:<secret>".
// An empty header is the zero credential and no error.
func parseAuthorization(header string) (credential, error) {
	if header == "" {
		return credential{}, nil
	}
	if len(header) > maxCredentialLen {
		return credential{}, fmt.Errorf("authorization header longer than %d bytes: %w", maxCredentialLen, errBadCredential)
	}
	scheme, rest, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || rest == "" {
		return credential{}, fmt.Errorf("authorization header is not \"Bearer <token>\" or \"Bearer <key id>:<secret>\": %w", errBadCredential)
	}
	if id, secret, ok := strings.Cut(rest, ":"); ok {
		if !isHexID(id) || secret == "" || len(secret) > 128 {
			return credential{}, fmt.Errorf("API key credential is not \"<key id>:<secret>\": %w", errBadCredential)
		}
		return credential{keyID: id, keySecret: secret}, nil
	}
	if strings.Count(rest, ".") != 2 {
		return credential{}, fmt.Errorf("bearer value is neither an access token nor \"<key id>:<secret>\": %w", errBadCredential)
	}
	return credential{token: rest}, nil
}

// isHexID reports whether s looks like a cloud ID: 128 bits in hex.
func isHexID(s string) bool {
	if len(s) != 32 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// keyMatches compares a presented secret with the bundle's SHA-256 in
// constant time.
func keyMatches(secret string, hash []byte) bool {
	h := sha256.Sum256([]byte(secret))
	return len(hash) == sha256.Size && subtle.ConstantTimeCompare(h[:], hash) == 1
}

// verifyToken checks a user token offline with the bundle's token keys and
// returns the user ID and the token's expiry.
func verifyToken(token string, keys map[string]ed25519.PublicKey, now time.Time) (string, time.Time, error) {
	claims := &jwt.RegisteredClaims{}
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
		jwt.WithTimeFunc(func() time.Time { return now }),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
	)
	_, err := parser.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		k, ok := keys[kid]
		if !ok {
			return nil, errors.New("token signed with a key this part does not know (its grants may be out of date)")
		}
		return k, nil
	})
	if err != nil {
		// jwt's errors describe the failure, never the token.
		return "", time.Time{}, fmt.Errorf("verify access token: %v: %w", err, errBadCredential)
	}
	if claims.Subject == "" || claims.ExpiresAt == nil || claims.IssuedAt == nil ||
		claims.ExpiresAt.Sub(claims.IssuedAt.Time) > maxTokenTTL+time.Minute {
		return "", time.Time{}, fmt.Errorf("verify access token: claims out of bounds: %w", errBadCredential)
	}
	return claims.Subject, claims.ExpiresAt.Time, nil
}
