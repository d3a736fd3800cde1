package config

import (
	"strings"
	"testing"
	"time"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
)

func TestMaintenanceValidation(t *testing.T) {
	sensor := &configv1.Component{Name: "dock", Type: configv1.ComponentType_COMPONENT_TYPE_SENSOR, Model: "fake"}
	motor := &configv1.Component{Name: "wheel", Type: configv1.ComponentType_COMPONENT_TYPE_MOTOR, Model: "fake"}
	tests := []struct {
		name string
		m    *configv1.MaintenanceWindow
		want string // a substring of the error; empty means valid
	}{
		{"none", nil, ""},
		{"night window", &configv1.MaintenanceWindow{Windows: []*configv1.TimeWindow{{Start: "22:00", End: "04:30", TimeZone: "Europe/Berlin", Days: []string{"mon", "sat"}}}}, ""},
		{"sensor", &configv1.MaintenanceWindow{Sensor: "dock", AllowedKey: "docked"}, ""},
		{"bad start", &configv1.MaintenanceWindow{Windows: []*configv1.TimeWindow{{Start: "24:00", End: "04:00"}}}, "maintenance.windows[0].start"},
		{"bad end", &configv1.MaintenanceWindow{Windows: []*configv1.TimeWindow{{Start: "02:00", End: "4pm"}}}, "maintenance.windows[0].end"},
		{"signed", &configv1.MaintenanceWindow{Windows: []*configv1.TimeWindow{{Start: "+1:00", End: "04:00"}}}, "want HH:MM"},
		{"empty", &configv1.MaintenanceWindow{Windows: []*configv1.TimeWindow{{Start: "02:00", End: "02:00"}}}, "empty window"},
		{"zone", &configv1.MaintenanceWindow{Windows: []*configv1.TimeWindow{{Start: "02:00", End: "03:00", TimeZone: "Mars/Olympus"}}}, "time_zone"},
		{"zone path", &configv1.MaintenanceWindow{Windows: []*configv1.TimeWindow{{Start: "02:00", End: "03:00", TimeZone: "../../etc/passwd"}}}, "not an IANA"},
		{"day", &configv1.MaintenanceWindow{Windows: []*configv1.TimeWindow{{Start: "02:00", End: "03:00", Days: []string{"monday"}}}}, "days[0]"},
		{"day twice", &configv1.MaintenanceWindow{Windows: []*configv1.TimeWindow{{Start: "02:00", End: "03:00", Days: []string{"mon", "mon"}}}}, "listed twice"},
		{"key without sensor", &configv1.MaintenanceWindow{AllowedKey: "docked"}, "without a sensor"},
		{"sensor without key", &configv1.MaintenanceWindow{Sensor: "dock"}, "name the boolean reading"},
		{"no such sensor", &configv1.MaintenanceWindow{Sensor: "nope", AllowedKey: "k"}, "no such component"},
		{"not a sensor", &configv1.MaintenanceWindow{Sensor: "wheel", AllowedKey: "k"}, "not a sensor"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &configv1.RobotConfig{Components: []*configv1.Component{sensor, motor}, Maintenance: tt.m}
			err := Validate(cfg)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate = %v, want an error with %q", err, tt.want)
			}
		})
	}
}

func TestAllowed(t *testing.T) {
	night := &configv1.MaintenanceWindow{Windows: []*configv1.TimeWindow{{Start: "22:00", End: "04:00", Days: []string{"fri"}}}}
	docked := &configv1.MaintenanceWindow{Sensor: "dock", AllowedKey: "docked"}
	// 2026-12-04 is a Friday.
	at := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	tests := []struct {
		name     string
		m        *configv1.MaintenanceWindow
		now      string
		readings map[string]any
		want     bool
	}{
		{"no window", nil, "2026-12-04T12:00:00Z", nil, true},
		{"friday night", night, "2026-12-04T23:00:00Z", nil, true},
		{"saturday early belongs to friday", night, "2026-12-05T03:59:00Z", nil, true},
		{"end is exclusive", night, "2026-12-05T04:00:00Z", nil, false},
		{"friday noon", night, "2026-12-04T12:00:00Z", nil, false},
		{"thursday night", night, "2026-12-03T23:00:00Z", nil, false},
		{"friday early belongs to thursday", night, "2026-12-04T01:00:00Z", nil, false},
		{"docked", docked, "2026-12-04T12:00:00Z", map[string]any{"docked": true}, true},
		{"undocked", docked, "2026-12-04T12:00:00Z", map[string]any{"docked": false}, false},
		{"not a bool", docked, "2026-12-04T12:00:00Z", map[string]any{"docked": "true"}, false},
		{"unreadable", docked, "2026-12-04T12:00:00Z", nil, false},
		{"zone", &configv1.MaintenanceWindow{Windows: []*configv1.TimeWindow{{Start: "02:00", End: "03:00", TimeZone: "Asia/Tokyo"}}}, "2026-12-04T17:30:00Z", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, why := Allowed(tt.m, at(tt.now), tt.readings)
			if got != tt.want {
				t.Fatalf("Allowed = %v (%s), want %v", got, why, tt.want)
			}
			if !got && why == "" {
				t.Fatal("a held switch says no reason")
			}
		})
	}
}
