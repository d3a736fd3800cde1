// Package packages is the part's package cache reaching the cloud's code
// (a violation): it should meet the cloud through a Fetcher.
package packages

import "github.com/outpost-robotics/outpost/cloud/relay"

// Source names where chunks come from.
func Source() string { return relay.Name }
