package cloud

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"

	"connectrpc.com/connect"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	"github.com/outpost-robotics/outpost/cloud/auth"
	"github.com/outpost-robotics/outpost/cloud/store"
	"github.com/outpost-robotics/outpost/rbac"
)

type userService struct{ s *Server }

func (us userService) CreateUser(ctx context.Context, req *connect.Request[fleetv1.CreateUserRequest]) (*connect.Response[fleetv1.CreateUserResponse], error) {
	s := us.s
	email := normalizeEmail(req.Msg.GetEmail())
	if err := validEmail(email); err != nil {
		return nil, err
	}
	pw, generated := req.Msg.GetPassword(), ""
	if pw == "" {
		pw = auth.NewSecret()
		generated = pw
	} else if err := auth.ValidatePassword(pw); err != nil {
		return nil, invalid("password: %v", err)
	}
	u := store.User{ID: auth.NewID(), Email: email, PasswordHash: auth.HashPassword(pw), CreatedAt: s.clock.Now().UTC()}
	callFrom(ctx).setAuditResource("user/"+u.ID, "")
	err := s.update(ctx, func(tx store.Tx) error { return tx.PutUser(ctx, u) })
	if connect.CodeOf(err) == connect.CodeAlreadyExists {
		return nil, connect.NewError(connect.CodeAlreadyExists, fmt.Errorf("a user with email %s already exists", email))
	}
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&fleetv1.CreateUserResponse{User: userPB(u), GeneratedPassword: generated}), nil
}

func (us userService) InviteUser(ctx context.Context, req *connect.Request[fleetv1.InviteUserRequest]) (*connect.Response[fleetv1.InviteUserResponse], error) {
	s, m := us.s, req.Msg
	c := callFrom(ctx)
	email := normalizeEmail(m.GetEmail())
	if err := validEmail(email); err != nil {
		return nil, err
	}
	scope, _ := rbac.ParseResource(m.GetScope()) // the interceptor parsed it already
	now := s.clock.Now().UTC()
	code := auth.NewSecret()
	inv := store.Invite{ID: auth.NewID(), Email: email, Role: m.GetRole(), Scope: scope.String(), OrgID: c.snap.orgOf(scope),
		CodeHash: auth.HashSecret(code), InvitedBy: c.principal.ref(), ExpiresAt: now.Add(inviteTTL), CreatedAt: now}
	if err := s.update(ctx, func(tx store.Tx) error { return tx.PutInvite(ctx, inv) }); err != nil {
		return nil, err
	}
	return connect.NewResponse(&fleetv1.InviteUserResponse{Invite: invitePB(inv), Code: code}), nil
}

