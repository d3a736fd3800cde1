package config

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/types/known/structpb"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
)

func packagesConfig(t *testing.T) *configv1.RobotConfig {
	t.Helper()
	attrs, err := structpb.NewStruct(map[string]any{"model_path": "${packages.detector}/model.bin", "nested": []any{map[string]any{"p": "${packages.detector}"}}})
	if err != nil {
		t.Fatal(err)
	}
	generic := configv1.ComponentType_COMPONENT_TYPE_GENERIC
	return &configv1.RobotConfig{
		Packages: []*configv1.PackageRef{
			{Name: "blinker", Package: "org1/blinker", Version: "tag:stable"},
			{Name: "detector", Package: "org1/detector", Version: "1.4.0", Part: "camera-pi"},
			{Name: "tool", Package: "org1/tool"},
		},
		Modules:    []*configv1.Module{{Name: "blink", Executable: "${packages.blinker}/blinker", Args: []string{"--dir=${packages.blinker}"}}},
		Processes:  []*configv1.Process{{Id: "t", Command: "${packages.tool}/run", WorkingDir: "${packages.tool}"}},
		Components: []*configv1.Component{{Name: "eye", Type: generic, Model: "fake", Part: "camera-pi", Attributes: attrs}},
	}
}

func TestPackagesValid(t *testing.T) {
	cfg := packagesConfig(t)
	if err := ValidateMachine(cfg, twoParts()); err != nil {
		t.Fatal(err)
	}
	shares := Split(cfg, twoParts())
	if got := len(shares["rover"].GetPackages()); got != 2 {
		t.Fatalf("rover has %d packages, want 2", got)
	}
	if got := shares["camera-pi"].GetPackages(); len(got) != 1 || got[0].GetName() != "detector" {
		t.Fatalf("camera-pi has %v", got)
	}
	for name, s := range shares {
		if err := Validate(s); err != nil {
			t.Errorf("share of %s: %v", name, err)
		}
	}
}

func TestPackageProblems(t *testing.T) {
	tests := []struct {
		name string
		edit func(c *configv1.RobotConfig)
		want string
	}{
		{"duplicate name", func(c *configv1.RobotConfig) { c.Packages[2].Name = "blinker" }, "packages[2].name: duplicate name"},
		{"no org", func(c *configv1.RobotConfig) { c.Packages[0].Package = "blinker" }, "packages[0].package"},
		{"org traversal", func(c *configv1.RobotConfig) { c.Packages[0].Package = "../x/blinker" }, "packages[0].package"},
		{"bad package name", func(c *configv1.RobotConfig) { c.Packages[0].Package = "org1/Blinker" }, "packages[0].package"},
		{"three segments", func(c *configv1.RobotConfig) { c.Packages[0].Package = "org1/a/b" }, "packages[0].package"},
		{"bad version", func(c *configv1.RobotConfig) { c.Packages[0].Version = "v1" }, "packages[0].version"},
		{"bad tag", func(c *configv1.RobotConfig) { c.Packages[0].Version = "tag:" }, "packages[0].version"},
		{"tag latest", func(c *configv1.RobotConfig) { c.Packages[0].Version = "tag:latest" }, "packages[0].version"},
		{"unknown part", func(c *configv1.RobotConfig) { c.Packages[0].Part = "nope" }, "packages[0].part: unknown part"},
		{"unknown reference", func(c *configv1.RobotConfig) { c.Modules[0].Executable = "${packages.nope}/x" }, "modules[0].executable: ${packages.nope}"},
		{"reference in an arg", func(c *configv1.RobotConfig) { c.Processes[0].Args = []string{"${packages.x}"} }, "processes[0].args[0]: ${packages.x}"},
		{"other part's package", func(c *configv1.RobotConfig) { c.Modules[0].Executable = "${packages.detector}/x" }, `not placed on part "rover"`},
		{"attribute on another part", func(c *configv1.RobotConfig) { c.Components[0].Part = "" }, `components[0].attributes.model_path: ${packages.detector}: package "detector" is not placed on part "rover"`},
		{"relative executable", func(c *configv1.RobotConfig) { c.Modules[0].Executable = "x/${packages.blinker}" }, "modules[0].executable"},
		{"too many", func(c *configv1.RobotConfig) {
			for range MaxPackages {
				c.Packages = append(c.Packages, &configv1.PackageRef{Name: "x", Package: "o/x"})
			}
		}, "packages: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := packagesConfig(t)
			tt.edit(cfg)
			err := ValidateMachine(cfg, twoParts())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want a problem with %q", err, tt.want)
			}
		})
	}
}

func TestExpandPackages(t *testing.T) {
	dirs := map[string]string{"m": "/var/lib/outpost/packages/m/1.0.0"}
	got, err := ExpandPackages("${packages.m}/model.bin:${packages.m}", dirs)
	if err != nil || got != "/var/lib/outpost/packages/m/1.0.0/model.bin:/var/lib/outpost/packages/m/1.0.0" {
		t.Fatalf("got %q, %v", got, err)
	}
	if _, err := ExpandPackages("${packages.x}", dirs); err == nil {
		t.Fatal("an unknown package expanded")
	}
	if got, _ := ExpandPackages("$HOME/${packages", dirs); got != "$HOME/${packages" {
		t.Fatalf("a string without references changed: %q", got)
	}
}

func TestParseVersionSelector(t *testing.T) {
	for in, want := range map[string]string{"": "latest:", "latest": "latest:", "tag:stable": "tag:stable", "1.4.0": "version:1.4.0", "1.4.0-rc.1": "version:1.4.0-rc.1"} {
		k, v, err := ParseVersionSelector(in)
		if err != nil || k+":"+v != want {
			t.Errorf("%q: %s:%s %v, want %s", in, k, v, err, want)
		}
	}
	for _, in := range []string{"LATEST", "tag:Stable", "1", "tag:", "1.4.0\x00"} {
		if _, _, err := ParseVersionSelector(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}
