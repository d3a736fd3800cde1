package credential

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// MaxProofTTL is how long a proof lives at most; the cloud refuses older
// ones. A part decides freshness by its own nonce instead.
const MaxProofTTL = 5 * time.Minute

// ClockSkew is how far a proof's or an assertion's times may be off the
// verifier's clock.
const ClockSkew = time.Minute

// JWT "typ" headers: each kind of signed statement has its own, and each
// verifier accepts only its own, so none can stand in for another.
const (
	typeProof     = "dpop+jwt"
	typeToken     = "at+jwt"
	typeLegacy    = "JWT" // what tokens carried before they were bound
	typeAssertion = "outpost-relay+jwt"
	typeProposal  = "outpost-proposal+jwt"
	// typeDelegation is a console's delegation (delegation.go).
	typeDelegation = "outpost-delegation+jwt"
)

// ProofClaims are a proof's claims.
type ProofClaims struct {
	jwt.RegisteredClaims
	// Nonce is the part's nonce, for a part.
	Nonce string `json:"nonce,omitempty"`
	// ATH is the base64url SHA-256 of the access token, for a session.
	ATH string `json:"ath,omitempty"`
}

// newJTI is a random proof id.
func newJTI() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Proof signs a proof for aud, with a part's nonce ("" for the cloud),
// valid from now for MaxProofTTL.
func (k *Key) Proof(aud, nonce string, now time.Time) (string, error) {
	c := ProofClaims{RegisteredClaims: jwt.RegisteredClaims{
		ID:        newJTI(),
		Audience:  jwt.ClaimStrings{aud},
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(MaxProofTTL)),
	}, Nonce: nonce}
	if k.KeyID == "" {
		c.ATH = hash64([]byte(k.Token))
	}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	t.Header["typ"] = typeProof
	k.identify(t)
	s, err := t.SignedString(k.priv)
	if err != nil {
		return "", fmt.Errorf("sign proof: %w", err)
	}
	return s, nil
}

// identify names the signing key in a statement's header: an API key by
// its id, a session by its public key (which its token is bound to).
func (k *Key) identify(t *jwt.Token) {
	if k.KeyID != "" {
		t.Header["kid"] = k.KeyID
		return
	}
	t.Header["jwk"] = map[string]string{"kty": "OKP", "crv": "Ed25519", "x": base64.RawURLEncoding.EncodeToString(k.PublicKey())}
}

// Headers returns the Authorization and DPoP header values for a request
// to aud.
func (k *Key) Headers(aud, nonce string, now time.Time) (authorization, proof string, err error) {
	proof, err = k.Proof(aud, nonce, now)
	if err != nil {
		return "", "", err
	}
	return k.Authorization(), proof, nil
}

// Authorization is the Authorization header value: "APIKey <key id>" or
// "DPoP <access token>".
func (k *Key) Authorization() string {
	if k.KeyID != "" {
		return "APIKey " + k.KeyID
	}
	return "DPoP " + k.Token
}

// parseSigned checks a statement's typ, algorithm and signature, with the
// key key returns from its header, and fills claims. It checks no times:
// each caller has its own freshness rule.
func parseSigned(s, typ string, claims jwt.Claims, key func(h map[string]any) (ed25519.PublicKey, error)) error {
	if len(s) > MaxHeaderLen {
		return fmt.Errorf("longer than %d bytes", MaxHeaderLen)
	}
	p := jwt.NewParser(jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}), jwt.WithoutClaimsValidation(), jwt.WithStrictDecoding())
	_, err := p.ParseWithClaims(s, claims, func(t *jwt.Token) (any, error) {
		if got, _ := t.Header["typ"].(string); got != typ {
			return nil, fmt.Errorf("typ %q, want %q", got, typ)
		}
		k, err := key(t.Header)
		if err != nil {
			return nil, err
		}
		if len(k) != ed25519.PublicKeySize {
			return nil, errors.New("no usable public key")
		}
		return k, nil
	})
	return err
}

// headerKey reads an Ed25519 JWK from a header.
func headerKey(h map[string]any) (ed25519.PublicKey, error) {
	j, ok := h["jwk"].(map[string]any)
	if !ok {
		return nil, errors.New("no jwk header")
	}
	kty, _ := j["kty"].(string)
	crv, _ := j["crv"].(string)
	x, _ := j["x"].(string)
	if kty != "OKP" || crv != "Ed25519" {
		return nil, errors.New("jwk is not an Ed25519 key")
	}
	b, err := base64.RawURLEncoding.DecodeString(x)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, errors.New("jwk x is not 32 bytes of base64url")
	}
	return ed25519.PublicKey(b), nil
}

// VerifyKeyProof checks an API key's proof: its type, algorithm, key id,
// signature with pub, and audience. Freshness is the caller's to check:
// Fresh at the cloud, the nonce on a part. An empty pub is a key from
// before key pairs.
func VerifyKeyProof(proof, keyID string, pub ed25519.PublicKey, aud string) (*ProofClaims, error) {
	if len(pub) == 0 {
		return nil, fmt.Errorf("%w: %w", ErrLegacyKey, ErrBad)
	}
	c := &ProofClaims{}
	err := parseSigned(proof, typeProof, c, func(h map[string]any) (ed25519.PublicKey, error) {
		if kid, _ := h["kid"].(string); kid != keyID {
			return nil, errors.New("proof names another key")
		}
		return pub, nil
	})
	if err != nil {
		return nil, fmt.Errorf("verify API key proof: %v: %w", err, ErrBad)
	}
	return c, c.check(aud, "")
}

// VerifySessionProof checks a session's proof against its verified token:
// signed by the key the token is bound to, carrying the token's hash, for
// aud. Freshness is the caller's to check, as for VerifyKeyProof.
func VerifySessionProof(proof, token string, tc *Claims, aud string) (*ProofClaims, error) {
	c := &ProofClaims{}
	err := parseSigned(proof, typeProof, c, func(h map[string]any) (ed25519.PublicKey, error) {
		k, err := headerKey(h)
		if err != nil {
			return nil, err
		}
		if tc.Cnf == nil || Thumbprint(k) != tc.Cnf.JKT {
			return nil, errors.New("proof is not signed by the key the token is bound to")
		}
		return k, nil
	})
	if err != nil {
		return nil, fmt.Errorf("verify session proof: %v: %w", err, ErrBad)
	}
	return c, c.check(aud, hash64([]byte(token)))
}

func (c *ProofClaims) check(aud, ath string) error {
	if len(c.Audience) != 1 || c.Audience[0] != aud {
		return fmt.Errorf("proof is for another audience than %s: %w", aud, ErrBad)
	}
	if c.ATH != ath {
		return fmt.Errorf("proof is for another access token: %w", ErrBad)
	}
	if c.ID == "" || c.IssuedAt == nil || c.ExpiresAt == nil || c.ExpiresAt.Sub(c.IssuedAt.Time) > MaxProofTTL {
		return fmt.Errorf("proof claims out of bounds: %w", ErrBad)
	}
	return nil
}

// Fresh checks a proof's times at now: issued no later than now (with
// ClockSkew) and not expired.
func (c *ProofClaims) Fresh(now time.Time) error {
	if c.IssuedAt.After(now.Add(ClockSkew)) || !now.Before(c.ExpiresAt.Add(ClockSkew)) {
		return fmt.Errorf("proof expired or not yet valid (check this computer's clock): %w", ErrBad)
	}
	return nil
}
