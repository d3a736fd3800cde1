// Package authz is what the cloud and a part share about who calls and
// how a call is decided, so the two cannot drift apart: the one spelling of
// a subject (Subject), the access rule each RPC declares in the contracts
// (Read), the one failed-authentication limiter (Limiter), and the one
// policy for what an error tells the caller (Errors). The decisions
// themselves are rbac's; authz reads, spells and answers around them.
package authz
