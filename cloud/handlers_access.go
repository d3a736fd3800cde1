package cloud

import (
	"context"

	"connectrpc.com/connect"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	"github.com/outpost-robotics/outpost/authz"
	"github.com/outpost-robotics/outpost/cloud/store"
	"github.com/outpost-robotics/outpost/rbac"
)

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
	if res.Kind == rbac.KindFragment {
		// A fragment is decided on its organization, as its own calls are.
		if res, err = s.fragmentOrg(ctx, res.ID); err != nil {
			return nil, err
		}
	}
	target, err := s.resolveSubject(ctx, m.GetSubject())
	if err != nil {
		return nil, err
	}
	var p principal
	err = s.view(ctx, func(tx store.Tx) error {
		gs, err := grantsOf(ctx, tx, target)
		p = principal{kind: target.RBACKind(), id: target.ID, grants: gs}
		if target.Kind == authz.KindUser {
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
