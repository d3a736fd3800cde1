// Package authz imports rbac and the contracts, which it may, and clock,
// which it may not: a violation.
package authz

import (
	authzv1 "github.com/outpost-robotics/outpost/api/gen/outpost/authz/v1"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/rbac"
)

// Decide decides a rule's action.
func Decide(r authzv1.Rule) bool { return rbac.Decide(r.Action) && !clock.Now().IsZero() }
