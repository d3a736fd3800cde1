package cloud

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"

	"connectrpc.com/connect"
	"go.uber.org/zap"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	"github.com/outpost-robotics/outpost/authz"
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
	hash, err := s.hasher.Hash(ctx, pw)
	if err != nil {
		return nil, err
	}
	u := store.User{ID: auth.NewID(), Email: email, PasswordHash: hash, CreatedAt: s.clock.Now().UTC()}
	callFrom(ctx).setAuditResource(authz.User(u.ID).String(), "")
	err = s.update(ctx, func(tx store.Tx) error {
		return authz.Explain(tx.PutUser(ctx, u), store.ErrExists, "a user with email %s already exists", email)
	})
	return reply(&fleetv1.CreateUserResponse{User: userPB(u), GeneratedPassword: generated}, err)
}

func (us userService) InviteUser(ctx context.Context, req *connect.Request[fleetv1.InviteUserRequest]) (*connect.Response[fleetv1.InviteUserResponse], error) {
	s, m := us.s, req.Msg
	c := callFrom(ctx)
	email := normalizeEmail(m.GetEmail())
	if err := validEmail(email); err != nil {
		return nil, err
	}
	if err := s.canMail(); err != nil {
		return nil, err
	}
	scope, _ := rbac.ParseResource(m.GetScope()) // the interceptor parsed it already
	now := s.clock.Now().UTC()
	code := auth.NewSecret()
	inv := store.Invite{ID: auth.NewID(), Email: email, Role: m.GetRole(), Scope: scope.String(), OrgID: c.snap.orgOf(scope),
		CodeHash: auth.HashSecret(code), InvitedBy: c.principal.ref(), ExpiresAt: now.Add(inviteTTL), CreatedAt: now, ViaOrg: c.viaShare(scope)}
	if err := s.update(ctx, func(tx store.Tx) error { return tx.PutInvite(ctx, inv) }); err != nil {
		return nil, err
	}
	if err := s.mailInvite(ctx, inv, code); err != nil {
		// An invitation nobody received is withdrawn.
		if derr := s.st.Update(context.WithoutCancel(ctx), func(tx store.Tx) error { return tx.DeleteInvite(ctx, inv.ID) }); derr != nil {
			s.log.Error("withdraw an unsent invitation", zap.String("invite", inv.ID), zap.Error(derr))
		}
		return nil, err
	}
	return connect.NewResponse(&fleetv1.InviteUserResponse{Invite: invitePB(inv)}), nil
}

// canMail refuses invitations on a cloud that cannot send mail: the code
// must reach only the invited mailbox.
func (s *Server) canMail() error {
	if s.mailer == nil {
		return connect.NewError(connect.CodeFailedPrecondition, errors.New("this cloud sends no mail, and an invitation code goes only to the invited mailbox: "+
			"the cloud's admin creates the account instead (`outpost user create EMAIL`, then `outpost role grant`), "+
			"or starts outpost-cloud with an SMTP relay (--smtp-host, --smtp-from)"))
	}
	return nil
}

// mailInvite sends an invitation's code to its address.
func (s *Server) mailInvite(ctx context.Context, inv store.Invite, code string) error {
	by := inv.InvitedBy
	if p := callFrom(ctx).principal; p != nil && p.email != "" {
		by = p.email
	}
	err := s.mailer.SendInvite(ctx, InviteMail{To: inv.Email, InvitedBy: by, Role: inv.Role, Scope: inv.Scope, Code: code, ExpiresAt: inv.ExpiresAt})
	if err != nil {
		s.log.Warn("send an invitation mail", zap.String("invite", inv.ID), zap.Error(err))
		return connect.NewError(connect.CodeUnavailable, errors.New("the invitation mail could not be sent (the cloud's log says why): try again later"))
	}
	return nil
}

func (us userService) ResendInvite(ctx context.Context, req *connect.Request[fleetv1.ResendInviteRequest]) (*connect.Response[fleetv1.ResendInviteResponse], error) {
	s := us.s
	if err := s.canMail(); err != nil {
		return nil, err
	}
	code := auth.NewSecret()
	now := s.clock.Now().UTC()
	inv, err := edit(ctx, s, req.Msg.GetInviteId(), store.Tx.GetInvite, store.Tx.PutInvite, func(_ store.Tx, inv *store.Invite) error {
		inv.CodeHash, inv.ExpiresAt = auth.HashSecret(code), now.Add(inviteTTL)
		return nil
	})
	if err == nil {
		err = s.mailInvite(ctx, inv, code)
	}
	return reply(&fleetv1.ResendInviteResponse{Invite: invitePB(inv)}, err)
}

func (us userService) RevokeInvite(ctx context.Context, req *connect.Request[fleetv1.RevokeInviteRequest]) (*connect.Response[fleetv1.RevokeInviteResponse], error) {
	return reply(&fleetv1.RevokeInviteResponse{}, us.s.update(ctx, func(tx store.Tx) error { return tx.DeleteInvite(ctx, req.Msg.GetInviteId()) }))
}

