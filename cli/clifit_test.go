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

// TestCLIUserListAndConfirmedDeletes: user list shows an organization's
// members with their roles to those the seed tables let see them (an org
// operator yes, a location operator no); a delete asks on a terminal, and
// without one refuses unless --yes.
func TestCLIUserListAndConfirmedDeletes(t *testing.T) {
	url, adminToken := startCloud(t)
	s := &session{t: t, configDir: t.TempDir(), vars: map[string]string{"OUTPOST_CLOUD": url, "OUTPOST_TOKEN": adminToken}}
	org := s.field(s.run("", "org", "create", "Acme Robotics", "--json"), "org", "id")
	loc := s.field(s.run("", "location", "create", "Plant", "--org", org, "--json"), "location", "id")
	machine := s.field(s.run("", "machine", "create", "rover", "--location", loc, "--json"), "machine", "id")
	s.run("ops password 1\n", "user", "create", "ops@example.com", "--password-stdin")
	s.run("loc password 1\n", "user", "create", "loc@example.com", "--password-stdin")
	s.run("", "role", "grant", "--subject", "user/ops@example.com", "--role", "operator", "--scope", "org/"+org)
	s.run("", "role", "grant", "--subject", "user/loc@example.com", "--role", "operator", "--scope", "location/"+loc)
	s.out.Reset()
	s.run("", "user", "list", "--org", org)
	delete(s.vars, "OUTPOST_TOKEN")
	s.run("ops password 1\n", "login", "ops@example.com", "--password-stdin")
	s.run("", "user", "list", "--org", org)
	s.run("loc password 1\n", "login", "loc@example.com", "--password-stdin")
	s.run("", "user", "list", "--org", org)
	s.run("", "user", "list")
	s.vars["OUTPOST_TOKEN"] = adminToken

	s.run("y\n", "machine", "delete", machine) // a pipe is no terminal, whatever it holds
	s.terminal = true
	s.run("n\n", "machine", "delete", machine)
	s.run("", "machine", "delete", machine)
	s.run("\x1b[31mYES\n", "machine", "delete", machine)
	s.run("yes\n", "machine", "delete", machine)
	s.terminal = false
	s.run("", "location", "delete", loc)
	s.run("", "location", "delete", loc, "--yes")
	s.run("", "org", "delete", org, "-y")
	compareGolden(t, "userlist.golden", normalize(s.out.String(), url, s.configDir))
}
