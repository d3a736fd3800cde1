package rbac

import (
	"slices"
)

// relation is how far a grant's reach overlaps the resource of a check.
type relation uint8

const (
	relNone    relation = iota // the grant does not touch the resource
	relPartial                 // the grant reaches part of the resource's data
	relFull                    // the grant reaches the whole resource
)

// lookup returns the node of r, if the hierarchy knows it.
func (e *Engine) lookup(r Resource) (int32, bool) {
	if r.Kind == KindNone || r.Kind > KindModule {
		return 0, false
	}
	n, ok := e.index[r.Kind][r.ID]
	return n, ok
}

// grantNode returns the node of a well-formed grant's scope; malformed grants
// and grants on scopes this hierarchy does not know reach nothing.
func (e *Engine) grantNode(g *Grant) (int32, bool) {
	if g.Role != Owner && g.Role != Operator {
		return 0, false
	}
	switch g.Scope.Kind {
	case KindOrg, KindLocation, KindMachine:
		return e.lookup(g.Scope)
	}
	return 0, false
}

// cellIndex is the column of the seed tables for a role at a scope kind.
func cellIndex(r Role, k ResourceKind) int {
	i := int(k-KindOrg) * 2
	if r == Operator {
		i++
	}
	return i
}

// covers reports whether a grant scoped at g reaches t: t is g or under it,
// or g is an org that t's location (or an ancestor of it) is shared with.
func (e *Engine) covers(g, t int32) bool {
	gn, tn := &e.nodes[g], &e.nodes[t]
	if gn.pre <= tn.pre && tn.pre < gn.post {
		return true
	}
	if gn.kind == KindOrg && tn.loc >= 0 {
		return contains(e.sharedWith[tn.loc], g)
	}
	return false
}

// inside reports whether some of a grant's reach at g lies under t (an org or
// location) without covering it: g's own scope, or a location shared with g.
func (e *Engine) inside(g, t int32) bool {
	gn, tn := &e.nodes[g], &e.nodes[t]
	if gn.kind != KindOrg {
		return tn.pre <= gn.pre && gn.pre < tn.post
	}
	for _, s := range e.sharedIn[g] {
		if p := e.nodes[s].pre; tn.pre <= p && p < tn.post {
			return true
		}
	}
	return false
}

// home is the organization a grant is held in: the org itself, or the org
// that owns the grant's location or machine.
func (e *Engine) home(g int32) int32 { return e.nodes[g].org }

// relate applies an action's mode to one grant and one resource.
func (e *Engine) relate(m mode, g, t int32) relation {
	switch m {
	case modeReach:
		if e.covers(g, t) {
			return relFull
		}
	case modeMember:
		if e.home(g) == e.nodes[t].org || e.covers(g, t) {
			return relFull
		}
	case modeData:
		if e.covers(g, t) {
			return relFull
		}
		if k := e.nodes[t].kind; (k == KindOrg || k == KindLocation) && e.inside(g, t) {
			return relPartial
		}
	case modeDataset:
		if e.home(g) != e.nodes[t].org {
			return relNone
		}
		if e.nodes[g].kind == KindOrg {
			return relFull
		}
		return relPartial
	}
	return relNone
}

// Decide answers whether s may do a on r. It does not allocate; the
// decision names the grant that allowed it or says why nothing did.
//
// For data and dataset actions on a set (an org, a location, a dataset) the
// answer may be Allowed and Partial: the subject may use only the data its
// grants reach, and Filter says which. location.move checks only the
// location here; DecideMove also checks the destination.
func (e *Engine) Decide(s *Subject, a Action, r Resource) Decision {
	d := Decision{Action: a, Resource: r, GrantIndex: -1}
	if s == nil {
		d.Reason = ReasonNoSubject
		return d
	}
	d.SubjectKind, d.SubjectID = s.Kind, s.ID
	i, ok := e.actions[a]
	if !ok {
		d.Reason = ReasonUnknownAction
		return d
	}
	spec := &e.specs[i]
	if spec.mode == modeNone {
		switch {
		case !r.IsZero():
			d.Reason = ReasonWrongKind
		case s.Kind == User || len(s.Grants) > 0:
			// An API key exists only through its grants; a key with none is revoked.
			d.Allowed, d.Reason = true, ReasonAnySubject
		default:
			d.Reason = ReasonNoGrants
		}
		return d
	}
	if !spec.kinds.has(r.Kind) {
		d.Reason = ReasonWrongKind
		return d
	}
	t, ok := e.lookup(r)
	if !ok {
		d.Reason = ReasonUnknownResource
		return d
	}
	e.decideAt(&d, s, spec, t)
	return d
}

