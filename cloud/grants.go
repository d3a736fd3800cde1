package cloud

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"connectrpc.com/connect"

	"github.com/outpost-robotics/outpost/authz"
	"github.com/outpost-robotics/outpost/cloud/store"
)

// deleteGrantsOn removes every grant held on scope when scope goes away,
// and the API keys created on it: a key whose scope is gone could be
// neither used nor revoked.
func deleteGrantsOn(ctx context.Context, tx store.Tx, scope string) error {
	gs, err := tx.ListGrantsByScope(ctx, scope)
	if err != nil {
		return err
	}
	for _, g := range gs {
		if err := tx.DeleteGrant(ctx, g.Subject, g.Scope); err != nil {
			return err
		}
		if subj := subjectOf(g); subj.Kind == authz.KindAPIKey {
			k, err := tx.GetAPIKey(ctx, subj.ID)
			if err == nil && k.Scope == scope {
				if err := deleteAPIKey(ctx, tx, subj.ID); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// scopeExists reports whether a grant scope ("kind/ID") still exists.
func scopeExists(ctx context.Context, tx store.Tx, scope string) bool {
	kind, id, _ := strings.Cut(scope, "/")
	var err error
	switch kind {
	case "org":
		_, err = tx.GetOrg(ctx, id)
	case "location":
		_, err = tx.GetLocation(ctx, id)
	case "machine":
		_, err = tx.GetMachine(ctx, id)
	default:
		return false
	}
	return err == nil
}

// count says "1 machine" or "2 machines".
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// deleteAPIKey removes a key and its grants.
func deleteAPIKey(ctx context.Context, tx store.Tx, id string) error {
	gs, err := grantsOf(ctx, tx, authz.APIKey(id))
	if err != nil {
		return err
	}
	for _, g := range gs {
		if err := tx.DeleteGrant(ctx, g.Subject, g.Scope); err != nil {
			return err
		}
	}
	return tx.DeleteAPIKey(ctx, id)
}

// keepsAnOwner refuses to take away g when it is the last person's owner
// grant on its organization: an organization always keeps an owner who can
// manage it, whoever asks (the owner itself included). API keys do not
// count: a key is not someone who can be asked.
func keepsAnOwner(ctx context.Context, tx store.Tx, g store.Grant) error {
	org, isOrg := strings.CutPrefix(g.Scope, "org/")
	who := subjectOf(g)
	if !isOrg || g.Role != "owner" || who.Kind != authz.KindUser {
		return nil
	}
	gs, err := tx.ListGrantsByScope(ctx, g.Scope)
	if err != nil {
		return err
	}
	for _, o := range gs {
		if other := subjectOf(o); other != who && o.Role == "owner" && other.Kind == authz.KindUser {
			return nil
		}
	}
	return connect.NewError(connect.CodeFailedPrecondition,
		fmt.Errorf("%s is the last owner of org/%s, which must keep one: make someone else owner first (`outpost role grant`), or delete the org", who, org))
}

// grantsOf lists subj's grants, sorted by scope, whichever spelling they
// were stored under: grants written before there was one spelling are
// keyed by subj.Legacy() and are read, never rewritten.
func grantsOf(ctx context.Context, tx store.Tx, subj authz.Subject) ([]store.Grant, error) {
	gs, err := tx.ListGrantsBySubject(ctx, subj.String())
	if err != nil {
		return nil, err
	}
	old, err := tx.ListGrantsBySubject(ctx, subj.Legacy())
	if err != nil || len(old) == 0 {
		return gs, err
	}
	gs = append(gs, old...)
	slices.SortStableFunc(gs, func(a, b store.Grant) int { return strings.Compare(a.Scope, b.Scope) })
	return gs, nil
}

// grantOf returns subj's grant on scope, whichever spelling it was stored
// under; its Subject is the key to replace or delete it by.
func grantOf(ctx context.Context, tx store.Tx, subj authz.Subject, scope string) (store.Grant, error) {
	g, err := tx.GetGrant(ctx, subj.String(), scope)
	if errors.Is(err, store.ErrNotFound) {
		return tx.GetGrant(ctx, subj.Legacy(), scope)
	}
	return g, err
}

// subjectOf is the subject a stored grant is held by, whichever spelling
// it was stored under (the zero Subject for a row that names none).
func subjectOf(g store.Grant) authz.Subject {
	s, _ := authz.Parse(g.Subject)
	return s
}
