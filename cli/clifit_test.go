package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"connectrpc.com/connect"

	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/cloud/cloudtest"
	"github.com/outpost-robotics/outpost/cloudsync"
	"github.com/outpost-robotics/outpost/partfile"
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

// TestCLINamesWhereIDsAreAsked: organizations, locations (by name or
// path), machines (by name or the end of their path), parts (MACHINE/PART),
// fragments, API keys and scopes are taken by name; an ID still works; an
// ambiguous name fails listing the candidates and an unknown one says so; a
// name resolves only among what the caller may see; completion offers the
// names, and nothing without a credential.
func TestCLINamesWhereIDsAreAsked(t *testing.T) {
	url, adminToken := startCloud(t)
	s := &session{t: t, configDir: t.TempDir(), vars: map[string]string{"OUTPOST_CLOUD": url, "OUTPOST_TOKEN": adminToken}}
	s.run("", "org", "create", "Acme Robotics")
	s.run("", "org", "create", "Beta")
	s.run("", "location", "create", "Plant", "--org", "Beta")
	s.run("", "location", "create", "Plant", "--org", "Acme Robotics")
	s.run("", "location", "create", "Line 1", "--org", "Acme Robotics", "--parent", "Plant")
	s.run("", "location", "create", "Cell A", "--org", "Acme Robotics", "--parent", "Plant/Line 1")
	s.run("", "location", "create", "Office", "--org", "acme robotics")
	rover := s.field(s.run("", "machine", "create", "rover", "--location", "Cell A", "--json"), "machine", "id")
	s.run("", "machine", "create", "rover", "--location", "Office")
	s.run("", "machine", "create", "forklift", "--location", "Acme Robotics/Plant") // a path may start with its organization
	s.run("", "machine", "create", "arm", "--location", "Line 1")
	s.run("", "part", "add", "gripper", "--machine", "arm")
	s.run("", "part", "rename", "arm/gripper", "claw")
	s.run("", "part", "rename", "gripper", "claw")
	s.run("", "part", "rename", "arm/nothing", "claw")
	s.run("{}", "fragment", "create", "base", "--org", "Acme Robotics", "--file", "-")
	s.run("", "fragment", "get", "base")
	s.run("{}", "config", "set", "arm", "--file", "-", "--fragment", "base")
	s.run("", "machine", "list", "--location", "Plant/Line 1")
	s.run("", "machine", "get", "rover")
	s.run("", "machine", "get", "Cell A/rover")
	s.run("", "machine", "get", rover)
	s.run("", "machine", "get", "rovr")
	s.run("", "location", "rename", "Plant", "Works")
	s.run("", "apikey", "create", "--name", "ci", "--role", "operator", "--scope", "machine/arm")
	s.run("", "apikey", "list", "--org", "Acme Robotics")
	s.run("", "access", "check", "--subject", "apikey/ci", "--action", "machine.control", "--resource", "machine/Office/rover")
	s.run("", "apikey", "revoke", "ci")
	s.run("bob password 1\n", "user", "create", "bob@example.com", "--password-stdin")
	s.run("", "role", "grant", "--subject", "user/bob@example.com", "--role", "operator", "--scope", "location/Plant/Line 1")
	s.run("", "__complete", "machine", "get", "")
	s.run("", "__complete", "machine", "list", "--location", "")
	s.run("", "__complete", "part", "bootstrap", "")
	s.run("", "__complete", "fragment", "get", "")
	// The fleet-wide data commands take names too, in their queries.
	s.run("", "logs", "--org", "Acme Robotics", "--machine", "Cell A/rover")
	s.run("", "logs", "--machine", "arm", "--part", "claw")
	s.run("", "data", "captures", "--location", "Plant/Line 1", "--machine", "arm", "--part", "arm/claw")
	s.run("", "data", "export", "--org", "Acme Robotics", "--machine", "rover", "--format", "jsonl", "-o", "-")
	ds := s.field(s.run("", "dataset", "create", "picks", "--org", "Acme Robotics", "--json"), "dataset", "id")
	s.run("", "dataset", "add", ds, "--location", "Plant/Line 1", "--machine", "arm")
	s.run("", "data", "delete", "--org", "Acme Robotics", "--machine", "forklift", "--yes")

	delete(s.vars, "OUTPOST_TOKEN")
	s.run("", "__complete", "machine", "get", "") // not signed in: nothing
	s.run("bob password 1\n", "login", "bob@example.com", "--password-stdin")
	s.run("", "machine", "get", "rover") // bob sees one rover only
	s.run("", "__complete", "machine", "get", "")
	compareGolden(t, "names.golden", normalize(s.out.String(), url, s.configDir))
}

