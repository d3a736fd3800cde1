package control

import (
	"fmt"

	"github.com/outpost-robotics/outpost/credential"
)

// tokenRevoked refuses a user token the bundle says was revoked at the
// cloud: issued before the user's tokens_not_before (its password changed)
// or listed among its revoked token ids (it signed out). A token of a user
// the bundle does not name is left to the grant check, which finds nothing.
func (p *policy) tokenRevoked(c *credential.Claims) error {
	u := p.users[c.Subject]
	if u == nil {
		return nil
	}
	if c.IssuedAt != nil && !u.notBefore.IsZero() && c.IssuedAt.Before(u.notBefore) {
		return fmt.Errorf("this access token was revoked at the cloud (the password changed): sign in again with `outpost login`: %w", credential.ErrBad)
	}
	if u.revoked[c.ID] {
		return fmt.Errorf("this access token was revoked at the cloud (signed out): sign in again with `outpost login`: %w", credential.ErrBad)
	}
	return nil
}
