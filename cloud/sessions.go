package cloud

import (
	"fmt"
	"slices"
	"time"

	"connectrpc.com/connect"

	"github.com/outpost-robotics/outpost/cloud/auth"
	"github.com/outpost-robotics/outpost/cloud/store"
	"github.com/outpost-robotics/outpost/rbac"
)

// maxRevokedTokens bounds a user's list of tokens revoked one by one, which
// every grant bundle naming the user carries: past it, a sign-out revokes
// every older token of the user instead (TokensNotBefore).
const maxRevokedTokens = 64

// tokenRevoked reports whether the token with claims was revoked: issued
// before the user's TokensNotBefore (compared in whole seconds, a token's
// precision) or signed out.
func tokenRevoked(u store.User, claims *auth.Claims) bool {
	if claims.IssuedAt != nil && !u.TokensNotBefore.IsZero() && claims.IssuedAt.Before(u.TokensNotBefore.Truncate(time.Second)) {
		return true
	}
	return slices.ContainsFunc(u.RevokedTokens, func(r store.RevokedToken) bool { return r.ID == claims.ID })
}

// pruneRevoked drops revocations of tokens expired at now.
func pruneRevoked(rs []store.RevokedToken, now time.Time) []store.RevokedToken {
	return slices.DeleteFunc(rs, func(r store.RevokedToken) bool { return !now.Before(r.ExpiresAt) })
}

// sessionUser returns the calling user, refusing API keys: sessions are users'.
func sessionUser(c *call, what string) (string, error) {
	if c.principal.kind != rbac.User {
		return "", connect.NewError(connect.CodeFailedPrecondition,
			fmt.Errorf("%s is for users signed in with a token; an API key is ended with `outpost apikey revoke`", what))
	}
	return c.principal.id, nil
}
