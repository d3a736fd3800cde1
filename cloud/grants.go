package cloud

import (
	"context"
	"fmt"
	"strings"

	"connectrpc.com/connect"

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
		if id, ok := strings.CutPrefix(g.Subject, "apikey:"); ok {
			k, err := tx.GetAPIKey(ctx, id)
			if err == nil && k.Scope == scope {
				if err := deleteAPIKey(ctx, tx, id); err != nil {
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
	gs, err := tx.ListGrantsBySubject(ctx, "apikey:"+id)
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
	if !isOrg || g.Role != "owner" || !strings.HasPrefix(g.Subject, "user:") {
		return nil
	}
	gs, err := tx.ListGrantsByScope(ctx, g.Scope)
	if err != nil {
		return err
	}
	for _, o := range gs {
		if o.Subject != g.Subject && o.Role == "owner" && strings.HasPrefix(o.Subject, "user:") {
			return nil
		}
	}
	return connect.NewError(connect.CodeFailedPrecondition,
		fmt.Errorf("%s is the last owner of org/%s, which must keep one: make someone else owner first (`outpost role grant`), or delete the org", g.Subject, org))
}
