package cloud

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"time"

	"connectrpc.com/connect"

	"github.com/outpost-robotics/outpost/authz"
	"github.com/outpost-robotics/outpost/cloud/auth"
)

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
func (s *Server) signInKeys(email, peer string) []authz.Key {
	host := peerHost(peer)
	keys := []authz.Key{{Name: "address:" + host, Max: addressMaxWait}}
	if email != "" && !s.throttle.Knows(email+"|"+host, s.clock.Now()) {
		keys = append(keys, authz.Key{Name: "account:" + email, Max: accountMaxWait, ClearOnSuccess: true})
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
func (s *Server) beginAttempt(keys []authz.Key) error {
	if wait := s.throttle.Begin(keys, s.clock.Now()); wait > 0 {
		return connect.NewError(connect.CodeResourceExhausted,
			fmt.Errorf("too many failed attempts: try again in %d seconds", int(math.Ceil(wait.Seconds()))))
	}
	return nil
}

// signedIn ends a counted attempt that succeeded: the address becomes
// known to the account.
func (s *Server) signedIn(email, peer string, keys []authz.Key) {
	s.throttle.Succeed(keys)
	s.throttle.Remember(email+"|"+peerHost(peer), s.clock.Now())
}

// passwordErr is why a password check decided nothing: the hasher was
// busy (err), or the caller went away; the error policy answers either.
func passwordErr(ctx context.Context, err error) error {
	if errors.Is(err, auth.ErrBusy) {
		return err
	}
	return ctx.Err()
}
