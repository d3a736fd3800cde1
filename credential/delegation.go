package credential

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/outpost-robotics/outpost/authz"
)

// MaxDelegationTTL is how long a delegation lives at most: a shift.
const MaxDelegationTTL = 12 * time.Hour

// DelegationScheme is the Authorization scheme of a call made with a
// delegation: "Delegation <delegation>", with a proof signed by the
// delegated key in the DPoP header.
const DelegationScheme = "Delegation"

// DelegationClaims are a delegation's claims: the holder of a credential
// (an API key, or a session with its access token) lends its identity on
// one part to a key made for the purpose, such as one a browser page holds.
type DelegationClaims struct {
	jwt.RegisteredClaims
	// Cnf is the delegated key, in full (RFC 7800 cnf.jwk): the page needs
	// its public half to sign proofs and cannot read it from a
	// non-extractable key.
	Cnf *DelegatedKey `json:"cnf"`
	// Token is, for a session, the access token the signing key is bound
	// to; empty for an API key.
	Token string `json:"tok,omitempty"`
}

// DelegatedKey is an Ed25519 public key as a JWK.
type DelegatedKey struct {
	JWK struct {
		Kty string `json:"kty"`
		Crv string `json:"crv"`
		X   string `json:"x"`
	} `json:"jwk"`
}

// Delegate signs a delegation of k's identity to delegated, for the one
// part whose control certificate has fingerprint, from now for ttl (at most
// MaxDelegationTTL, and for a session never past its token's expiry, which
// tokenExpiry gives; zero means unknown, and the part still refuses the
// delegation once the token expired).
func (k *Key) Delegate(fingerprint string, delegated ed25519.PublicKey, now time.Time, ttl time.Duration, tokenExpiry time.Time) (string, time.Time, error) {
	if len(delegated) != ed25519.PublicKeySize {
		return "", time.Time{}, fmt.Errorf("delegate: the delegated key is %d bytes, want %d", len(delegated), ed25519.PublicKeySize)
	}
	if !isFingerprint(fingerprint) {
		return "", time.Time{}, errors.New("delegate: the part's fingerprint is not a SHA-256 in lower-case hex")
	}
	ttl = min(ttl, MaxDelegationTTL)
	exp := now.Add(ttl).Truncate(time.Second)
	if !tokenExpiry.IsZero() && tokenExpiry.Before(exp) {
		exp = tokenExpiry
	}
	if !exp.After(now) {
		return "", time.Time{}, errors.New("delegate: the session has expired: sign in again with `outpost login EMAIL`")
	}
	c := DelegationClaims{RegisteredClaims: jwt.RegisteredClaims{
		ID:        newJTI(),
		Audience:  jwt.ClaimStrings{TLSAudience(fingerprint)},
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(exp),
	}, Cnf: &DelegatedKey{}, Token: k.Token}
	c.Cnf.JWK.Kty, c.Cnf.JWK.Crv, c.Cnf.JWK.X = "OKP", "Ed25519", base64.RawURLEncoding.EncodeToString(delegated)
	if k.KeyID != "" {
		c.Subject = authz.APIKey(k.KeyID).String()
	}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	t.Header["typ"] = typeDelegation
	k.identify(t)
	s, err := t.SignedString(k.priv)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign delegation: %w", err)
	}
	if len(s) > MaxHeaderLen-len(DelegationScheme)-1 {
		return "", time.Time{}, fmt.Errorf("delegate: the delegation is over %d bytes", MaxHeaderLen)
	}
	return s, exp, nil
}

// isFingerprint reports whether s is a SHA-256 in lower-case hex.
func isFingerprint(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, r := range s {
		if (r < '0' || r > '9') && (r < 'a' || r > 'f') {
			return false
		}
	}
	return true
}

// DelegationVerifier is what a part knows to check a delegation: its
// audience, the API keys and the cloud's token keys of its grant bundle,
// and the bundle's revocations of tokens.
type DelegationVerifier struct {
	// Audience is the part's: TLSAudience of its certificate.
	Audience string
	// KeyOf returns an API key's public key, nil when unknown or revoked.
	KeyOf func(keyID string) ed25519.PublicKey
	// TokenKeys are the cloud's keys, for a session's token.
	TokenKeys map[string]ed25519.PublicKey
	// Revoked refuses a token revoked at the cloud (nil: none is).
	Revoked func(*Claims) error
}

// Delegated is a verified delegation.
type Delegated struct {
	// Subject is who delegated: "user/ID" or "apikey/ID".
	Subject string
	// Until is when it stops counting: its expiry, or its token's if sooner.
	Until time.Time
}

