// Package credential is the one definition of how callers prove who they
// are to Outpost's cloud and to its parts. The cloud issues credentials; the
// cloud and every part verify them with this code, so the two can never
// disagree about what a valid credential is.
//
// No request carries a secret that works anywhere else. A client holds an
// Ed25519 private key that never leaves it, and every request carries a
// proof signed with it (a JWT in the style of RFC 9449, DPoP) whose audience
// names the one server it is for:
//
//	Authorization: APIKey <key id>    an API key: the cloud and the grant bundle hold its public key
//	Authorization: DPoP <token>       a user's access token, bound (cnf.jkt, RFC 7800) to a session key
//	DPoP: <proof>                     the proof: typ dpop+jwt, aud, iat, exp, jti, and for a part its nonce
//
// Audiences are AudienceCloud for the fleet API and TLSAudience(fingerprint)
// for a part on its LAN (the fingerprint the client pinned, so a part cannot
// lie about who it is). A part also demands a nonce it issued (NonceIssuer,
// HMAC over its monotonic time), which makes its proofs expire on the part's
// own clock whatever the client's or the part's wall clock say.
//
// A client off the LAN reaches a part through the cloud's relay; the cloud
// authenticates it and forwards only an Assertion it signs: subject, the
// part as audience, the SHA-256 of the offer's SDP, about a minute of life.
//
// A config edit made on a part is signed by the editor's key (Endorsement),
// so the cloud accepts it only from someone it can verify, whatever the part
// says.
//
// Credentials from before key pairs ("Bearer <key id>:<secret>", unbound
// tokens) are refused everywhere with ErrLegacyKey or ErrLegacyToken, whose
// messages name the fix.
package credential

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrBad is wrapped by every error about a malformed, forged, unknown or
// expired credential. Messages name what was wrong, never the credential.
var ErrBad = errors.New("bad credential")

// ErrUnknownKey is wrapped, with ErrBad, when a token's key id is not among
// the keys given: on a part it usually means the grants are out of date.
var ErrUnknownKey = errors.New("token signed with an unknown key")

// ErrLegacyKey is wrapped, with ErrBad, when an API key of the old
// "<key id>:<secret>" form is presented.
var ErrLegacyKey = errors.New("this API key predates key pairs: create a new one with `outpost apikey create` and revoke this one with `outpost apikey revoke`")

// ErrLegacyToken is wrapped, with ErrBad, when a bearer access token (one not
// bound to a session key) is presented.
var ErrLegacyToken = errors.New("this access token predates session keys: sign in again with `outpost login EMAIL`")

// MaxHeaderLen bounds what is parsed from a header.
const MaxHeaderLen = 4096

// MaxTokenTTL caps access token lifetimes: a token claiming to live longer
// was not issued by an Outpost cloud. Sixty days is the offline limit.
const MaxTokenTTL = 60 * 24 * time.Hour

// Header names.
const (
	// ProofHeader carries the proof of possession.
	ProofHeader = "DPoP"
	// NonceHeader carries a part's nonce in its answers: every refusal
	// for want of a fresh proof, and every public call.
	NonceHeader = "Outpost-Nonce"
)

// Audiences.
const (
	// AudienceCloud is the audience of proofs for the fleet API.
	AudienceCloud = "cloud"
)

// TLSAudience is the audience of proofs for the part whose control
// certificate has this SHA-256 fingerprint (lower-case hex): the client
// pinned it, so it knows whom it is talking to.
func TLSAudience(fingerprint string) string { return "tls/" + fingerprint }

// PartAudience is the audience of relay assertions for a part.
func PartAudience(partID string) string { return "part/" + partID }

// Presented is what a request's headers carried.
type Presented struct {
	// KeyID is an API key's id, or "".
	KeyID string
	// Token is a user's access token, or "".
	Token string
	// Delegation is a delegation (a part's console), or "": only a part
	// accepts one, for itself.
	Delegation string
	// Proof is the DPoP header.
	Proof string
}

// IsZero reports whether nothing was presented.
func (p Presented) IsZero() bool { return p == Presented{} }

// Parse reads the Authorization and DPoP headers. No headers at all are the
// zero Presented and no error; old bearer credentials are refused with
// ErrLegacyKey or ErrLegacyToken.
func Parse(authorization, proof string) (Presented, error) {
	if authorization == "" && proof == "" {
		return Presented{}, nil
	}
	if len(authorization) > MaxHeaderLen || len(proof) > MaxHeaderLen {
		return Presented{}, fmt.Errorf("credential headers longer than %d bytes: %w", MaxHeaderLen, ErrBad)
	}
	scheme, rest, _ := strings.Cut(authorization, " ")
	switch {
	case strings.EqualFold(scheme, "Bearer"):
		if _, _, ok := strings.Cut(rest, ":"); ok {
			return Presented{}, fmt.Errorf("%w: %w", ErrLegacyKey, ErrBad)
		}
		return Presented{}, fmt.Errorf("%w: %w", ErrLegacyToken, ErrBad)
	case strings.EqualFold(scheme, "APIKey"):
		if !IsID(rest) {
			return Presented{}, fmt.Errorf("authorization is not \"APIKey <key id>\": %w", ErrBad)
		}
		if proof == "" {
			return Presented{}, fmt.Errorf("an API key needs a proof in the %s header: %w", ProofHeader, ErrBad)
		}
		return Presented{KeyID: rest, Proof: proof}, nil
	case strings.EqualFold(scheme, "DPoP"):
		if strings.Count(rest, ".") != 2 {
			return Presented{}, fmt.Errorf("authorization is not \"DPoP <access token>\": %w", ErrBad)
		}
		if proof == "" {
			return Presented{}, fmt.Errorf("an access token needs a proof in the %s header: %w", ProofHeader, ErrBad)
		}
		return Presented{Token: rest, Proof: proof}, nil
	case strings.EqualFold(scheme, DelegationScheme):
		d, err := parseDelegation(rest)
		if err != nil {
			return Presented{}, err
		}
		if proof == "" {
			return Presented{}, fmt.Errorf("a delegation needs a proof in the %s header: %w", ProofHeader, ErrBad)
		}
		return Presented{Delegation: d, Proof: proof}, nil
	}
	return Presented{}, fmt.Errorf("authorization is neither \"APIKey <key id>\" nor \"DPoP <access token>\": %w", ErrBad)
}

// IsID reports whether s looks like a cloud id: 128 bits in hex.
func IsID(s string) bool {
	if len(s) != 32 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// SecretHash returns what is stored for a secret (a part's secret, an
// invitation code): its SHA-256. Secrets are at least 256 random bits, so a
// fast hash is enough.
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

// hash64 is the base64url SHA-256 of b, as DPoP's ath.
func hash64(b []byte) string {
	h := sha256.Sum256(b)
	return base64.RawURLEncoding.EncodeToString(h[:])
}
