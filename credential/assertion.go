package credential

import (
	"crypto/ed25519"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// AssertionTTL is how long a relay assertion lives: enough to carry one
// offer to a part that is polling.
const AssertionTTL = time.Minute

// AssertionClaims are a relay assertion's claims.
type AssertionClaims struct {
	jwt.RegisteredClaims
	// SDP is the base64url SHA-256 of the offer it came with.
	SDP string `json:"sdp"`
}

// SignAssertion is the cloud's statement, for the relay, that subject
// ("user/ID" or "apikey/ID") asked to open a session with partID by the
// offer sdp. The caller's own credential never goes to the part.
func SignAssertion(priv ed25519.PrivateKey, kid, subject, partID, sdp string, now time.Time) (string, error) {
	c := AssertionClaims{RegisteredClaims: jwt.RegisteredClaims{
		Subject:   subject,
		Audience:  jwt.ClaimStrings{PartAudience(partID)},
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(AssertionTTL)),
		ID:        newJTI(),
	}, SDP: hash64([]byte(sdp))}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	t.Header["kid"] = kid
	t.Header["typ"] = typeAssertion
	s, err := t.SignedString(priv)
	if err != nil {
		return "", fmt.Errorf("sign relay assertion: %w", err)
	}
	return s, nil
}

// VerifyAssertion checks a relay assertion on part partID for the offer
// sdp: signed by one of keys (the cloud's), for this part, for this offer,
// live at now (with ClockSkew). It returns the claims; Subject is "user/ID"
// or "apikey/ID".
func VerifyAssertion(a string, keys map[string]ed25519.PublicKey, partID, sdp string, now time.Time) (*AssertionClaims, error) {
	c := &AssertionClaims{}
	err := parseSigned(a, typeAssertion, c, func(h map[string]any) (ed25519.PublicKey, error) {
		kid, _ := h["kid"].(string)
		if k, ok := keys[kid]; ok {
			return k, nil
		}
		return nil, ErrUnknownKey
	})
	if err != nil {
		return nil, fmt.Errorf("verify relay assertion: %v: %w", err, ErrBad)
	}
	kind, id, _ := strings.Cut(c.Subject, "/")
	switch {
	case (kind != "user" && kind != "apikey") || !IsID(id):
		return nil, fmt.Errorf("relay assertion names no subject: %w", ErrBad)
	case len(c.Audience) != 1 || c.Audience[0] != PartAudience(partID):
		return nil, fmt.Errorf("relay assertion is for another part: %w", ErrBad)
	case c.SDP != hash64([]byte(sdp)):
		return nil, fmt.Errorf("relay assertion is for another offer: %w", ErrBad)
	case c.IssuedAt == nil || c.ExpiresAt == nil || c.ExpiresAt.Sub(c.IssuedAt.Time) > AssertionTTL:
		return nil, fmt.Errorf("relay assertion claims out of bounds: %w", ErrBad)
	case c.IssuedAt.After(now.Add(ClockSkew)) || !now.Before(c.ExpiresAt.Add(ClockSkew)):
		return nil, fmt.Errorf("relay assertion expired (or this part's clock is off): %w", ErrBad)
	}
	return c, nil
}
