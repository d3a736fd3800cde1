package cloud

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"connectrpc.com/connect"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	"github.com/outpost-robotics/outpost/authz"
	"github.com/outpost-robotics/outpost/cloud/auth"
	"github.com/outpost-robotics/outpost/cloud/store"
	"github.com/outpost-robotics/outpost/rbac"
)

type locationService struct{ s *Server }

// ancestry walks a location's parents inside tx: the IDs from id up to its
// top-level location. It stops on a cycle or beyond maxDepth, which the
// cloud never writes, so a corrupted store cannot hang a request.
func ancestry(ctx context.Context, tx store.Tx, id string) ([]string, error) {
	var out []string
	for id != "" {
		if len(out) > maxDepth+1 || slices.Contains(out, id) {
			return out, fmt.Errorf("location/%s: parent chain deeper than %d or cyclic", id, maxDepth)
		}
		l, err := tx.GetLocation(ctx, id)
		if err != nil {
			return out, err
		}
		out = append(out, id)
		id = l.ParentID
	}
	return out, nil
}

func (l locationService) CreateLocation(ctx context.Context, req *connect.Request[fleetv1.CreateLocationRequest]) (*connect.Response[fleetv1.CreateLocationResponse], error) {
	s, m := l.s, req.Msg
	if err := validName("name", m.GetName()); err != nil {
		return nil, err
	}
	if m.GetParentLocationId() != "" {
		if err := requireID("parent_location_id", m.GetParentLocationId()); err != nil {
			return nil, err
		}
	}
	loc := store.Location{ID: auth.NewID(), OrgID: m.GetOrgId(), ParentID: m.GetParentLocationId(), Name: m.GetName(), CreatedAt: s.clock.Now().UTC()}
	return reply(&fleetv1.CreateLocationResponse{Location: locationPB(loc)}, s.update(ctx, func(tx store.Tx) error {
		if loc.ParentID == "" {
			return tx.PutLocation(ctx, loc)
		}
		parent, err := tx.GetLocation(ctx, loc.ParentID)
		if err != nil {
			return authz.Explain(err, store.ErrNotFound, "parent location/%s does not exist", loc.ParentID)
		}
		if parent.OrgID != loc.OrgID {
			return invalid("parent location/%s is in org/%s, not org/%s: a location's parent is in its own org", parent.ID, parent.OrgID, loc.OrgID)
		}
		chain, err := ancestry(ctx, tx, parent.ID)
		if err != nil {
			return err
		}
		if len(chain)+1 > maxDepth {
			return invalid("locations nest at most %d deep; location/%s is already at depth %d", maxDepth, parent.ID, len(chain))
		}
		return tx.PutLocation(ctx, loc)
	}))
}

func (l locationService) ListLocations(ctx context.Context, req *connect.Request[fleetv1.ListLocationsRequest]) (*connect.Response[fleetv1.ListLocationsResponse], error) {
	if err := requireID("org_id", req.Msg.GetOrgId()); err != nil {
		return nil, err
	}
	c := callFrom(ctx)
	var locs []store.Location
	for _, loc := range c.snap.locations {
		mine := loc.OrgID == req.Msg.GetOrgId() || (req.Msg.GetIncludeShared() && c.snap.sharedInto(loc.ID, req.Msg.GetOrgId()))
		if mine && c.visible(rbac.Location(loc.ID)) {
			locs = append(locs, loc)
		}
	}
	// Parents before children: by depth, then name.
	slices.SortFunc(locs, func(a, b store.Location) int {
		if da, db := c.snap.depth(a.ID), c.snap.depth(b.ID); da != db {
			return da - db
		}
		return strings.Compare(a.Name+a.ID, b.Name+b.ID)
	})
	res := &fleetv1.ListLocationsResponse{}
	for _, loc := range locs {
		res.Locations = append(res.Locations, locationPB(loc))
	}
	return connect.NewResponse(res), nil
}

func (l locationService) RenameLocation(ctx context.Context, req *connect.Request[fleetv1.RenameLocationRequest]) (*connect.Response[fleetv1.RenameLocationResponse], error) {
	if err := validName("name", req.Msg.GetName()); err != nil {
		return nil, err
	}
	loc, err := edit(ctx, l.s, req.Msg.GetLocationId(), store.Tx.GetLocation, store.Tx.PutLocation, func(_ store.Tx, loc *store.Location) error {
		loc.Name = req.Msg.GetName()
		return nil
	})
	return reply(&fleetv1.RenameLocationResponse{Location: locationPB(loc)}, err)
}

