package cloud

import (
	"context"
	"fmt"
	"slices"

	"connectrpc.com/connect"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	"github.com/outpost-robotics/outpost/authz"
	"github.com/outpost-robotics/outpost/cloud/store"
	"github.com/outpost-robotics/outpost/rbac"
)

// Proposal states.
const (
	proposalAccepted  = "accepted"
	proposalConflict  = "conflict"
	proposalDismissed = "dismissed"
)

type configService struct{ s *Server }

func revisionPB(r store.ConfigRevision, c *configv1.RobotConfig) *fleetv1.ConfigRevision {
	return &fleetv1.ConfigRevision{MachineId: r.MachineID, Revision: r.Revision, Config: c,
		FragmentIds: slices.Clone(r.Fragments), Author: r.Author, CreatedAt: ts(r.CreatedAt)}
}

func (cs configService) GetMachineConfig(ctx context.Context, req *connect.Request[fleetv1.GetMachineConfigRequest]) (*connect.Response[fleetv1.GetMachineConfigResponse], error) {
	id := req.Msg.GetMachineId()
	return respond(ctx, cs.s.view, func(tx store.Tx) (*fleetv1.GetMachineConfigResponse, error) {
		m, err := mergeMachine(ctx, tx, id, nil, nil)
		if err != nil {
			return nil, err
		}
		rev := revisionPB(m.rev, m.own)
		rev.MachineId = id
		return &fleetv1.GetMachineConfigResponse{Revision: rev, Merged: m.config, Fragments: m.fragments}, nil
	})
}

// checkFragments refuses fragment lists that are too long or name fragments
// outside the machine's organization.
func checkFragments(ctx context.Context, tx store.Tx, org string, ids []string) error {
	if len(ids) > maxFragments {
		return invalid("fragment_ids: at most %d fragments", maxFragments)
	}
	for i, id := range ids {
		if !validID(id) {
			return invalid("fragment_ids[%d]: %q is not a fragment ID", i, id)
		}
		f, err := tx.GetFragment(ctx, id)
		if err == nil && f.OrgID != org {
			err = store.ErrNotFound // another org's fragment is not there for this machine
		}
		if err != nil {
			return authz.Explain(err, store.ErrNotFound, "fragment_ids[%d]: no fragment %q in the machine's organization", i, id)
		}
	}
	return nil
}

func (cs configService) UpdateMachineConfig(ctx context.Context, req *connect.Request[fleetv1.UpdateMachineConfigRequest]) (*connect.Response[fleetv1.UpdateMachineConfigResponse], error) {
	msg := req.Msg
	c := callFrom(ctx)
	org := c.snap.orgOf(rbac.Machine(msg.GetMachineId()))
	own := msg.GetConfig()
	if own == nil {
		own = &configv1.RobotConfig{}
	}
	return respond(ctx, cs.s.update, func(tx store.Tx) (*fleetv1.UpdateMachineConfigResponse, error) {
		if err := checkFragments(ctx, tx, org, msg.GetFragmentIds()); err != nil {
			return nil, err
		}
		rev, err := cs.s.nextRevision(ctx, tx, msg.GetMachineId(), msg.GetBaseRevision(), own, msg.GetFragmentIds(), c.principal.ref())
		return &fleetv1.UpdateMachineConfigResponse{Revision: revisionPB(rev, own)}, err
	})
}

func (cs configService) ListConfigRevisions(ctx context.Context, req *connect.Request[fleetv1.ListConfigRevisionsRequest]) (*connect.Response[fleetv1.ListConfigRevisionsResponse], error) {
	out := &fleetv1.ListConfigRevisionsResponse{}
	err := cs.s.view(ctx, func(tx store.Tx) error {
		revs, err := tx.ListConfigRevisions(ctx, req.Msg.GetMachineId())
		if err != nil {
			return err
		}
		for i := len(revs) - 1; i >= 0; i-- {
			c, err := decodeConfig(revs[i].Config)
			if err != nil {
				return err
			}
			out.Revisions = append(out.Revisions, revisionPB(revs[i], c))
		}
		return nil
	})
	return reply(out, err)
}

