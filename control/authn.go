package control

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/outpost-robotics/outpost/credential"
)

// The credential formats are defined once, in package credential, and the
// cloud uses the same code, so one key or token works against both:
//
//	Authorization: Bearer <key id>:<secret>   an API key; key id is 32 hex digits
//	Authorization: Bearer <JWT>               a user access token: EdDSA, "kid" header, sub = user ID

// verifyToken checks a user token offline with the bundle's token keys and
// returns its claims: the user ID, expiry, issue time and token ID.
func verifyToken(token string, keys map[string]ed25519.PublicKey, now time.Time) (*credential.Claims, error) {
	c, err := credential.VerifyToken(token, keys, now)
	if errors.Is(err, credential.ErrUnknownKey) {
		return nil, fmt.Errorf("%w (this part's grants may be out of date)", err)
	}
	return c, err
}
