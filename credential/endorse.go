package credential

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/outpost-robotics/outpost/authz"
)

// Endorsement is an editor's signature on a config edit made on a part: the
// part forwards it with the edit, and the cloud makes the edit a revision
// only if it verifies and its signer may edit the machine's config.
type Endorsement struct {
	// KeyID is the signing API key's id, or "".
	KeyID string
	// Token is the signing session's access token, or "": the cloud checks
	// the signature against the key the token is bound to.
	Token string
	// Signature is the signed statement (a JWT of typ outpost-proposal+jwt).
	Signature string
}

// ProposalClaims are what an Endorsement signs.
type ProposalClaims struct {
	jwt.RegisteredClaims
	// Machine is the machine's id.
	Machine string `json:"machine"`
	// Base is the revision the edit started from.
	Base uint64 `json:"base"`
	// Config is the base64url SHA-256 of the edited config's bytes.
	Config string `json:"config"`
}

// Endorse signs an edit of machineID's config, started from revision base,
// whose bytes are config.
func (k *Key) Endorse(machineID string, base uint64, config []byte, now time.Time) (Endorsement, error) {
	c := ProposalClaims{RegisteredClaims: jwt.RegisteredClaims{IssuedAt: jwt.NewNumericDate(now), ID: newJTI()},
		Machine: machineID, Base: base, Config: hash64(config)}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	t.Header["typ"] = typeProposal
	k.identify(t)
	s, err := t.SignedString(k.priv)
	if err != nil {
		return Endorsement{}, fmt.Errorf("sign config edit: %w", err)
	}
	return Endorsement{KeyID: k.KeyID, Token: k.Token, Signature: s}, nil
}

// VerifyEndorsement checks e on an edit of machineID from base with bytes
// config. keyOf returns an API key's public key (nil if unknown or
// revoked); tokenKeys are the cloud's, for a session's token. It returns the
// signer: "apikey/ID", or "user/ID" for a session whose token was valid when
// it signed and that revoked (nil: none is) does not refuse: a token
// revoked since (signed out, password changed) endorses nothing, however
// early the edit says it was made.
func VerifyEndorsement(e Endorsement, keyOf func(keyID string) ed25519.PublicKey, tokenKeys map[string]ed25519.PublicKey,
	machineID string, base uint64, config []byte, revoked func(*Claims) error) (string, error) {
	if len(e.Signature) > MaxHeaderLen || len(e.Token) > MaxHeaderLen {
		return "", fmt.Errorf("endorsement too long: %w", ErrBad)
	}
	c := &ProposalClaims{}
	var subject string
	var tc *Claims
	switch {
	case e.KeyID != "" && e.Token == "":
		if !IsID(e.KeyID) {
			return "", fmt.Errorf("endorsement names no API key: %w", ErrBad)
		}
		pub := keyOf(e.KeyID)
		if len(pub) == 0 {
			return "", fmt.Errorf("endorsement's API key is unknown, revoked or predates key pairs: %w", ErrBad)
		}
		err := parseSigned(e.Signature, typeProposal, c, func(h map[string]any) (ed25519.PublicKey, error) {
			if kid, _ := h["kid"].(string); kid != e.KeyID {
				return nil, errors.New("signed by another key")
			}
			return pub, nil
		})
		if err != nil {
			return "", fmt.Errorf("verify endorsement: %v: %w", err, ErrBad)
		}
		subject = authz.APIKey(e.KeyID).String()
	case e.Token != "" && e.KeyID == "":
		// The token is checked at the time it signed: an edit made
		// offline reaches the cloud when the part does, maybe after the
		// token expired.
		var at time.Time
		if err := parseSigned(e.Signature, typeProposal, c, func(h map[string]any) (ed25519.PublicKey, error) {
			k, err := headerKey(h)
			if err != nil {
				return nil, err
			}
			if c.IssuedAt == nil {
				return nil, errors.New("no time")
			}
			at = c.IssuedAt.Time
			if tc, err = VerifyToken(e.Token, tokenKeys, at); err != nil {
				return nil, err
			}
			if Thumbprint(k) != tc.Cnf.JKT {
				return nil, errors.New("not signed by the key the token is bound to")
			}
			return k, nil
		}); err != nil {
			return "", fmt.Errorf("verify endorsement: %v: %w", err, ErrBad)
		}
		if at.Before(tc.IssuedAt.Time) {
			return "", fmt.Errorf("endorsement predates its token: %w", ErrBad)
		}
		if revoked != nil {
			if err := revoked(tc); err != nil {
				return "", fmt.Errorf("endorsement's token: %v: %w", err, ErrBad)
			}
		}
		subject = authz.User(tc.Subject).String()
	default:
		return "", fmt.Errorf("endorsement names neither one API key nor one session: %w", ErrBad)
	}
	switch {
	case c.Machine != machineID:
		return "", fmt.Errorf("endorsement is for another machine: %w", ErrBad)
	case c.Base != base:
		return "", fmt.Errorf("endorsement is for another base revision: %w", ErrBad)
	case c.Config != hash64(config):
		return "", fmt.Errorf("endorsement is for another config: %w", ErrBad)
	}
	return subject, nil
}
