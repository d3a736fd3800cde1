// Package durable imports the clock, which it may not: a violation.
package durable

import "github.com/outpost-robotics/outpost/clock"

// Now is the clock's.
var Now = clock.Now