func proposalPB(p store.Proposal) (*fleetv1.ConfigProposal, error) {
	c, err := decodeConfig(p.Config)
	if err != nil {
		return nil, err
	}
	return &fleetv1.ConfigProposal{Id: p.ID, PartId: p.PartID, BaseRevision: p.BaseRevision, Config: c, Author: p.Author, Fragments: fragmentList(p.Fragments),
		State: p.State, Revision: p.Revision, Message: p.Message, CreatedAt: ts(p.CreatedAt)}, nil
}

func (cs configService) ListConfigProposals(ctx context.Context, req *connect.Request[fleetv1.ListConfigProposalsRequest]) (*connect.Response[fleetv1.ListConfigProposalsResponse], error) {
	out := &fleetv1.ListConfigProposalsResponse{}
	err := cs.s.view(ctx, func(tx store.Tx) error {
		ps, err := tx.ListProposals(ctx, req.Msg.GetMachineId())
		if err != nil {
			return err
		}
		slices.SortFunc(ps, func(a, b store.Proposal) int { return a.CreatedAt.Compare(b.CreatedAt) })
		for _, p := range ps {
			pb, err := proposalPB(p)
			if err != nil {
				return err
			}
			out.Proposals = append(out.Proposals, pb)
		}
		return nil
	})
	return reply(out, err)
}

func (cs configService) ResolveConfigProposal(ctx context.Context, req *connect.Request[fleetv1.ResolveConfigProposalRequest]) (*connect.Response[fleetv1.ResolveConfigProposalResponse], error) {
	msg := req.Msg
	c := callFrom(ctx)
	var p store.Proposal
	err := cs.s.update(ctx, func(tx store.Tx) error {
		var err error
		p, err = tx.GetProposal(ctx, msg.GetProposalId())
		if err == nil && p.MachineID != msg.GetMachineId() {
			err = store.ErrNotFound // another machine's proposal is not this one's
		}
		if err != nil {
			return authz.Explain(err, store.ErrNotFound, "machine/%s has no proposal %q", msg.GetMachineId(), msg.GetProposalId())
		}
		if p.State != proposalConflict {
			return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("proposal %q is %s, not a conflict", p.ID, p.State))
		}
		if !msg.GetAccept() {
			p.State, p.Message, p.Told = proposalDismissed, "dismissed by "+c.principal.ref(), false
			return tx.PutProposal(ctx, p)
		}
		revs, err := tx.ListConfigRevisions(ctx, p.MachineID)
		if err != nil {
			return err
		}
		var cur uint64
		var frags []string
		var curOwn *configv1.RobotConfig
		if len(revs) > 0 {
			cur, frags = revs[len(revs)-1].Revision, revs[len(revs)-1].Fragments
			if curOwn, err = decodeConfig(revs[len(revs)-1].Config); err != nil {
				return err
			}
		}
		own, err := decodeConfig(p.Config)
		if err != nil {
			return err
		}
		// The part edited the merged config: what its fragments gave
		// stays theirs, so their later revisions still apply.
		if own, err = detachFragments(ctx, tx, curOwn, frags, fragmentList(p.Fragments), own); err != nil {
			return err
		}
		rev, err := cs.s.nextRevision(ctx, tx, p.MachineID, cur, own, frags, fmt.Sprintf("%s (proposed by part:%s, %s)", c.principal.ref(), p.PartID, p.Author))
		if err != nil {
			return err
		}
		p.State, p.Revision, p.Told = proposalAccepted, rev.Revision, false
		p.Message = fmt.Sprintf("accepted by %s as revision %d", c.principal.ref(), rev.Revision)
		return tx.PutProposal(ctx, p)
	})
	if err != nil {
		return nil, err
	}
	pb, err := proposalPB(p)
	return reply(&fleetv1.ResolveConfigProposalResponse{Proposal: pb}, err)
}
