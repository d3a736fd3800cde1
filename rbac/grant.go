package rbac

// CanGrant answers whether granter may give g to grantee. A nil grantee is
// an invitation (invite.manage on g's scope); otherwise it is a role change
// (role.change on g's scope). Either way g's scope must lie inside a scope
// the granter owns, and nobody raises their own role: a subject may give
// itself only what its grants already imply.
func (e *Engine) CanGrant(granter, grantee *Subject, g Grant) Decision {
	action := RoleChange
	if grantee == nil {
		action = InviteManage
	}
	if g.Validate() != nil {
		return e.badGrant(granter, action, g)
	}
	d := e.Decide(granter, action, g.Scope)
	if d.Reason == ReasonUnknownResource {
		return e.badGrant(granter, action, g)
	}
	if !d.Allowed {
		return d
	}
	if !e.owns(granter, g.Scope) {
		d.Allowed, d.Reason = false, ReasonWiderThanOwn
		return d
	}
	if same(granter, grantee) && !e.implied(granter, g) {
		d.Allowed, d.Reason = false, ReasonSelfRaise
		return d
	}
	return d
}

// CanRevoke answers whether granter may take g away from grantee: it needs
// role.change on g's scope and an owner scope containing it, except that
// anyone may give up a grant of their own.
func (e *Engine) CanRevoke(granter, grantee *Subject, g Grant) Decision {
	if g.Validate() != nil {
		return e.badGrant(granter, RoleChange, g)
	}
	if same(granter, grantee) {
		return Decision{Allowed: true, Reason: ReasonOwnGrant, Action: RoleChange, Resource: g.Scope,
			SubjectKind: granter.Kind, SubjectID: granter.ID, Grant: g, GrantIndex: -1}
	}
	d := e.Decide(granter, RoleChange, g.Scope)
	if d.Reason == ReasonUnknownResource {
		return e.badGrant(granter, RoleChange, g)
	}
	if d.Allowed && !e.owns(granter, g.Scope) {
		d.Allowed, d.Reason = false, ReasonWiderThanOwn
	}
	return d
}

// CanChangeRole answers whether granter may replace grantee's grant from
// with to (for example operator → owner, or a narrower scope): both taking
// away from and giving to must be allowed. The denial, if any, is returned.
func (e *Engine) CanChangeRole(granter, grantee *Subject, from, to Grant) Decision {
	if d := e.CanRevoke(granter, grantee, from); !d.Allowed {
		return d
	}
	if grantee == nil {
		return e.badGrant(granter, RoleChange, to)
	}
	return e.CanGrant(granter, grantee, to)
}

// owns reports whether one of s's owner grants reaches scope.
func (e *Engine) owns(s *Subject, scope Resource) bool {
	for _, g := range s.Grants {
		if g.Role == Owner && e.Covers(g, scope) {
			return true
		}
	}
	return false
}

// implied reports whether s already holds g or more: a grant of at least g's
// role that reaches g's scope.
func (e *Engine) implied(s *Subject, g Grant) bool {
	for _, h := range s.Grants {
		if h.Role >= g.Role && e.Covers(h, g.Scope) {
			return true
		}
	}
	return false
}

func (e *Engine) badGrant(s *Subject, a Action, g Grant) Decision {
	d := Decision{Reason: ReasonBadGrant, Action: a, Resource: g.Scope, Grant: g, GrantIndex: -1}
	if s == nil {
		d.Reason = ReasonNoSubject
		return d
	}
	d.SubjectKind, d.SubjectID = s.Kind, s.ID
	return d
}