func (us userService) ResendInvite(ctx context.Context, req *connect.Request[fleetv1.ResendInviteRequest]) (*connect.Response[fleetv1.ResendInviteResponse], error) {
	s := us.s
	code := auth.NewSecret()
	now := s.clock.Now().UTC()
	var inv store.Invite
	err := s.update(ctx, func(tx store.Tx) error {
		var err error
		if inv, err = tx.GetInvite(ctx, req.Msg.GetInviteId()); err != nil {
			return err
		}
		inv.CodeHash, inv.ExpiresAt = auth.HashSecret(code), now.Add(inviteTTL)
		return tx.PutInvite(ctx, inv)
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&fleetv1.ResendInviteResponse{Invite: invitePB(inv), Code: code}), nil
}

func (us userService) RevokeInvite(ctx context.Context, req *connect.Request[fleetv1.RevokeInviteRequest]) (*connect.Response[fleetv1.RevokeInviteResponse], error) {
	if err := us.s.update(ctx, func(tx store.Tx) error { return tx.DeleteInvite(ctx, req.Msg.GetInviteId()) }); err != nil {
		return nil, err
	}
	return connect.NewResponse(&fleetv1.RevokeInviteResponse{}), nil
}

// AcceptInvite is public: the code is the credential. Wrong codes count
// against the client address in the sign-in throttle, and wrong passwords
// against the account too.
func (us userService) AcceptInvite(ctx context.Context, req *connect.Request[fleetv1.AcceptInviteRequest]) (*connect.Response[fleetv1.AcceptInviteResponse], error) {
	s, m := us.s, req.Msg
	if m.GetCode() == "" || len(m.GetCode()) > 128 {
		return nil, invalid("code: the invitation code you were given")
	}
	addrKeys := throttleKeys("", req.Peer().Addr)[1:]
	if err := s.throttled(addrKeys); err != nil {
		return nil, err
	}
	now := s.clock.Now()
	var inv store.Invite
	err := s.view(ctx, func(tx store.Tx) error {
		var err error
		inv, err = tx.GetInviteByCode(ctx, auth.HashSecret(m.GetCode()))
		return err
	})
	if connect.CodeOf(err) == connect.CodeNotFound {
		s.failed(addrKeys)
		return nil, connect.NewError(connect.CodeNotFound, errors.New("no invitation has this code: it may have been revoked or resent"))
	}
	if err != nil {
		return nil, err
	}
	if !now.Before(inv.ExpiresAt) {
		return nil, connect.NewError(connect.CodeFailedPrecondition, errors.New("this invitation has expired: ask for it to be resent"))
	}
	keys := throttleKeys(inv.Email, req.Peer().Addr)
	if err := s.throttled(keys); err != nil {
		return nil, err
	}
	var u store.User
	var existing bool
	err = s.view(ctx, func(tx store.Tx) error {
		var err error
		u, err = tx.GetUserByEmail(ctx, inv.Email)
		existing = err == nil
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if existing {
		if auth.CheckPassword(u.PasswordHash, m.GetPassword()) != nil {
			s.failed(keys)
			return nil, connect.NewError(connect.CodeUnauthenticated, fmt.Errorf("%s has an account: give its current password", inv.Email))
		}
	} else {
		if err := auth.ValidatePassword(m.GetPassword()); err != nil {
			return nil, invalid("password for the new account: %v", err)
		}
		u = store.User{ID: auth.NewID(), Email: inv.Email, PasswordHash: auth.HashPassword(m.GetPassword()), CreatedAt: now.UTC()}
	}
	grant := store.Grant{Subject: "user:" + u.ID, Role: inv.Role, Scope: inv.Scope, OrgID: inv.OrgID, CreatedAt: now.UTC()}
	err = s.st.Update(ctx, func(tx store.Tx) error {
		if _, err := tx.GetInvite(ctx, inv.ID); err != nil {
			return err // revoked meanwhile
		}
		if !scopeExists(ctx, tx, inv.Scope) {
			return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("the invitation was to %s, which has been deleted since", inv.Scope))
		}
		if !existing {
			if err := tx.PutUser(ctx, u); err != nil {
				return err
			}
		}
		// An invitation never lowers a role already held on the scope.
		if old, err := tx.GetGrant(ctx, grant.Subject, grant.Scope); err == nil && old.Role == "owner" {
			grant = old
		} else if err := tx.PutGrant(ctx, grant); err != nil {
			return err
		}
		if err := tx.DeleteInvite(ctx, inv.ID); err != nil {
			return err
		}
		if err := s.touchDocs(ctx, tx); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, store.AuditEvent{ID: s.auditID(), Time: now.UTC(), Subject: grant.Subject,
			Procedure: req.Spec().Procedure, Action: "invite.accept", Resource: inv.Scope, Allowed: true,
			Reason: "invitation " + inv.ID + " from " + inv.InvitedBy, OrgID: inv.OrgID, Outcome: "ok"})
	})
	if err != nil {
		return nil, s.storeErr(err)
	}
	s.throttle.Succeed(keys[0])
	res := &fleetv1.AcceptInviteResponse{User: userPB(u), Grant: grantPB(grant, u.Email)}
	// A token is bound to a session key: without one the invitee signs in.
	if sk := m.GetSessionPublicKey(); len(sk) == ed25519.PublicKeySize {
		if res.AccessToken, _, err = s.signer.Issue(u.ID, sk, now, 0); err != nil {
			return nil, internal(s.log, "accept invitation", err)
		}
	}
	return connect.NewResponse(res), nil
}
