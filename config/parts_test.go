package config

import (
	"strings"
	"testing"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

const fp = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

func twoParts() []*configv1.MachinePart {
	return []*configv1.MachinePart{{Id: "p1", Name: "rover", Main: true}, {Id: "p2", Name: "camera-pi"}}
}

func placedConfig() *configv1.RobotConfig {
	motor := configv1.ComponentType_COMPONENT_TYPE_MOTOR
	return &configv1.RobotConfig{
		Components: []*configv1.Component{
			{Name: "wheels", Type: motor, Model: "fake"},
			{Name: "pan", Type: motor, Model: "fake", Part: "camera-pi"},
			{Name: "tilt", Type: motor, Model: "fake", Part: "camera-pi", DependsOn: []string{"pan"}},
		},
		Processes: []*configv1.Process{{Id: "rec", Command: "/bin/true"}, {Id: "rec", Command: "/bin/true", Part: "camera-pi"}},
		Captures: []*configv1.CaptureMethod{{Component: "wheels", Method: MethodIsMoving, FrequencyHz: 1},
			{Component: "pan", Method: MethodIsMoving, FrequencyHz: 1}},
		SyncFolders: []*configv1.SyncFolder{{Path: "/data"}, {Path: "/data", Part: "camera-pi"}},
		Remotes:     []*configv1.Remote{{Name: "arm", Address: "10.0.0.9:8443", Fingerprint: fp, ApiKeyId: "k1"}},
		LogLevel:    "debug",
	}
}

func TestSplitGivesEachPartItsShare(t *testing.T) {
	parts := twoParts()
	cfg := placedConfig()
	if err := ValidateMachine(cfg, parts); err != nil {
		t.Fatal(err)
	}
	shares := Split(cfg, parts)
	main, cam := shares["rover"], shares["camera-pi"]
	names := func(c *configv1.RobotConfig) (out []string) {
		for _, x := range c.GetComponents() {
			out = append(out, x.GetName())
		}
		for _, x := range c.GetCaptures() {
			out = append(out, "capture:"+x.GetComponent())
		}
		for _, x := range c.GetProcesses() {
			out = append(out, "process:"+x.GetId())
		}
		for _, x := range c.GetSyncFolders() {
			out = append(out, "folder:"+x.GetPath())
		}
		for _, x := range c.GetRemotes() {
			out = append(out, "remote:"+x.GetName())
		}
		return out
	}
	if got := strings.Join(names(main), " "); got != "wheels capture:wheels process:rec folder:/data remote:arm" {
		t.Errorf("main share: %s", got)
	}
	if got := strings.Join(names(cam), " "); got != "pan tilt capture:pan process:rec folder:/data" {
		t.Errorf("camera-pi share: %s", got)
	}
	if cam.GetLogLevel() != "debug" || main.GetLogLevel() != "debug" {
		t.Error("the log level is every part's")
	}
	for name, s := range shares {
		if err := Validate(s); err != nil {
			t.Errorf("%s's share does not validate alone: %v", name, err)
		}
	}
	if len(parts[1].GetComponents()) != 2 || parts[1].GetComponents()[0].GetName() != "pan" || len(parts[0].GetComponents()) != 1 {
		t.Errorf("placed components: %v", parts)
	}
	if !proto.Equal(cfg, placedConfig()) {
		t.Error("Split changed the config")
	}
}

func TestPlacementProblems(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(c *configv1.RobotConfig, p *[]*configv1.MachinePart)
		wants []string
	}{
		{"a component on an unknown part", func(c *configv1.RobotConfig, _ *[]*configv1.MachinePart) {
			c.Components[1].Part = "gripper"
		}, []string{`components[1].part: unknown part "gripper": the machine's parts are "rover", "camera-pi"`}},
		{"two parts claiming one name", func(_ *configv1.RobotConfig, p *[]*configv1.MachinePart) {
			*p = append(*p, &configv1.MachinePart{Id: "p3", Name: "camera-pi"})
		}, []string{`parts[2].name: two parts claim the name "camera-pi" (also parts[1])`}},
		{"a part id twice", func(_ *configv1.RobotConfig, p *[]*configv1.MachinePart) {
			*p = append(*p, &configv1.MachinePart{Id: "p2", Name: "other"})
		}, []string{`parts[2].id: part "p2" is also parts[1]`}},
		{"two main parts", func(_ *configv1.RobotConfig, p *[]*configv1.MachinePart) {
			(*p)[1].Main = true
		}, []string{`parts: 2 main parts`}},
		{"a dependency across parts", func(c *configv1.RobotConfig, _ *[]*configv1.MachinePart) {
			c.Components[0].DependsOn = []string{"pan"}
		}, []string{`components[0].depends_on[0]: "pan" runs on part "camera-pi", not on "rover"`}},
		{"a capture away from its component", func(c *configv1.RobotConfig, _ *[]*configv1.MachinePart) {
			c.Captures[1].Part = "rover"
		}, []string{`captures[1].part: "pan" runs on part "camera-pi"`}},
		{"a module model with the module elsewhere", func(c *configv1.RobotConfig, _ *[]*configv1.MachinePart) {
			c.Modules = []*configv1.Module{{Name: "servo", Executable: "/bin/servo"}}
			c.Components[1].Model = "acme:servo"
		}, []string{`components[1].model: model "acme:servo" is served by a module, and no module runs on part "camera-pi"`}},
		{"one module twice on the main part, once by its name", func(c *configv1.RobotConfig, _ *[]*configv1.MachinePart) {
			c.Processes = append(c.Processes, &configv1.Process{Id: "rec", Command: "/bin/true", Part: "rover"})
		}, []string{`processes[2].id: duplicate id "rec" (also processes[0])`}},
		{"hostile part names", func(c *configv1.RobotConfig, _ *[]*configv1.MachinePart) {
			c.Components[0].Part = "../etc"
			c.Processes[0].Part = strings.Repeat("x", 65)
			c.SyncFolders[0].Part = "a\x00b"
		}, []string{`components[0].part: part "../etc"`, `processes[0].part: part is 65 characters`, `sync_folders[0].part: part "a\x00b"`}},
		{"hostile parts", func(_ *configv1.RobotConfig, p *[]*configv1.MachinePart) {
			(*p)[1].Id = ""
			(*p)[1].Fingerprint = "zz"
			(*p)[1].Addresses = []string{"nohost", "h:0", "h:99999", ":1", strings.Repeat("a", 300) + ":1"}
		}, []string{"parts[1].id: want a part id", "parts[1].fingerprint: want a SHA-256", "parts[1].addresses[0]", "parts[1].addresses[1]", "parts[1].addresses[2]", "parts[1].addresses[3]", "parts[1].addresses[4]"}},
		{"hostile remotes", func(c *configv1.RobotConfig, _ *[]*configv1.MachinePart) {
			c.Remotes = append(c.Remotes,
				&configv1.Remote{Name: "arm", Address: "10.0.0.9", Fingerprint: fp[:63], ApiKeyId: "../k"},
				&configv1.Remote{Name: "a:b", Address: "h:1", Fingerprint: fp, ApiKeyId: ""})
		}, []string{`remotes[1].name: duplicate name "arm" (also remotes[0])`, "remotes[1].address", "remotes[1].fingerprint", "remotes[1].api_key_id", `remotes[2].name: name "a:b"`, "remotes[2].api_key_id"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, parts := placedConfig(), twoParts()
			tt.edit(cfg, &parts)
			err := ValidateMachine(cfg, parts)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tt.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

// FuzzValidateMachine feeds arbitrary configs and part lists to the
// machine validator and Split: they may refuse, but never panic, and every
// share of an accepted config validates on its own, as a part checks it.
func FuzzValidateMachine(f *testing.F) {
	cfg, _ := protojson.Marshal(placedConfig())
	f.Add(cfg, "rover", "camera-pi", "10.0.0.2:8443", fp)
	f.Add([]byte(`{"components":[{"name":"a","type":"COMPONENT_TYPE_MOTOR","model":"fake","part":"x"}]}`), "x", "x", "h:1", "")
	f.Add([]byte(`{"remotes":[{"name":"r","address":"[::1]:1","fingerprint":"`+fp+`","apiKeyId":"k"}]}`), "a", "b", "[::1]:0", "AB:CD")
	f.Fuzz(func(t *testing.T, raw []byte, mainName, otherName, addr, fingerprint string) {
		c := &configv1.RobotConfig{}
		if protojson.Unmarshal(raw, c) != nil {
			return
		}
		parts := []*configv1.MachinePart{{Id: "p1", Name: mainName, Main: true}, {Id: "p2", Name: otherName, Addresses: []string{addr}, Fingerprint: fingerprint}}
		if ValidateMachine(c, parts) != nil {
			return
		}
		for name, s := range Split(c, parts) {
			if err := Validate(s); err != nil {
				t.Fatalf("part %q's share of an accepted config is refused: %v", name, err)
			}
		}
	})
}
