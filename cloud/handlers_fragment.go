package cloud

import (
	"context"
	"fmt"
	"slices"

	"connectrpc.com/connect"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	"github.com/outpost-robotics/outpost/cloud/auth"
	"github.com/outpost-robotics/outpost/cloud/store"
)

type fragmentService struct{ s *Server }

func fragmentPB(ctx context.Context, tx store.Tx, f store.Fragment) (*fleetv1.Fragment, error) {
	fr, err := tx.GetFragmentRevision(ctx, f.ID, f.Revision)
	if err != nil {
		return nil, err
	}
	c, err := decodeConfig(fr.Config)
	if err != nil {
		return nil, err
	}
	return &fleetv1.Fragment{Id: f.ID, OrgId: f.OrgID, Name: f.Name, Revision: f.Revision, Config: c,
		UpdatedBy: f.UpdatedBy, UpdatedAt: ts(f.UpdatedAt)}, nil
}

func (fs fragmentService) CreateFragment(ctx context.Context, req *connect.Request[fleetv1.CreateFragmentRequest]) (*connect.Response[fleetv1.CreateFragmentResponse], error) {
	msg := req.Msg
	if err := validName("name", msg.GetName()); err != nil {
		return nil, err
	}
	c := msg.GetConfig()
	if c == nil {
		c = &configv1.RobotConfig{}
	}
	b, err := encodeConfig(c)
	if err != nil {
		return nil, err
	}
	call := callFrom(ctx)
	now := fs.s.clock.Now().UTC()
	f := store.Fragment{ID: auth.NewID(), OrgID: msg.GetOrgId(), Name: msg.GetName(), Revision: 1,
		UpdatedBy: call.principal.ref(), UpdatedAt: now, CreatedAt: now}
	call.setAuditResource("fragment/"+f.ID, f.OrgID)
	return respond(ctx, fs.s.update, func(tx store.Tx) (*fleetv1.CreateFragmentResponse, error) {
		existing, err := tx.ListFragments(ctx, f.OrgID)
		if err != nil {
			return nil, err
		}
		for _, o := range existing {
			if o.Name == f.Name {
				return nil, connect.NewError(connect.CodeAlreadyExists, fmt.Errorf("org/%s already has a fragment named %q", f.OrgID, f.Name))
			}
		}
		if err := tx.PutFragment(ctx, f); err != nil {
			return nil, err
		}
		if err := tx.PutFragmentRevision(ctx, store.FragmentRevision{FragmentID: f.ID, Revision: 1, Config: b, Author: f.UpdatedBy, CreatedAt: now}); err != nil {
			return nil, err
		}
		out, err := fragmentPB(ctx, tx, f)
		return &fleetv1.CreateFragmentResponse{Fragment: out}, err
	})
}

func (fs fragmentService) GetFragment(ctx context.Context, req *connect.Request[fleetv1.GetFragmentRequest]) (*connect.Response[fleetv1.GetFragmentResponse], error) {
	return respond(ctx, fs.s.view, func(tx store.Tx) (*fleetv1.GetFragmentResponse, error) {
		f, err := tx.GetFragment(ctx, req.Msg.GetFragmentId())
		if err != nil {
			return nil, err
		}
		out, err := fragmentPB(ctx, tx, f)
		return &fleetv1.GetFragmentResponse{Fragment: out}, err
	})
}

func (fs fragmentService) ListFragments(ctx context.Context, req *connect.Request[fleetv1.ListFragmentsRequest]) (*connect.Response[fleetv1.ListFragmentsResponse], error) {
	out := &fleetv1.ListFragmentsResponse{}
	err := fs.s.view(ctx, func(tx store.Tx) error {
		fsx, err := tx.ListFragments(ctx, req.Msg.GetOrgId())
		if err != nil {
			return err
		}
		for _, f := range fsx {
			pb, err := fragmentPB(ctx, tx, f)
			if err != nil {
				return err
			}
			out.Fragments = append(out.Fragments, pb)
		}
		return nil
	})
	return reply(out, err)
}

// machinesUsing lists the machines of an organization whose current config
// revision uses the fragment.
func machinesUsing(ctx context.Context, tx store.Tx, snap *snapshot, org, fragmentID string) ([]string, error) {
	var out []string
	for id, m := range snap.machines {
		if snap.locations[m.LocationID].OrgID != org {
			continue
		}
		revs, err := tx.ListConfigRevisions(ctx, id)
		if err != nil {
			return nil, err
		}
		if len(revs) > 0 && slices.Contains(revs[len(revs)-1].Fragments, fragmentID) {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out, nil
}

func (fs fragmentService) UpdateFragment(ctx context.Context, req *connect.Request[fleetv1.UpdateFragmentRequest]) (*connect.Response[fleetv1.UpdateFragmentResponse], error) {
	msg := req.Msg
	c := msg.GetConfig()
	if c == nil {
		c = &configv1.RobotConfig{}
	}
	b, err := encodeConfig(c)
	if err != nil {
		return nil, err
	}
	call := callFrom(ctx)
	now := fs.s.clock.Now().UTC()
	return respond(ctx, fs.s.update, func(tx store.Tx) (*fleetv1.UpdateFragmentResponse, error) {
		f, err := tx.GetFragment(ctx, msg.GetFragmentId())
		if err != nil {
			return nil, err
		}
		if msg.GetBaseRevision() != f.Revision {
			return nil, connect.NewError(connect.CodeAborted, fmt.Errorf("base_revision %d is not current: fragment/%s is at revision %d; start again from it", msg.GetBaseRevision(), f.ID, f.Revision))
		}
		// Every machine using the fragment must still get a config the
		// daemon can apply.
		users, err := machinesUsing(ctx, tx, call.snap, f.OrgID, f.ID)
		if err != nil {
			return nil, err
		}
		for _, m := range users {
			merged, err := mergeMachine(ctx, tx, m, nil, map[string]*configv1.RobotConfig{f.ID: c})
			if err != nil {
				return nil, err
			}
			if err := validateMerged(ctx, tx, m, "merged into machine/"+m, merged); err != nil {
				return nil, err
			}
		}
		f.Revision++
		f.UpdatedBy, f.UpdatedAt = call.principal.ref(), now
		if err := tx.PutFragmentRevision(ctx, store.FragmentRevision{FragmentID: f.ID, Revision: f.Revision, Config: b, Author: f.UpdatedBy, CreatedAt: now}); err != nil {
			return nil, err
		}
		if err := tx.PutFragment(ctx, f); err != nil {
			return nil, err
		}
		out, err := fragmentPB(ctx, tx, f)
		return &fleetv1.UpdateFragmentResponse{Fragment: out, Machines: int32(len(users))}, err
	})
}

func (fs fragmentService) DeleteFragment(ctx context.Context, req *connect.Request[fleetv1.DeleteFragmentRequest]) (*connect.Response[fleetv1.DeleteFragmentResponse], error) {
	call := callFrom(ctx)
	return reply(&fleetv1.DeleteFragmentResponse{}, fs.s.update(ctx, func(tx store.Tx) error {
		f, err := tx.GetFragment(ctx, req.Msg.GetFragmentId())
		if err != nil {
			return err
		}
		users, err := machinesUsing(ctx, tx, call.snap, f.OrgID, f.ID)
		if err != nil {
			return err
		}
		if len(users) > 0 {
			return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("fragment/%s is used by %d machines (machine/%s first): remove it from their configs first", f.ID, len(users), users[0]))
		}
		return tx.DeleteFragment(ctx, f.ID)
	}))
}
