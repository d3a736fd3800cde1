package sync

import "github.com/outpost-robotics/outpost/control"

// Relay imports the part's server to reach its types: a violation.
var Relay = control.Serve