// decideAt fills d for a known action and resource node. A full grant wins
// at once; otherwise the first partial grant, else the first grant that
// reaches the resource without permitting the action explains the denial.
func (e *Engine) decideAt(d *Decision, s *Subject, spec *actionSpec, t int32) {
	if len(s.Grants) == 0 {
		d.Reason = ReasonNoGrants
		return
	}
	partial, denied := -1, -1
	for i := range s.Grants {
		g := &s.Grants[i]
		gn, ok := e.grantNode(g)
		if !ok {
			continue
		}
		rel := e.relate(spec.mode, gn, t)
		if rel == relNone {
			continue
		}
		if !spec.cells[cellIndex(g.Role, g.Scope.Kind)] {
			if denied < 0 {
				denied = i
			}
			continue
		}
		if rel == relFull {
			d.Allowed, d.Partial, d.Reason = true, false, ReasonGranted
			d.Grant, d.GrantIndex = *g, i
			return
		}
		if partial < 0 {
			partial = i
		}
	}
	switch {
	case partial >= 0:
		d.Allowed, d.Partial, d.Reason = true, true, ReasonGranted
		d.Grant, d.GrantIndex = s.Grants[partial], partial
	case denied >= 0:
		d.Reason = ReasonNotPermitted
		d.Grant, d.GrantIndex = s.Grants[denied], denied
	default:
		d.Reason = ReasonOutOfScope
	}
}

// DecideMove answers whether s may move location loc under dest (a location,
// or the org for top level): s must be allowed location.move on loc, and
// dest must be in the same org, outside loc's subtree, and a place s may
// move locations to ("to other locations they have access to").
func (e *Engine) DecideMove(s *Subject, loc, dest Resource) Decision {
	d := e.Decide(s, LocationMove, loc)
	d.Destination = dest
	if !d.Allowed {
		return d
	}
	deny := func(r Reason) Decision {
		d.Allowed, d.Reason = false, r
		return d
	}
	if dest.Kind != KindLocation && dest.Kind != KindOrg {
		return deny(ReasonBadDestination)
	}
	dn, ok := e.lookup(dest)
	if !ok {
		return deny(ReasonBadDestination)
	}
	ln, _ := e.lookup(loc)
	if dest.Kind == KindLocation && e.nodes[ln].pre <= e.nodes[dn].pre && e.nodes[dn].pre < e.nodes[ln].post {
		return deny(ReasonMoveIntoItself)
	}
	if e.nodes[dn].org != e.nodes[ln].org {
		return deny(ReasonMoveAcrossOrgs)
	}
	at := Decision{GrantIndex: -1}
	e.decideAt(&at, s, &e.specs[e.actions[LocationMove]], dn)
	if !at.Allowed {
		return deny(ReasonDestinationDenied)
	}
	return d
}

// Covers reports whether grant g reaches resource r: r is g's scope or under
// it, or g is an org r's location is shared with. Malformed grants and
// unknown resources reach nothing.
func (e *Engine) Covers(g Grant, r Resource) bool {
	gn, ok := e.grantNode(&g)
	if !ok {
		return false
	}
	t, ok := e.lookup(r)
	return ok && e.covers(gn, t)
}

// DataFilter is the answer to a set action (open or train on a dataset, see
// tags, view, export): which scopes' data the subject may use.
type DataFilter struct {
	// Decision is the decision on the whole request.
	Decision Decision
	// All says the subject may use all of the resource; callers need not filter.
	All bool
	// Scopes are the orgs, locations and machines whose data the subject may
	// use, none inside another, in tree order; nil when nothing is allowed.
	Scopes []Resource

	e     *Engine
	nodes []int32
}

// Contains reports whether data named by r (its machine or part, or a location) may be used.
func (f DataFilter) Contains(r Resource) bool {
	if f.All {
		return true
	}
	if f.e == nil {
		return false
	}
	t, ok := f.e.lookup(r)
	if !ok {
		return false
	}
	for _, n := range f.nodes {
		if f.e.covers(n, t) {
			return true
		}
	}
	return false
}

// Filter answers a set action with the scopes whose data s may use for a
// within r, so a caller filters instead of allowing all or nothing. For an
// action that is not about data it is All or nothing, as Decide says.
func (e *Engine) Filter(s *Subject, a Action, r Resource) DataFilter {
	f := DataFilter{Decision: e.Decide(s, a, r), e: e}
	if !f.Decision.Allowed {
		return f
	}
	if !f.Decision.Partial {
		f.All = true
		if !r.IsZero() {
			f.Scopes = []Resource{r}
		}
		return f
	}
	spec := &e.specs[e.actions[a]]
	t, _ := e.lookup(r)
	for i := range s.Grants {
		g := &s.Grants[i]
		gn, ok := e.grantNode(g)
		if !ok || !spec.cells[cellIndex(g.Role, g.Scope.Kind)] || e.relate(spec.mode, gn, t) != relPartial {
			continue
		}
		if e.nodes[gn].kind != KindOrg || spec.mode == modeDataset {
			f.nodes = append(f.nodes, gn)
			continue
		}
		// An org grant reaches into r only through locations shared with it.
		for _, l := range e.sharedIn[gn] {
			if p := e.nodes[l].pre; e.nodes[t].pre <= p && p < e.nodes[t].post {
				f.nodes = append(f.nodes, l)
			}
		}
	}
	// Tree order, then drop every scope that another one already covers.
	slices.SortFunc(f.nodes, func(a, b int32) int { return int(e.nodes[a].pre - e.nodes[b].pre) })
	kept := f.nodes[:0]
	for _, n := range f.nodes {
		if len(kept) > 0 {
			last := &e.nodes[kept[len(kept)-1]]
			if last.pre <= e.nodes[n].pre && e.nodes[n].pre < last.post {
				continue
			}
		}
		kept = append(kept, n)
	}
	f.nodes = kept
	for _, n := range kept {
		f.Scopes = append(f.Scopes, Resource{e.nodes[n].kind, e.nodes[n].id})
	}
	return f
}
