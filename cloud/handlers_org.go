package cloud

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	"github.com/outpost-robotics/outpost/authz"
	"github.com/outpost-robotics/outpost/cloud/auth"
	"github.com/outpost-robotics/outpost/cloud/store"
	"github.com/outpost-robotics/outpost/rbac"
)

type orgService struct{ s *Server }

func (o orgService) CreateOrg(ctx context.Context, req *connect.Request[fleetv1.CreateOrgRequest]) (*connect.Response[fleetv1.CreateOrgResponse], error) {
	s := o.s
	if err := validName("name", req.Msg.GetName()); err != nil {
		return nil, err
	}
	c := callFrom(ctx)
	now := s.clock.Now().UTC()
	org := store.Org{ID: auth.NewID(), Name: req.Msg.GetName(), CreatedAt: now}
	c.setAuditResource("org/"+org.ID, org.ID)
	return respond(ctx, s.update, func(tx store.Tx) (*fleetv1.CreateOrgResponse, error) {
		if err := tx.PutOrg(ctx, org); err != nil {
			return nil, err
		}
		// The creator owns what it created.
		grant := store.Grant{Subject: c.principal.ref(), Role: "owner", Scope: "org/" + org.ID, OrgID: org.ID, CreatedAt: now}
		return &fleetv1.CreateOrgResponse{Org: orgPB(org)}, tx.PutGrant(ctx, grant)
	})
}

func (o orgService) ListOrgs(ctx context.Context, _ *connect.Request[fleetv1.ListOrgsRequest]) (*connect.Response[fleetv1.ListOrgsResponse], error) {
	c := callFrom(ctx)
	res := &fleetv1.ListOrgsResponse{}
	for _, org := range c.snap.orgs {
		if c.visible(rbac.Org(org.ID)) {
			res.Orgs = append(res.Orgs, orgPB(org))
		}
	}
	slices.SortFunc(res.Orgs, func(a, b *fleetv1.Organization) int {
		return strings.Compare(a.GetName()+a.GetId(), b.GetName()+b.GetId())
	})
	return connect.NewResponse(res), nil
}

func (o orgService) RenameOrg(ctx context.Context, req *connect.Request[fleetv1.RenameOrgRequest]) (*connect.Response[fleetv1.RenameOrgResponse], error) {
	if err := validName("name", req.Msg.GetName()); err != nil {
		return nil, err
	}
	org, err := edit(ctx, o.s, req.Msg.GetOrgId(), store.Tx.GetOrg, store.Tx.PutOrg, func(_ store.Tx, org *store.Org) error {
		org.Name = req.Msg.GetName()
		return nil
	})
	return reply(&fleetv1.RenameOrgResponse{Org: orgPB(org)}, err)
}

func (o orgService) SetDocumentLifetime(ctx context.Context, req *connect.Request[fleetv1.SetDocumentLifetimeRequest]) (*connect.Response[fleetv1.SetDocumentLifetimeResponse], error) {
	days := req.Msg.GetDays()
	if max := int32(DefaultDocumentTTL / (24 * time.Hour)); days < 1 || days > max {
		return nil, invalid("days: 1 to %d", max)
	}
	org, err := edit(ctx, o.s, req.Msg.GetOrgId(), store.Tx.GetOrg, store.Tx.PutOrg, func(_ store.Tx, org *store.Org) error {
		org.BundleTTL = time.Duration(days) * 24 * time.Hour
		return nil
	})
	return reply(&fleetv1.SetDocumentLifetimeResponse{Org: orgPB(org)}, err)
}

// maxRetentionDays bounds an organization's data retention: ten years.
const maxRetentionDays = 3650

func (o orgService) SetDataRetention(ctx context.Context, req *connect.Request[fleetv1.SetDataRetentionRequest]) (*connect.Response[fleetv1.SetDataRetentionResponse], error) {
	days := req.Msg.GetDays()
	if days < 0 || days > maxRetentionDays {
		return nil, invalid("days: 1 to %d, or 0 to keep the data for ever", maxRetentionDays)
	}
	org, err := edit(ctx, o.s, req.Msg.GetOrgId(), store.Tx.GetOrg, store.Tx.PutOrg, func(_ store.Tx, org *store.Org) error {
		org.Retention = time.Duration(days) * 24 * time.Hour
		return nil
	})
	return reply(&fleetv1.SetDataRetentionResponse{Org: orgPB(org)}, err)
}

