// Package pkgformat imports the contracts, which it may, and cache, which
// it may not: a violation.
package pkgformat

import (
	authzv1 "github.com/outpost-robotics/outpost/api/gen/outpost/authz/v1"
	"github.com/outpost-robotics/outpost/cache"
)

// Open opens a store named after a rule's action.
func Open(r authzv1.Rule) error { return cache.Open(r.Action) }
