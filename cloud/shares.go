package cloud

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/outpost-robotics/outpost/authz"
	"github.com/outpost-robotics/outpost/cloud/store"
	"github.com/outpost-robotics/outpost/rbac"
)

// viaShare names the organization whose share of a location gives the
// caller its owner authority on scope, when the caller has none from
// scope's own organization: what it makes there lasts only as long as the
// share (store.Grant.ViaOrg). "" when its authority is the organization's
// own, and for the cloud's admin.
func (c *call) viaShare(scope rbac.Resource) string {
	if c.principal.admin {
		return ""
	}
	home, via := c.snap.orgOf(scope), ""
	for _, g := range c.principal.grants {
		rg, err := toRBACGrant(g)
		if err != nil || rg.Role != rbac.Owner || !c.snap.engine.Covers(rg, scope) {
			continue
		}
		if c.snap.orgOf(rg.Scope) == home {
			return ""
		}
		if via == "" {
			via = c.snap.orgOf(rg.Scope)
		}
	}
	return via
}

// sharedWith reports whether the location or machine of scope, or a
// location above it, is shared with org, as tx sees it now.
func sharedWith(ctx context.Context, tx store.Tx, scope, org string) (bool, error) {
	kind, id, _ := strings.Cut(scope, "/")
	switch kind {
	case "machine":
		m, err := tx.GetMachine(ctx, id)
		if err != nil {
			return false, err
		}
		id = m.LocationID
	case "location":
	default:
		return false, nil // an org is never shared as a whole
	}
	for depth := 0; id != "" && depth <= maxDepth; depth++ {
		l, err := tx.GetLocation(ctx, id)
		if err != nil {
			return false, err
		}
		if slices.Contains(l.SharedWith, org) {
			return true, nil
		}
		id = l.ParentID
	}
	return false, nil
}

// endShares removes, from the organization home, every grant and API key
// made through a share with via that no longer reaches its scope: the
// access came through the share, and goes with it. Each removal is
// audited; it returns how many grants and keys went.
func (s *Server) endShares(ctx context.Context, tx store.Tx, home, via, why string) (grants, keys int, err error) {
	stale := func(scope, viaOrg string) (bool, error) {
		if viaOrg != via {
			return false, nil
		}
		ok, err := sharedWith(ctx, tx, scope, via)
		if errors.Is(err, store.ErrNotFound) {
			return true, nil
		}
		return !ok, err
	}
	audit := func(subject, resource string) error {
		c := callFrom(ctx)
		return tx.AppendAudit(ctx, store.AuditEvent{ID: s.auditID(), Time: s.clock.Now().UTC(), Subject: c.principal.ref(),
			Procedure: c.rule.Procedure, Action: string(rbac.RoleChange), Resource: resource, Allowed: true,
			Reason: "removed " + subject + ": " + why, OrgID: home, Outcome: "ok"})
	}
	ks, err := tx.ListAPIKeys(ctx, home)
	if err != nil {
		return 0, 0, err
	}
	for _, k := range ks {
		if gone, err := stale(k.Scope, k.ViaOrg); err != nil || !gone {
			if err != nil {
				return 0, 0, err
			}
			continue
		}
		if err := deleteAPIKey(ctx, tx, k.ID); err != nil {
			return 0, 0, err
		}
		if err := audit(authz.APIKey(k.ID).String(), k.Scope); err != nil {
			return 0, 0, err
		}
		keys++
	}
	gs, err := tx.ListGrantsByOrg(ctx, home)
	if err != nil {
		return 0, 0, err
	}
	for _, g := range gs {
		if gone, err := stale(g.Scope, g.ViaOrg); err != nil || !gone {
			if err != nil {
				return 0, 0, err
			}
			continue
		}
		if err := tx.DeleteGrant(ctx, g.Subject, g.Scope); err != nil && !errors.Is(err, store.ErrNotFound) {
			return 0, 0, err
		}
		if err := audit(subjectOf(g).String()+"'s "+g.Role+" grant", g.Scope); err != nil {
			return 0, 0, err
		}
		grants++
	}
	return grants, keys, nil
}
