package cloud

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/cloud/partsync"
	"github.com/outpost-robotics/outpost/cloud/store"
	"github.com/outpost-robotics/outpost/credential"
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
	var m merged
	err := cs.s.view(ctx, func(tx store.Tx) error {
		var err error
		m, err = mergeMachine(ctx, tx, id, nil, nil)
		return err
	})
	if err != nil {
		return nil, err
	}
	rev := revisionPB(m.rev, m.own)
	rev.MachineId = id
	return connect.NewResponse(&fleetv1.GetMachineConfigResponse{Revision: rev, Merged: m.config, Fragments: m.fragments}), nil
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
		if errors.Is(err, store.ErrNotFound) || err == nil && f.OrgID != org {
			return connect.NewError(connect.CodeNotFound, fmt.Errorf("fragment_ids[%d]: no fragment %q in the machine's organization", i, id))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// nextRevision writes a machine config revision after validating the
// merged result; base must be the current revision.
func (s *Server) nextRevision(ctx context.Context, tx store.Tx, machineID string, base uint64, own *configv1.RobotConfig, fragments []string, author string) (store.ConfigRevision, error) {
	revs, err := tx.ListConfigRevisions(ctx, machineID)
	if err != nil {
		return store.ConfigRevision{}, err
	}
	var cur uint64
	if len(revs) > 0 {
		cur = revs[len(revs)-1].Revision
	}
	if base != cur {
		return store.ConfigRevision{}, connect.NewError(connect.CodeAborted,
			fmt.Errorf("base_revision %d is not current: machine/%s is at revision %d; start again from it", base, machineID, cur))
	}
	b, err := encodeConfig(own)
	if err != nil {
		return store.ConfigRevision{}, err
	}
	rev := store.ConfigRevision{MachineID: machineID, Revision: cur + 1, Config: b, Fragments: slices.Clone(fragments),
		Author: author, CreatedAt: s.clock.Now().UTC()}
	m, err := mergeMachine(ctx, tx, machineID, &rev, nil)
	if err != nil {
		return store.ConfigRevision{}, err
	}
	if err := validateMerged("the merged config", m); err != nil {
		return store.ConfigRevision{}, err
	}
	return rev, tx.PutConfigRevision(ctx, rev)
}

func (cs configService) UpdateMachineConfig(ctx context.Context, req *connect.Request[fleetv1.UpdateMachineConfigRequest]) (*connect.Response[fleetv1.UpdateMachineConfigResponse], error) {
	msg := req.Msg
	c := callFrom(ctx)
	org := c.snap.orgOf(rbac.Machine(msg.GetMachineId()))
	own := msg.GetConfig()
	if own == nil {
		own = &configv1.RobotConfig{}
	}
	var rev store.ConfigRevision
	err := cs.s.update(ctx, func(tx store.Tx) error {
		if err := checkFragments(ctx, tx, org, msg.GetFragmentIds()); err != nil {
			return err
		}
		var err error
		rev, err = cs.s.nextRevision(ctx, tx, msg.GetMachineId(), msg.GetBaseRevision(), own, msg.GetFragmentIds(), c.principal.ref())
		return err
	})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&fleetv1.UpdateMachineConfigResponse{Revision: revisionPB(rev, own)}), nil
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
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(out), nil
}

