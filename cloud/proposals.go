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
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/authz"
	"github.com/outpost-robotics/outpost/cloud/partsync"
	"github.com/outpost-robotics/outpost/cloud/store"
	"github.com/outpost-robotics/outpost/credential"
	"github.com/outpost-robotics/outpost/rbac"
)

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
			Config: b, Author: author, CreatedAt: now, Fragments: fragmentMap(p.GetFragments())}
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
			// The part edited the merged config: what its fragments
			// gave stays theirs.
			var cur *configv1.RobotConfig
			if len(revs) > 0 {
				cur, rerr = decodeConfig(revs[len(revs)-1].Config)
			}
			if rerr == nil {
				own, rerr = detachFragments(ctx, tx, cur, frags, p.GetFragments(), own)
			}
			if rerr == nil {
				rev, rerr = s.nextRevision(ctx, tx, part.MachineID, p.GetBaseRevision(), own, frags, fmt.Sprintf("%s (edited on part:%s)", author, part.ID))
			}
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

// fragmentMap and fragmentList convert a proposal's fragment versions
// between the wire and the store.
func fragmentMap(fs []*syncv1.FragmentVersion) map[string]uint64 {
	if len(fs) == 0 {
		return nil
	}
	m := make(map[string]uint64, len(fs))
	for _, f := range fs {
		// One over the bound is kept, so accepting it later is refused
		// as the first try was; a hostile part cannot make it grow.
		if len(m) > maxFragments {
			break
		}
		m[f.GetId()] = f.GetVersion()
	}
	return m
}

func fragmentList(m map[string]uint64) []*syncv1.FragmentVersion {
	out := make([]*syncv1.FragmentVersion, 0, len(m))
	for id, v := range m {
		out = append(out, &syncv1.FragmentVersion{Id: id, Version: v})
	}
	slices.SortFunc(out, func(a, b *syncv1.FragmentVersion) int { return strings.Compare(a.GetId(), b.GetId()) })
	return out
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

// endorsement decides whether a part's proposal may become a revision on
// its own: it must carry an endorsement that verifies (credential.
// VerifyEndorsement: signed by an API key the cloud knows, or by a session
// bound to a token the cloud issued, over this machine, this base and these
// config bytes) from a subject that rbac lets edit the machine's config now.
// It returns the signer (its subject's spelling, "" when none verified)
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
	subj, err := authz.Parse(ref)
	if err != nil {
		return "", wait("the editor's signature names no subject: %v", err)
	}
	signer := subj.String()
	pr := &principal{kind: subj.RBACKind(), id: subj.ID}
	err = s.st.View(ctx, func(tx store.Tx) error {
		if subj.Kind == authz.KindUser {
			u, err := tx.GetUser(ctx, subj.ID)
			if err != nil {
				return err
			}
			pr.admin = u.Admin
		} else if _, err := tx.GetAPIKey(ctx, subj.ID); err != nil {
			return err
		}
		var err error
		pr.grants, err = grantsOf(ctx, tx, subj)
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
