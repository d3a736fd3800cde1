package cloud

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"strings"

	"connectrpc.com/connect"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	"github.com/outpost-robotics/outpost/cloud/auth"
	"github.com/outpost-robotics/outpost/cloud/store"
	"github.com/outpost-robotics/outpost/credential"
	"github.com/outpost-robotics/outpost/rbac"
)

type apiKeyService struct{ s *Server }

func (ks apiKeyService) CreateAPIKey(ctx context.Context, req *connect.Request[fleetv1.CreateAPIKeyRequest]) (*connect.Response[fleetv1.CreateAPIKeyResponse], error) {
	s, m := ks.s, req.Msg
	if err := validName("name", m.GetName()); err != nil {
		return nil, err
	}
	c := callFrom(ctx)
	scope, _ := rbac.ParseResource(m.GetScope()) // the interceptor parsed it already
	now := s.clock.Now().UTC()
	// The client makes the key pair and sends the public key; a client
	// that cannot gets a pair made here, whose private key is returned
	// once and not kept.
	pub := m.GetPublicKey()
	var made *credential.Key
	id := auth.NewID()
	switch len(pub) {
	case 0:
		made = credential.APIKey(id, credential.NewPrivateKey())
		pub = made.PublicKey()
	case ed25519.PublicKeySize:
	default:
		return nil, invalid("public_key: %d bytes, want an Ed25519 public key (%d bytes) or none", len(pub), ed25519.PublicKeySize)
	}
	key := store.APIKey{ID: id, Name: m.GetName(), OrgID: c.snap.orgOf(scope), Scope: scope.String(),
		PublicKey: pub, CreatedBy: c.principal.ref(), CreatedAt: now, ViaOrg: c.viaShare(scope)}
	grant := store.Grant{Subject: "apikey:" + key.ID, Role: m.GetRole(), Scope: key.Scope, OrgID: key.OrgID, CreatedAt: now, ViaOrg: key.ViaOrg}
	err := s.update(ctx, func(tx store.Tx) error {
		if err := tx.PutAPIKey(ctx, key); err != nil {
			return err
		}
		return tx.PutGrant(ctx, grant)
	})
	if err != nil {
		return nil, err
	}
	res := &fleetv1.CreateAPIKeyResponse{Key: apiKeyPB(key, []store.Grant{grant})}
	if made != nil {
		res.Token = made.String()
	}
	return connect.NewResponse(res), nil
}

func (ks apiKeyService) ListAPIKeys(ctx context.Context, req *connect.Request[fleetv1.ListAPIKeysRequest]) (*connect.Response[fleetv1.ListAPIKeysResponse], error) {
	if err := requireID("org_id", req.Msg.GetOrgId()); err != nil {
		return nil, err
	}
	c := callFrom(ctx)
	res := &fleetv1.ListAPIKeysResponse{}
	err := ks.s.view(ctx, func(tx store.Tx) error {
		keys, err := tx.ListAPIKeys(ctx, req.Msg.GetOrgId())
		if err != nil {
			return err
		}
		for _, k := range keys {
			scope, err := rbac.ParseResource(k.Scope)
			if err != nil || !c.visible(scope) {
				continue
			}
			gs, err := tx.ListGrantsBySubject(ctx, "apikey:"+k.ID)
			if err != nil {
				return err
			}
			res.Keys = append(res.Keys, apiKeyPB(k, gs))
		}
		return nil
	})
	slices.SortFunc(res.Keys, func(a, b *fleetv1.APIKey) int { return strings.Compare(a.GetName()+a.GetId(), b.GetName()+b.GetId()) })
	return connect.NewResponse(res), err
}

// deleteAPIKey removes a key and its grants.
func deleteAPIKey(ctx context.Context, tx store.Tx, id string) error {
	gs, err := tx.ListGrantsBySubject(ctx, "apikey:"+id)
	if err != nil {
		return err
	}
	for _, g := range gs {
		if err := tx.DeleteGrant(ctx, g.Subject, g.Scope); err != nil {
			return err
		}
	}
	return tx.DeleteAPIKey(ctx, id)
}

