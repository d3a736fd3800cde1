package cloud

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"math"
	"net"
	"time"

	"connectrpc.com/connect"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	"github.com/outpost-robotics/outpost/cloud/auth"
	"github.com/outpost-robotics/outpost/cloud/store"
)

type authService struct{ s *Server }

// throttleKeys are the sign-in throttle's keys for an account and a client address.
func throttleKeys(email, peer string) []string {
	host, _, err := net.SplitHostPort(peer)
	if err != nil {
		host = peer
	}
	return []string{"account:" + email, "address:" + host}
}

// throttled refuses an attempt while any of keys must wait.
func (s *Server) throttled(keys []string) error {
	now := s.clock.Now()
	var wait time.Duration
	for _, k := range keys {
		wait = max(wait, s.throttle.Wait(k, now))
	}
	if wait > 0 {
		return connect.NewError(connect.CodeResourceExhausted,
			fmt.Errorf("too many failed attempts: try again in %d seconds", int(math.Ceil(wait.Seconds()))))
	}
	return nil
}

func (s *Server) failed(keys []string) {
	now := s.clock.Now()
	for _, k := range keys {
		s.throttle.Fail(k, now)
	}
}

func (a authService) SignIn(ctx context.Context, req *connect.Request[fleetv1.SignInRequest]) (*connect.Response[fleetv1.SignInResponse], error) {
	s, m := a.s, req.Msg
	email := normalizeEmail(m.GetEmail())
	if err := validEmail(email); err != nil {
		return nil, err
	}
	if m.GetPassword() == "" {
		return nil, invalid("password is required")
	}
	if len(m.GetSessionPublicKey()) != ed25519.PublicKeySize {
		return nil, invalid("session_public_key: want the session's Ed25519 public key (%d bytes): the token is bound to it; update the client", ed25519.PublicKeySize)
	}
	if m.GetTtlSeconds() < 0 || m.GetTtlSeconds() > int64(auth.MaxTokenTTL/time.Second) {
		return nil, invalid("ttl_seconds: 0 for the default, at most %d (60 days)", int64(auth.MaxTokenTTL/time.Second))
	}
	keys := throttleKeys(email, req.Peer().Addr)
	if err := s.throttled(keys); err != nil {
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
		err = auth.CheckPassword(u.PasswordHash, m.GetPassword())
	case connect.CodeOf(err) == connect.CodeNotFound:
		err = auth.CheckNoPassword(m.GetPassword())
	default:
		return nil, err
	}
	if err != nil {
		s.failed(keys)
		return nil, connect.NewError(connect.CodeUnauthenticated, errors.New("wrong email or password"))
	}
	s.throttle.Succeed(keys[0])
	tok, exp, err := s.signer.Issue(u.ID, m.GetSessionPublicKey(), s.clock.Now(), time.Duration(m.GetTtlSeconds())*time.Second)
	if err != nil {
		return nil, internal(s.log, "sign in", err)
	}
	return connect.NewResponse(&fleetv1.SignInResponse{AccessToken: tok, ExpiresAt: ts(exp), User: userPB(u)}), nil
}

func (a authService) WhoAmI(ctx context.Context, _ *connect.Request[fleetv1.WhoAmIRequest]) (*connect.Response[fleetv1.WhoAmIResponse], error) {
	p := callFrom(ctx).principal
	res := &fleetv1.WhoAmIResponse{Subject: p.ref(), Email: p.email, Admin: p.admin}
	err := a.s.view(ctx, func(tx store.Tx) error {
		res.Grants = grantsPB(ctx, tx, p.grants)
		return nil
	})
	return connect.NewResponse(res), err
}
