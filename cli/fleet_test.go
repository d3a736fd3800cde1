package cli

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"

	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/cloudsync"
)

var rePage = regexp.MustCompile(`--page [A-Za-z0-9_-]+`)

// TestCLIFleetGolden: machine list over a location's subtree and an
// organization, its filters and pages, its refusals, and fleet status,
// against the real cloud with parts that reported their state.
func TestCLIFleetGolden(t *testing.T) {
	url, adminToken := startCloud(t)
	s := &session{t: t, configDir: t.TempDir(), vars: map[string]string{"OUTPOST_CLOUD": url, "OUTPOST_TOKEN": adminToken}}
	org := s.field(s.run("", "org", "create", "Acme Robotics", "--json"), "org", "id")
	plant := s.field(s.run("", "location", "create", "Plant", "--org", org, "--json"), "location", "id")
	line := s.field(s.run("", "location", "create", "Line 1", "--org", org, "--parent", plant, "--json"), "location", "id")
	cell := s.field(s.run("", "location", "create", "Cell A", "--org", org, "--parent", line, "--json"), "location", "id")
	office := s.field(s.run("", "location", "create", "Office", "--org", org, "--json"), "location", "id")
	machine := func(loc, name string) string {
		out := s.run("", "machine", "create", name, "--location", loc, "--json")
		return s.field(out, "machine", "id")
	}
	rover, arm := machine(cell, "rover"), machine(plant, "arm")
	machine(office, "forklift")
	status := func(machineID string, st *syncv1.PartStatus) {
		t.Helper()
		part := partOf(t, s, machineID)
		var b syncv1.Bootstrap
		if err := protojson.Unmarshal([]byte(s.run("", "part", "bootstrap", part)), &b); err != nil {
			t.Fatal(err)
		}
		c, err := cloudsync.NewClient(cloudsync.ClientOptions{CloudURL: b.GetCloudUrl(), PartID: b.GetPartId(), PartSecret: b.GetPartSecret(), RetryMax: 1})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.ReportStatus(context.Background(), connect.NewRequest(&syncv1.ReportStatusRequest{Status: st})); err != nil {
			t.Fatal(err)
		}
	}
	status(rover, &syncv1.PartStatus{Version: "0.7.0", ConfigVersion: 0,
		Backlog:   []*syncv1.StreamBacklog{{Stream: "logs.info", Records: 42, Bytes: 4200}},
		Resources: []*syncv1.ResourceStatus{{Name: "process/pump", State: "failed", Error: "crash loop"}, {Name: "component/left", State: "running"}}})
	status(arm, &syncv1.PartStatus{Version: "0.6.0", Backlog: []*syncv1.StreamBacklog{{Stream: "captures", Records: 3}}})

	s.out.Reset() // the transcript starts with the views
	s.run("", "machine", "list", "--location", plant)
	s.run("", "machine", "list", "--org", org)
	s.run("", "machine", "list", "--org", org, "--offline")
	s.run("", "machine", "list", "--org", org, "--failing")
	s.run("", "machine", "list", "--org", org, "--version", "0.6.0")
	s.run("", "machine", "list", "--org", org, "--search", "ROV")
	first := s.run("", "machine", "list", "--org", org, "--limit", "2")
	page := strings.TrimPrefix(rePage.FindString(first), "--page ")
	if page == "" {
		t.Fatalf("a first page of 2 of 3 machines says no more:\n%s", first)
	}
	s.run("", "machine", "list", "--org", org, "--limit", "2", "--page", page)
	s.run("", "machine", "list", "--org", org, "--json", "--search", "fork")
	s.run("", "fleet", "status", "--org", org)
	// Refusals.
	s.run("", "machine", "list")
	s.run("", "machine", "list", "--org", org, "--location", plant)
	s.run("", "machine", "list", "--org", org, "--limit", "501")
	s.run("", "machine", "list", "--org", org, "--page", "forged")
	s.run("", "machine", "list", "--location", "not-an-id")
	s.run("", "fleet", "status")

	got := rePage.ReplaceAllString(s.out.String(), "--page <page token>")
	compareGolden(t, "fleet.golden", normalize(got, url, s.configDir))
}

// partOf returns the main part of a machine, as machine get --json says.
func partOf(t *testing.T, s *session, machineID string) string {
	t.Helper()
	var res struct {
		Machine struct {
			Parts []struct {
				ID string `json:"id"`
			} `json:"parts"`
		} `json:"machine"`
	}
	if err := json.Unmarshal([]byte(s.run("", "machine", "get", machineID, "--json")), &res); err != nil || len(res.Machine.Parts) == 0 {
		t.Fatalf("machine get: %v", err)
	}
	return res.Machine.Parts[0].ID
}
