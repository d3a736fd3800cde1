// Package rbac decides "may this subject do this action on this resource?"
// with the permission tables of the role-based access control page
// (docs/ACTIONS.md; where its two versions differ, the newer stands). It is
// pure: no I/O, no clock, no package-level mutable state (deptest checks its
// imports). The cloud uses it for every API call over whole organization
// trees; the daemon uses it for every control call over the cached grant
// bundle of its one machine.
//
// # Model
//
// A Subject (a user or an API key) holds Grants; a Grant is a Role (owner or
// operator) on a scope (an org, a location or a machine). Permissions of
// several grants add up: a check is allowed when any one grant allows it.
//
// An Engine is built from a Hierarchy: orgs; locations (a tree of any depth
// inside one org, possibly shared with other orgs); machines in locations;
// parts in machines; fragments, datasets, packages and modules in orgs.
// Every Action (docs/ACTIONS.md, one per seed row) has the six cells of its row
// (org owner, org operator, location owner, location operator, machine
// owner, machine operator) and a rule relating a grant's scope to the
// resource named:
//
//   - Reach (machine, location and org-settings rows): the grant's scope is
//     the resource or an ancestor of it. A location grant covers the location,
//     its descendants ("this and any child locations"), their machines and
//     parts; never its parent, so "a user with access to a child location
//     cannot see machines in the parent location". "Yes*" ("for
//     locations/machines they have access to") is exactly this rule.
//   - Member (fragments, packages, modules, dataset names and creation, their
//     own role, leaving the org): the grant is held in the org that owns the
//     resource (a location or machine grant is held in the org that owns its
//     location or machine), or reaches the resource.
//   - Data (view, tags, edit, export, train models, add/remove dataset
//     images; named by a machine, part, location or org): a grant that
//     reaches the resource allows all of its data; a grant whose scope lies
//     inside it allows the part it reaches (Decision.Partial, and Filter lists
//     the scopes). "*For data from the location" and "**For data from the
//     machine" are this rule at location and machine scope.
//   - Dataset (open, train on): an org grant in the dataset's org sees all of
//     it; a location or machine grant in that org sees "the portion of the
//     dataset that they have access to" (Partial; Filter lists the scopes).
//
// # Interpretations of the seed
//
//   - Shared locations: an org a location is shared with holds, on that
//     location, its descendants, machines and parts, the roles its members
//     hold on the org: an owner of that org is an owner there and so may
//     "share it further" (location.share.add) or remove the share; an
//     operator of it is an operator there. A shared location still moves only
//     within the org that owns it.
//   - location.move: "Yes, to other locations they have access to": the
//     subject must be allowed location.move on the location and on the
//     destination (a location of the same org, not under the moved one, or
//     the org itself for top level; the org needs an org owner). Decide checks
//     the location alone; DecideMove checks both.
//   - "Yes" for location and machine owners on org-level objects (see and use
//     fragments, upload/view/use packages, create datasets, see dataset
//     names) means the objects of the org their location or machine belongs
//     to, never another org's (not even an org that shares a location with
//     theirs).
//   - role.view.others, invite.manage, role.change ("Yes*"): on the org
//     itself only for org roles; on a location or machine for any grant that
//     reaches it. role.view.own and org.leave need any grant in the org.
//   - org.create names no resource: any signed-in user may; an API key may
//     while it holds any grant (a key without grants is revoked).
//   - See data tags, train models, add/remove dataset images: the prose
//     cells ("only tags applied to data they have access to", "images they
//     have permissions on", "images in the dataset that they can see") are
//     the Data rule: allowed on data the grant reaches, partial on sets.
//   - "Use Try Viam" is a hosted product and has no action.
//   - Granting (CanGrant, CanRevoke, CanChangeRole): invite.manage (no
//     grantee yet) or role.change on the grant's scope, the scope inside one
//     of the granter's owner scopes, and nobody raises their own role
//     (giving oneself only what one's grants already imply); anyone may give
//     up a grant of their own.
//   - Grants on scopes the hierarchy does not know (say, a deleted location)
//     reach nothing; unknown resources are denied with ReasonUnknownResource.
//     So a daemon whose hierarchy holds only its machine's ancestry decides
//     checks naming its machine or parts exactly as the cloud does, but
//     cannot answer Member or Dataset rows for grants outside that ancestry
//     (it does not serve those actions).
//
// # Decisions
//
// Decide does not allocate: resources are found through per-kind ID maps
// and "a covers b" is an interval test on a depth-first numbering, so a
// check costs one map lookup per grant whatever the depth of the tree.
// Every Decision carries a Reason code (stable, for audit records), the
// grant that allowed it or the nearest one that did not permit it, and a
// one-sentence String for `outpost access check` and error messages.
package rbac
