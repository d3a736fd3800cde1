package cloudsync

import (
	"testing"
	"time"

	"github.com/outpost-robotics/outpost/cache"
	"github.com/outpost-robotics/outpost/clock"
)

var cloudEpoch = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

func TestOfflineClockCannotBeFooled(t *testing.T) {
	const day = 24 * time.Hour
	tests := []struct {
		name string
		// live runs on a clock that was in contact at cloudEpoch.
		live func(f *clock.Fake)
		want time.Duration
	}{
		{"an honest day", func(f *clock.Fake) { f.Advance(day) }, day},
		{"clock set back a year after a day", func(f *clock.Fake) {
			f.Advance(day)
			f.SetWall(f.Now().AddDate(-1, 0, 0))
		}, day},
		{"clock jumped ahead a year counts as offline", func(f *clock.Fake) {
			f.Advance(time.Hour)
			f.SetWall(f.Now().AddDate(1, 0, 0))
		}, 365*day + time.Hour},
		{"clock set back, then time passes", func(f *clock.Fake) {
			f.SetWall(time.Unix(0, 0))
			f.Advance(3 * day)
		}, 3 * day},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := clock.NewFake(cloudEpoch)
			o := NewOfflineClock(f, cache.OfflineClock{})
			o.Contact(cloudEpoch)
			tc.live(f)
			if got := o.SinceContact(); got != tc.want {
				t.Fatalf("SinceContact = %v, want %v", got, tc.want)
			}
			if got, want := o.Now(), cloudEpoch.Add(tc.want); !got.Equal(want) {
				t.Fatalf("Now = %v, want %v", got, want)
			}
		})
	}
}

// TestOfflineClockSurvivesARebootInto1970 persists the state, "reboots" onto
// a new clock that starts in 1970 with zero uptime, and checks that the
// accumulated offline time carries over and keeps growing.
func TestOfflineClockSurvivesARebootInto1970(t *testing.T) {
	const day = 24 * time.Hour
	before := clock.NewFake(cloudEpoch)
	o := NewOfflineClock(before, cache.OfflineClock{})
	o.Contact(cloudEpoch)
	before.Advance(10 * day)
	persisted := o.Snapshot()

	after := clock.NewFake(time.Unix(0, 0)) // no RTC: the Pi boots in 1970
	o2 := NewOfflineClock(after, persisted)
	if got := o2.SinceContact(); got != 10*day {
		t.Fatalf("after reboot SinceContact = %v, want 10 days", got)
	}
	after.Advance(5 * day)
	if got := o2.SinceContact(); got != 15*day {
		t.Fatalf("SinceContact = %v, want 15 days", got)
	}
	// NTP arrives with the true time: 15 days after contact.
	after.SetWall(cloudEpoch.Add(15 * day))
	if got := o2.SinceContact(); got != 15*day {
		t.Fatalf("after NTP SinceContact = %v, want 15 days", got)
	}
	o2.Contact(cloudEpoch.Add(15 * day))
	if got := o2.SinceContact(); got != 0 {
		t.Fatalf("after contact SinceContact = %v, want 0", got)
	}
}

// TestOfflineClockForgivesAClockWrongAtContact checks that an error the
// part's clock already had when it reached the cloud is not time offline,
// while time that really passes still is.
func TestOfflineClockForgivesAClockWrongAtContact(t *testing.T) {
	const day = 24 * time.Hour
	tests := []struct {
		name string
		wall time.Time // the part's wall clock at contact
		live func(f *clock.Fake)
		want time.Duration
	}{
		{"a year ahead at contact", cloudEpoch.AddDate(1, 0, 0), func(f *clock.Fake) {}, 0},
		{"a year ahead at contact, then a day", cloudEpoch.AddDate(1, 0, 0), func(f *clock.Fake) { f.Advance(day) }, day},
		{"in 1970 at contact, then NTP an hour later", time.Unix(0, 0), func(f *clock.Fake) {
			f.Advance(time.Hour)
			f.SetWall(cloudEpoch.Add(time.Hour))
		}, time.Hour},
		{"a year ahead at contact, then another year", cloudEpoch.AddDate(1, 0, 0), func(f *clock.Fake) {
			f.Advance(time.Hour)
			f.SetWall(f.Now().Add(365 * day))
		}, 365*day + time.Hour},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := clock.NewFake(tc.wall)
			o := NewOfflineClock(f, cache.OfflineClock{})
			o.Contact(cloudEpoch)
			tc.live(f)
			if got := o.SinceContact(); got != tc.want {
				t.Fatalf("SinceContact = %v, want %v", got, tc.want)
			}
			if got, want := o.Now(), cloudEpoch.Add(tc.want); !got.Equal(want) {
				t.Fatalf("Now = %v, want %v", got, want)
			}
		})
	}

	// The part's reading at contact is persisted with the rest: after a
	// restart with the clock still a year ahead, that year is still not
	// time offline, and a day that passes while down still is.
	f := clock.NewFake(cloudEpoch.AddDate(1, 0, 0))
	o := NewOfflineClock(f, cache.OfflineClock{})
	o.Contact(cloudEpoch)
	persisted := o.Snapshot()
	f.SetWall(f.Now().Add(day)) // powered off for a day
	restarted := NewOfflineClock(f, persisted)
	if got := restarted.SinceContact(); got != day {
		t.Fatalf("after a restart SinceContact = %v, want the day it was down", got)
	}
	// A store from before the reading was kept: the year counts until the
	// next contact.
	persisted.PartWallAtContact = time.Time{}
	old := NewOfflineClock(f, persisted)
	if got := old.SinceContact(); got != 365*day+day {
		t.Fatalf("without the reading SinceContact = %v, want the year ahead and the day down", got)
	}
	old.Contact(cloudEpoch.Add(day))
	if got := old.SinceContact(); got != 0 {
		t.Fatalf("after the next contact SinceContact = %v, want 0", got)
	}
}
