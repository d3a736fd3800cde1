package control

import (
	"crypto/ed25519"
	"fmt"
	"sync"
	"time"

	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/credential"
	"github.com/outpost-robotics/outpost/rbac"
)

// policy is everything decided from one grant bundle: built once per bundle
// version and swapped atomically, so a call never sees half of a change.
type policy struct {
	bundle    *syncv1.GrantBundle // nil when the part holds none
	version   uint64
	partID    string
	machine   rbac.Resource
	engine    *rbac.Engine
	err       error // why the bundle cannot be used, when it cannot
	expiresAt time.Time
	issuedAt  time.Time
	users     map[string]*principal
	keys      map[string]*principal
	tokenKeys map[string]ed25519.PublicKey

	// syncEvery is how often the part syncs now (nil: unknown).
	syncEvery func() time.Duration

	// machineRef is machine.String(), which every audit event names.
	machineRef string

	// verified caches proofs this policy verified (authn.go); decisions
	// caches the engine's answers (decide).
	mu        sync.Mutex
	verified  map[credential.Presented]verifiedProof
	decisions map[decisionKey]decided
}

// decisionKey is a question decide answers: may this principal of the
// policy do this action on the policy's machine.
type decisionKey struct {
	pr     *principal
	action rbac.Action
}

// decided is the engine's answer, with the reason audit events and
// refusals carry.
type decided struct {
	allowed bool
	reason  string
}

// maxDecisions bounds the decision cache; past it the cache starts over.
// A bundle's principals times the rules' actions stays far below it.
const maxDecisions = 4096

// decide is the engine's decision for pr on the machine, kept for the
// policy's life: the engine and pr's grants come from the policy's bundle
// and do not change, so neither does the answer, and a new bundle is a new
// policy with an empty cache. Keeping it spares each audited call
// formatting the same reason again (eight allocations).
func (p *policy) decide(pr *principal, a rbac.Action) decided {
	k := decisionKey{pr: pr, action: a}
	p.mu.Lock()
	d, ok := p.decisions[k]
	p.mu.Unlock()
	if ok {
		return d
	}
	rd := p.engine.Decide(&pr.subject, a, p.machine)
	d = decided{allowed: rd.Allowed, reason: rd.String()}
	p.mu.Lock()
	if len(p.decisions) >= maxDecisions {
		clear(p.decisions)
	}
	p.decisions[k] = d
	p.mu.Unlock()
	return d
}

// principal is one subject of the bundle.
type principal struct {
	subject   rbac.Subject
	display   string
	publicKey ed25519.PublicKey // API keys: empty for keys from before key pairs
	// For users: tokens issued before notBefore, and those in revoked, were
	// revoked at the cloud (password change, sign-out).
	notBefore time.Time
	revoked   map[string]bool
}

// unprovisioned names the machine a part without any grant bundle decides
// break-glass calls on: the socket's owner grant must reach something.
const unprovisioned = "unprovisioned"

// newPolicy builds the decision state of b (nil: no bundle yet).
func newPolicy(b *syncv1.GrantBundle) *policy {
	p := &policy{bundle: b, users: map[string]*principal{}, keys: map[string]*principal{}, tokenKeys: map[string]ed25519.PublicKey{},
		verified: map[credential.Presented]verifiedProof{}, decisions: map[decisionKey]decided{}}
	defer func() { p.machineRef = p.machine.String() }()
	if b == nil {
		p.machine, p.engine = rbac.Machine(unprovisioned), fallbackEngine()
		p.err = fmt.Errorf("the part holds no grants yet: connect it to the cloud once, or use the break-glass socket")
		return p
	}
	p.version = b.GetVersion()
	p.partID = b.GetPartId()
	p.machine = rbac.Machine(b.GetMachineId())
	p.expiresAt = b.GetExpiresAt().AsTime()
	p.issuedAt = b.GetIssuedAt().AsTime()
	eng, err := rbac.NewEngine(hierarchyOf(b))
	if err != nil {
		// Remote calls are refused; the break-glass socket still decides
		// on a stand-in machine.
		p.machine, p.engine = rbac.Machine(unprovisioned), fallbackEngine()
		p.err = fmt.Errorf("grant bundle version %d is unusable: %w", b.GetVersion(), err)
		return p
	}
	p.engine = eng
	if b.GetExpiresAt() == nil {
		p.err = fmt.Errorf("grant bundle version %d has no expiry", b.GetVersion())
		return p
	}
	for _, pr := range b.GetPrincipals() {
		s := &principal{display: pr.GetDisplayName()}
		if k := pr.GetPublicKey(); len(k) == ed25519.PublicKeySize {
			s.publicKey = ed25519.PublicKey(k)
		}
		switch pr.GetKind() {
		case syncv1.SubjectKind_SUBJECT_KIND_USER:
			s.subject.Kind = rbac.User
		case syncv1.SubjectKind_SUBJECT_KIND_API_KEY:
			s.subject.Kind = rbac.APIKey
		default:
			continue
		}
		s.subject.ID = pr.GetId()
		if nb := pr.GetTokensNotBefore(); nb != nil {
			s.notBefore = nb.AsTime()
		}
		for _, id := range pr.GetRevokedTokenIds() {
			if s.revoked == nil {
				s.revoked = map[string]bool{}
			}
			s.revoked[id] = true
		}
		for _, g := range pr.GetGrants() {
			if rg, ok := grantOf(g); ok {
				s.subject.Grants = append(s.subject.Grants, rg)
			}
		}
		if s.subject.Kind == rbac.User {
			p.users[s.subject.ID] = s
		} else {
			p.keys[s.subject.ID] = s
		}
	}
	for _, k := range b.GetTokenKeys() {
		if len(k.GetEd25519()) == ed25519.PublicKeySize && k.GetKeyId() != "" {
			p.tokenKeys[k.GetKeyId()] = ed25519.PublicKey(k.GetEd25519())
		}
	}
	return p
}

