package config

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
)

func loadValid(t testing.TB) *configv1.RobotConfig {
	t.Helper()
	b, err := os.ReadFile("testdata/valid.json")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseJSON(b)
	if err != nil {
		t.Fatalf("testdata/valid.json: %v", err)
	}
	return cfg
}

func TestValidConfig(t *testing.T) {
	cfg := loadValid(t)
	b, err := proto.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(b); err != nil {
		t.Fatalf("binary round trip: %v", err)
	}
	if err := Validate(&configv1.RobotConfig{}); err != nil {
		t.Fatalf("empty config: %v", err)
	}
}

func TestValidateProblems(t *testing.T) {
	motor := configv1.ComponentType_COMPONENT_TYPE_MOTOR
	sensor := configv1.ComponentType_COMPONENT_TYPE_SENSOR
	comp := func(name string, deps ...string) *configv1.Component {
		return &configv1.Component{Name: name, Type: motor, Model: "fake", DependsOn: deps}
	}
	tests := []struct {
		name string
		edit func(c *configv1.RobotConfig)
		want []string // each must appear in the error
	}{
		{"unknown dependency", func(c *configv1.RobotConfig) {
			c.Components = append(c.Components, comp("a"), comp("b"), comp("c", "arm"))
		}, []string{`components[2].depends_on[0]: unknown component "arm"`}},
		{"duplicate name", func(c *configv1.RobotConfig) {
			c.Components = append(c.Components, comp("a"), comp("a"))
		}, []string{`components[1].name: duplicate name "a" (also components[0])`}},
		{"bad name", func(c *configv1.RobotConfig) {
			c.Components = append(c.Components, comp("a b"))
		}, []string{`components[0].name: name "a b"`}},
		{"cycle", func(c *configv1.RobotConfig) {
			c.Components = append(c.Components, comp("a", "b"), comp("b", "c"), comp("c", "a"))
		}, []string{"dependency cycle a -> b -> c -> a"}},
		{"self dependency", func(c *configv1.RobotConfig) {
			c.Components = append(c.Components, comp("a", "a"))
		}, []string{`components[0].depends_on[0]: "a" depends on itself`}},
		{"missing type", func(c *configv1.RobotConfig) {
			c.Components = append(c.Components, &configv1.Component{Name: "x", Model: "fake"})
		}, []string{"components[0].type: missing or unknown type"}},
		{"unknown model", func(c *configv1.RobotConfig) {
			c.Components = append(c.Components, &configv1.Component{Name: "x", Type: motor, Model: "turbo"})
		}, []string{`components[0].model: unknown model "turbo"`}},
		{"model of wrong type", func(c *configv1.RobotConfig) {
			c.Components = append(c.Components, &configv1.Component{Name: "x", Type: motor, Model: "system"})
		}, []string{`components[0].model: model "system" has no motor`}},
		{"module model without module", func(c *configv1.RobotConfig) {
			c.Components = append(c.Components, &configv1.Component{Name: "x", Type: motor, Model: "acme:servo"})
		}, []string{"no module is configured"}},
		{"command sensor without command", func(c *configv1.RobotConfig) {
			c.Components = append(c.Components, &configv1.Component{Name: "x", Type: sensor, Model: "command",
				Attributes: must(structpb.NewStruct(map[string]any{"timeout": "forever", "args": []any{1.0}}))})
		}, []string{"components[0].attributes.command", "components[0].attributes.timeout", "components[0].attributes.args[0]: want a string"}},
		{"process problems", func(c *configv1.RobotConfig) {
			c.Processes = append(c.Processes,
				&configv1.Process{Id: "p", Command: "x", Restart: 9, StopTimeout: durationpb.New(-1), WorkingDir: "rel", Env: map[string]string{"A=B": "1"}},
				&configv1.Process{Id: "p"})
		}, []string{"processes[0].restart: unknown restart policy 9", "processes[0].stop_timeout", "processes[0].working_dir", `processes[0].env["A=B"]`, `processes[1].id: duplicate id "p"`, "processes[1].command: empty"}},
		{"capture problems", func(c *configv1.RobotConfig) {
			c.Components = append(c.Components, comp("m"))
			c.Captures = append(c.Captures,
				&configv1.CaptureMethod{Component: "m", Method: "readings", FrequencyHz: 0},
				&configv1.CaptureMethod{Component: "ghost", Method: "status", FrequencyHz: 5000, Priority: 300},
				&configv1.CaptureMethod{Component: "m", Method: "dance", FrequencyHz: 1, Tags: []string{""}})
		}, []string{"captures[0].method: a motor has no readings", "captures[0].frequency_hz", `captures[1].component: unknown component "ghost"`, "captures[1].frequency_hz: 5000", "captures[1].priority", `captures[2].method: unknown method "dance"`, "captures[2].tags[0]"}},
		{"frequencies a period cannot express", func(c *configv1.RobotConfig) {
			c.Components = append(c.Components, comp("m"))
			for i, f := range []float64{1e-300, math.SmallestNonzeroFloat64, math.NaN(), math.Inf(1), math.Inf(-1), -1, 1e300, MinFrequencyHz / 2} {
				c.Captures = append(c.Captures, &configv1.CaptureMethod{Component: "m", Method: fmt.Sprintf("m%d", i), FrequencyHz: f})
			}
		}, []string{"captures[0].frequency_hz: 1e-300: want from", "captures[1].frequency_hz: 5e-324", "captures[2].frequency_hz: NaN",
			"captures[3].frequency_hz: +Inf", "captures[4].frequency_hz: -Inf", "captures[5].frequency_hz: -1", "captures[6].frequency_hz: 1e+300",
			"captures[7].frequency_hz", "one read every 168h0m0s"}},
		{"sync folder problems", func(c *configv1.RobotConfig) {
			c.SyncFolders = append(c.SyncFolders, &configv1.SyncFolder{Path: "/data"}, &configv1.SyncFolder{Path: "/data/x"},
				&configv1.SyncFolder{Path: "rel", QuietPeriod: durationpb.New(0)})
		}, []string{`sync_folders[1].path: "/data/x" overlaps sync_folders[0]`, `sync_folders[2].path: "rel": want an absolute path`}},
		{"module problems", func(c *configv1.RobotConfig) {
			c.Modules = append(c.Modules, &configv1.Module{Name: "m", Executable: "blinker"})
		}, []string{`modules[0].executable: "blinker": want an absolute path`}},
		{"log level and budget", func(c *configv1.RobotConfig) {
			c.LogLevel = "loud"
			c.StoreBudget = &configv1.StoreBudget{MaxBytes: 10}
		}, []string{`log_level: "loud"`, "store_budget.max_bytes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &configv1.RobotConfig{}
			tt.edit(cfg)
			err := Validate(cfg)
			var verr *Error
			if !errors.As(err, &verr) {
				t.Fatalf("Validate = %v, want *Error", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Path == "" {
				t.Errorf("errors.As(*FieldError) failed on %v", err)
			}
		})
	}
}

// TestFrequencyBoundsAccepted: the bounds themselves are valid, and the
// lowest one still has a period a time.Duration holds.
func TestFrequencyBoundsAccepted(t *testing.T) {
	for _, f := range []float64{MinFrequencyHz, 1, MaxFrequencyHz} {
		cfg := loadValid(t)
		cfg.Captures[0].FrequencyHz = f
		if err := Validate(cfg); err != nil {
			t.Errorf("Validate at %v Hz = %v", f, err)
		}
	}
	if p := time.Duration(float64(time.Second) / MinFrequencyHz); p <= 0 || p > MaxCapturePeriod+time.Second {
		t.Errorf("period at MinFrequencyHz = %v, want about %v", p, MaxCapturePeriod)
	}
}

func TestParseRefusesUnknownJSONField(t *testing.T) {
	if _, err := ParseJSON([]byte(`{"componentz": []}`)); err == nil {
		t.Fatal("unknown field accepted")
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// FuzzValidate feeds arbitrary bytes to both decoders: they may refuse, but
// never panic, and what they accept must validate again after a round trip.
func FuzzValidate(f *testing.F) {
	cfg := loadValid(f)
	b, _ := proto.Marshal(cfg)
	f.Add(b)
	j, _ := protojson.Marshal(cfg)
	f.Add(j)
	f.Add([]byte(`{"components":[{"name":"a","type":"COMPONENT_TYPE_MOTOR","model":"fake","dependsOn":["a","b"]}]}`))
	f.Add([]byte(`{"captures":[{"component":"x","method":"readings","frequencyHz":"NaN"}]}`))
	for _, hz := range []string{"1e-300", `"Infinity"`, "-1", "1e300", "1.6534e-06", "1000"} {
		f.Add([]byte(`{"components":[{"name":"x","type":"COMPONENT_TYPE_SENSOR","model":"fake"}],"captures":[{"component":"x","method":"readings","frequencyHz":` + hz + `}]}`))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, parse := range []func([]byte) (*configv1.RobotConfig, error){Parse, ParseJSON} {
			cfg, err := parse(data)
			if err != nil {
				continue
			}
			for i, cp := range cfg.GetCaptures() {
				// The same arithmetic as capture.Period, which cannot be
				// imported here.
				if p := time.Duration(float64(time.Second) / cp.GetFrequencyHz()); p <= 0 || p > MaxCapturePeriod+time.Second {
					t.Fatalf("accepted captures[%d] at %v Hz has period %v", i, cp.GetFrequencyHz(), p)
				}
			}
			again, err := proto.Marshal(cfg)
			if err != nil {
				t.Fatalf("marshal accepted config: %v", err)
			}
			if _, err := Parse(again); err != nil {
				t.Fatalf("accepted config fails after round trip: %v", err)
			}
		}
	})
}