func (ks apiKeyService) RevokeAPIKey(ctx context.Context, req *connect.Request[fleetv1.RevokeAPIKeyRequest]) (*connect.Response[fleetv1.RevokeAPIKeyResponse], error) {
	if err := ks.s.update(ctx, func(tx store.Tx) error { return deleteAPIKey(ctx, tx, req.Msg.GetKeyId()) }); err != nil {
		return nil, err
	}
	return connect.NewResponse(&fleetv1.RevokeAPIKeyResponse{}), nil
}

type roleService struct{ s *Server }

// grantTarget resolves a request's subject and scope (already checked by the
// interceptor) into the store's forms.
func (rs roleService) grantTarget(ctx context.Context, subject, scope string) (string, rbac.Resource, string, error) {
	subj, err := rs.s.resolveSubject(ctx, subject)
	if err != nil {
		return "", rbac.Resource{}, "", err
	}
	res, err := rbac.ParseResource(scope)
	if err != nil {
		return "", rbac.Resource{}, "", invalid("scope: %v", err)
	}
	return subj.Kind.String() + ":" + subj.ID, res, callFrom(ctx).snap.orgOf(res), nil
}

// withEmail converts a grant, naming its user's email.
func (rs roleService) withEmail(ctx context.Context, g store.Grant) *fleetv1.Grant {
	var out *fleetv1.Grant
	if err := rs.s.view(ctx, func(tx store.Tx) error {
		out = grantsPB(ctx, tx, []store.Grant{g})[0]
		return nil
	}); err != nil {
		return grantPB(g, "")
	}
	return out
}

