package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/cloudsync"
)

// TestCLIFleetWideGolden is a team's session over a fleet: logs and
// captures of an organization and a location's subtree merged by time,
// their filters and errors, an export, and a dataset from creation to
// deletion, exported as files and a manifest.
func TestCLIFleetWideGolden(t *testing.T) {
	url, adminToken := startCloud(t)
	s := &session{t: t, configDir: t.TempDir(), vars: map[string]string{"OUTPOST_CLOUD": url, "OUTPOST_TOKEN": adminToken}}
	org := s.field(s.run("", "org", "create", "Acme Robotics", "--json"), "org", "id")
	plant := s.field(s.run("", "location", "create", "Plant", "--org", org, "--json"), "location", "id")
	line := s.field(s.run("", "location", "create", "Line 1", "--org", org, "--parent", plant, "--json"), "location", "id")
	at := time.Date(2026, 11, 22, 11, 0, 0, 0, time.UTC)
	// Each machine's part uploads from its bootstrap file: rover in Plant,
	// arm in Plant/Line 1, their records interleaved in time.
	machine := func(name, loc string, offset time.Duration) (string, string) {
		var created fleetv1.CreateMachineResponse
		if err := protojson.Unmarshal([]byte(s.run("", "machine", "create", name, "--location", loc, "--json")), &created); err != nil {
			t.Fatal(err)
		}
		id := created.GetMachine().GetId()
		var b syncv1.Bootstrap
		if err := protojson.Unmarshal([]byte(s.run("", "part", "bootstrap", created.GetMachine().GetParts()[0].GetId())), &b); err != nil {
			t.Fatal(err)
		}
		client, err := cloudsync.NewClient(cloudsync.ClientOptions{CloudURL: b.GetCloudUrl(), PartID: b.GetPartId(), PartSecret: b.GetPartSecret(), RetryMax: 1})
		if err != nil {
			t.Fatal(err)
		}
		rec := func(seq uint64, m proto.Message) *syncv1.Record {
			p, _ := proto.Marshal(m)
			return &syncv1.Record{Seq: seq, Time: timestamppb.New(at.Add(time.Duration(seq)*time.Minute + offset)), Payload: p}
		}
		for _, u := range []*syncv1.UploadRequest{
			{StoreId: "s1", Stream: "logs.info", Records: []*syncv1.Record{
				rec(1, &syncv1.LogEntry{Level: "info", Logger: "robot", Message: name + " started"}),
				rec(2, &syncv1.LogEntry{Level: "info", Logger: "robot", Message: name + " working"}),
			}},
			{StoreId: "s1", Stream: "captures", Records: []*syncv1.Record{
				rec(1, &syncv1.Capture{Component: "cam", Method: "image", Data: []byte("\xff\xd8jpeg"), MimeType: "image/jpeg", Tags: []string{"cone"}}),
				rec(2, &syncv1.Capture{Component: "imu", Method: "readings", Data: []byte(`{"g":9.8}`), MimeType: "application/json"}),
			}},
		} {
			if _, err := client.Upload(context.Background(), connect.NewRequest(u)); err != nil {
				t.Fatal(err)
			}
		}
		return id, b.GetPartId()
	}
	rover, roverPart := machine("rover", plant, 0)
	machine("arm", line, 30*time.Second)
	s.out.Reset()

	s.run("", "logs", "--org", org)
	s.run("", "logs", "--location", line)
	s.run("", "data", "captures", "--org", org)
	s.run("", "data", "captures", "--location", plant, "--mime", "image/*")
	s.run("", "data", "captures", "--org", org, "--method", "readings", "--machine", rover)
	s.run("", "data", "captures", "--org", org, "--part", roverPart, "--from", "2026-11-22T11:01:30Z")
	s.run("", "data", "captures")
	s.run("", "data", "captures", "--machine", rover, "--mime", "image/jpeg")
	s.run("", "data", "captures", "--org", org, "--location", plant)
	s.run("", "data", "captures", "--org", org, "--limit", "5000")
	s.run("", "data", "export", "--location", line, "--format", "jsonl", "-o", "-", "--quiet")

	ds := s.field(s.run("", "dataset", "create", "cones", "--org", org, "--json"), "dataset", "id")
	s.run("", "dataset", "create", "cones", "--org", org)
	// One part's captures only: a dataset lists by capture key, and the
	// parts' IDs are random.
	s.run("", "dataset", "add", ds, "--mime", "image/*", "--machine", rover)
	s.run("", "dataset", "add", ds, roverPart+":s1:2")
	s.run("", "dataset", "add", ds, roverPart+":s1:9")
	s.run("", "dataset", "add", ds, "not-a-capture")
	s.run("", "dataset", "list", "--org", org)
	s.run("", "dataset", "captures", ds)
	s.run("", "dataset", "rename", ds, "traffic cones")
	dir := filepath.Join(t.TempDir(), "cones")
	s.run("", "dataset", "export", ds, "-o", dir, "--quiet")
	s.run("", "dataset", "export", ds, "-o", dir, "--quiet")
	s.run("", "dataset", "remove", ds, "--component", "imu")
	s.run("", "dataset", "delete", ds)
	s.run("", "dataset", "delete", ds, "--yes")
	s.run("", "dataset", "captures", ds)

	got := normalize(s.out.String(), url, s.configDir)
	got = strings.ReplaceAll(got, filepath.Dir(dir), "TMP")
	compareGolden(t, "fleetwide.golden", got)

	// The export: a manifest line per capture, each naming its file.
	manifest, err := os.ReadFile(filepath.Join(dir, "manifest.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(manifest)), "\n")
	if len(lines) != 2 {
		t.Fatalf("manifest of %d lines:\n%s", len(lines), manifest)
	}
	for _, l := range lines {
		var m manifestLine
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(m.File)))
		want := map[string]string{"image/jpeg": "\xff\xd8jpeg", "application/json": `{"g":9.8}`}[m.MimeType]
		if err != nil || string(data) != want || m.Component == "" || m.MachineID == "" {
			t.Errorf("%s: %q, %v", l, data, err)
		}
	}
}
