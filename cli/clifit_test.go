package cli

import (
	"testing"
)

// TestCLINewPartShowsNoSecret: machine create and part add print no part
// secret, in a table or as JSON (bootstrap would replace it at once), and
// say how the part gets its credentials; bootstrap still gives one.
func TestCLINewPartShowsNoSecret(t *testing.T) {
	url, adminToken := startCloud(t)
	s := &session{t: t, configDir: t.TempDir(), vars: map[string]string{"OUTPOST_CLOUD": url, "OUTPOST_TOKEN": adminToken}}
	org := s.field(s.run("", "org", "create", "Acme Robotics", "--json"), "org", "id")
	loc := s.field(s.run("", "location", "create", "Plant", "--org", org, "--json"), "location", "id")
	s.out.Reset()
	s.run("", "machine", "create", "rover", "--location", loc)
	machine := s.field(s.run("", "machine", "create", "arm", "--location", loc, "--json"), "machine", "id")
	s.run("", "part", "add", "gripper", "--machine", machine)
	s.run("", "part", "add", "camera", "--machine", machine, "--json")
	if reSecret.MatchString(s.out.String()) {
		t.Fatalf("a new part's secret was printed:\n%s", s.out.String())
	}
	compareGolden(t, "newpart.golden", normalize(s.out.String(), url, s.configDir))
	boot := s.run("", "part", "bootstrap", partOf(t, s, machine))
	if !reSecret.MatchString(boot) {
		t.Fatalf("bootstrap gave no secret:\n%s", boot)
	}
}
