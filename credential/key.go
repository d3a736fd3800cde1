package credential

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
)

// Key string prefixes: the printed forms of a client's credentials.
const (
	apiKeyPrefix  = "opk_"
	sessionPrefix = "ops_"
	seedLen       = 43 // base64url of a 32-byte seed, unpadded
)

// Key is a client's credential: an API key (its id and private key) or a
// user's session (the access token and the session's private key). The
// private key never leaves the client; what it sends are proofs.
type Key struct {
	// KeyID is the API key's id, "" for a session.
	KeyID string
	// Token is the session's access token, "" for an API key.
	Token string
	priv  ed25519.PrivateKey
}

// NewPrivateKey returns a new Ed25519 key, for a new API key or session.
func NewPrivateKey() ed25519.PrivateKey {
	_, priv, _ := ed25519.GenerateKey(rand.Reader) // never fails with crypto/rand
	return priv
}

// APIKey is the API key keyID with its private key.
func APIKey(keyID string, priv ed25519.PrivateKey) *Key {
	return &Key{KeyID: keyID, priv: priv}
}

// Session is a user's session: an access token bound to priv's public key.
func Session(token string, priv ed25519.PrivateKey) *Key {
	return &Key{Token: token, priv: priv}
}

// PublicKey is the key's public half: what the cloud keeps of an API key,
// and what a session's token is bound to.
func (k *Key) PublicKey() ed25519.PublicKey { return k.priv.Public().(ed25519.PublicKey) }

// String is the key's printed form, to keep in a file or an environment
// variable: "opk_<key id>_<seed>" for an API key, "ops_<seed>_<token>" for
// a session. It is a secret.
func (k *Key) String() string {
	seed := base64.RawURLEncoding.EncodeToString(k.priv.Seed())
	if k.KeyID != "" {
		return apiKeyPrefix + k.KeyID + "_" + seed
	}
	return sessionPrefix + seed + "_" + k.Token
}

// ParseKey reads a key's printed form. An old "<key id>:<secret>" API key
// or a bare access token is refused with ErrLegacyKey or ErrLegacyToken.
// Errors never quote the key.
func ParseKey(s string) (*Key, error) {
	s = strings.TrimSpace(s)
	if len(s) > MaxHeaderLen {
		return nil, fmt.Errorf("key longer than %d bytes: %w", MaxHeaderLen, ErrBad)
	}
	switch {
	case strings.HasPrefix(s, apiKeyPrefix):
		rest := s[len(apiKeyPrefix):]
		id, seed, ok := strings.Cut(rest, "_")
		if !ok || !IsID(id) {
			return nil, fmt.Errorf("API key is not \"opk_<key id>_<private key>\": %w", ErrBad)
		}
		priv, err := privateKey(seed)
		if err != nil {
			return nil, err
		}
		return APIKey(id, priv), nil
	case strings.HasPrefix(s, sessionPrefix):
		rest := s[len(sessionPrefix):]
		if len(rest) < seedLen+1 || rest[seedLen] != '_' {
			return nil, fmt.Errorf("session is not \"ops_<private key>_<token>\": %w", ErrBad)
		}
		priv, err := privateKey(rest[:seedLen])
		if err != nil {
			return nil, err
		}
		tok := rest[seedLen+1:]
		if strings.Count(tok, ".") != 2 {
			return nil, fmt.Errorf("session's access token is not a JWT: %w", ErrBad)
		}
		return Session(tok, priv), nil
	case strings.Contains(s, ":"):
		return nil, fmt.Errorf("%w: %w", ErrLegacyKey, ErrBad)
	case strings.Count(s, ".") == 2:
		return nil, fmt.Errorf("%w: %w", ErrLegacyToken, ErrBad)
	}
	return nil, fmt.Errorf("key is neither an API key (opk_...) nor a session (ops_...): %w", ErrBad)
}

func privateKey(seed string) (ed25519.PrivateKey, error) {
	b, err := base64.RawURLEncoding.DecodeString(seed)
	if err != nil || len(b) != ed25519.SeedSize {
		return nil, fmt.Errorf("private key is not %d bytes of base64url: %w", ed25519.SeedSize, ErrBad)
	}
	return ed25519.NewKeyFromSeed(b), nil
}

// Thumbprint is the RFC 7638 JWK thumbprint of an Ed25519 public key: what
// an access token's cnf.jkt names.
func Thumbprint(pub ed25519.PublicKey) string {
	j := `{"crv":"Ed25519","kty":"OKP","x":"` + base64.RawURLEncoding.EncodeToString(pub) + `"}`
	h := sha256.Sum256([]byte(j))
	return base64.RawURLEncoding.EncodeToString(h[:])
}
