package rbac

import (
	"fmt"
	"strings"
)

// Reason says why a decision came out as it did; it is stable for audit records.
type Reason uint8

// Reasons. Each is explained in full by Decision.String.
const (
	// ReasonNone is the zero reason of a zero Decision.
	ReasonNone Reason = iota
	// ReasonGranted: a grant reaches the resource and its role permits the action there.
	ReasonGranted
	// ReasonAnySubject: the action needs no grant (org.create).
	ReasonAnySubject
	// ReasonOwnGrant: a subject may always give up a grant of its own.
	ReasonOwnGrant
	// ReasonNoSubject: nobody is signed in.
	ReasonNoSubject
	// ReasonUnknownAction: the action is not in the vocabulary.
	ReasonUnknownAction
	// ReasonWrongKind: the action cannot name a resource of this kind.
	ReasonWrongKind
	// ReasonUnknownResource: the resource is not in the engine's hierarchy.
	ReasonUnknownResource
	// ReasonNoGrants: the subject holds no grant at all.
	ReasonNoGrants
	// ReasonOutOfScope: none of the subject's grants reaches the resource.
	ReasonOutOfScope
	// ReasonNotPermitted: a grant reaches the resource but its role at its scope does not permit the action.
	ReasonNotPermitted
	// ReasonBadDestination: a move names a destination that is not a known location or org.
	ReasonBadDestination
	// ReasonMoveIntoItself: a location cannot move under itself or its descendants.
	ReasonMoveIntoItself
	// ReasonMoveAcrossOrgs: a location moves only within the organization that owns it.
	ReasonMoveAcrossOrgs
	// ReasonDestinationDenied: the subject may not move locations into the destination.
	ReasonDestinationDenied
	// ReasonBadGrant: the grant being given is malformed or names an unknown scope.
	ReasonBadGrant
	// ReasonWiderThanOwn: the grant's scope is not inside any scope the granter owns.
	ReasonWiderThanOwn
	// ReasonSelfRaise: nobody raises their own role.
	ReasonSelfRaise
)

// String returns a short stable code for the reason, such as "not-permitted".
func (r Reason) String() string {
	switch r {
	case ReasonGranted:
		return "granted"
	case ReasonAnySubject:
		return "any-subject"
	case ReasonOwnGrant:
		return "own-grant"
	case ReasonNoSubject:
		return "no-subject"
	case ReasonUnknownAction:
		return "unknown-action"
	case ReasonWrongKind:
		return "wrong-resource-kind"
	case ReasonUnknownResource:
		return "unknown-resource"
	case ReasonNoGrants:
		return "no-grants"
	case ReasonOutOfScope:
		return "out-of-scope"
	case ReasonNotPermitted:
		return "not-permitted"
	case ReasonBadDestination:
		return "bad-destination"
	case ReasonMoveIntoItself:
		return "move-into-itself"
	case ReasonMoveAcrossOrgs:
		return "move-across-orgs"
	case ReasonDestinationDenied:
		return "destination-denied"
	case ReasonBadGrant:
		return "bad-grant"
	case ReasonWiderThanOwn:
		return "wider-than-own"
	case ReasonSelfRaise:
		return "self-raise"
	}
	return fmt.Sprintf("Reason(%d)", uint8(r))
}

// Decision is the answer to one check, with everything needed to explain it.
type Decision struct {
	// Allowed says whether the subject may do the action (on at least part of the resource when Partial).
	Allowed bool
	// Partial says the subject may use only the part of the resource's data its grants reach; see Engine.Filter.
	Partial bool
	// Reason is why.
	Reason Reason
	// Action is what was asked.
	Action Action
	// Resource is what it was asked about.
	Resource Resource
	// Destination is where a location.move goes; zero otherwise.
	Destination Resource
	// SubjectKind says whether a user or an API key asked.
	SubjectKind SubjectKind
	// SubjectID is the asking user's or key's ID.
	SubjectID string
	// Grant is the grant that allowed the action, or the nearest one that did not permit it.
	Grant Grant
	// GrantIndex is Grant's index in Subject.Grants, or -1 when no grant decided.
	GrantIndex int
}

// Err returns nil for an allowed decision and otherwise an error carrying the sentence of String.
func (d Decision) Err() error {
	if d.Allowed {
		return nil
	}
	return &DeniedError{Decision: d}
}