// VerifyDelegated checks a call made with a delegation: the delegation
// (its type, its signer — an API key of the bundle, or a session key with
// a live, unrevoked token it is bound to —, this part as its only audience,
// its lifetime at now), then the call's proof (signed by the delegated
// key, for this part, carrying the delegation's hash). Freshness of the
// proof is the part's nonce, as for other proofs: the caller checks it.
func (v DelegationVerifier) VerifyDelegated(delegation, proof string, now time.Time) (Delegated, *ProofClaims, error) {
	var out Delegated
	c := &DelegationClaims{}
	var tc *Claims
	err := parseSigned(delegation, typeDelegation, c, func(h map[string]any) (ed25519.PublicKey, error) {
		if kid, ok := h["kid"].(string); ok {
			if c.Token != "" || !IsID(kid) || c.Subject != authz.APIKey(kid).String() {
				return nil, errors.New("names an API key and something else")
			}
			pub := v.KeyOf(kid)
			if len(pub) == 0 {
				return nil, fmt.Errorf("API key %s is unknown to this part, revoked, or predates key pairs", kid)
			}
			out.Subject = c.Subject
			return pub, nil
		}
		k, err := headerKey(h)
		if err != nil {
			return nil, err
		}
		if c.Token == "" || c.Subject != "" {
			return nil, errors.New("a session's delegation carries its token and no subject of its own")
		}
		if tc, err = VerifyToken(c.Token, v.TokenKeys, now); err != nil {
			return nil, err
		}
		if Thumbprint(k) != tc.Cnf.JKT {
			return nil, errors.New("not signed by the key the token is bound to")
		}
		out.Subject = authz.User(tc.Subject).String()
		return k, nil
	})
	if err != nil {
		return out, nil, fmt.Errorf("verify delegation: %v: %w", err, ErrBad)
	}
	switch {
	case len(c.Audience) != 1 || c.Audience[0] != v.Audience:
		return out, nil, fmt.Errorf("the delegation is for another part than %s: %w", v.Audience, ErrBad)
	case c.ID == "" || c.IssuedAt == nil || c.ExpiresAt == nil || c.ExpiresAt.Sub(c.IssuedAt.Time) > MaxDelegationTTL:
		return out, nil, fmt.Errorf("delegation claims out of bounds: %w", ErrBad)
	case c.IssuedAt.After(now.Add(ClockSkew)) || !now.Before(c.ExpiresAt.Time):
		return out, nil, fmt.Errorf("the delegation expired %s (or is not valid yet): run `outpost robot console` again: %w", c.ExpiresAt.UTC().Format(time.RFC3339), ErrBad)
	case c.Cnf == nil || c.Cnf.JWK.Kty != "OKP" || c.Cnf.JWK.Crv != "Ed25519":
		return out, nil, fmt.Errorf("the delegation names no Ed25519 key: %w", ErrBad)
	}
	delegated, err := base64.RawURLEncoding.DecodeString(c.Cnf.JWK.X)
	if err != nil || len(delegated) != ed25519.PublicKeySize {
		return out, nil, fmt.Errorf("the delegation's key is not 32 bytes of base64url: %w", ErrBad)
	}
	out.Until = c.ExpiresAt.Time
	if tc != nil {
		if tc.IssuedAt.After(c.IssuedAt.Time.Add(ClockSkew)) {
			return out, nil, fmt.Errorf("the delegation predates its token: %w", ErrBad)
		}
		if v.Revoked != nil {
			if err := v.Revoked(tc); err != nil {
				return out, nil, fmt.Errorf("the delegation's session: %v: %w", err, ErrBad)
			}
		}
		if tc.ExpiresAt.Before(out.Until) {
			out.Until = tc.ExpiresAt.Time
		}
	}
	pc := &ProofClaims{}
	err = parseSigned(proof, typeProof, pc, func(h map[string]any) (ed25519.PublicKey, error) {
		k, err := headerKey(h)
		if err != nil {
			return nil, err
		}
		if !k.Equal(ed25519.PublicKey(delegated)) {
			return nil, errors.New("proof is not signed by the delegated key")
		}
		return k, nil
	})
	if err != nil {
		return out, nil, fmt.Errorf("verify delegated proof: %v: %w", err, ErrBad)
	}
	if err := pc.check(v.Audience, hash64([]byte(delegation))); err != nil {
		return out, nil, err
	}
	return out, pc, nil
}

// DelegatedProof signs a proof with a delegated key, as a page does with
// WebCrypto: for aud, with the part's nonce, carrying the delegation's hash.
// The CLI and tests use it.
func DelegatedProof(priv ed25519.PrivateKey, delegation, aud, nonce string, now time.Time) (string, error) {
	c := ProofClaims{RegisteredClaims: jwt.RegisteredClaims{
		ID:        newJTI(),
		Audience:  jwt.ClaimStrings{aud},
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(MaxProofTTL)),
	}, Nonce: nonce, ATH: hash64([]byte(delegation))}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	t.Header["typ"] = typeProof
	t.Header["jwk"] = map[string]string{"kty": "OKP", "crv": "Ed25519", "x": base64.RawURLEncoding.EncodeToString(priv.Public().(ed25519.PublicKey))}
	s, err := t.SignedString(priv)
	if err != nil {
		return "", fmt.Errorf("sign delegated proof: %w", err)
	}
	return s, nil
}

// parseDelegation reads "Delegation <jwt>" from an Authorization value.
func parseDelegation(rest string) (string, error) {
	if strings.Count(rest, ".") != 2 {
		return "", fmt.Errorf("authorization is not \"Delegation <delegation>\": %w", ErrBad)
	}
	return rest, nil
}

// TokenExpiry returns when a session's access token expires, read without
// verifying it (the client's own token, to bound what it delegates); zero
// for an API key or a token that does not parse.
func (k *Key) TokenExpiry() time.Time {
	if k.Token == "" {
		return time.Time{}
	}
	c := &Claims{}
	if _, _, err := jwt.NewParser().ParseUnverified(k.Token, c); err != nil || c.ExpiresAt == nil {
		return time.Time{}
	}
	return c.ExpiresAt.Time
}