func proposalPB(p store.Proposal) (*fleetv1.ConfigProposal, error) {
	c, err := decodeConfig(p.Config)
	if err != nil {
		return nil, err
	}
	return &fleetv1.ConfigProposal{Id: p.ID, PartId: p.PartID, BaseRevision: p.BaseRevision, Config: c, Author: p.Author,
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
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(out), nil
}

func (cs configService) ResolveConfigProposal(ctx context.Context, req *connect.Request[fleetv1.ResolveConfigProposalRequest]) (*connect.Response[fleetv1.ResolveConfigProposalResponse], error) {
	msg := req.Msg
	c := callFrom(ctx)
	var p store.Proposal
	err := cs.s.update(ctx, func(tx store.Tx) error {
		var err error
		if p, err = tx.GetProposal(ctx, msg.GetProposalId()); err != nil || p.MachineID != msg.GetMachineId() {
			return connect.NewError(connect.CodeNotFound, fmt.Errorf("machine/%s has no proposal %q", msg.GetMachineId(), msg.GetProposalId()))
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
		if len(revs) > 0 {
			cur, frags = revs[len(revs)-1].Revision, revs[len(revs)-1].Fragments
		}
		own, err := decodeConfig(p.Config)
		if err != nil {
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
	if err != nil {
		return nil, internal(cs.s.log, "proposal", err)
	}
	return connect.NewResponse(&fleetv1.ResolveConfigProposalResponse{Proposal: pb}), nil
}

// HandleProposal keeps a part's offline config edit: it becomes the next
// revision when it carries the endorsement of someone who may edit the
// machine's config (verified here, decided by rbac now), its base is still
// current and the merged result is valid; otherwise it is kept as a
// conflict for an owner (ListConfigProposals, ResolveConfigProposal), never
// dropped. The part's secret alone never changes the config, and the
// author recorded is the verified signer, never the part's text. A repeat
// is a no-op.
func (d *documents) HandleProposal(ctx context.Context, part partsync.Part, storeID string, seq uint64, p *syncv1.ConfigProposal) error {
	s := d.s
	id := part.ID + "|" + storeID + "|" + strconv.FormatUint(seq, 10)
	signer, held := s.endorsement(ctx, part, p)
	return s.st.Update(ctx, func(tx store.Tx) error {
		if _, err := tx.GetProposal(ctx, id); err == nil {
			return nil
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		own := p.GetConfig()
		if own == nil {
			own = &configv1.RobotConfig{}
		}
		b, err := encodeConfig(own)
		if err != nil {
			b = nil
		}
		now := s.clock.Now().UTC()
		author := "part:" + part.ID
		if signer != "" {
			author = signer
		}
		prop := store.Proposal{ID: id, PartID: part.ID, MachineID: part.MachineID, Seq: seq, BaseRevision: p.GetBaseRevision(),
			Config: b, Author: author, CreatedAt: now}
		revs, err := tx.ListConfigRevisions(ctx, part.MachineID)
		if err != nil {
			return err
		}
		var frags []string
		if len(revs) > 0 {
			frags = revs[len(revs)-1].Fragments
		}
		var rev store.ConfigRevision
		rerr := held
		if rerr == nil {
			rev, rerr = s.nextRevision(ctx, tx, part.MachineID, p.GetBaseRevision(), own, frags, fmt.Sprintf("%s (edited on part:%s)", author, part.ID))
		}
		var ce *connect.Error
		switch {
		case rerr == nil:
			prop.State, prop.Revision = proposalAccepted, rev.Revision
			prop.Message = fmt.Sprintf("accepted as revision %d", rev.Revision)
		case errors.As(rerr, &ce):
			var cur uint64
			if len(revs) > 0 {
				cur = revs[len(revs)-1].Revision
			}
			prop.State, prop.Revision = proposalConflict, cur
			prop.Message = "kept for an owner to resolve: " + ce.Message()
		default:
			return rerr
		}
		if err := tx.PutProposal(ctx, prop); err != nil {
			return err
		}
		if err := tx.AppendAudit(ctx, store.AuditEvent{ID: s.auditID(), Time: now, Subject: author,
			Procedure: "/outpost.sync.v1.SyncService/Upload", Action: string(rbac.MachineConfigEdit),
			Resource: "machine/" + part.MachineID, Allowed: held == nil, OrgID: part.OrgID,
			Reason: "an offline config edit proposed by part:" + part.ID + ": " + prop.Message, Outcome: prop.State}); err != nil {
			return err
		}
		return s.touchDocs(ctx, tx)
	})
}

// ProposalOutcomes returns the outcomes the part has not been told and
// marks them told. A pull answer that is lost on the way loses the
// outcome's log line on the part, nothing else: the revision is in the
// config it pulls, and owners see every proposal in ListConfigProposals.
func (d *documents) ProposalOutcomes(ctx context.Context, part partsync.Part) ([]*syncv1.ProposalOutcome, error) {
	// Documents ran just before in the same pull and left the part's entry
	// at the current token; a proposal handled since then is told in the
	// next pull. This keeps a quiet pull at two small reads.
	d.mu.Lock()
	e := d.cache[part.ID]
	quiet := e != nil && e.noOutcomes && e.outcomeToken == e.token
	tok := ""
	if e != nil {
		tok = e.token
	}
	d.mu.Unlock()
	if quiet {
		return nil, nil
	}
	var out []*syncv1.ProposalOutcome
	err := d.s.st.Update(ctx, func(tx store.Tx) error {
		out = nil
		ps, err := tx.ListProposals(ctx, part.MachineID)
		if err != nil {
			return err
		}
		for _, p := range ps {
			if p.PartID != part.ID || p.Told {
				continue
			}
			out = append(out, &syncv1.ProposalOutcome{Seq: p.Seq, Accepted: p.State == proposalAccepted,
				Revision: p.Revision, Message: p.Message})
			p.Told = true
			if err := tx.PutProposal(ctx, p); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("proposal outcomes of part/%s: %w", part.ID, err)
	}
	if len(out) == 0 {
		d.mu.Lock()
		if e := d.cache[part.ID]; e != nil && e.token == tok {
			e.noOutcomes, e.outcomeToken = true, tok
		}
		d.mu.Unlock()
	}
	return out, nil
}

// touchDocs replaces the documents token: every parts' cached documents are
// checked again on its next pull.
func (s *Server) touchDocs(ctx context.Context, tx store.Tx) error {
	return tx.PutMeta(ctx, metaDocsToken, []byte(s.auditID()))
}

// endorsement decides whether a part's proposal may become a revision on
// its own: it must carry an endorsement that verifies (credential.
// VerifyEndorsement: signed by an API key the cloud knows, or by a session
// bound to a token the cloud issued, over this machine, this base and these
// config bytes) from a subject that rbac lets edit the machine's config now.
// It returns the signer ("user:ID" or "apikey:ID", "" when none verified)
// and, when the proposal must wait for an owner, why, as a Connect error.
func (s *Server) endorsement(ctx context.Context, part partsync.Part, p *syncv1.ConfigProposal) (string, error) {
	wait := func(format string, a ...any) error {
		return connect.NewError(connect.CodePermissionDenied, fmt.Errorf(format, a...))
	}
	e := p.GetEndorsement()
	if e == nil {
		return "", wait("the edit carries no editor's signature (made on the robot without a key, or by an older client)")
	}
	cfg := p.GetConfig()
	if cfg == nil {
		cfg = &configv1.RobotConfig{}
	}
	raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(cfg)
	if err != nil {
		return "", wait("the config does not encode")
	}
	keyOf := func(id string) ed25519.PublicKey {
		var pub ed25519.PublicKey
		_ = s.st.View(ctx, func(tx store.Tx) error {
			k, err := tx.GetAPIKey(ctx, id)
			if err == nil {
				pub = k.PublicKey
			}
			return nil
		})
		return pub
	}
	ref, err := credential.VerifyEndorsement(credential.Endorsement{KeyID: e.GetKeyId(), Token: e.GetAccessToken(), Signature: e.GetSignature()},
		keyOf, s.signer.Keys(), part.MachineID, p.GetBaseRevision(), raw, func(c *credential.Claims) error {
			return s.st.View(ctx, func(tx store.Tx) error {
				u, err := tx.GetUser(ctx, c.Subject)
				if err != nil {
					return err
				}
				if tokenRevoked(u, c) {
					return errors.New("revoked at the cloud (signed out, or the password changed)")
				}
				return nil
			})
		})
	if err != nil {
		return "", wait("the editor's signature does not verify: %v", err)
	}
	kind, id, _ := strings.Cut(ref, "/")
	signer := kind + ":" + id
	pr := &principal{id: id}
	err = s.st.View(ctx, func(tx store.Tx) error {
		switch kind {
		case "user":
			u, err := tx.GetUser(ctx, id)
			if err != nil {
				return err
			}
			pr.kind, pr.admin = rbac.User, u.Admin
		default:
			if _, err := tx.GetAPIKey(ctx, id); err != nil {
				return err
			}
			pr.kind = rbac.APIKey
		}
		pr.grants, err = tx.ListGrantsBySubject(ctx, signer)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return signer, wait("%s no longer exists", signer)
	}
	if err != nil {
		return signer, err
	}
	snap, err := s.snaps.get(ctx)
	if err != nil {
		return signer, err
	}
	d := snap.engine.Decide(rbacSubject(pr, snap), rbac.MachineConfigEdit, rbac.Machine(part.MachineID))
	if !d.Allowed {
		return signer, wait("%s", d.String())
	}
	return signer, nil
}
