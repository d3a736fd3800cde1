package cloudsync

import (
	gosync "sync"
	"time"

	"github.com/outpost-robotics/outpost/cache"
	"github.com/outpost-robotics/outpost/clock"
)

// OfflineClock answers "how long since the cloud last confirmed the time?"
// in a way a bad clock cannot fool.
//
// A Raspberry Pi has no real-time clock: an offline boot may start in 1970,
// and NTP may later jump the clock years ahead. So the part keeps the last
// time the cloud confirmed and the uptime accumulated since, across reboots
// (persisted every minute). The time since contact is the larger of the
// wall-clock difference and that uptime: setting the clock back never
// extends validity, and an honest forward jump counts as time offline.
//
// The wall-clock difference is taken from the cloud's time at contact, and
// also from the part's own wall clock at that moment (persisted with the
// rest); the smaller counts. A part whose clock was
// already wrong when it reached the cloud therefore does not count that
// error as time offline, in either direction: a clock a year ahead (a bad
// NTP server) does not expire every document on arrival, and a Pi that
// reached the cloud while still in 1970 does not expire when NTP then sets
// the right year. Uptime stays the floor, so neither can make the time
// offline shorter than the time the part has run since.
type OfflineClock struct {
	clk clock.Clock

	mu    gosync.Mutex
	state cache.OfflineClock
	// mark is clk.Uptime() when state.UptimeSince was last brought up to date.
	mark time.Duration
}

// NewOfflineClock resumes from the persisted state (zero for a new part).
func NewOfflineClock(clk clock.Clock, persisted cache.OfflineClock) *OfflineClock {
	return &OfflineClock{clk: clk, state: persisted, mark: clk.Uptime()}
}

// Contact records that the cloud said its time is serverTime.
func (o *OfflineClock) Contact(serverTime time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.state = cache.OfflineClock{LastCloudTime: serverTime, PartWallAtContact: o.clk.Now()}
	o.mark = o.clk.Uptime()
}

// Snapshot returns the state to persist, with the uptime brought up to date.
func (o *OfflineClock) Snapshot() cache.OfflineClock {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.advanceLocked()
	return o.state
}

func (o *OfflineClock) advanceLocked() {
	now := o.clk.Uptime()
	o.state.UptimeSince += now - o.mark
	o.mark = now
}

// Known reports whether the cloud ever confirmed the time.
func (o *OfflineClock) Known() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return !o.state.LastCloudTime.IsZero()
}

// SinceContact returns the time since the cloud last confirmed the time: the
// larger of wall-clock elapsed and accumulated uptime.
func (o *OfflineClock) SinceContact() time.Duration {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.advanceLocked()
	now := o.clk.Now()
	wall := now.Sub(o.state.LastCloudTime)
	if !o.state.PartWallAtContact.IsZero() {
		wall = min(wall, now.Sub(o.state.PartWallAtContact))
	}
	return max(wall, o.state.UptimeSince)
}

// Now estimates the cloud's current time: the last confirmed time plus the
// time since. Expiry is judged against it, never against the raw wall clock.
func (o *OfflineClock) Now() time.Time {
	since := o.SinceContact()
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.state.LastCloudTime.Add(since)
}

// LastContact returns the last time the cloud confirmed.
func (o *OfflineClock) LastContact() time.Time {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.state.LastCloudTime
}
