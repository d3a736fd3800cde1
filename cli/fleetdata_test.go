package cli

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"regexp"
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

var (
	reKeyID  = regexp.MustCompile(`"key_id": "[0-9a-f]{16}"`)
	rePubKey = regexp.MustCompile(`"ed25519": "[A-Za-z0-9+/]{43}="`)
)

// compareGolden checks got against testdata/name, or rewrites it with -update.
func compareGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
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

// TestCLIFleetDataGolden is an admin's session with configs, fragments, a
// part's bootstrap file, and reading back what the part uploaded.
func TestCLIFleetDataGolden(t *testing.T) {
	url, adminToken := startCloud(t)
	s := &session{t: t, configDir: t.TempDir(), vars: map[string]string{"OUTPOST_CLOUD": url, "OUTPOST_TOKEN": adminToken}}

	org := s.field(s.run("", "org", "create", "Acme Robotics", "--json"), "org", "id")
	loc := s.field(s.run("", "location", "create", "Plant", "--org", org, "--json"), "location", "id")
	out := s.run("", "machine", "create", "rover", "--location", loc, "--json")
	machine := s.field(out, "machine", "id")
	var created fleetv1.CreateMachineResponse
	if err := protojson.Unmarshal([]byte(out), &created); err != nil {
		t.Fatal(err)
	}
	part := created.GetMachine().GetParts()[0].GetId()

	frag := s.field(s.run(`{"components": [{"name": "left", "type": "COMPONENT_TYPE_MOTOR", "model": "fake"}], "logLevel": "debug"}`,
		"fragment", "create", "drive", "--org", org, "--file", "-", "--json"), "fragment", "id")
	s.run("", "fragment", "list", "--org", org)
	s.run("", "org", "set-lifetime", org, "14")
	s.run("", "org", "set-lifetime", org, "90")
	s.run(`{"components": [{"name": "lift", "type": "COMPONENT_TYPE_MOTOR", "model": "fake", "dependsOn": ["left"]}]}`,
		"config", "set", machine, "--file", "-", "--fragment", frag)
	s.run(`{"logLevel": "loud"}`, "config", "set", machine, "--file", "-")
	s.run(`{"colour": "red"}`, "config", "set", machine, "--file", "-")
	s.run(`{}`, "config", "set", machine, "--file", "-", "--base", "0")
	s.run("", "config", "get", machine)
	s.run(`{"components": [{"name": "left", "type": "COMPONENT_TYPE_MOTOR", "model": "fake"}]}`, "fragment", "update", frag, "--file", "-")
	s.run(`{}`, "fragment", "update", frag, "--file", "-")
	s.run("", "fragment", "delete", frag, "--yes")
	s.run("", "config", "history", machine)
	s.run("", "config", "proposals", machine)
	boot := s.run("", "part", "bootstrap", part)

	// The part, provisioned from that file, uploads and reports.
	var b syncv1.Bootstrap
	if err := protojson.Unmarshal([]byte(boot), &b); err != nil {
		t.Fatalf("the bootstrap file is not protobuf JSON: %v\n%s", err, boot)
	}
	client, err := cloudsync.NewClient(cloudsync.ClientOptions{CloudURL: b.GetCloudUrl(), PartID: b.GetPartId(), PartSecret: b.GetPartSecret(), RetryMax: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	at := time.Date(2026, 11, 22, 11, 0, 0, 0, time.UTC)
	rec := func(seq uint64, m proto.Message) *syncv1.Record {
		p, _ := proto.Marshal(m)
		return &syncv1.Record{Seq: seq, Time: timestamppb.New(at.Add(time.Duration(seq) * time.Minute)), Payload: p}
	}
	uploads := []*syncv1.UploadRequest{
		{StoreId: "s1", Stream: "logs.info", Records: []*syncv1.Record{
			rec(1, &syncv1.LogEntry{Level: "info", Logger: "robot", Message: "config applied"}),
			rec(2, &syncv1.LogEntry{Level: "info", Logger: "sync", Message: "pulled", FieldsJson: `{"version":1}`}),
		}},
		{StoreId: "s1", Stream: "logs.warn", Records: []*syncv1.Record{rec(1, &syncv1.LogEntry{Level: "error", Logger: "robot", Message: "lift stalled"})}},
		{StoreId: "s1", Stream: "captures", Records: []*syncv1.Record{
			rec(1, &syncv1.Capture{Component: "lift", Method: "is_moving", Tags: []string{"night"}, Data: []byte(`{"moving":false}`), MimeType: "application/json"}),
			rec(2, &syncv1.Capture{Component: "left", Method: "status", Data: []byte(`{}`), MimeType: "application/json"}),
			rec(3, &syncv1.Capture{Component: "cam", Method: "image", MimeType: "image/jpeg", BlobId: "img-1"}),
		}},
	}
	blob := bytes.Repeat([]byte("jpeg "), 2_000_000) // 10 MB: more than one ReadBlob
	sum := sha256.Sum256(blob)
	for off := 0; off < len(blob); off += 4 << 20 {
		end := min(off+4<<20, len(blob))
		if _, err := client.UploadBlob(ctx, connect.NewRequest(&syncv1.UploadBlobRequest{BlobId: "img-1", Offset: uint64(off), Data: blob[off:end],
			Size: uint64(len(blob)), Sha256: sum[:], Name: "capture"})); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range uploads {
		if _, err := client.Upload(ctx, connect.NewRequest(u)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := client.ReportStatus(ctx, connect.NewRequest(&syncv1.ReportStatusRequest{Status: &syncv1.PartStatus{Version: "0.6.0", ConfigVersion: 1}})); err != nil {
		t.Fatal(err)
	}

	s.run("", "machine", "status", machine)
	s.run("", "logs", "--machine", machine)
	s.run("", "logs", "--machine", machine, "--level", "error")
	s.run("", "logs", "--machine", machine, "--from", "2026-11-22T11:01:30Z", "--json")
	s.run("", "data", "captures", "--machine", machine)
	s.run("", "data", "captures", "--machine", machine, "--tag", "night")
	s.run("", "data", "captures", "--machine", machine, "--component", "left", "--from", "yesterday")
	s.run("", "part", "bootstrap", part, "--cloud-url", "ftp://cloud")
	s.run("", "data", "tag", part+":s1:1", part+":s1:2", "--machine", machine, "--add", "reviewed", "--remove", "night")
	s.run("", "data", "tag", part+":s1", "--machine", machine, "--add", "x")
	s.run("", "data", "captures", "--machine", machine, "--tag", "reviewed")
	s.run("", "data", "export", "--machine", machine, "--component", "lift", "--format", "jsonl", "-o", "-", "--quiet")
	tarPath := filepath.Join(t.TempDir(), "export.tar")
	s.run("", "data", "export", "--machine", machine, "--format", "tar", "-o", tarPath, "--quiet")
	s.run("", "data", "export", "--machine", machine, "--format", "zip", "-o", tarPath)
	s.run("", "data", "delete", "--machine", machine, "--component", "cam")
	s.run("", "data", "delete", "--machine", machine, "--component", "cam", "--yes")
	s.run("", "data", "delete", "--machine", machine, part+":s1:2", "--yes")
	s.run("", "data", "captures", "--machine", machine)

	// The cloud's key first: base64 without '+' or '/' also looks like a secret.
	got := reKeyID.ReplaceAllString(s.out.String(), `"key_id": "<key id>"`)
	got = rePubKey.ReplaceAllString(got, `"ed25519": "<public key>"`)
	got = normalize(got, url, s.configDir)
	got = strings.ReplaceAll(got, filepath.Dir(tarPath), "TMP")
	compareGolden(t, "fleetdata.golden", got)

	f, err := os.Open(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	files := map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name], _ = io.ReadAll(tr)
	}
	// Each capture's file has its name and an extension of its type; JSON
	// readings are JSON.
	if !bytes.Equal(files[part+"/capture.jpg"], blob) || string(files[part+"/1.json"]) != `{"moving":false}` ||
		bytes.Count(files["captures.jsonl"], []byte("\n")) != 3 || len(files) != 4 {
		t.Errorf("the tar holds %d files; captures.jsonl:\n%s", len(files), files["captures.jsonl"])
	}
}

func TestProgressBar(t *testing.T) {
	var out bytes.Buffer
	p := &progress{w: &out, total: 4}
	p.draw()
	p.done, p.bytes = 2, 3<<20
	p.draw()
	p.done = 4
	p.finish()
	want := "\r[....................]   0%  0/4 captures  0.0 MiB" +
		"\r[##########..........]  50%  2/4 captures  3.0 MiB" +
		"\r[####################] 100%  4/4 captures  3.0 MiB\n"
	if out.String() != want {
		t.Errorf("drew %q, want %q", out.String(), want)
	}
	(&progress{}).draw() // quiet: no writer, no panic
}

// TestBootstrapOutputFile writes the bootstrap file with mode 0600 and
// never over an existing file.
func TestBootstrapOutputFile(t *testing.T) {
	url, adminToken := startCloud(t)
	s := &session{t: t, configDir: t.TempDir(), vars: map[string]string{"OUTPOST_CLOUD": url, "OUTPOST_TOKEN": adminToken}}
	org := s.field(s.run("", "org", "create", "Acme", "--json"), "org", "id")
	loc := s.field(s.run("", "location", "create", "Plant", "--org", org, "--json"), "location", "id")
	var created fleetv1.CreateMachineResponse
	if err := protojson.Unmarshal([]byte(s.run("", "machine", "create", "rover", "--location", loc, "--json")), &created); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "outpostd.json")
	s.run("", "part", "bootstrap", created.GetMachine().GetParts()[0].GetId(), "-o", path, "--cloud-url", "https://cloud.example.com")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("%v\n%s", err, s.out.String())
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode())
	}
	b, _ := os.ReadFile(path)
	var boot syncv1.Bootstrap
	if err := protojson.Unmarshal(b, &boot); err != nil || boot.GetCloudUrl() != "https://cloud.example.com" || len(boot.GetCloudKeys()) != 1 {
		t.Errorf("file %s: %v", b, err)
	}
	s.run("", "part", "bootstrap", created.GetMachine().GetParts()[0].GetId(), "-o", path)
	if !strings.Contains(s.out.String(), "file exists") {
		t.Errorf("replaced an existing file:\n%s", s.out.String())
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, b) {
		t.Error("the file changed")
	}
}

// TestFollowLogs prints each entry once across polls and stops with its context.
func TestFollowLogs(t *testing.T) {
	now := time.Now()
	entry := func(seq uint64, msg string) *fleetv1.LogEntry {
		return &fleetv1.LogEntry{PartId: "p", Stream: "logs.info", Seq: seq, Time: timestamppb.New(now), Entry: &syncv1.LogEntry{Level: "info", Message: msg}}
	}
	polls := [][]*fleetv1.LogEntry{
		{entry(1, "one")},
		{entry(1, "one"), entry(2, "two")},
		{entry(1, "one"), entry(2, "two"), entry(3, "three")},
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := 0
	list := func(*timestamppb.Timestamp, string) (*fleetv1.ListLogsResponse, error) {
		res := &fleetv1.ListLogsResponse{Entries: polls[min(n, len(polls)-1)]}
		n++
		if n == len(polls) {
			cancel()
		}
		return res, nil
	}
	var out bytes.Buffer
	g := &globals{}
	if err := g.followLogs(ctx, &out, list, nil, time.Millisecond, time.Minute); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); strings.Count(got, "one") != 1 || strings.Count(got, "two") != 1 || strings.Count(got, "three") != 1 {
		t.Errorf("printed:\n%s", got)
	}
}
