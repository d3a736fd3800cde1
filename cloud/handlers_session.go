package cloud

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
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

func (a authService) SignOut(ctx context.Context, _ *connect.Request[fleetv1.SignOutRequest]) (*connect.Response[fleetv1.SignOutResponse], error) {
	s, c := a.s, callFrom(ctx)
	id, err := sessionUser(c, "signing out")
	if err != nil {
		return nil, err
	}
	c.setAuditResource("user/"+id, "")
	now := s.clock.Now().UTC()
	err = s.update(ctx, func(tx store.Tx) error {
		u, err := tx.GetUser(ctx, id)
		if err != nil {
			return err
		}
		u.RevokedTokens = append(pruneRevoked(u.RevokedTokens, now), store.RevokedToken{ID: c.principal.tokenID, ExpiresAt: c.principal.tokenExpires})
		if len(u.RevokedTokens) > maxRevokedTokens {
			// Too many to list: every token issued up to this second goes.
			u.TokensNotBefore, u.RevokedTokens = now.Truncate(time.Second).Add(time.Second), nil
		}
		return tx.PutUser(ctx, u)
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&fleetv1.SignOutResponse{}), nil
}

func (a authService) ChangePassword(ctx context.Context, req *connect.Request[fleetv1.ChangePasswordRequest]) (*connect.Response[fleetv1.ChangePasswordResponse], error) {
	s, c, m := a.s, callFrom(ctx), req.Msg
	id, err := sessionUser(c, "changing a password")
	if err != nil {
		return nil, err
	}
	if m.GetTtlSeconds() < 0 || m.GetTtlSeconds() > int64(auth.MaxTokenTTL/time.Second) {
		return nil, invalid("ttl_seconds: 0 for the default, at most %d (60 days)", int64(auth.MaxTokenTTL/time.Second))
	}
	if err := auth.ValidatePassword(m.GetNewPassword()); err != nil {
		return nil, invalid("new_password: %v", err)
	}
	if len(m.GetSessionPublicKey()) != ed25519.PublicKeySize {
		return nil, invalid("session_public_key: want the new session's Ed25519 public key (%d bytes)", ed25519.PublicKeySize)
	}
	c.setAuditResource("user/"+id, "")
	// The current password is a guess like a sign-in's: a stolen token
	// must not make guessing it cheaper.
	peer := req.Peer().Addr
	keys := s.signInKeys(c.principal.email, peer)
	if err := s.beginAttempt(keys); err != nil {
		return nil, err
	}
	var u store.User
	if err := s.view(ctx, func(tx store.Tx) error {
		var err error
		u, err = tx.GetUser(ctx, id)
		return err
	}); err != nil {
		s.throttle.Cancel(keys)
		return nil, err
	}
	err = s.hasher.Check(ctx, u.PasswordHash, m.GetCurrentPassword())
	if errors.Is(err, auth.ErrBusy) || ctx.Err() != nil {
		s.throttle.Cancel(keys)
		return nil, passwordErr(err)
	}
	if err != nil {
		return nil, connect.NewError(connect.CodePermissionDenied, errors.New("current_password is wrong"))
	}
	s.signedIn(u.Email, peer, keys)
	hash, err := s.hasher.Hash(ctx, m.GetNewPassword())
	if err != nil {
		return nil, passwordErr(err)
	}
	now := s.clock.Now().UTC()
	err = s.update(ctx, func(tx store.Tx) error {
		u, err := tx.GetUser(ctx, id)
		if err != nil {
			return err
		}
		u.PasswordHash, u.TokensNotBefore, u.RevokedTokens = hash, now.Truncate(time.Second), pruneRevoked(u.RevokedTokens, now)
		return tx.PutUser(ctx, u)
	})
	if err != nil {
		return nil, err
	}
	tok, exp, err := s.signer.Issue(id, m.GetSessionPublicKey(), now, time.Duration(m.GetTtlSeconds())*time.Second)
	if err != nil {
		return nil, internal(s.log, "change password", err)
	}
	return connect.NewResponse(&fleetv1.ChangePasswordResponse{AccessToken: tok, ExpiresAt: ts(exp)}), nil
}

func (us userService) DeleteUser(ctx context.Context, req *connect.Request[fleetv1.DeleteUserRequest]) (*connect.Response[fleetv1.DeleteUserResponse], error) {
	s, c := us.s, callFrom(ctx)
	ref := req.Msg.GetUser()
	if !strings.HasPrefix(ref, "user:") {
		return nil, invalid("user %q: want user:EMAIL or user:ID", ref)
	}
	subj, err := s.resolveSubject(ctx, ref)
	if err != nil {
		return nil, err
	}
	c.setAuditResource("user/"+subj.ID, "")
	var u store.User
	var removed int32
	err = s.update(ctx, func(tx store.Tx) error {
		var err error
		if u, err = tx.GetUser(ctx, subj.ID); err != nil {
			return err
		}
		if u.Admin {
			return connect.NewError(connect.CodeFailedPrecondition, errors.New("the cloud's admin account cannot be deleted"))
		}
		gs, err := tx.ListGrantsBySubject(ctx, "user:"+u.ID)
		if err != nil {
			return err
		}
		for _, g := range gs {
			if err := keepsAnOwner(ctx, tx, g); err != nil {
				return err
			}
			if err := tx.DeleteGrant(ctx, g.Subject, g.Scope); err != nil {
				return err
			}
		}
		removed = int32(len(gs))
		return tx.DeleteUser(ctx, u.ID)
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&fleetv1.DeleteUserResponse{User: userPB(u), GrantsRemoved: removed}), nil
}
