package credential

import (
	"crypto/ed25519"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Claims are an access token's claims: Subject is the user's id, Cnf the
// session key the token is bound to.
type Claims struct {
	jwt.RegisteredClaims
	// Cnf names the key whose proofs must accompany the token.
	Cnf *Confirmation `json:"cnf,omitempty"`
}

// Confirmation is RFC 7800's cnf claim, by JWK thumbprint (RFC 9449).
type Confirmation struct {
	// JKT is the RFC 7638 thumbprint of the session's public key.
	JKT string `json:"jkt"`
}

// IssueToken signs an access token for userID bound to sessionKey, with
// the signing key priv named kid, valid from now for ttl (at most
// MaxTokenTTL).
func IssueToken(priv ed25519.PrivateKey, kid, userID string, sessionKey ed25519.PublicKey, now time.Time, ttl time.Duration) (string, time.Time, error) {
	if len(sessionKey) != ed25519.PublicKeySize {
		return "", time.Time{}, fmt.Errorf("issue access token: session key is %d bytes, want %d", len(sessionKey), ed25519.PublicKeySize)
	}
	ttl = min(ttl, MaxTokenTTL)
	exp := now.Add(ttl).Truncate(time.Second)
	c := Claims{RegisteredClaims: jwt.RegisteredClaims{
		Subject:   userID,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(exp),
		ID:        newJTI(),
	}, Cnf: &Confirmation{JKT: Thumbprint(sessionKey)}}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	t.Header["kid"] = kid
	t.Header["typ"] = typeToken
	s, err := t.SignedString(priv)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign access token: %w", err)
	}
	return s, exp, nil
}

// VerifyToken checks a token's type and algorithm (EdDSA only), its
// signature with the key its "kid" names among keys, its expiry at now, its
// binding to a session key, and that its claims are within what the cloud
// issues; it returns the claims. A token without a binding is refused with
// ErrLegacyToken.
func VerifyToken(token string, keys map[string]ed25519.PublicKey, now time.Time) (*Claims, error) {
	claims := &Claims{}
	unknown := false
	err := parseSigned(token, typeToken, claims, func(h map[string]any) (ed25519.PublicKey, error) {
		kid, _ := h["kid"].(string)
		k, ok := keys[kid]
		if !ok {
			unknown = true
			return nil, ErrUnknownKey
		}
		return k, nil
	})
	// Old tokens carried typ JWT: say what to do rather than "bad typ".
	legacy := err != nil && !unknown && isLegacyType(token)
	switch {
	case unknown:
		return nil, fmt.Errorf("verify access token: %w: %w", ErrUnknownKey, ErrBad)
	case legacy:
		return nil, fmt.Errorf("verify access token: %w: %w", ErrLegacyToken, ErrBad)
	case err != nil:
		// jwt's errors describe the failure, never the token.
		return nil, fmt.Errorf("verify access token: %v: %w", err, ErrBad)
	}
	if claims.Subject == "" || claims.ExpiresAt == nil || claims.IssuedAt == nil ||
		claims.ExpiresAt.Sub(claims.IssuedAt.Time) > MaxTokenTTL+time.Minute {
		return nil, fmt.Errorf("verify access token: claims out of bounds: %w", ErrBad)
	}
	if claims.Cnf == nil || claims.Cnf.JKT == "" {
		return nil, fmt.Errorf("verify access token: %w: %w", ErrLegacyToken, ErrBad)
	}
	if !now.Before(claims.ExpiresAt.Time) || claims.IssuedAt.After(now.Add(ClockSkew)) {
		return nil, fmt.Errorf("verify access token: expired or not yet valid: %w", ErrBad)
	}
	return claims, nil
}

// isLegacyType reports whether a JWT's header says typ "JWT", as tokens
// issued before session keys did.
func isLegacyType(token string) bool {
	t, _, err := jwt.NewParser().ParseUnverified(token, &jwt.RegisteredClaims{})
	if err != nil {
		return false
	}
	typ, _ := t.Header["typ"].(string)
	return typ == typeLegacy
}
