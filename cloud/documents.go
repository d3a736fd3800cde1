package cloud

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/authz"
	"github.com/outpost-robotics/outpost/cloud/auth"
	"github.com/outpost-robotics/outpost/cloud/ingest"
	"github.com/outpost-robotics/outpost/cloud/partsync"
	"github.com/outpost-robotics/outpost/cloud/store"
	"github.com/outpost-robotics/outpost/config"
	"github.com/outpost-robotics/outpost/rbac"
	"github.com/outpost-robotics/outpost/signed"
)

// DefaultDocumentTTL is how long a part honours its signed config and grant
// bundle without cloud contact, unless its organization chose shorter.
const DefaultDocumentTTL = 60 * 24 * time.Hour

// metaDocsToken is the store meta key holding the documents token: a value
// every change to the cloud's state replaces (see Server.update), so a
// cached document is known current while the token is unchanged.
const metaDocsToken = "docs-token"

// Bundle versions (a part refuses a lower version than it holds, so a
// replayed old document cannot roll it back), content-addressed generations:
//
// For each part the store keeps what was last signed (store.PartDocuments):
// each document's version, a SHA-256 digest of its content without version
// and times, and the signed bytes. A document is re-signed with version+1
// when its digest changes (a grant covering the machine, an API key, the
// hierarchy above it, a config revision, a fragment it uses), when half of
// its lifetime has passed (so a part that syncs never runs into expiry), or
// when the organization's lifetime became shorter than what was issued.
// The version therefore only grows and moves exactly when the part's
// document does; changes elsewhere in the fleet do not re-send anything.
//
// Pulls are cheap because every change, in the same transaction, replaces
// the store's documents token with a fresh value (a blind write, so it never
// makes transactions conflict). A part's signed documents are cached in
// memory with the token they were checked under; a pull reads the token
// (one small read) and, when it is unchanged, answers from the cache. A
// changed token makes the next pull of each part rebuild and compare
// digests once. Replicas sharing a store see each other's tokens.
type documents struct {
	s      *Server
	signer signed.Signer

	mu    sync.Mutex
	cache map[string]*docEntry
	// chunks are the package chunks each part may fetch.
	chunks map[string]*issuedChunks
}

// docEntry is one part's signed documents, current as of token.
type docEntry struct {
	token        string
	rec          store.PartDocuments
	config       *syncv1.SignedDocument
	grants       *syncv1.SignedDocument
	noOutcomes   bool // no untold proposal outcome, as of token
	outcomeToken string
}

var (
	_ partsync.PeerNoter        = (*documents)(nil)
	_ partsync.Backend          = (*documents)(nil)
	_ partsync.ProposalOutcomer = (*documents)(nil)
)

// AuthenticatePart checks a part's secret against the hierarchy snapshot,
// which holds the SHA-256 of every part's secret.
func (d *documents) AuthenticatePart(ctx context.Context, partID, secret string) (partsync.Part, error) {
	snap, err := d.s.snaps.get(ctx)
	if err != nil {
		return partsync.Part{}, err
	}
	p, ok := snap.parts[partID]
	if !ok || !auth.SecretMatches(secret, p.SecretHash) {
		return partsync.Part{}, fmt.Errorf("part %s: %w", partID, partsync.ErrUnknownPart)
	}
	return partsync.Part{ID: p.ID, MachineID: p.MachineID, OrgID: snap.orgOf(rbac.Part(p.ID))}, nil
}

// PollInterval leaves the interval to partsync's default.
func (d *documents) PollInterval(partsync.Part) time.Duration { return 0 }

