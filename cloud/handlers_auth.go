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

// How long the sign-in throttle may make a key wait. A client address
// guessing gets slowed to one try per 15 minutes, whatever accounts it
// tries. An account under attack from many addresses is slowed to one try
// a minute, never more: the attacker cannot lock its owner out, who waits
// at most a minute from a new address, and not at all from an address
// that signed in to the account within the last 30 days.
const (
	addressMaxWait = 15 * time.Minute
	accountMaxWait = time.Minute
)

// signInKeys are the sign-in throttle's keys for an attempt on the account
// email ("" for none known yet) from peer.
func (s *Server) signInKeys(email, peer string) []auth.Key {
	host := peerHost(peer)
	keys := []auth.Key{{Name: "address:" + host, Max: addressMaxWait}}
	if email != "" && !s.throttle.Knows(email+"|"+host, s.clock.Now()) {
		keys = append(keys, auth.Key{Name: "account:" + email, Max: accountMaxWait, ClearOnSuccess: true})
	}
	return keys
}

func peerHost(peer string) string {
	host, _, err := net.SplitHostPort(peer)
	if err != nil {
		return peer
	}
	return host
}

// beginAttempt refuses an attempt while any of keys must wait, and
// otherwise counts it, in one step: concurrent attempts cannot all pass
// the check before any fails.
func (s *Server) beginAttempt(keys []auth.Key) error {
	if wait := s.throttle.Begin(keys, s.clock.Now()); wait > 0 {
		return connect.NewError(connect.CodeResourceExhausted,
			fmt.Errorf("too many failed attempts: try again in %d seconds", int(math.Ceil(wait.Seconds()))))
	}
	return nil
}

// signedIn ends a counted attempt that succeeded: the address becomes
// known to the account.
func (s *Server) signedIn(email, peer string, keys []auth.Key) {
	s.throttle.Succeed(keys)
	s.throttle.Remember(email+"|"+peerHost(peer), s.clock.Now())
}

// passwordErr maps an error of the password hasher that is not a mismatch.
func passwordErr(err error) error {
	if errors.Is(err, auth.ErrBusy) {
		return connect.NewError(connect.CodeResourceExhausted, err)
	}
	return connect.NewError(connect.CodeCanceled, err)
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
	case connect.CodeOf(err) == connect.CodeNotFound:
		err = s.hasher.CheckNone(ctx, m.GetPassword())
	default:
		s.throttle.Cancel(keys)
		return nil, err
	}
	if errors.Is(err, auth.ErrBusy) || ctx.Err() != nil {
		s.throttle.Cancel(keys)
		return nil, passwordErr(err)
	}
	if err != nil {
		return nil, connect.NewError(connect.CodeUnauthenticated, errors.New("wrong email or password"))
	}
	s.signedIn(email, peer, keys)
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
