package control

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/outpost-robotics/outpost/authz"
	"github.com/outpost-robotics/outpost/credential"
)

// The credential formats are defined once, in package credential, and the
// cloud uses the same code. What a client sends a part is useless anywhere
// else:
//
//	Authorization: APIKey <key id>    an API key: the bundle holds its public key
//	Authorization: DPoP <JWT>         a user's access token, bound to a session key
//	Authorization: Delegation <JWT>   a console's delegation: an API key or a session lends its
//	                                  identity on this part alone to the page's key
//	DPoP: <proof>                     signed by that key, audience "tls/<this part's fingerprint>",
//	                                  carrying a nonce this part issued (credential.NonceIssuer)
//
// A relayed offer carries instead the cloud's assertion, for this part's id
// and that offer's SDP.

// proved is who a call or a session proved to be.
type proved struct {
	who        authz.Subject // a user or an API key
	credential string        // apikey, token, delegation, relay or forwarded
	// via is, for a forwarded call, who forwarded it for whom.
	via string
	// until is when the proof stops counting on its own (a user token's
	// expiry); zero means the bundle alone decides.
	until time.Time
	// tokenID and issued name a user's token, so that a bundle revoking it
	// ends what it opened (GrantsChanged).
	tokenID string
	issued  time.Time
}

// errNonce marks a refusal that only asks for a fresh proof: the client
// proved its key but carried no current nonce of this part. It is the
// challenge of the protocol, neither a failed authentication to throttle
// nor an event to audit.
var errNonce = errors.New("this part needs a proof carrying its nonce: try again with the nonce in the " + credential.NonceHeader + " header")

// verifiedProof is a cached verified credential: the same headers are
// accepted again without an Ed25519 check until until.
type verifiedProof struct {
	id    proved
	until time.Time
}

// maxVerified bounds the proof cache; past it the cache starts over.
const maxVerified = 1024

// prove checks presented headers against the policy's bundle: the key or
// token, the proof for aud, and the nonce. A hit in the policy's cache costs
// a map lookup; the cache lives in the policy, so a new bundle (a revoked
// key, a rotated token key) starts empty.
func (p *policy) prove(pr credential.Presented, aud string, nonces *credential.NonceIssuer, now time.Time) (proved, error) {
	// The headers themselves are the key: hashing them with the map's hash
	// is cheaper than a SHA-256 and allocates nothing.
	key := pr
	p.mu.Lock()
	v, ok := p.verified[key]
	p.mu.Unlock()
	if ok && now.Before(v.until) {
		return v.id, nil
	}
	var id proved
	var pc *credential.ProofClaims
	var err error
	switch {
	case pr.Delegation != "":
		// A console's: the delegator's identity, lent to the page's key for
		// this part alone (credential.DelegationVerifier).
		id.credential = "delegation"
		v := credential.DelegationVerifier{Audience: aud, TokenKeys: p.tokenKeys, Revoked: p.tokenRevoked,
			KeyOf: func(keyID string) ed25519.PublicKey {
				if k := p.keys[keyID]; k != nil {
					return k.publicKey
				}
				return nil
			}}
		d, dpc, err := v.VerifyDelegated(pr.Delegation, pr.Proof, now)
		if err != nil {
			return id, err
		}
		if id.who, err = authz.Parse(d.Subject); err != nil || id.who.Kind == authz.KindLocal {
			return id, fmt.Errorf("the delegation names no user or API key: %w", credential.ErrBad)
		}
		id.until, pc = d.Until, dpc
	case pr.KeyID != "":
		id = proved{who: authz.APIKey(pr.KeyID), credential: "apikey"}
		k := p.keys[pr.KeyID]
		if k == nil {
			return id, fmt.Errorf("%w: %w", p.unknownKey(pr.KeyID), credential.ErrBad)
		}
		if pc, err = credential.VerifyKeyProof(pr.Proof, pr.KeyID, k.publicKey, aud); err != nil {
			return id, err
		}
	default:
		id.credential = "token"
		tc, err := credential.VerifyToken(pr.Token, p.tokenKeys, now)
		if errors.Is(err, credential.ErrUnknownKey) {
			return id, fmt.Errorf("%w (this part's grants may be out of date)", err)
		}
		if err != nil {
			return id, err
		}
		if err := p.tokenRevoked(tc); err != nil {
			return id, err
		}
		id.who, id.until, id.tokenID = authz.User(tc.Subject), tc.ExpiresAt.Time, tc.ID
		if tc.IssuedAt != nil {
			id.issued = tc.IssuedAt.Time
		}
		if pc, err = credential.VerifySessionProof(pr.Proof, pr.Token, tc, aud); err != nil {
			return id, err
		}
	}
	until, err := nonces.Check(pc.Nonce, now)
	if err != nil {
		return id, errNonce
	}
	if !id.until.IsZero() && id.until.Before(until) {
		until = id.until
	}
	p.mu.Lock()
	if len(p.verified) >= maxVerified {
		clear(p.verified)
	}
	p.verified[key] = verifiedProof{id: id, until: until}
	p.mu.Unlock()
	return id, nil
}

// assert checks a relayed offer's assertion from the cloud: signed with a
// key of the bundle (the cloud's), for this part and this offer, live by
// this part's clock.
func (p *policy) assert(assertion, sdp string, now time.Time) (proved, error) {
	c, err := credential.VerifyAssertion(assertion, p.tokenKeys, p.partID, sdp, now)
	if err != nil {
		return proved{}, err
	}
	who, err := authz.Parse(c.Subject)
	if err != nil || who.Kind == authz.KindLocal {
		return proved{}, fmt.Errorf("the cloud's assertion names no user or API key: %w", credential.ErrBad)
	}
	return proved{who: who, credential: "relay"}, nil
}