func (o orgService) DeleteOrg(ctx context.Context, req *connect.Request[fleetv1.DeleteOrgRequest]) (*connect.Response[fleetv1.DeleteOrgResponse], error) {
	id := req.Msg.GetOrgId()
	return reply(&fleetv1.DeleteOrgResponse{}, o.s.update(ctx, func(tx store.Tx) error {
		locs, err := tx.ListLocations(ctx, id)
		if err != nil {
			return err
		}
		if len(locs) > 0 {
			return connect.NewError(connect.CodeFailedPrecondition,
				fmt.Errorf("org/%s still holds %s: delete them first (`outpost location list --org %s`)", id, count(len(locs), "location"), id))
		}
		// Its grants, keys and shares go with it, so nothing names a missing org.
		grants, err := tx.ListGrantsByOrg(ctx, id)
		if err != nil {
			return err
		}
		for _, g := range grants {
			if err := tx.DeleteGrant(ctx, g.Subject, g.Scope); err != nil {
				return err
			}
		}
		keys, err := tx.ListAPIKeys(ctx, id)
		if err != nil {
			return err
		}
		for _, k := range keys {
			if err := deleteAPIKey(ctx, tx, k.ID); err != nil {
				return err
			}
		}
		all, err := tx.ListLocations(ctx, "")
		if err != nil {
			return err
		}
		homes := map[string]bool{}
		for _, l := range all {
			if i := slices.Index(l.SharedWith, id); i >= 0 {
				l.SharedWith = slices.Delete(l.SharedWith, i, i+1)
				if err := tx.PutLocation(ctx, l); err != nil {
					return err
				}
				homes[l.OrgID] = true
			}
		}
		// What its owners made through those shares goes with them.
		for home := range homes {
			if _, _, err := o.s.endShares(ctx, tx, home, id, "made through a share with org/"+id+", which was deleted"); err != nil {
				return err
			}
		}
		return tx.DeleteOrg(ctx, id)
	}))
}

func (o orgService) LeaveOrg(ctx context.Context, req *connect.Request[fleetv1.LeaveOrgRequest]) (*connect.Response[fleetv1.LeaveOrgResponse], error) {
	c := callFrom(ctx)
	id := req.Msg.GetOrgId()
	return respond(ctx, o.s.update, func(tx store.Tx) (*fleetv1.LeaveOrgResponse, error) {
		grants, err := tx.ListGrantsByOrg(ctx, id)
		if err != nil {
			return nil, err
		}
		owners, mine, iOwn := 0, []store.Grant{}, false
		for _, g := range grants {
			who := subjectOf(g)
			if g.Scope == "org/"+id && g.Role == "owner" && who.Kind == authz.KindUser {
				owners++
				iOwn = iOwn || who == c.principal.subject()
			}
			if who == c.principal.subject() {
				mine = append(mine, g)
			}
		}
		if len(mine) == 0 {
			return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("%s holds no role in org/%s", c.principal.ref(), id))
		}
		if iOwn && owners == 1 {
			return nil, connect.NewError(connect.CodeFailedPrecondition,
				fmt.Errorf("you are the last owner of org/%s: make someone else owner first, or delete the org", id))
		}
		for _, g := range mine {
			if err := tx.DeleteGrant(ctx, g.Subject, g.Scope); err != nil {
				return nil, err
			}
		}
		return &fleetv1.LeaveOrgResponse{Removed: int32(len(mine))}, nil
	})
}

func (o orgService) ListMembers(ctx context.Context, req *connect.Request[fleetv1.ListMembersRequest]) (*connect.Response[fleetv1.ListMembersResponse], error) {
	res := &fleetv1.ListMembersResponse{}
	err := o.s.view(ctx, func(tx store.Tx) error {
		grants, err := tx.ListGrantsByOrg(ctx, req.Msg.GetOrgId())
		if err != nil {
			return err
		}
		byUser := map[string]*fleetv1.Member{}
		for _, g := range grants {
			who := subjectOf(g)
			if who.Kind != authz.KindUser {
				continue
			}
			id := who.ID
			m := byUser[id]
			if m == nil {
				u, err := tx.GetUser(ctx, id)
				if err != nil {
					continue // a user deleted since; its grants are stale
				}
				m = &fleetv1.Member{User: userPB(u), JoinedAt: ts(g.CreatedAt)}
				byUser[id] = m
				res.Members = append(res.Members, m)
			}
			m.Grants = append(m.Grants, grantPB(g, m.GetUser().GetEmail()))
			if g.CreatedAt.Before(m.GetJoinedAt().AsTime()) {
				m.JoinedAt = ts(g.CreatedAt)
			}
		}
		return nil
	})
	slices.SortFunc(res.Members, func(a, b *fleetv1.Member) int { return strings.Compare(a.GetUser().GetEmail(), b.GetUser().GetEmail()) })
	return reply(res, err)
}
