// Package authzv1 stands in for the generated contracts authz reads.
package authzv1

// Rule is an RPC's access rule.
type Rule struct{ Action string }
