package credential

import (
	"crypto/ed25519"
	"fmt"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// A browser session: a page cannot keep a private key the way the CLI
// does, so the fleet app signs in for a cookie instead. The cookie carries
// a token of its own type, signed by the cloud, with the cloud as its only
// audience and no session key: nothing but the cloud accepts it, and the
// cloud only from its cookie, on requests a page of its own origin made.
// Parts accept no token without a binding (VerifyToken checks the type
// first), so a browser session is useless on a part.

// typeBrowserSession is the browser session token's JWT typ.
const typeBrowserSession = "outpost-browser+jwt"

// MaxBrowserSessionTTL caps a browser session: a working day. It is not
// renewed; at its end the page signs in again.
const MaxBrowserSessionTTL = 12 * time.Hour

// IssueBrowserSession signs a browser session token for userID with the
// cloud's key priv named kid, valid from now for ttl (at most
// MaxBrowserSessionTTL).
func IssueBrowserSession(priv ed25519.PrivateKey, kid, userID string, now time.Time, ttl time.Duration) (string, time.Time, error) {
	if userID == "" {
		return "", time.Time{}, fmt.Errorf("issue browser session: no user")
	}
	ttl = min(ttl, MaxBrowserSessionTTL)
	exp := now.Add(ttl).Truncate(time.Second)
	c := Claims{RegisteredClaims: jwt.RegisteredClaims{
		Subject:   userID,
		Audience:  jwt.ClaimStrings{AudienceCloud},
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(exp),
		ID:        newJTI(),
	}}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	t.Header["kid"] = kid
	t.Header["typ"] = typeBrowserSession
	s, err := t.SignedString(priv)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign browser session: %w", err)
	}
	return s, exp, nil
}

// VerifyBrowserSession checks a browser session token: its type, algorithm
// and signature with the key its "kid" names among keys, its audience (the
// cloud), no binding to a key, and its times at now. It returns the claims;
// the caller checks revocation.
func VerifyBrowserSession(token string, keys map[string]ed25519.PublicKey, now time.Time) (*Claims, error) {
	claims := &Claims{}
	err := parseSigned(token, typeBrowserSession, claims, func(h map[string]any) (ed25519.PublicKey, error) {
		kid, _ := h["kid"].(string)
		k, ok := keys[kid]
		if !ok {
			return nil, ErrUnknownKey
		}
		return k, nil
	})
	if err != nil {
		// jwt's errors describe the failure, never the token.
		return nil, fmt.Errorf("verify browser session: %v: %w", err, ErrBad)
	}
	if claims.Subject == "" || claims.ID == "" || claims.ExpiresAt == nil || claims.IssuedAt == nil ||
		claims.ExpiresAt.Sub(claims.IssuedAt.Time) > MaxBrowserSessionTTL+time.Minute {
		return nil, fmt.Errorf("verify browser session: claims out of bounds: %w", ErrBad)
	}
	if len(claims.Audience) != 1 || !slices.Contains(claims.Audience, AudienceCloud) {
		return nil, fmt.Errorf("verify browser session: audience is not the cloud: %w", ErrBad)
	}
	if claims.Cnf != nil {
		return nil, fmt.Errorf("verify browser session: bound to a key, so not a browser session: %w", ErrBad)
	}
	if !now.Before(claims.ExpiresAt.Time) || claims.IssuedAt.After(now.Add(ClockSkew)) {
		return nil, fmt.Errorf("verify browser session: expired or not yet valid: %w", ErrBad)
	}
	return claims, nil
}