func (l locationService) MoveLocation(ctx context.Context, req *connect.Request[fleetv1.MoveLocationRequest]) (*connect.Response[fleetv1.MoveLocationResponse], error) {
	c := callFrom(ctx)
	id, dest := req.Msg.GetLocationId(), req.Msg.GetNewParentLocationId()
	loc, err := edit(ctx, l.s, id, store.Tx.GetLocation, store.Tx.PutLocation, func(tx store.Tx, loc *store.Location) error {
		if dest == "" {
			loc.ParentID = ""
			return nil
		}
		// rbac refused cycles on the snapshot; the transaction checks again
		// against concurrent moves.
		chain, err := ancestry(ctx, tx, dest)
		if err != nil {
			return err
		}
		if slices.Contains(chain, id) {
			return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("location/%s cannot move under itself or one of its children", id))
		}
		d, err := tx.GetLocation(ctx, dest)
		if err != nil {
			return err
		}
		if d.OrgID != loc.OrgID {
			return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("location/%s is in another org: a location moves only within its org", dest))
		}
		if len(chain)+c.snap.height(id) > maxDepth {
			return invalid("moving location/%s under location/%s would nest locations deeper than %d", id, dest, maxDepth)
		}
		loc.ParentID = dest
		return nil
	})
	return reply(&fleetv1.MoveLocationResponse{Location: locationPB(loc)}, err)
}

func (l locationService) DeleteLocation(ctx context.Context, req *connect.Request[fleetv1.DeleteLocationRequest]) (*connect.Response[fleetv1.DeleteLocationResponse], error) {
	id := req.Msg.GetLocationId()
	return reply(&fleetv1.DeleteLocationResponse{}, l.s.update(ctx, func(tx store.Tx) error {
		kids, err := tx.ListChildLocations(ctx, id)
		if err != nil {
			return err
		}
		machines, err := tx.ListMachines(ctx, id)
		if err != nil {
			return err
		}
		if len(kids) > 0 || len(machines) > 0 {
			return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf(
				"location/%s still holds %s and %s: move or delete them first", id, count(len(machines), "machine"), count(len(kids), "child location")))
		}
		if err := deleteGrantsOn(ctx, tx, "location/"+id); err != nil {
			return err
		}
		return tx.DeleteLocation(ctx, id)
	}))
}

func (l locationService) ShareLocation(ctx context.Context, req *connect.Request[fleetv1.ShareLocationRequest]) (*connect.Response[fleetv1.ShareLocationResponse], error) {
	with := req.Msg.GetOrgId()
	if err := requireID("org_id", with); err != nil {
		return nil, err
	}
	loc, err := edit(ctx, l.s, req.Msg.GetLocationId(), store.Tx.GetLocation, store.Tx.PutLocation, func(tx store.Tx, loc *store.Location) error {
		if _, err := tx.GetOrg(ctx, with); err != nil {
			return authz.Explain(err, store.ErrNotFound, "org/%s does not exist", with)
		}
		if with == loc.OrgID {
			return invalid("location/%s already belongs to org/%s", loc.ID, with)
		}
		if slices.Contains(loc.SharedWith, with) {
			return connect.NewError(connect.CodeAlreadyExists, fmt.Errorf("location/%s is already shared with org/%s", loc.ID, with))
		}
		if len(loc.SharedWith) >= maxLimitTo {
			return invalid("location/%s is shared with %d orgs already, the most allowed", loc.ID, maxLimitTo)
		}
		loc.SharedWith = append(loc.SharedWith, with)
		slices.Sort(loc.SharedWith)
		return nil
	})
	return reply(&fleetv1.ShareLocationResponse{Location: locationPB(loc)}, err)
}

func (l locationService) UnshareLocation(ctx context.Context, req *connect.Request[fleetv1.UnshareLocationRequest]) (*connect.Response[fleetv1.UnshareLocationResponse], error) {
	with := req.Msg.GetOrgId()
	if err := requireID("org_id", with); err != nil {
		return nil, err
	}
	return respond(ctx, l.s.update, func(tx store.Tx) (*fleetv1.UnshareLocationResponse, error) {
		loc, err := modify(ctx, tx, req.Msg.GetLocationId(), store.Tx.GetLocation, store.Tx.PutLocation, func(loc *store.Location) error {
			i := slices.Index(loc.SharedWith, with)
			if i < 0 {
				return connect.NewError(connect.CodeNotFound, fmt.Errorf("location/%s is not shared with org/%s", loc.ID, with))
			}
			loc.SharedWith = slices.Delete(loc.SharedWith, i, i+1)
			return nil
		})
		if err != nil {
			return nil, err
		}
		// What org/with's owners made through the share goes with it.
		grants, keys, err := l.s.endShares(ctx, tx, loc.OrgID, with, fmt.Sprintf("made through the share of location/%s with org/%s, which ended", loc.ID, with))
		return &fleetv1.UnshareLocationResponse{Location: locationPB(loc), GrantsRemoved: int32(grants), ApiKeysRemoved: int32(keys)}, err
	})
}

func (l locationService) SetSupportAccess(ctx context.Context, req *connect.Request[fleetv1.SetSupportAccessRequest]) (*connect.Response[fleetv1.SetSupportAccessResponse], error) {
	loc, err := edit(ctx, l.s, req.Msg.GetLocationId(), store.Tx.GetLocation, store.Tx.PutLocation, func(_ store.Tx, loc *store.Location) error {
		loc.SupportAccess = req.Msg.GetEnabled()
		return nil
	})
	return reply(&fleetv1.SetSupportAccessResponse{Location: locationPB(loc)}, err)
}
