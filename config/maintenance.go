package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
)

// MaxMaintenanceWindows bounds a config's maintenance windows.
const MaxMaintenanceWindows = 32

// weekdays maps the config's day names to time's.
var weekdays = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

// maintenance checks the config's maintenance window.
func (c *checker) maintenance(cfg *configv1.RobotConfig) {
	m := cfg.GetMaintenance()
	if m == nil {
		return
	}
	if len(m.GetWindows()) > MaxMaintenanceWindows {
		c.addf("maintenance.windows", "%d windows, at most %d", len(m.GetWindows()), MaxMaintenanceWindows)
		return
	}
	for i, w := range m.GetWindows() {
		p := fmt.Sprintf("maintenance.windows[%d]", i)
		start, errS := parseClock(w.GetStart())
		if errS != nil {
			c.addf(p+".start", "%v", errS)
		}
		end, errE := parseClock(w.GetEnd())
		if errE != nil {
			c.addf(p+".end", "%v", errE)
		}
		if errS == nil && errE == nil && start == end {
			c.addf(p, "start and end are both %q: an empty window never allows a switch", w.GetStart())
		}
		if _, err := loadZone(w.GetTimeZone()); err != nil {
			c.addf(p+".time_zone", "%v", err)
		}
		seen := map[string]bool{}
		for j, d := range w.GetDays() {
			if _, ok := weekdays[d]; !ok {
				c.addf(fmt.Sprintf("%s.days[%d]", p, j), "%q: want one of mon, tue, wed, thu, fri, sat, sun", d)
			} else if seen[d] {
				c.addf(fmt.Sprintf("%s.days[%d]", p, j), "%q listed twice", d)
			}
			seen[d] = true
		}
	}
	switch {
	case m.GetSensor() == "" && m.GetAllowedKey() != "":
		c.addf("maintenance.allowed_key", "set without a sensor to read it from")
	case m.GetSensor() != "" && m.GetAllowedKey() == "":
		c.addf("maintenance.allowed_key", "empty: name the boolean reading of sensor %q that allows a switch", m.GetSensor())
	case m.GetSensor() != "":
		found := false
		for _, comp := range cfg.GetComponents() {
			if comp.GetName() == m.GetSensor() {
				found = true
				if comp.GetType() != configv1.ComponentType_COMPONENT_TYPE_SENSOR {
					c.addf("maintenance.sensor", "%q is a %s, not a sensor", m.GetSensor(), TypeName(comp.GetType()))
				}
			}
		}
		if !found {
			c.addf("maintenance.sensor", "%q: no such component", m.GetSensor())
		}
	}
}

// parseClock reads "HH:MM" as minutes after midnight.
func parseClock(s string) (int, error) {
	h, m, ok := strings.Cut(s, ":")
	if !ok || len(h) != 2 || len(m) != 2 {
		return 0, fmt.Errorf("%q: want HH:MM, 24-hour", s)
	}
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if err1 != nil || err2 != nil || hh < 0 || hh > 23 || mm < 0 || mm > 59 || h[0] == '+' || h[0] == '-' || m[0] == '+' || m[0] == '-' {
		return 0, fmt.Errorf("%q: want HH:MM, 24-hour, from 00:00 to 23:59", s)
	}
	return hh*60 + mm, nil
}

// loadZone loads an IANA zone; empty means UTC.
func loadZone(name string) (*time.Location, error) {
	if name == "" {
		return time.UTC, nil
	}
	if strings.ContainsAny(name, "\x00\\") || strings.HasPrefix(name, "/") || strings.Contains(name, "..") {
		return nil, fmt.Errorf("%q is not an IANA time zone name", name)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("%q is not a time zone this part knows: %w", name, err)
	}
	return loc, nil
}

// Allowed reports whether m allows a package switch at now, given the
// sensor readings of m's sensor (nil when it could not be read). A nil m
// allows at any time. When m names a sensor, the switch waits unless the
// reading of m's allowed key is the boolean true: a missing reading, another
// type or a sensor that cannot be read all hold the switch, because holding
// is the safe side. The reason says why a switch waits.
func Allowed(m *configv1.MaintenanceWindow, now time.Time, readings map[string]any) (bool, string) {
	if m == nil {
		return true, ""
	}
	if len(m.GetWindows()) > 0 {
		in := false
		for _, w := range m.GetWindows() {
			ok, err := inWindow(w, now)
			if err == nil && ok {
				in = true
				break
			}
		}
		if !in {
			return false, "outside the maintenance windows"
		}
	}
	if m.GetSensor() != "" {
		if readings == nil {
			return false, fmt.Sprintf("sensor %q could not be read", m.GetSensor())
		}
		v, ok := readings[m.GetAllowedKey()].(bool)
		if !ok {
			return false, fmt.Sprintf("sensor %q has no boolean reading %q", m.GetSensor(), m.GetAllowedKey())
		}
		if !v {
			return false, fmt.Sprintf("sensor %q reads %s=false", m.GetSensor(), m.GetAllowedKey())
		}
	}
	return true, ""
}

// inWindow reports whether now falls in w. A window spanning midnight
// belongs to the day it starts on.
func inWindow(w *configv1.TimeWindow, now time.Time) (bool, error) {
	start, err := parseClock(w.GetStart())
	if err != nil {
		return false, err
	}
	end, err := parseClock(w.GetEnd())
	if err != nil {
		return false, err
	}
	if start == end {
		return false, errors.New("empty window")
	}
	loc, err := loadZone(w.GetTimeZone())
	if err != nil {
		return false, err
	}
	t := now.In(loc)
	minute := t.Hour()*60 + t.Minute()
	day := t.Weekday()
	switch {
	case start < end:
		if minute < start || minute >= end {
			return false, nil
		}
	case minute >= start:
		// The evening half of a window that spans midnight.
	case minute < end:
		// The morning half: it belongs to yesterday's window.
		day = (day + 6) % 7
	default:
		return false, nil
	}
	if len(w.GetDays()) == 0 {
		return true, nil
	}
	for _, d := range w.GetDays() {
		if wd, ok := weekdays[d]; ok && wd == day {
			return true, nil
		}
	}
	return false, nil
}