// TestCLIPrivateCA: a cloud whose TLS a private CA signs is refused without
// the CA; --ca-file reaches it, login remembers it, and part bootstrap
// writes it into the bootstrap file, with which the part syncs as it is.
func TestCLIPrivateCA(t *testing.T) {
	cl := cloudtest.New(t, cloudtest.Options{TLS: true, Clock: clock.NewFake(cliTestTime)})
	p := cl.Provision(t, cloudtest.PartOptions{})
	cl.CreateUser(t, "owner@example.com", "owner password 1", "owner", "machine/"+p.MachineID)
	s := &session{t: t, configDir: t.TempDir(), vars: map[string]string{"OUTPOST_CLOUD": cl.URL}}
	s.run("", "cloud", "info")
	s.run("owner password 1\n", "login", "owner@example.com", "--password-stdin", "--ca-file", cl.CAFile)
	s.run("", "whoami", "--json")
	out := filepath.Join(t.TempDir(), "outpostd.json")
	s.run("", "part", "bootstrap", p.ID, "-o", out)
	s.vars["OUTPOST_CA_FILE"] = filepath.Join(t.TempDir(), "missing.pem")
	s.run("", "whoami")
	got := strings.ReplaceAll(normalize(s.out.String(), cl.URL, s.configDir), out, "OUT")
	got = strings.ReplaceAll(got, s.vars["OUTPOST_CA_FILE"], "MISSING")
	compareGolden(t, "privateca.golden", strings.ReplaceAll(got, cl.CAFile, "CA"))

	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	b, err := partfile.ParseBootstrap(out, data)
	if err != nil || b.File.GetCaPem() == "" {
		t.Fatalf("bootstrap file %v without ca_pem:\n%s", err, data)
	}
	c, err := cloudsync.NewClient(cloudsync.ClientOptions{CloudURL: b.File.GetCloudUrl(), PartID: b.File.GetPartId(), PartSecret: b.File.GetPartSecret(),
		CAPEM: []byte(b.File.GetCaPem()), RetryMax: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Pull(context.Background(), connect.NewRequest(&syncv1.PullRequest{})); err != nil {
		t.Fatalf("the part could not pull with the bootstrap file's CA: %v", err)
	}
}

// TestRobotSaysWhichCredential: with -v, outpost robot says which
// credential its calls carry, never the secret: the session outpost login
// saved when no key is given, an API key from the environment otherwise.
func TestRobotSaysWhichCredential(t *testing.T) {
	url, adminToken := startCloud(t)
	t.Setenv("HOME", t.TempDir()) // no trusted robots
	s := &session{t: t, configDir: t.TempDir(), vars: map[string]string{"OUTPOST_CLOUD": url, "OUTPOST_TOKEN": adminToken}}
	s.run("ann password 1\n", "user", "create", "ann@example.com", "--password-stdin")
	delete(s.vars, "OUTPOST_TOKEN")
	s.run("ann password 1\n", "login", "ann@example.com", "--password-stdin")
	s.out.Reset()
	s.run("", "robot", "status", "-v", "--robot", "127.0.0.1:1")
	s.vars["OUTPOST_API_KEY"] = "opk_0123456789abcdef0123456789abcdef_" + strings.Repeat("A", 43)
	s.run("", "robot", "status", "-v", "--robot", "127.0.0.1:1")
	got := normalize(s.out.String(), url, s.configDir)
	if strings.Contains(got, strings.Repeat("A", 43)) {
		t.Fatalf("-v printed a secret:\n%s", got)
	}
	compareGolden(t, "robotcredential.golden", got)
}