// AcceptInvite is public: the code is the credential. Wrong codes count
// against the client address in the sign-in throttle, and wrong passwords
// against the account too.
func (us userService) AcceptInvite(ctx context.Context, req *connect.Request[fleetv1.AcceptInviteRequest]) (*connect.Response[fleetv1.AcceptInviteResponse], error) {
	s, m := us.s, req.Msg
	if m.GetCode() == "" || len(m.GetCode()) > 128 {
		return nil, invalid("code: the invitation code you were given")
	}
	peer := req.Peer().Addr
	addrKeys := s.signInKeys("", peer)
	if err := s.beginAttempt(addrKeys); err != nil {
		return nil, err
	}
	now := s.clock.Now()
	var inv store.Invite
	err := s.view(ctx, func(tx store.Tx) error {
		var err error
		inv, err = tx.GetInviteByCode(ctx, auth.HashSecret(m.GetCode()))
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, authz.Explain(err, store.ErrNotFound, "no invitation has this code: it may have been revoked or resent")
	}
	s.throttle.Cancel(addrKeys) // a real code: the attempt is not a guess
	if err != nil {
		return nil, err
	}
	if !now.Before(inv.ExpiresAt) {
		return nil, connect.NewError(connect.CodeFailedPrecondition, errors.New("this invitation has expired: ask for it to be resent"))
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
	var keys []authz.Key
	if existing {
		keys = s.signInKeys(inv.Email, peer)
		if err := s.beginAttempt(keys); err != nil {
			return nil, err
		}
		err := s.hasher.Check(ctx, u.PasswordHash, m.GetPassword())
		if errors.Is(err, auth.ErrBusy) || ctx.Err() != nil {
			s.throttle.Cancel(keys)
			return nil, passwordErr(ctx, err)
		}
		if err != nil {
			return nil, connect.NewError(connect.CodeUnauthenticated, fmt.Errorf("%s has an account: give its current password", inv.Email))
		}
	} else {
		if err := auth.ValidatePassword(m.GetPassword()); err != nil {
			return nil, invalid("password for the new account: %v", err)
		}
		hash, err := s.hasher.Hash(ctx, m.GetPassword())
		if err != nil {
			return nil, err
		}
		u = store.User{ID: auth.NewID(), Email: inv.Email, PasswordHash: hash, CreatedAt: now.UTC()}
	}
	grant := store.Grant{Subject: authz.User(u.ID).String(), Role: inv.Role, Scope: inv.Scope, OrgID: inv.OrgID, CreatedAt: now.UTC(), ViaOrg: inv.ViaOrg}
	err = s.st.Update(ctx, func(tx store.Tx) error {
		if _, err := tx.GetInvite(ctx, inv.ID); err != nil {
			return err // revoked meanwhile
		}
		if !scopeExists(ctx, tx, inv.Scope) {
			return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("the invitation was to %s, which has been deleted since", inv.Scope))
		}
		if inv.ViaOrg != "" {
			if ok, err := sharedWith(ctx, tx, inv.Scope, inv.ViaOrg); err != nil || !ok {
				return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("the invitation was made through a share of %s with org/%s, which has ended: ask for a new one", inv.Scope, inv.ViaOrg))
			}
		}
		if !existing {
			if err := tx.PutUser(ctx, u); err != nil {
				return err
			}
		}
		// An invitation never lowers a role already held on the scope.
		if old, err := grantOf(ctx, tx, authz.User(u.ID), grant.Scope); err == nil && old.Role == "owner" {
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
		return nil, err
	}
	if existing {
		s.signedIn(inv.Email, peer, keys)
	}
	res := &fleetv1.AcceptInviteResponse{User: userPB(u), Grant: grantPB(grant, u.Email)}
	// A token is bound to a session key: without one the invitee signs in.
	if sk := m.GetSessionPublicKey(); len(sk) == ed25519.PublicKeySize {
		if res.AccessToken, _, err = s.signer.Issue(u.ID, sk, now, 0); err != nil {
			return nil, fmt.Errorf("issue an access token: %w", err)
		}
	}
	return connect.NewResponse(res), nil
}

func (us userService) DeleteUser(ctx context.Context, req *connect.Request[fleetv1.DeleteUserRequest]) (*connect.Response[fleetv1.DeleteUserResponse], error) {
	s, c := us.s, callFrom(ctx)
	ref := req.Msg.GetUser()
	if subj, err := authz.Parse(ref); err != nil || subj.Kind != authz.KindUser {
		return nil, invalid("user %q: want user/EMAIL or user/ID", ref)
	}
	subj, err := s.resolveSubject(ctx, ref)
	if err != nil {
		return nil, err
	}
	c.setAuditResource(subj.String(), "")
	return respond(ctx, s.update, func(tx store.Tx) (*fleetv1.DeleteUserResponse, error) {
		u, err := tx.GetUser(ctx, subj.ID)
		if err != nil {
			return nil, err
		}
		if u.Admin {
			return nil, connect.NewError(connect.CodeFailedPrecondition, errors.New("the cloud's admin account cannot be deleted"))
		}
		gs, err := grantsOf(ctx, tx, authz.User(u.ID))
		if err != nil {
			return nil, err
		}
		for _, g := range gs {
			if err := keepsAnOwner(ctx, tx, g); err != nil {
				return nil, err
			}
			if err := tx.DeleteGrant(ctx, g.Subject, g.Scope); err != nil {
				return nil, err
			}
		}
		return &fleetv1.DeleteUserResponse{User: userPB(u), GrantsRemoved: int32(len(gs))}, tx.DeleteUser(ctx, u.ID)
	})
}