func (d *documents) token(ctx context.Context) (string, error) {
	var tok []byte
	err := d.s.st.View(ctx, func(tx store.Tx) error {
		var err error
		tok, err = tx.GetMeta(ctx, metaDocsToken)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		return "", fmt.Errorf("read documents token: %w", err)
	}
	return string(tok), nil
}

// Documents answers a pull: the part's documents newer than it holds.
func (d *documents) Documents(ctx context.Context, part partsync.Part, haveConfig, haveGrants uint64) (*syncv1.SignedDocument, *syncv1.SignedDocument, error) {
	tok, err := d.token(ctx)
	if err != nil {
		return nil, nil, err
	}
	now := d.s.clock.Now()
	d.mu.Lock()
	e := d.cache[part.ID]
	d.mu.Unlock()
	if e == nil || e.token != tok || renewDue(e.rec.ConfigIssuedAt, e.rec.ConfigExpiresAt, now) ||
		renewDue(e.rec.GrantsIssuedAt, e.rec.GrantsExpiresAt, now) ||
		haveConfig > e.rec.ConfigVersion || haveGrants > e.rec.GrantsVersion {
		if e, err = d.build(ctx, part.ID, tok, haveConfig, haveGrants); err != nil {
			return nil, nil, err
		}
		d.mu.Lock()
		d.cache[part.ID] = e
		d.mu.Unlock()
	}
	var cfg, grants *syncv1.SignedDocument
	if e.rec.ConfigVersion > haveConfig {
		cfg = e.config
	}
	if e.rec.GrantsVersion > haveGrants {
		grants = e.grants
	}
	return cfg, grants, nil
}

// documentTTL is how long an organization's documents are valid.
func documentTTL(o store.Org) time.Duration {
	if o.BundleTTL > 0 && o.BundleTTL < DefaultDocumentTTL {
		return o.BundleTTL
	}
	return DefaultDocumentTTL
}

// renewDue says a document issued at issued, expiring at expires, is past
// half its life and should be issued again.
func renewDue(issued, expires, now time.Time) bool {
	return !now.Before(issued.Add(expires.Sub(issued) / 2))
}

// build computes the part's documents and issues new versions where their
// content changed, in one transaction.
func (d *documents) build(ctx context.Context, partID, tok string, haveConfig, haveGrants uint64) (*docEntry, error) {
	snap, err := d.s.snaps.get(ctx)
	if err != nil {
		return nil, err
	}
	p, ok := snap.parts[partID]
	if !ok {
		return nil, fmt.Errorf("build documents of part/%s: %w", partID, store.ErrNotFound)
	}
	org, ok := snap.orgs[snap.orgOf(rbac.Machine(p.MachineID))]
	if !ok {
		return nil, fmt.Errorf("build documents of part/%s: no organization", partID)
	}
	ttl := documentTTL(org)
	parts, err := d.machineParts(ctx, snap, p.MachineID)
	if err != nil {
		return nil, fmt.Errorf("build documents of part/%s: %w", partID, err)
	}
	e := &docEntry{token: tok}
	err = d.s.st.Update(ctx, func(tx store.Tx) error {
		now := d.s.clock.Now().UTC()
		cfg, err := configDocument(ctx, tx, p, parts, d.platform(ctx, partID))
		if err != nil {
			return err
		}
		gb, err := d.grantBundle(ctx, tx, snap, p)
		if err != nil {
			return err
		}
		rec, err := tx.GetPartDocuments(ctx, partID)
		if errors.Is(err, store.ErrNotFound) {
			rec = store.PartDocuments{PartID: partID}
		} else if err != nil {
			return err
		}
		changed := false
		cdig, err := digest(cfg)
		if err != nil {
			return err
		}
		if reissue(rec.Config, rec.ConfigDigest, cdig, rec.ConfigIssuedAt, rec.ConfigExpiresAt, rec.ConfigVersion, haveConfig, now, ttl) {
			cfg.Version = max(rec.ConfigVersion, haveConfig) + 1
			cfg.IssuedAt, cfg.ExpiresAt = timestamppb.New(now), timestamppb.New(now.Add(ttl))
			doc, err := d.sign(cfg)
			if err != nil {
				return err
			}
			if !bytes.Equal(rec.ConfigDigest, cdig) {
				rec.PreviousConfig = rec.Config
			}
			rec.ConfigVersion, rec.ConfigDigest, rec.ConfigIssuedAt, rec.ConfigExpiresAt, rec.Config = cfg.Version, cdig, now, now.Add(ttl), doc
			changed = true
		}
		gdig, err := digest(gb)
		if err != nil {
			return err
		}
		if reissue(rec.Grants, rec.GrantsDigest, gdig, rec.GrantsIssuedAt, rec.GrantsExpiresAt, rec.GrantsVersion, haveGrants, now, ttl) {
			gb.Version = max(rec.GrantsVersion, haveGrants) + 1
			gb.IssuedAt, gb.ExpiresAt = timestamppb.New(now), timestamppb.New(now.Add(ttl))
			doc, err := d.sign(gb)
			if err != nil {
				return err
			}
			rec.GrantsVersion, rec.GrantsDigest, rec.GrantsIssuedAt, rec.GrantsExpiresAt, rec.Grants = gb.Version, gdig, now, now.Add(ttl), doc
			changed = true
		}
		e.rec = rec
		if changed {
			return tx.PutPartDocuments(ctx, rec)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("build documents of part/%s: %w", partID, err)
	}
	e.config, e.grants = &syncv1.SignedDocument{}, &syncv1.SignedDocument{}
	if err := proto.Unmarshal(e.rec.Config, e.config); err != nil {
		return nil, fmt.Errorf("decode signed config of part/%s: %w", partID, err)
	}
	if err := proto.Unmarshal(e.rec.Grants, e.grants); err != nil {
		return nil, fmt.Errorf("decode signed grants of part/%s: %w", partID, err)
	}
	return e, nil
}

// reissue decides whether a document gets a new version.
func reissue(held, heldDigest, dig []byte, issued, expires time.Time, version, have uint64, now time.Time, ttl time.Duration) bool {
	return len(held) == 0 || !bytes.Equal(heldDigest, dig) || renewDue(issued, expires, now) ||
		expires.After(now.Add(ttl)) || have > version
}

func (d *documents) sign(m proto.Message) ([]byte, error) {
	doc, err := d.signer.Sign(m)
	if err != nil {
		return nil, err
	}
	return proto.MarshalOptions{Deterministic: true}.Marshal(doc)
}

// digest hashes a document's content; version and times are still unset.
func digest(m proto.Message) ([]byte, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("digest %s: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	sum := sha256.Sum256(b)
	return sum[:], nil
}

// configDocument is the part's config document without version and times:
// the part's share of the machine's merged config, and the machine's parts
// with the components placed on each. A merged config that no longer
// validates (a fragment edit raced a machine edit) is still sent: the
// daemon refuses it by the same rules and keeps the config it runs, and the
// cloud's validation on write makes this rare.
func configDocument(ctx context.Context, tx store.Tx, p store.Part, parts []*configv1.MachinePart, platform string) (*syncv1.ConfigDocument, error) {
	m, err := mergeMachine(ctx, tx, p.MachineID, nil, nil)
	if err != nil {
		return nil, err
	}
	parts = cloneParts(parts)
	shares := config.Split(m.config, parts)
	share := shares[p.Name]
	if share == nil {
		share = &configv1.RobotConfig{}
	}
	doc := &syncv1.ConfigDocument{PartId: p.ID, MachineId: p.MachineID, Config: share,
		MachineRevision: m.rev.Revision, Fragments: m.fragments, Parts: parts}
	// Each package placed on the part goes with the version it resolves to
	// for the part's platform; one that resolves to none is left out (the
	// part keeps what it runs), and the rollout status says why.
	org := ""
	if len(share.GetPackages()) > 0 {
		mach, err := tx.GetMachine(ctx, p.MachineID)
		if err != nil {
			return nil, err
		}
		loc, err := tx.GetLocation(ctx, mach.LocationID)
		if err != nil {
			return nil, err
		}
		org = loc.OrgID
	}
	for _, ref := range share.GetPackages() {
		v, problem, err := resolvePackage(ctx, tx, org, ref, platform)
		if err != nil {
			return nil, err
		}
		if problem != "" {
			continue
		}
		signedManifest := &syncv1.SignedDocument{}
		if err := proto.Unmarshal(v.Manifest, signedManifest); err != nil {
			return nil, fmt.Errorf("decode the signed manifest of %s/%s %s: %w", v.OrgID, v.Name, v.Version, err)
		}
		doc.Packages = append(doc.Packages, &syncv1.ResolvedPackage{Name: ref.GetName(), Requested: cmp.Or(ref.GetVersion(), config.VersionLatest), Manifest: signedManifest})
	}
	return doc, nil
}

func cloneParts(parts []*configv1.MachinePart) []*configv1.MachinePart {
	out := make([]*configv1.MachinePart, len(parts))
	for i, p := range parts {
		out[i] = proto.CloneOf(p)
	}
	return out
}

// machineParts lists a machine's parts for its documents, main part first,
// with the certificate fingerprint and addresses each last reported.
func (d *documents) machineParts(ctx context.Context, snap *snapshot, machineID string) ([]*configv1.MachinePart, error) {
	ps, err := machineParts(snap, machineID, "")
	if err != nil {
		return nil, err
	}
	out := partsPB(ps)
	if d.s.ingest == nil {
		return out, nil
	}
	for _, mp := range out {
		st, err := d.s.ingest.Status(ctx, mp.GetId())
		if errors.Is(err, ingest.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read status of part/%s: %w", mp.GetId(), err)
		}
		if fp := st.Status.GetControlCertSha256(); len(fp) == sha256.Size {
			mp.Fingerprint = hex.EncodeToString(fp)
		}
		// What the part said is checked as the daemon will check it, so a
		// part reporting junk cannot make its machine's documents invalid.
		for _, a := range st.Status.GetControlAddresses() {
			if len(mp.Addresses) < config.MaxAddresses && config.CheckAddress(a) == nil {
				mp.Addresses = append(mp.Addresses, a)
			}
		}
	}
	return out, nil
}

// partsPB describes parts as a config document lists them, without what
// they report.
func partsPB(ps []store.Part) []*configv1.MachinePart {
	out := make([]*configv1.MachinePart, 0, len(ps))
	for _, p := range ps {
		out = append(out, &configv1.MachinePart{Id: p.ID, Name: p.Name, Main: p.Main})
	}
	return out
}

// grantBundle is the part's grant bundle without version and times: the
// machine's ancestry, every user and API key with a grant covering the
// machine (with only those grants), and the keys that verify tokens.
func (d *documents) grantBundle(ctx context.Context, tx store.Tx, snap *snapshot, p store.Part) (*syncv1.GrantBundle, error) {
	m := snap.machines[p.MachineID]
	h := &syncv1.Hierarchy{Machine: &syncv1.HierarchyMachine{Id: m.ID, LocationId: m.LocationID}}
	orgs := map[string]bool{}
	for id := m.LocationID; id != ""; id = snap.locations[id].ParentID {
		l, ok := snap.locations[id]
		if !ok || len(h.Locations) > maxDepth+1 {
			break
		}
		orgs[l.OrgID] = true
		h.Locations = append(h.Locations, &syncv1.HierarchyLocation{Id: l.ID, OrgId: l.OrgID, ParentId: l.ParentID})
		for _, with := range l.SharedWith {
			orgs[with] = true
			h.Shares = append(h.Shares, &syncv1.HierarchyShare{LocationId: l.ID, OrgId: with})
		}
	}
	for o := range orgs {
		h.Orgs = append(h.Orgs, o)
	}
	slices.Sort(h.Orgs)
	h.PartIds = slices.Clone(snap.partsOf[m.ID])

	// Only grants on the machine, a location above it, its organization or
	// an organization a location above it is shared with can cover it, so
	// only those scopes are read; Covers still decides each one.
	scopes := []string{"machine/" + m.ID}
	for _, l := range h.Locations {
		scopes = append(scopes, "location/"+l.GetId())
	}
	for _, o := range h.Orgs {
		scopes = append(scopes, "org/"+o)
	}
	target := rbac.Machine(m.ID)
	bySubject := map[string]*syncv1.Principal{}
	for _, scope := range scopes {
		gs, err := tx.ListGrantsByScope(ctx, scope)
		if err != nil {
			return nil, err
		}
		for _, g := range gs {
			rg, err := toRBACGrant(g)
			if err != nil || !snap.engine.Covers(rg, target) {
				continue
			}
			// Keyed by the subject, not the stored spelling: a subject
			// may hold grants stored under both.
			who := subjectOf(g)
			pr := bySubject[who.String()]
			if pr == nil {
				if pr, err = principalOf(ctx, tx, who); err != nil {
					return nil, err
				}
				if pr == nil {
					continue // the subject is gone; its grants go with it
				}
				bySubject[who.String()] = pr
			}
			role := syncv1.Role_ROLE_OPERATOR
			if rg.Role == rbac.Owner {
				role = syncv1.Role_ROLE_OWNER
			}
			pr.Grants = append(pr.Grants, &syncv1.Grant{Role: role, Scope: g.Scope})
		}
	}
	gb := &syncv1.GrantBundle{PartId: p.ID, MachineId: m.ID, Hierarchy: h, TokenKeys: []*syncv1.PublicKey{d.signer.PublicKey()}}
	subjects := make([]string, 0, len(bySubject))
	for s := range bySubject {
		subjects = append(subjects, s)
	}
	sort.Strings(subjects)
	for _, s := range subjects {
		pr := bySubject[s]
		slices.SortFunc(pr.Grants, func(a, b *syncv1.Grant) int {
			if a.Scope != b.Scope {
				return strings.Compare(a.Scope, b.Scope)
			}
			return int(a.Role) - int(b.Role)
		})
		gb.Principals = append(gb.Principals, pr)
	}
	return gb, nil
}

// principalOf describes a grant's subject, or nil when it no longer exists.
func principalOf(ctx context.Context, tx store.Tx, subject authz.Subject) (*syncv1.Principal, error) {
	switch subject.Kind {
	case authz.KindUser:
		u, err := tx.GetUser(ctx, subject.ID)
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		pr := &syncv1.Principal{Kind: syncv1.SubjectKind_SUBJECT_KIND_USER, Id: u.ID, DisplayName: u.Email}
		if !u.TokensNotBefore.IsZero() {
			pr.TokensNotBefore = timestamppb.New(u.TokensNotBefore.Truncate(time.Second))
		}
		for _, r := range u.RevokedTokens {
			pr.RevokedTokenIds = append(pr.RevokedTokenIds, r.ID)
		}
		return pr, nil
	case authz.KindAPIKey:
		k, err := tx.GetAPIKey(ctx, subject.ID)
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		return &syncv1.Principal{Kind: syncv1.SubjectKind_SUBJECT_KIND_API_KEY, Id: k.ID, DisplayName: k.Name, PublicKey: k.PublicKey}, nil
	}
	return nil, nil
}

// validateMerged runs the daemon's validator on a merged config and turns
// its verdict into an InvalidArgument naming the fields.
func validateMerged(ctx context.Context, tx store.Tx, machineID, what string, m merged) error {
	ps, err := tx.ListParts(ctx, machineID)
	if err != nil {
		return fmt.Errorf("read parts of machine/%s: %w", machineID, err)
	}
	if err := config.ValidateMachine(m.config, partsPB(ps)); err != nil {
		return invalid("%s: %v", what, err)
	}
	return nil
}

// touchDocs replaces the documents token: every parts' cached documents are
// checked again on its next pull.
func (s *Server) touchDocs(ctx context.Context, tx store.Tx) error {
	return tx.PutMeta(ctx, metaDocsToken, []byte(s.auditID()))
}

// PeerChanged re-issues the documents of the part's machine when the part
// reports a new certificate or new addresses: its peers find and pin it by
// what their documents say.
func (d *documents) PeerChanged(ctx context.Context, _ partsync.Part) error {
	return d.s.st.Update(ctx, func(tx store.Tx) error { return d.s.touchDocs(ctx, tx) })
}
