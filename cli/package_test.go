package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"

	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/cloudsync"
)

// TestCLIPackageGolden: upload (and a rerun that sends nothing), list,
// versions, tag, status with a part that reported and a reference that
// does not resolve, delete, and refusals, against the real cloud.
func TestCLIPackageGolden(t *testing.T) {
	url, adminToken := startCloud(t)
	s := &session{t: t, configDir: t.TempDir(), vars: map[string]string{"OUTPOST_CLOUD": url, "OUTPOST_TOKEN": adminToken}}
	org := s.field(s.run("", "org", "create", "Acme Robotics", "--json"), "org", "id")
	loc := s.field(s.run("", "location", "create", "Plant", "--org", org, "--json"), "location", "id")
	machine := s.field(s.run("", "machine", "create", "rover", "--location", loc, "--json"), "machine", "id")

	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	write("blinker", "#!/bin/sh\necho blink\n", 0o755)
	write("README", "blinks a LED\n", 0o644)
	model := filepath.Join(t.TempDir(), "model.bin")
	if err := os.WriteFile(model, []byte(strings.Repeat("weights ", 1000)), 0o644); err != nil {
		t.Fatal(err)
	}

	s.out.Reset()
	pkg := org + "/blinker"
	s.run("", "package", "upload", pkg, "--version", "1.0.0", "--type", "module", "--platform", "linux/arm64", dir)
	s.run("", "package", "upload", pkg, "--version", "1.0.0", "--type", "module", "--platform", "linux/amd64", dir)
	write("blinker", "#!/bin/sh\necho blink twice\n", 0o755)
	s.run("", "package", "upload", pkg, "--version", "1.1.0", "--type", "module", "--platform", "linux/arm64", dir)
	s.run("", "package", "upload", org+"/detector", "--version", "0.1.0", "--type", "ml_model", model)
	s.run("", "package", "tag", pkg, "1.0.0", "stable")
	s.run("", "package", "tag", pkg, "1.1.0", "stable")
	s.run("", "package", "list", "--org", org)
	s.run("", "package", "versions", pkg)

	uploads := s.out.String()
	// The second reference names a tag that does not exist: the machine's
	// status says so.
	cfg := `{"packages": [{"name": "blinker", "package": "` + pkg + `", "version": "tag:stable"},
		{"name": "beta", "package": "` + pkg + `", "version": "tag:beta"}],
		"modules": [{"name": "blinker", "executable": "${packages.blinker}/blinker"}]}`
	s.run(cfg, "config", "set", machine, "--file", "-")
	part := partOf(t, s, machine)
	var b syncv1.Bootstrap
	if err := protojson.Unmarshal([]byte(s.run("", "part", "bootstrap", part)), &b); err != nil {
		t.Fatal(err)
	}
	c, err := cloudsync.NewClient(cloudsync.ClientOptions{CloudURL: b.GetCloudUrl(), PartID: b.GetPartId(), PartSecret: b.GetPartSecret(), RetryMax: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReportStatus(context.Background(), connect.NewRequest(&syncv1.ReportStatusRequest{Status: &syncv1.PartStatus{
		Platform: "linux/arm64",
		Packages: []*syncv1.PackageStatus{{Name: "blinker", Package: pkg, RunningVersion: "1.0.0", IssuedVersion: "1.1.0",
			State: "rolled_back", BytesDone: 100, BytesTotal: 100, Error: "module exited with status 1 at start", RolledBackFrom: "1.1.0"}},
	}})); err != nil {
		t.Fatal(err)
	}
	s.out.Reset()
	s.run("", "package", "status", pkg)
	s.run("", "machine", "status", machine)
	// Refusals.
	s.run("", "package", "delete", pkg, "--version", "1.1.0")
	s.run("", "package", "delete", pkg)
	s.run("", "package", "upload", pkg, "--version", "1.1.0", "--type", "module", "--platform", "linux/arm64", dir)
	s.run("", "package", "upload", pkg, "--version", "2.0.0", "--type", "file", dir)
	s.run("", "package", "upload", "blinker", "--version", "1.0.0", "--type", "module", dir)
	s.run("", "package", "upload", pkg, "--version", "v2", "--type", "module", dir)
	s.run("", "package", "upload", pkg, "--version", "2.0.0", "--type", "module", filepath.Join(dir, "missing"))
	s.run("", "package", "tag", pkg, "9.9.9", "stable")
	s.run("", "package", "versions", org+"/nothing")
	s.run("", "package", "delete", pkg, "--platform", "linux/arm64")
	// A version no tag or config names goes; then the package, once no
	// config names it.
	s.run("", "package", "delete", pkg, "--version", "1.0.0", "--platform", "linux/amd64")
	s.run("{}", "config", "set", machine, "--file", "-")
	s.run("", "package", "delete", org+"/detector")
	s.run("", "package", "list", "--org", org)

	got := strings.NewReplacer(dir, "PKGDIR", model, "MODEL").Replace(uploads + s.out.String())
	compareGolden(t, "package.golden", normalize(got, url, s.configDir))
}
