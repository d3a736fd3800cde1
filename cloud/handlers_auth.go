package cloud

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"connectrpc.com/connect"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	"github.com/outpost-robotics/outpost/authz"
	"github.com/outpost-robotics/outpost/cloud/auth"
	"github.com/outpost-robotics/outpost/cloud/store"
)

type authService struct{ s *Server }

func (a authService) SignIn(ctx context.Context, req *connect.Request[fleetv1.SignInRequest]) (*connect.Response[fleetv1.SignInResponse], error) {
	s, m := a.s, req.Msg
	email := normalizeEmail(m.GetEmail())
	if err := validEmail(email); err != nil {
		return nil, err
	}
	if m.GetPassword() == "" {
		return nil, invalid("password is required")
	}
	if m.GetCookieSession() {
		if err := checkBrowserSignIn(ctx, req); err != nil {
			return nil, err
		}
	} else {
		if len(m.GetSessionPublicKey()) != ed25519.PublicKeySize {
			return nil, invalid("session_public_key: want the session's Ed25519 public key (%d bytes): the token is bound to it; update the client", ed25519.PublicKeySize)
		}
		if m.GetTtlSeconds() < 0 || m.GetTtlSeconds() > int64(auth.MaxTokenTTL/time.Second) {
			return nil, invalid("ttl_seconds: 0 for the default, at most %d (60 days)", int64(auth.MaxTokenTTL/time.Second))
		}
	}
	peer := req.Peer().Addr
	keys := s.signInKeys(email, peer)
	if err := s.beginAttempt(keys); err != nil {
		return nil, err
	}
	var u store.User
	err := s.view(ctx, func(tx store.Tx) error {
		var err error
		u, err = tx.GetUserByEmail(ctx, email)
		return err
	})
	switch {
	case err == nil:
		err = s.hasher.Check(ctx, u.PasswordHash, m.GetPassword())
	case errors.Is(err, store.ErrNotFound):
		err = s.hasher.CheckNone(ctx, m.GetPassword())
	default:
		s.throttle.Cancel(keys)
		return nil, err
	}
	if errors.Is(err, auth.ErrBusy) || ctx.Err() != nil {
		s.throttle.Cancel(keys)
		return nil, passwordErr(ctx, err)
	}
	if err != nil {
		return nil, connect.NewError(connect.CodeUnauthenticated, errors.New("wrong email or password"))
	}
	s.signedIn(email, peer, keys)
	if m.GetCookieSession() {
		return s.browserSignIn(ctx, u, time.Duration(m.GetTtlSeconds())*time.Second)
	}
	tok, exp, err := s.signer.Issue(u.ID, m.GetSessionPublicKey(), s.clock.Now(), time.Duration(m.GetTtlSeconds())*time.Second)
	if err != nil {
		return nil, fmt.Errorf("issue an access token: %w", err)
	}
	return connect.NewResponse(&fleetv1.SignInResponse{AccessToken: tok, ExpiresAt: ts(exp), User: userPB(u)}), nil
}

func (a authService) WhoAmI(ctx context.Context, _ *connect.Request[fleetv1.WhoAmIRequest]) (*connect.Response[fleetv1.WhoAmIResponse], error) {
	p := callFrom(ctx).principal
	return respond(ctx, a.s.view, func(tx store.Tx) (*fleetv1.WhoAmIResponse, error) {
		return &fleetv1.WhoAmIResponse{Subject: p.ref(), Email: p.email, Admin: p.admin, Grants: grantsPB(ctx, tx, p.grants)}, nil
	})
}

func (a authService) SignOut(ctx context.Context, _ *connect.Request[fleetv1.SignOutRequest]) (*connect.Response[fleetv1.SignOutResponse], error) {
	s, c := a.s, callFrom(ctx)
	id, err := sessionUser(c, "signing out")
	if err != nil {
		return nil, err
	}
	c.setAuditResource(authz.User(id).String(), "")
	now := s.clock.Now().UTC()
	_, err = edit(ctx, s, id, store.Tx.GetUser, store.Tx.PutUser, func(_ store.Tx, u *store.User) error {
		u.RevokedTokens = append(pruneRevoked(u.RevokedTokens, now), store.RevokedToken{ID: c.principal.tokenID, ExpiresAt: c.principal.tokenExpires})
		if len(u.RevokedTokens) > maxRevokedTokens {
			// Too many to list: every token issued up to this second goes.
			u.TokensNotBefore, u.RevokedTokens = now.Truncate(time.Second).Add(time.Second), nil
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	res := connect.NewResponse(&fleetv1.SignOutResponse{})
	if c.principal.browser {
		res.Header().Add("Set-Cookie", clearedSessionCookie(ctx).String())
	}
	return res, nil
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
	c.setAuditResource(authz.User(id).String(), "")
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
		return nil, passwordErr(ctx, err)
	}
	if err != nil {
		return nil, connect.NewError(connect.CodePermissionDenied, errors.New("current_password is wrong"))
	}
	s.signedIn(u.Email, peer, keys)
	hash, err := s.hasher.Hash(ctx, m.GetNewPassword())
	if err != nil {
		return nil, err
	}
	now := s.clock.Now().UTC()
	_, err = edit(ctx, s, id, store.Tx.GetUser, store.Tx.PutUser, func(_ store.Tx, u *store.User) error {
		u.PasswordHash, u.TokensNotBefore, u.RevokedTokens = hash, now.Truncate(time.Second), pruneRevoked(u.RevokedTokens, now)
		return nil
	})
	if err != nil {
		return nil, err
	}
	tok, exp, err := s.signer.Issue(id, m.GetSessionPublicKey(), now, time.Duration(m.GetTtlSeconds())*time.Second)
	if err != nil {
		return nil, fmt.Errorf("issue an access token: %w", err)
	}
	return connect.NewResponse(&fleetv1.ChangePasswordResponse{AccessToken: tok, ExpiresAt: ts(exp)}), nil
}
