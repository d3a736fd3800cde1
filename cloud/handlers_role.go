package cloud

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"connectrpc.com/connect"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	"github.com/outpost-robotics/outpost/authz"
	"github.com/outpost-robotics/outpost/cloud/store"
	"github.com/outpost-robotics/outpost/rbac"
)

type roleService struct{ s *Server }

// grantTarget resolves a request's subject and scope (already checked by the
// interceptor): the subject, the scope and the scope's organization.
func (rs roleService) grantTarget(ctx context.Context, subject, scope string) (authz.Subject, rbac.Resource, string, error) {
	subj, err := rs.s.resolveSubject(ctx, subject)
	if err != nil {
		return authz.Subject{}, rbac.Resource{}, "", err
	}
	res, err := rbac.ParseResource(scope)
	if err != nil {
		return authz.Subject{}, rbac.Resource{}, "", invalid("scope: %v", err)
	}
	return subj, res, callFrom(ctx).snap.orgOf(res), nil
}

func (rs roleService) GrantRole(ctx context.Context, req *connect.Request[fleetv1.GrantRoleRequest]) (*connect.Response[fleetv1.GrantRoleResponse], error) {
	m := req.Msg
	subj, scope, org, err := rs.grantTarget(ctx, m.GetSubject(), m.GetScope())
	if err != nil {
		return nil, err
	}
	g := store.Grant{Subject: subj.String(), Role: m.GetRole(), Scope: scope.String(), OrgID: org, CreatedAt: rs.s.clock.Now().UTC(),
		ViaOrg: callFrom(ctx).viaShare(scope)}
	return respond(ctx, rs.s.update, func(tx store.Tx) (*fleetv1.GrantRoleResponse, error) {
		if old, err := grantOf(ctx, tx, subj, g.Scope); err == nil {
			return nil, connect.NewError(connect.CodeAlreadyExists,
				fmt.Errorf("%s already holds %s on %s: use `outpost role change` to change it", subj, old.Role, g.Scope))
		} else if !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		return &fleetv1.GrantRoleResponse{Grant: grantsPB(ctx, tx, []store.Grant{g})[0]}, tx.PutGrant(ctx, g)
	})
}

func (rs roleService) ChangeRole(ctx context.Context, req *connect.Request[fleetv1.ChangeRoleRequest]) (*connect.Response[fleetv1.ChangeRoleResponse], error) {
	m := req.Msg
	subj, scope, _, err := rs.grantTarget(ctx, m.GetSubject(), m.GetScope())
	if err != nil {
		return nil, err
	}
	return respond(ctx, rs.s.update, func(tx store.Tx) (*fleetv1.ChangeRoleResponse, error) {
		g, err := grantOf(ctx, tx, subj, scope.String())
		if err != nil {
			return nil, authz.Explain(err, store.ErrNotFound, "%s holds no role on %s: use `outpost role grant`", subj, scope)
		}
		if m.GetRole() != "owner" {
			if err := keepsAnOwner(ctx, tx, g); err != nil {
				return nil, err
			}
		}
		g.Role = m.GetRole()
		if via := callFrom(ctx).viaShare(scope); via != "" {
			// The role is now one given through the share.
			g.ViaOrg = via
		}
		return &fleetv1.ChangeRoleResponse{Grant: grantsPB(ctx, tx, []store.Grant{g})[0]}, tx.PutGrant(ctx, g)
	})
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
	return respond(ctx, rs.s.update, func(tx store.Tx) (*fleetv1.LimitAccessResponse, error) {
		old, err := grantOf(ctx, tx, subj, scope.String())
		if err != nil {
			return nil, authz.Explain(err, store.ErrNotFound, "%s holds no role on %s to limit", subj, scope)
		}
		if err := keepsAnOwner(ctx, tx, old); err != nil {
			return nil, err
		}
		if err := tx.DeleteGrant(ctx, old.Subject, old.Scope); err != nil {
			return nil, err
		}
		var out []store.Grant
		for _, r := range narrower {
			g := store.Grant{Subject: subj.String(), Role: old.Role, Scope: r.String(), OrgID: org, CreatedAt: now, ViaOrg: cmp.Or(callFrom(ctx).viaShare(r), old.ViaOrg)}
			if err := tx.PutGrant(ctx, g); err != nil {
				return nil, err
			}
			out = append(out, g)
		}
		return &fleetv1.LimitAccessResponse{Grants: grantsPB(ctx, tx, out)}, nil
	})
}

func (rs roleService) RemoveRole(ctx context.Context, req *connect.Request[fleetv1.RemoveRoleRequest]) (*connect.Response[fleetv1.RemoveRoleResponse], error) {
	subj, scope, _, err := rs.grantTarget(ctx, req.Msg.GetSubject(), req.Msg.GetScope())
	if err != nil {
		return nil, err
	}
	return reply(&fleetv1.RemoveRoleResponse{}, rs.s.update(ctx, func(tx store.Tx) error {
		g, err := grantOf(ctx, tx, subj, scope.String())
		if err != nil {
			return authz.Explain(err, store.ErrNotFound, "%s holds no role on %s", subj, scope)
		}
		if err := keepsAnOwner(ctx, tx, g); err != nil {
			return err
		}
		return tx.DeleteGrant(ctx, g.Subject, g.Scope)
	}))
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
	return reply(res, err)
}