func (rs roleService) GrantRole(ctx context.Context, req *connect.Request[fleetv1.GrantRoleRequest]) (*connect.Response[fleetv1.GrantRoleResponse], error) {
	m := req.Msg
	subj, scope, org, err := rs.grantTarget(ctx, m.GetSubject(), m.GetScope())
	if err != nil {
		return nil, err
	}
	g := store.Grant{Subject: subj, Role: m.GetRole(), Scope: scope.String(), OrgID: org, CreatedAt: rs.s.clock.Now().UTC(),
		ViaOrg: callFrom(ctx).viaShare(scope)}
	err = rs.s.update(ctx, func(tx store.Tx) error {
		if old, err := tx.GetGrant(ctx, subj, g.Scope); err == nil {
			return connect.NewError(connect.CodeAlreadyExists,
				fmt.Errorf("%s already holds %s on %s: use `outpost role change` to change it", subj, old.Role, g.Scope))
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		return tx.PutGrant(ctx, g)
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&fleetv1.GrantRoleResponse{Grant: rs.withEmail(ctx, g)}), nil
}

func (rs roleService) ChangeRole(ctx context.Context, req *connect.Request[fleetv1.ChangeRoleRequest]) (*connect.Response[fleetv1.ChangeRoleResponse], error) {
	m := req.Msg
	subj, scope, _, err := rs.grantTarget(ctx, m.GetSubject(), m.GetScope())
	if err != nil {
		return nil, err
	}
	var g store.Grant
	err = rs.s.update(ctx, func(tx store.Tx) error {
		var err error
		if g, err = tx.GetGrant(ctx, subj, scope.String()); err != nil {
			return connect.NewError(connect.CodeNotFound, fmt.Errorf("%s holds no role on %s: use `outpost role grant`", subj, scope))
		}
		if m.GetRole() != "owner" {
			if err := keepsAnOwner(ctx, tx, g); err != nil {
				return err
			}
		}
		g.Role = m.GetRole()
		if via := callFrom(ctx).viaShare(scope); via != "" {
			// The role is now one given through the share.
			g.ViaOrg = via
		}
		return tx.PutGrant(ctx, g)
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&fleetv1.ChangeRoleResponse{Grant: rs.withEmail(ctx, g)}), nil
}

func (rs roleService) LimitAccess(ctx context.Context, req *connect.Request[fleetv1.LimitAccessRequest]) (*connect.Response[fleetv1.LimitAccessResponse], error) {
	m := req.Msg
	if n := len(m.GetLimitTo()); n == 0 || n > maxLimitTo {
		return nil, invalid("limit_to: 1 to %d scopes inside %s", maxLimitTo, m.GetScope())
	}
	subj, scope, org, err := rs.grantTarget(ctx, m.GetSubject(), m.GetScope())
	if err != nil {
		return nil, err
	}
	snap := callFrom(ctx).snap
	var narrower []rbac.Resource
	for _, v := range m.GetLimitTo() {
		r, err := rbac.ParseResource(v)
		if err != nil || r.Kind == rbac.KindPart {
			return nil, invalid("limit_to %q: want org/ID, location/ID or machine/ID", v)
		}
		if r == scope || !snap.within(r, scope) {
			return nil, invalid("limit_to %s is not inside %s: access can only be limited to scopes inside the grant's", r, scope)
		}
		if !slices.Contains(narrower, r) {
			narrower = append(narrower, r)
		}
	}
	now := rs.s.clock.Now().UTC()
	var out []store.Grant
	err = rs.s.update(ctx, func(tx store.Tx) error {
		old, err := tx.GetGrant(ctx, subj, scope.String())
		if err != nil {
			return connect.NewError(connect.CodeNotFound, fmt.Errorf("%s holds no role on %s to limit", subj, scope))
		}
		if err := keepsAnOwner(ctx, tx, old); err != nil {
			return err
		}
		if err := tx.DeleteGrant(ctx, subj, old.Scope); err != nil {
			return err
		}
		for _, r := range narrower {
			g := store.Grant{Subject: subj, Role: old.Role, Scope: r.String(), OrgID: org, CreatedAt: now, ViaOrg: cmp.Or(callFrom(ctx).viaShare(r), old.ViaOrg)}
			if err := tx.PutGrant(ctx, g); err != nil {
				return err
			}
			out = append(out, g)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	res := &fleetv1.LimitAccessResponse{}
	for _, g := range out {
		res.Grants = append(res.Grants, rs.withEmail(ctx, g))
	}
	return connect.NewResponse(res), nil
}

func (rs roleService) RemoveRole(ctx context.Context, req *connect.Request[fleetv1.RemoveRoleRequest]) (*connect.Response[fleetv1.RemoveRoleResponse], error) {
	subj, scope, _, err := rs.grantTarget(ctx, req.Msg.GetSubject(), req.Msg.GetScope())
	if err != nil {
		return nil, err
	}
	err = rs.s.update(ctx, func(tx store.Tx) error {
		g, err := tx.GetGrant(ctx, subj, scope.String())
		if err != nil {
			return connect.NewError(connect.CodeNotFound, fmt.Errorf("%s holds no role on %s", subj, scope))
		}
		if err := keepsAnOwner(ctx, tx, g); err != nil {
			return err
		}
		return tx.DeleteGrant(ctx, subj, scope.String())
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&fleetv1.RemoveRoleResponse{}), nil
}

// keepsAnOwner refuses to take away g when it is the last person's owner
// grant on its organization: an organization always keeps an owner who can
// manage it, whoever asks (the owner itself included). API keys do not
// count: a key is not someone who can be asked.
func keepsAnOwner(ctx context.Context, tx store.Tx, g store.Grant) error {
	org, isOrg := strings.CutPrefix(g.Scope, "org/")
	if !isOrg || g.Role != "owner" || !strings.HasPrefix(g.Subject, "user:") {
		return nil
	}
	gs, err := tx.ListGrantsByScope(ctx, g.Scope)
	if err != nil {
		return err
	}
	for _, o := range gs {
		if o.Subject != g.Subject && o.Role == "owner" && strings.HasPrefix(o.Subject, "user:") {
			return nil
		}
	}
	return connect.NewError(connect.CodeFailedPrecondition,
		fmt.Errorf("%s is the last owner of org/%s, which must keep one: make someone else owner first (`outpost role grant`), or delete the org", g.Subject, org))
}

func (rs roleService) ListRoles(ctx context.Context, req *connect.Request[fleetv1.ListRolesRequest]) (*connect.Response[fleetv1.ListRolesResponse], error) {
	scope, _ := rbac.ParseResource(req.Msg.GetScope())
	chain := callFrom(ctx).snap.ancestors(scope)
	slices.Reverse(chain) // widest first
	res := &fleetv1.ListRolesResponse{}
	err := rs.s.view(ctx, func(tx store.Tx) error {
		for _, r := range chain {
			gs, err := tx.ListGrantsByScope(ctx, r.String())
			if err != nil {
				return err
			}
			res.Grants = append(res.Grants, grantsPB(ctx, tx, gs)...)
		}
		return nil
	})
	return connect.NewResponse(res), err
}

type accessService struct{ s *Server }

// CheckAccess simulates a decision for any subject. The interceptor already
// decided whether the caller may ask; this asks rbac the question itself.
func (as accessService) CheckAccess(ctx context.Context, req *connect.Request[fleetv1.CheckAccessRequest]) (*connect.Response[fleetv1.CheckAccessResponse], error) {
	s, m := as.s, req.Msg
	c := callFrom(ctx)
	action, err := rbac.ParseAction(m.GetAction())
	if err != nil {
		return nil, invalid("action %q is not in the vocabulary (docs/ACTIONS.md), such as machine.rename or location.move", m.GetAction())
	}
	var res rbac.Resource
	if m.GetResource() != "" {
		if res, err = rbac.ParseResource(m.GetResource()); err != nil {
			return nil, invalid("resource: want kind/ID, such as machine/ID")
		}
	}
	target, err := s.resolveSubject(ctx, m.GetSubject())
	if err != nil {
		return nil, err
	}
	var p principal
	err = s.view(ctx, func(tx store.Tx) error {
		ref := target.Kind.String() + ":" + target.ID
		gs, err := tx.ListGrantsBySubject(ctx, ref)
		p = principal{kind: target.Kind, id: target.ID, grants: gs}
		if target.Kind == rbac.User {
			u, err := tx.GetUser(ctx, target.ID)
			if err != nil {
				return err
			}
			p.admin = u.Admin
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	subj := rbacSubject(&p, c.snap)
	var d rbac.Decision
	if action == rbac.LocationMove && res.Kind == rbac.KindLocation {
		dest := rbac.Org(c.snap.locations[res.ID].OrgID)
		if m.GetDestination() != "" {
			dest = rbac.Location(m.GetDestination())
		}
		d = c.snap.engine.DecideMove(subj, res, dest)
	} else {
		d = c.snap.engine.Decide(subj, action, res)
	}
	out := &fleetv1.CheckAccessResponse{Allowed: d.Allowed, Reason: d.Reason.String(), Explanation: d.String(), Partial: d.Partial}
	if d.GrantIndex >= 0 {
		out.Grant = d.Grant.String()
	}
	return connect.NewResponse(out), nil
}

type auditService struct{ s *Server }

func (as auditService) ListAuditEvents(ctx context.Context, req *connect.Request[fleetv1.ListAuditEventsRequest]) (*connect.Response[fleetv1.ListAuditEventsResponse], error) {
	m := req.Msg
	size := int(m.GetPageSize())
	if size < 0 || size > 1000 {
		return nil, invalid("page_size: 1 to 1000, or 0 for 100")
	}
	if size == 0 {
		size = 100
	}
	if len(m.GetPageToken()) > 64 {
		return nil, invalid("page_token: pass next_page_token from the previous page")
	}
	res := &fleetv1.ListAuditEventsResponse{}
	err := as.s.view(ctx, func(tx store.Tx) error {
		evs, err := tx.ListAudit(ctx, m.GetOrgId(), m.GetPageToken(), size)
		if err != nil {
			return err
		}
		for _, e := range evs {
			res.Events = append(res.Events, auditPB(e))
		}
		if len(evs) == size {
			res.NextPageToken = evs[len(evs)-1].ID
		}
		return nil
	})
	return connect.NewResponse(res), err
}
