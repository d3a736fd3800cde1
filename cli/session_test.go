package cli

import (
	"os"
	"path/filepath"
	"testing"
)

// TestSessionCommandsGolden: logout, user passwd and user delete against a
// real cloud, as a transcript.
func TestSessionCommandsGolden(t *testing.T) {
	url, adminToken := startCloud(t)
	s := &session{t: t, configDir: t.TempDir(), vars: map[string]string{"OUTPOST_CLOUD": url, "OUTPOST_TOKEN": adminToken}}
	admin := func() { s.vars["OUTPOST_TOKEN"] = adminToken }
	saved := func() { delete(s.vars, "OUTPOST_TOKEN") }

	s.run("cat's password 1\n", "user", "create", "cat@example.com", "--password-stdin")
	saved()
	s.run("cat's password 1\n", "login", "cat@example.com", "--password-stdin")
	s.run("not her password\ncat's password 2\n", "user", "passwd", "--password-stdin")
	s.run("cat's password 1\nshort\n", "user", "passwd", "--password-stdin")
	s.run("cat's password 1\n", "user", "passwd", "--password-stdin")
	s.run("cat's password 1\ncat's password 2\n", "user", "passwd", "--password-stdin")
	s.run("", "whoami")
	s.run("cat's password 1\n", "login", "cat@example.com", "--password-stdin")
	s.run("", "logout")
	s.run("", "whoami")
	s.run("", "logout")
	s.run("cat's password 2\n", "login", "cat@example.com", "--password-stdin")
	s.run("", "user", "delete", "cat@example.com", "--yes")
	admin()
	s.run("", "user", "delete", "admin@localhost", "--yes")
	s.run("", "user", "delete", "cat@example.com", "--yes")
	s.run("", "user", "delete", "cat@example.com", "--yes")
	saved()
	s.run("", "whoami")
	s.run("", "logout")
	s.run("", "whoami")

	got := normalize(s.out.String(), url, s.configDir)
	path := filepath.Join("testdata", "sessions.golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("transcript differs from %s (run with -update if the change is intended):\n%s", path, got)
	}
}