// DeniedError is the error of a denied decision, so callers can recover the decision with errors.As.
type DeniedError struct {
	// Decision is the denial.
	Decision Decision
}

// Error returns the decision's sentence.
func (e *DeniedError) Error() string { return e.Decision.String() }

// String explains the decision in one sentence, for `outpost access check`, errors and audit.
func (d Decision) String() string {
	who := (&Subject{Kind: d.SubjectKind, ID: d.SubjectID}).String()
	if d.SubjectID == "" && d.SubjectKind == 0 {
		who = "nobody"
	}
	what := string(d.Action)
	on := d.Resource.String()
	switch d.Reason {
	case ReasonGranted:
		if d.Partial {
			return fmt.Sprintf("allowed in part: %s may %s only the data of %s that its %s reaches", who, what, on, d.Grant)
		}
		if !d.Destination.IsZero() {
			return fmt.Sprintf("allowed: %s may move %s to %s as %s", who, on, d.Destination, d.Grant)
		}
		return fmt.Sprintf("allowed: %s may %s %s as %s", who, what, on, d.Grant)
	case ReasonAnySubject:
		return fmt.Sprintf("allowed: %s may %s: any signed-in user may", who, what)
	case ReasonOwnGrant:
		return fmt.Sprintf("allowed: %s may give up its own %s", who, d.Grant)
	case ReasonNoSubject:
		return fmt.Sprintf("denied: %s on %s: nobody is signed in", what, on)
	case ReasonUnknownAction:
		return fmt.Sprintf("denied: %q is not an action (see `outpost access actions`)", what)
	case ReasonWrongKind:
		return fmt.Sprintf("denied: %s cannot name %s; it names %s", what, on, kindList(d.Action))
	case ReasonUnknownResource:
		return fmt.Sprintf("denied: %s on %s: no such resource is known here", what, on)
	case ReasonNoGrants:
		return fmt.Sprintf("denied: %s may not %s %s: it holds no role", who, what, on)
	case ReasonOutOfScope:
		return fmt.Sprintf("denied: %s may not %s %s: none of its roles reaches it (%s, within their scope)", who, what, on, allowedFor(d.Action))
	case ReasonNotPermitted:
		return fmt.Sprintf("denied: %s may not %s %s: as %s it reaches it, but %s", who, what, on, d.Grant, allowedFor(d.Action))
	case ReasonBadDestination:
		return fmt.Sprintf("denied: %s may not move %s to %s: the destination must be a known location or org", who, on, d.Destination)
	case ReasonMoveIntoItself:
		return fmt.Sprintf("denied: %s may not move %s to %s: a location cannot move under itself", who, on, d.Destination)
	case ReasonMoveAcrossOrgs:
		return fmt.Sprintf("denied: %s may not move %s to %s: a location moves only within its own organization", who, on, d.Destination)
	case ReasonDestinationDenied:
		return fmt.Sprintf("denied: %s may not move %s to %s: it may move locations only to other locations it has access to", who, on, d.Destination)
	case ReasonBadGrant:
		return fmt.Sprintf("denied: %s may not give %s: a grant is owner or operator of a known org, location or machine", who, d.Grant)
	case ReasonWiderThanOwn:
		return fmt.Sprintf("denied: %s may not give a role on %s: it owns no scope that contains it", who, on)
	case ReasonSelfRaise:
		return fmt.Sprintf("denied: %s may not raise its own role on %s", who, on)
	}
	return fmt.Sprintf("undecided: %s %s %s", who, what, on)
}

// allowedFor lists the table columns that permit an action, for denial messages.
func allowedFor(a Action) string {
	cols := [numCells]string{"org owner", "org operator", "location owner", "location operator", "machine owner", "machine operator"}
	for _, s := range actionSpecs() {
		if s.action != a {
			continue
		}
		var who []string
		for i, c := range s.cells {
			if c {
				who = append(who, cols[i])
			}
		}
		if len(who) == 0 {
			return string(a) + " is for no role"
		}
		return string(a) + " is only for " + strings.Join(who, ", ")
	}
	return string(a) + " is unknown"
}

func kindList(a Action) string {
	var names []string
	for _, k := range a.ResourceKinds() {
		names = append(names, k.String())
	}
	if len(names) == 0 {
		return "no resource"
	}
	return strings.Join(names, " or ")
}