// fallbackEngine decides break-glass calls when there is no usable bundle:
// one org, location and machine, all "unprovisioned".
func fallbackEngine() *rbac.Engine {
	e, err := rbac.NewEngine(rbac.Hierarchy{
		Orgs:      []string{unprovisioned},
		Locations: []rbac.LocationInfo{{ID: unprovisioned, Org: unprovisioned}},
		Machines:  []rbac.MachineInfo{{ID: unprovisioned, Location: unprovisioned}},
	})
	if err != nil {
		panic("control: the fallback hierarchy is invalid: " + err.Error()) // a constant; tests build it
	}
	return e
}

// grantOf converts a bundle grant; malformed grants are dropped (they reach nothing).
func grantOf(g *syncv1.Grant) (rbac.Grant, bool) {
	var role rbac.Role
	switch g.GetRole() {
	case syncv1.Role_ROLE_OWNER:
		role = rbac.Owner
	case syncv1.Role_ROLE_OPERATOR:
		role = rbac.Operator
	default:
		return rbac.Grant{}, false
	}
	scope, err := rbac.ParseResource(g.GetScope())
	if err != nil {
		return rbac.Grant{}, false
	}
	rg := rbac.Grant{Role: role, Scope: scope}
	return rg, rg.Validate() == nil
}

// hierarchyOf converts the bundle's hierarchy for rbac.
func hierarchyOf(b *syncv1.GrantBundle) rbac.Hierarchy {
	h := b.GetHierarchy()
	out := rbac.Hierarchy{Orgs: h.GetOrgs()}
	for _, l := range h.GetLocations() {
		out.Locations = append(out.Locations, rbac.LocationInfo{ID: l.GetId(), Org: l.GetOrgId(), Parent: l.GetParentId()})
	}
	for _, s := range h.GetShares() {
		out.Shares = append(out.Shares, rbac.Share{Location: s.GetLocationId(), With: s.GetOrgId()})
	}
	if m := h.GetMachine(); m != nil {
		out.Machines = []rbac.MachineInfo{{ID: m.GetId(), Location: m.GetLocationId()}}
	}
	for _, id := range h.GetPartIds() {
		out.Parts = append(out.Parts, rbac.PartInfo{ID: id, Machine: h.GetMachine().GetId()})
	}
	return out
}

// expired reports whether the bundle is past its expiry at now.
func (p *policy) expired(now time.Time) bool {
	return p.bundle != nil && !now.Before(p.expiresAt)
}

// expiredMessage says why remote credentials are refused and what to do.
func (p *policy) expiredMessage(now time.Time) string {
	days := int(now.Sub(p.issuedAt).Hours() / 24)
	return fmt.Sprintf("grants expired %s; the part has not reached the cloud for %d days (grants issued %s); reconnect it to the cloud, or use the break-glass socket on the robot",
		p.expiresAt.UTC().Format(time.RFC3339), days, p.issuedAt.UTC().Format(time.RFC3339))
}

// access returns the highest-role grant of s that reaches the machine, and
// whether there is one: "anyone with access".
func (p *policy) access(s *rbac.Subject) (rbac.Grant, bool) {
	var best rbac.Grant
	found := false
	for _, g := range s.Grants {
		if p.engine.Covers(g, p.machine) && (!found || g.Role > best.Role) {
			best, found = g, true
		}
	}
	return best, found
}

// unknownKey is why an API key the bundle does not hold is refused. A key
// created at the cloud after the bundle was issued reaches the part with
// its next sync, so the caller is told when the bundle was issued and when
// the part syncs next; nothing else of the bundle is said, as the caller
// is not authenticated.
func (p *policy) unknownKey(keyID string) error {
	if p.bundle == nil {
		return fmt.Errorf("API key %s is unknown to this part: it holds no grants from the cloud yet, and takes them at its first sync", keyID)
	}
	when := "at its next sync with the cloud"
	if p.syncEvery != nil {
		if d := p.syncEvery(); d > 0 {
			// The next cycle comes within an interval and its jitter.
			when = fmt.Sprintf("after its next sync with the cloud, within about %s", (d + d/10).Round(time.Second))
		}
	}
	return fmt.Errorf("API key %s is unknown to this part or revoked: the grants it holds (version %d) were issued at %s; a key created after that works here %s (a revoked key never does)",
		keyID, p.version, p.issuedAt.UTC().Format(time.RFC3339), when)
}
