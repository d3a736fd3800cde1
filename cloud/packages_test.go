package cloud_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/cloud"
	"github.com/outpost-robotics/outpost/cloud/cloudtest"
	"github.com/outpost-robotics/outpost/cloud/store"
	"github.com/outpost-robotics/outpost/pkgformat"
	"github.com/outpost-robotics/outpost/pkgupload"
	"github.com/outpost-robotics/outpost/signed"
)

// packageDir writes a small module-like package: a script and a 1.5 MiB
// blob of random bytes (seeded), so it spans a few chunks.
func packageDir(t *testing.T, seed byte, script string) string {
	t.Helper()
	dir := t.TempDir()
	blob := make([]byte, 3<<19)
	rand.NewChaCha8([32]byte{seed}).Read(blob)
	if err := os.WriteFile(filepath.Join(dir, "run"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "model.bin"), blob, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestPackageRegistry uploads versions, resumes an upload, tags, lists,
// and is refused for hostile input, another organization's package and
// an operator's upload.
func TestPackageRegistry(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	admin := e.client(e.adminToken)
	p := e.Provision(t, cloudtest.PartOptions{})
	org := p.OrgID
	dir := packageDir(t, 1, "#!/bin/sh\necho v1\n")

	// An upload cut after its first chunk resumes: the rerun sends only
	// the chunks still missing.
	var tarBuf bytes.Buffer
	if _, err := pkgformat.WriteTar(ctx, &tarBuf, dir); err != nil {
		t.Fatal(err)
	}
	chunks, _, _, err := pkgformat.Split(ctx, bytes.NewReader(tarBuf.Bytes()), func(data []byte, _ [32]byte) error {
		_, err := admin.Package.UploadChunk(ctx, connect.NewRequest(&fleetv1.UploadChunkRequest{OrgId: org, Data: data}))
		if err != nil {
			t.Fatal(err)
		}
		return errCut
	})
	if !errors.Is(err, errCut) || chunks != nil {
		t.Fatalf("the cut upload: %v", err)
	}
	res, err := pkgupload.Upload(ctx, admin.Package, pkgupload.Request{OrgID: org, Name: "blinker", Version: "1.0.0", Type: "module", Platform: "linux/arm64", Path: dir})
	if err != nil {
		t.Fatal(err)
	}
	if res.Chunks < 2 || res.Uploaded != res.Chunks-1 {
		t.Fatalf("resumed upload sent %d of %d chunks, want all but the first", res.Uploaded, res.Chunks)
	}
	// The same files for another platform share every chunk.
	res, err = pkgupload.Upload(ctx, admin.Package, pkgupload.Request{OrgID: org, Name: "blinker", Version: "1.0.0", Type: "module", Platform: "linux/amd64", Path: dir})
	if err != nil || res.Uploaded != 0 {
		t.Fatalf("second platform: %d chunks sent, %v; want none", res.Uploaded, err)
	}
	v2 := e.UploadPackage(t, org, "blinker", "2.0.0", "module", "linux/arm64", packageDir(t, 1, "#!/bin/sh\nexit 1\n"))
	if v2.GetChunkCount() == 0 || v2.GetCreatedBy() == "" {
		t.Fatalf("version %v", v2)
	}
	e.TagPackage(t, org, "blinker", "1.0.0", "stable")

	vs := check(admin.Package.ListVersions(ctx, connect.NewRequest(&fleetv1.ListVersionsRequest{OrgId: org, Name: "blinker"})))(t)
	var got []string
	for _, v := range vs.GetVersions() {
		got = append(got, v.GetVersion()+" "+v.GetPlatform()+" "+strings.Join(v.GetTags(), ","))
	}
	if want := "2.0.0 linux/arm64 |1.0.0 linux/amd64 stable|1.0.0 linux/arm64 stable"; strings.Join(got, "|") != want {
		t.Fatalf("versions %q, want %q", strings.Join(got, "|"), want)
	}
	ps := check(admin.Package.ListPackages(ctx, connect.NewRequest(&fleetv1.ListPackagesRequest{OrgId: org})))(t)
	if len(ps.GetPackages()) != 1 || ps.GetPackages()[0].GetLatestVersion() != "2.0.0" || ps.GetPackages()[0].GetTags()["stable"] != "1.0.0" {
		t.Fatalf("packages %v", ps.GetPackages())
	}

	data := []byte("a chunk")
	sum := sha256.Sum256(data)
	check(admin.Package.UploadChunk(ctx, connect.NewRequest(&fleetv1.UploadChunkRequest{OrgId: org, Data: data})))(t)
	missingSum := sha256.Sum256([]byte("never uploaded"))
	create := func(edit func(r *fleetv1.CreateVersionRequest)) error {
		r := &fleetv1.CreateVersionRequest{OrgId: org, Name: "tool", Version: "1.0.0", Type: "file", Platform: "any",
			Size: uint64(len(data)), Sha256: sum[:], Chunks: []*syncv1.PackageChunk{{Sha256: sum[:], Size: uint32(len(data))}}}
		edit(r)
		_, err := admin.Package.CreateVersion(ctx, connect.NewRequest(r))
		return err
	}
	for _, tt := range []struct {
		name     string
		err      error
		code     connect.Code
		contains string
	}{
		{"bad name", create(func(r *fleetv1.CreateVersionRequest) { r.Name = "../etc" }), connect.CodeInvalidArgument, "package name"},
		{"bad version", create(func(r *fleetv1.CreateVersionRequest) { r.Version = "latest" }), connect.CodeInvalidArgument, "version"},
		{"bad type", create(func(r *fleetv1.CreateVersionRequest) { r.Type = "rootkit" }), connect.CodeInvalidArgument, "package type"},
		{"bad platform", create(func(r *fleetv1.CreateVersionRequest) { r.Platform = "../../x" }), connect.CodeInvalidArgument, "platform"},
		{"chunk over the limit", create(func(r *fleetv1.CreateVersionRequest) {
			r.Chunks[0].Size, r.Size = pkgformat.MaxChunk+1, pkgformat.MaxChunk+1
		}), connect.CodeInvalidArgument, "chunk 0"},
		{"missing chunk", create(func(r *fleetv1.CreateVersionRequest) {
			r.Chunks = append(r.Chunks, &syncv1.PackageChunk{Sha256: missingSum[:], Size: 3})
			r.Size += 3
		}), connect.CodeFailedPrecondition, "chunks[1]"},
		{"a chunk list longer than a chunk", create(func(r *fleetv1.CreateVersionRequest) {
			// A version of about 1.9 GiB: its list is over a chunk's size,
			// so the call's bound must be the longest list's, not a chunk's.
			for i := range 30_000 {
				s := sha256.Sum256([]byte{byte(i), byte(i >> 8)})
				r.Chunks = append(r.Chunks, &syncv1.PackageChunk{Sha256: s[:], Size: pkgformat.MinChunk})
				r.Size += pkgformat.MinChunk
			}
		}), connect.CodeFailedPrecondition, "chunks[1]"},
		{"wrong chunk size", create(func(r *fleetv1.CreateVersionRequest) { r.Chunks[0].Size, r.Size = 3, 3 }), connect.CodeInvalidArgument, "the list says 3"},
		{"wrong stream hash", create(func(r *fleetv1.CreateVersionRequest) { r.Sha256 = missingSum[:] }), connect.CodeInvalidArgument, "the chunks hash to"},
		{"type changes", create(func(r *fleetv1.CreateVersionRequest) { r.Name, r.Version = "blinker", "3.0.0" }), connect.CodeFailedPrecondition, "module package"},
		{"version twice", create(func(r *fleetv1.CreateVersionRequest) {
			r.Name, r.Version, r.Type, r.Platform = "blinker", "2.0.0", "module", "linux/arm64"
		}), connect.CodeAlreadyExists, "versions never change"},
	} {
		t.Run(tt.name, func(t *testing.T) { wantCode(t, tt.err, tt.code, tt.contains) })
	}
	_, err = admin.Package.UploadChunk(ctx, connect.NewRequest(&fleetv1.UploadChunkRequest{OrgId: org, Data: make([]byte, pkgformat.MaxChunk+1)}))
	wantCode(t, err, connect.CodeInvalidArgument, "data")
	_, err = admin.Package.UploadChunk(ctx, connect.NewRequest(&fleetv1.UploadChunkRequest{OrgId: org}))
	wantCode(t, err, connect.CodeInvalidArgument, "data")
	_, err = admin.Package.MissingChunks(ctx, connect.NewRequest(&fleetv1.MissingChunksRequest{OrgId: org, Sha256: [][]byte{[]byte("short")}}))
	wantCode(t, err, connect.CodeInvalidArgument, "sha256[0]")
	_, err = admin.Package.TagVersion(ctx, connect.NewRequest(&fleetv1.TagVersionRequest{OrgId: org, Name: "blinker", Version: "9.9.9", Tag: "stable"}))
	wantCode(t, err, connect.CodeNotFound, "no version 9.9.9")
	_, err = admin.Package.TagVersion(ctx, connect.NewRequest(&fleetv1.TagVersionRequest{OrgId: org, Name: "blinker", Version: "1.0.0", Tag: "latest"}))
	wantCode(t, err, connect.CodeInvalidArgument, "reserved")

	// Another organization: its owner neither sees this package nor learns
	// whether it holds a chunk; its own MissingChunks says the chunk is
	// missing for it.
	other := e.Provision(t, cloudtest.PartOptions{})
	otherOwner := e.client(e.CreateAPIKey(t, "owner", "org/"+other.OrgID).Token)
	_, err = otherOwner.Package.ListVersions(ctx, connect.NewRequest(&fleetv1.ListVersionsRequest{OrgId: org, Name: "blinker"}))
	wantCode(t, err, connect.CodePermissionDenied, "")
	_, err = otherOwner.Package.MissingChunks(ctx, connect.NewRequest(&fleetv1.MissingChunksRequest{OrgId: org, Sha256: [][]byte{sum[:]}}))
	wantCode(t, err, connect.CodePermissionDenied, "")
	m := check(otherOwner.Package.MissingChunks(ctx, connect.NewRequest(&fleetv1.MissingChunksRequest{OrgId: other.OrgID, Sha256: [][]byte{sum[:]}})))(t)
	if len(m.GetMissing()) != 1 {
		t.Fatalf("another organization holds this one's chunk: %v", m.GetMissing())
	}
	_, err = otherOwner.Package.ListVersions(ctx, connect.NewRequest(&fleetv1.ListVersionsRequest{OrgId: other.OrgID, Name: "blinker"}))
	wantCode(t, err, connect.CodeNotFound, "no package")

	// The tables give packages to owners only: an operator of the
	// organization neither uploads, nor views, nor deletes.
	op := e.client(e.CreateAPIKey(t, "operator", "org/"+org).Token)
	_, err = op.Package.ListPackages(ctx, connect.NewRequest(&fleetv1.ListPackagesRequest{OrgId: org}))
	wantCode(t, err, connect.CodePermissionDenied, "package.view")
	_, err = op.Package.UploadChunk(ctx, connect.NewRequest(&fleetv1.UploadChunkRequest{OrgId: org, Data: data}))
	wantCode(t, err, connect.CodePermissionDenied, "package.upload")
	_, err = op.Package.DeletePackage(ctx, connect.NewRequest(&fleetv1.DeletePackageRequest{OrgId: org, Name: "blinker"}))
	wantCode(t, err, connect.CodePermissionDenied, "")
}

// errCut stops an upload midway, as a cut link would.
var errCut = errors.New("cut")

// TestPackageRollout places a package on a part through a fragment
// following a tag: the part's document carries the signed manifest for
// its platform, it fetches only chunks issued to it, moving the tag
// re-issues its document, deleting a pinned version is refused, and the
// rollout status shows what the part reports.
func TestPackageRollout(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	admin := e.client(e.adminToken)
	p := e.Provision(t, cloudtest.PartOptions{})
	org := p.OrgID
	v1 := packageDir(t, 2, "#!/bin/sh\necho v1\n")
	e.UploadPackage(t, org, "blinker", "1.0.0", "module", "linux/arm64", v1)
	e.UploadPackage(t, org, "blinker", "1.0.0", "module", "linux/amd64", packageDir(t, 3, "#!/bin/sh\necho amd64\n"))
	e.UploadPackage(t, org, "blinker", "2.0.0", "module", "linux/arm64", packageDir(t, 2, "#!/bin/sh\nexit 1\n"))
	e.TagPackage(t, org, "blinker", "1.0.0", "stable")

	frag := check(admin.Fragment.CreateFragment(ctx, connect.NewRequest(&fleetv1.CreateFragmentRequest{OrgId: org, Name: "blink", Config: &configv1.RobotConfig{
		Packages: []*configv1.PackageRef{{Name: "blinker", Package: org + "/blinker", Version: "tag:stable"}},
		Modules:  []*configv1.Module{{Name: "blinker", Executable: "${packages.blinker}/run"}},
	}})))(t).GetFragment()
	check(admin.Config.UpdateMachineConfig(ctx, connect.NewRequest(&fleetv1.UpdateMachineConfigRequest{MachineId: p.MachineID, Config: &configv1.RobotConfig{}, FragmentIds: []string{frag.GetId()}})))(t)

	part := e.part(t, p.Bootstrap)
	// Before the part reports its platform, only "any" builds fit.
	cfg, _ := part.pull(t)
	if len(cfg.GetPackages()) != 0 {
		t.Fatalf("a part of unknown platform got %v", cfg.GetPackages())
	}
	st := check(admin.Package.GetRolloutStatus(ctx, connect.NewRequest(&fleetv1.GetRolloutStatusRequest{OrgId: org, Name: "blinker"})))(t)
	if len(st.GetParts()) != 1 || !strings.Contains(st.GetParts()[0].GetProblem(), "not reported its platform") {
		t.Fatalf("rollout before the platform: %v", st)
	}
	report := func(s *syncv1.PartStatus) {
		t.Helper()
		if _, err := part.client.ReportStatus(ctx, connect.NewRequest(&syncv1.ReportStatusRequest{Status: s})); err != nil {
			t.Fatal(err)
		}
	}
	report(&syncv1.PartStatus{Platform: "linux/arm64"})
	manifest := func(cfg *syncv1.ConfigDocument) *syncv1.PackageManifest {
		t.Helper()
		if len(cfg.GetPackages()) != 1 {
			t.Fatalf("packages %v, want blinker", cfg.GetPackages())
		}
		var m syncv1.PackageManifest
		if err := signed.Verify(p.Keys, cfg.GetPackages()[0].GetManifest(), &m); err != nil {
			t.Fatal(err)
		}
		if err := pkgformat.ValidateManifest(&m); err != nil {
			t.Fatal(err)
		}
		return &m
	}
	cfg, _ = part.pull(t)
	m1 := manifest(cfg)
	if m1.GetVersion() != "1.0.0" || m1.GetPlatform() != "linux/arm64" || cfg.GetPackages()[0].GetRequested() != "tag:stable" {
		t.Fatalf("manifest %v", m1)
	}
	// The chunks of the issued version join to the content's hash.
	whole := sha256.New()
	for _, c := range m1.GetChunks() {
		res, err := part.client.GetPackageChunk(ctx, connect.NewRequest(&syncv1.GetPackageChunkRequest{Sha256: c.GetSha256()}))
		if err != nil {
			t.Fatal(err)
		}
		if got := sha256.Sum256(res.Msg.GetData()); !bytes.Equal(got[:], c.GetSha256()) {
			t.Fatal("a chunk does not match its hash")
		}
		whole.Write(res.Msg.GetData())
	}
	if !bytes.Equal(whole.Sum(nil), m1.GetSha256()) {
		t.Fatal("the chunks do not join to the content")
	}
	// Chunks of versions not issued to it (the amd64 build) and unknown
	// hashes are alike: NotFound.
	notIssued := firstChunkOf(t, e, org, "blinker", "1.0.0", "linux/amd64")
	unknown := sha256.Sum256([]byte("nothing"))
	for _, sum := range [][]byte{notIssued, unknown[:]} {
		_, err := part.client.GetPackageChunk(ctx, connect.NewRequest(&syncv1.GetPackageChunkRequest{Sha256: sum}))
		wantCode(t, err, connect.CodeNotFound, "no such chunk")
	}
	_, err := part.client.GetPackageChunk(ctx, connect.NewRequest(&syncv1.GetPackageChunkRequest{Sha256: []byte("short")}))
	wantCode(t, err, connect.CodeInvalidArgument, "sha256")

	// Moving the tag re-issues the document with the new version; the
	// previous version's chunks stay fetchable for the switch.
	e.TagPackage(t, org, "blinker", "2.0.0", "stable")
	cfg, _ = part.pull(t)
	if cfg == nil || manifest(cfg).GetVersion() != "2.0.0" {
		t.Fatalf("after the tag moved: %v", cfg)
	}
	if _, err := part.client.GetPackageChunk(ctx, connect.NewRequest(&syncv1.GetPackageChunkRequest{Sha256: m1.GetChunks()[0].GetSha256()})); err != nil {
		t.Fatalf("a chunk of the previous document: %v", err)
	}

	// A tagged or pinned version is not deleted; the package in use is not.
	_, err = admin.Package.DeleteVersion(ctx, connect.NewRequest(&fleetv1.DeleteVersionRequest{OrgId: org, Name: "blinker", Version: "2.0.0"}))
	wantCode(t, err, connect.CodeFailedPrecondition, "tag stable")
	check(admin.Config.UpdateMachineConfig(ctx, connect.NewRequest(&fleetv1.UpdateMachineConfigRequest{MachineId: p.MachineID, BaseRevision: 1, Config: &configv1.RobotConfig{
		Packages: []*configv1.PackageRef{{Name: "blinker", Package: org + "/blinker", Version: "1.0.0"}},
	}, FragmentIds: []string{frag.GetId()}})))(t)
	_, err = admin.Package.DeleteVersion(ctx, connect.NewRequest(&fleetv1.DeleteVersionRequest{OrgId: org, Name: "blinker", Version: "1.0.0"}))
	wantCode(t, err, connect.CodeFailedPrecondition, "pinned by the config of machine/"+p.MachineID)
	_, err = admin.Package.DeletePackage(ctx, connect.NewRequest(&fleetv1.DeletePackageRequest{OrgId: org, Name: "blinker"}))
	wantCode(t, err, connect.CodeFailedPrecondition, "machine/"+p.MachineID)
	// One platform of a version may go: nothing breaks for arm64 parts.
	check(admin.Package.DeleteVersion(ctx, connect.NewRequest(&fleetv1.DeleteVersionRequest{OrgId: org, Name: "blinker", Version: "1.0.0", Platform: "linux/amd64"})))(t)

	report(&syncv1.PartStatus{Platform: "linux/arm64", Packages: []*syncv1.PackageStatus{{
		Name: "blinker", Package: org + "/blinker", RunningVersion: "1.0.0", IssuedVersion: "1.0.0", State: "running",
	}}})
	st = check(admin.Package.GetRolloutStatus(ctx, connect.NewRequest(&fleetv1.GetRolloutStatusRequest{OrgId: org, Name: "blinker"})))(t)
	if len(st.GetParts()) != 1 || st.GetParts()[0].GetIssuedVersion() != "1.0.0" || st.GetParts()[0].GetStatus().GetState() != "running" ||
		len(st.GetRunning()) != 1 || st.GetRunning()[0].GetVersion() != "1.0.0" || st.GetRunning()[0].GetParts() != 1 {
		t.Fatalf("rollout %v", st)
	}
}

// firstChunkOf returns the first chunk hash of a stored version, read
// from its manifest in the fleet store.
func firstChunkOf(t *testing.T, e *env, org, name, version, platform string) []byte {
	t.Helper()
	var sum []byte
	e.update(func(ctx context.Context, tx store.Tx) error {
		vs, err := tx.ListPackageVersions(ctx, org, name)
		if err != nil {
			return err
		}
		for _, v := range vs {
			if v.Version == version && v.Platform == platform {
				var sd syncv1.SignedDocument
				var m syncv1.PackageManifest
				if err := proto.Unmarshal(v.Manifest, &sd); err != nil {
					return err
				}
				if err := proto.Unmarshal(sd.GetPayload(), &m); err != nil {
					return err
				}
				sum = m.GetChunks()[0].GetSha256()
			}
		}
		return nil
	})
	if sum == nil {
		t.Fatalf("no version %s %s of %s", version, platform, name)
	}
	return sum
}

// TestPackageProblemsInMachineStatus: a part's machine status names each
// package of its config the cloud cannot resolve for it, and why: an
// unknown package, a tag that does not exist, a version that does not
// exist, a version with no build for the part's platform, and a pinned
// version whose build for the platform was deleted. What resolves is not
// listed, and the part's document carries only that.
func TestPackageProblemsInMachineStatus(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	admin := e.client(e.adminToken)
	p := e.Provision(t, cloudtest.PartOptions{})
	org := p.OrgID
	e.UploadPackage(t, org, "blinker", "1.0.0", "module", "linux/amd64", packageDir(t, 4, "#!/bin/sh\necho amd64\n"))
	e.UploadPackage(t, org, "blinker", "2.0.0", "module", "linux/arm64", packageDir(t, 4, "#!/bin/sh\necho v2\n"))
	e.UploadPackage(t, org, "model", "3.0.0", "file", "linux/arm64", packageDir(t, 5, "weights"))
	e.UploadPackage(t, org, "model", "3.0.0", "file", "linux/amd64", packageDir(t, 5, "weights"))
	refs := []*configv1.PackageRef{
		{Name: "nope", Package: org + "/nope", Version: "1.0.0"},
		{Name: "beta", Package: org + "/blinker", Version: "tag:beta"},
		{Name: "old", Package: org + "/blinker", Version: "9.9.9"},
		{Name: "amd", Package: org + "/blinker", Version: "1.0.0"},
		{Name: "gone", Package: org + "/model", Version: "3.0.0"},
		{Name: "ok", Package: org + "/blinker", Version: "latest"},
	}
	check(admin.Config.UpdateMachineConfig(ctx, connect.NewRequest(&fleetv1.UpdateMachineConfigRequest{MachineId: p.MachineID, Config: &configv1.RobotConfig{Packages: refs}})))(t)
	// Pinned, so the version stays; one platform's build may still go.
	check(admin.Package.DeleteVersion(ctx, connect.NewRequest(&fleetv1.DeleteVersionRequest{OrgId: org, Name: "model", Version: "3.0.0", Platform: "linux/arm64"})))(t)
	part := e.part(t, p.Bootstrap)
	if _, err := part.client.ReportStatus(ctx, connect.NewRequest(&syncv1.ReportStatusRequest{Status: &syncv1.PartStatus{Platform: "linux/arm64"}})); err != nil {
		t.Fatal(err)
	}
	st := check(admin.Machine.GetMachineStatus(ctx, connect.NewRequest(&fleetv1.GetMachineStatusRequest{MachineId: p.MachineID})))(t)
	got := map[string]string{}
	for _, pp := range st.GetParts()[0].GetPackageProblems() {
		got[pp.GetName()] = pp.GetPackage() + " " + pp.GetVersion() + ": " + pp.GetProblem()
	}
	for name, want := range map[string]string{
		"nope": "no package " + org + "/nope",
		"beta": "has no tag \"beta\"",
		"old":  "has no version 9.9.9",
		"amd":  "version 1.0.0 has no build for linux/arm64",
		"gone": org + "/model 3.0.0: package " + org + "/model: version 3.0.0 has no build for linux/arm64",
	} {
		if !strings.Contains(got[name], want) {
			t.Errorf("problem of %s: %q, want it to say %q", name, got[name], want)
		}
	}
	if len(got) != 5 {
		t.Errorf("problems %v: want the five unresolved references and not \"ok\"", got)
	}
	cfg, _ := part.pull(t)
	if len(cfg.GetPackages()) != 1 || cfg.GetPackages()[0].GetName() != "ok" {
		t.Fatalf("the document carries %v, want only ok", cfg.GetPackages())
	}
}

// TestPackagePendingChunkQuota: chunks uploaded for a version not created
// yet are bounded per organization, in bytes and in number; a chunk a
// version names no longer counts; re-uploading a held chunk costs
// nothing; and pending chunks older than the TTL (on the cloud's clock)
// are collected by the next upload, after which a version naming one is
// refused until it is uploaded again.
func TestPackagePendingChunkQuota(t *testing.T) {
	ctx := context.Background()
	e := newEnvWith(t, cloudtest.Options{Packages: cloud.PackageLimits{MaxPendingBytes: pkgformat.MaxChunk / 2, MaxPendingChunks: 3, PendingTTL: time.Hour}})
	org := e.Provision(t, cloudtest.PartOptions{}).OrgID
	// An API key, not a session: the clock moves on by more than one lasts.
	admin := e.client(e.CreateAPIKey(t, "owner", "org/"+org).Token)
	upload := func(data []byte) error {
		_, err := admin.Package.UploadChunk(ctx, connect.NewRequest(&fleetv1.UploadChunkRequest{OrgId: org, Data: data}))
		return err
	}
	chunk := func(i int) []byte { return bytes.Repeat([]byte{byte(i)}, 1000+i) }
	missing := func(chunks ...[]byte) int {
		t.Helper()
		var sums [][]byte
		for _, c := range chunks {
			s := sha256.Sum256(c)
			sums = append(sums, s[:])
		}
		return len(check(admin.Package.MissingChunks(ctx, connect.NewRequest(&fleetv1.MissingChunksRequest{OrgId: org, Sha256: sums})))(t).GetMissing())
	}
	create := func(version string, data []byte) error {
		s := sha256.Sum256(data)
		_, err := admin.Package.CreateVersion(ctx, connect.NewRequest(&fleetv1.CreateVersionRequest{OrgId: org, Name: "tool", Version: version, Type: "file", Platform: "any",
			Size: uint64(len(data)), Sha256: s[:], Chunks: []*syncv1.PackageChunk{{Sha256: s[:], Size: uint32(len(data))}}}))
		return err
	}

	// The largest chunk a package may have is over the byte bound alone.
	wantCode(t, upload(make([]byte, pkgformat.MaxChunk)), connect.CodeResourceExhausted, fmt.Sprintf("at most 3 chunks or %d bytes", pkgformat.MaxChunk/2))
	for i := range 3 {
		if err := upload(chunk(i)); err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
	}
	wantCode(t, upload(chunk(3)), connect.CodeResourceExhausted, "holds 3 chunks")
	// Held already: no new bytes, no refusal.
	if err := upload(chunk(0)); err != nil {
		t.Fatalf("a held chunk again: %v", err)
	}
	// A version names chunk 0: it is pending no more, so chunk 3 fits.
	if err := create("1.0.0", chunk(0)); err != nil {
		t.Fatal(err)
	}
	if err := upload(chunk(3)); err != nil {
		t.Fatalf("after a version named a chunk: %v", err)
	}
	wantCode(t, upload(chunk(4)), connect.CodeResourceExhausted, "holds 3 chunks")

	// An hour on, the next upload collects the three abandoned chunks; the
	// version's chunk stays.
	e.clk.Advance(time.Hour + time.Second)
	if err := upload(chunk(4)); err != nil {
		t.Fatalf("after the abandoned chunks' TTL: %v", err)
	}
	if n := missing(chunk(1), chunk(2), chunk(3)); n != 3 {
		t.Fatalf("%d of the 3 abandoned chunks collected", n)
	}
	if n := missing(chunk(0), chunk(4)); n != 0 {
		t.Fatalf("%d of the version's chunk and the new chunk are gone", n)
	}
	wantCode(t, create("2.0.0", chunk(1)), connect.CodeFailedPrecondition, "upload the missing chunks first")
	if err := upload(chunk(1)); err != nil {
		t.Fatal(err)
	}
	if err := create("2.0.0", chunk(1)); err != nil {
		t.Fatalf("a version of a chunk uploaded again: %v", err)
	}
}
