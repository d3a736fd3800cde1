package cloud

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/cloud/store"
	"github.com/outpost-robotics/outpost/config"
	"github.com/outpost-robotics/outpost/pkgformat"
)

// packageRequestBytes bounds a package call's request: a chunk (or a
// chunk list of the most chunks a version may have) and framing.
const packageRequestBytes = max(pkgformat.MaxChunk, pkgformat.MaxChunkListBytes) + 64<<10

// maxUnpackedSize bounds what a version says its files take unpacked.
const maxUnpackedSize = 64 << 30

type packageService struct{ s *Server }

// PackageLimits bound the chunks an organization uploaded that no version
// names yet (pending chunks): an upload under way, or one abandoned. An
// upload over either bound is refused until a version names the chunks or
// they are collected; each upload first collects the organization's
// pending chunks older than PendingTTL.
type PackageLimits struct {
	// MaxPendingBytes bounds the bytes of an organization's pending chunks.
	MaxPendingBytes int64
	// MaxPendingChunks bounds how many there are.
	MaxPendingChunks int
	// PendingTTL is how long a pending chunk is kept for the version it
	// was uploaded for.
	PendingTTL time.Duration
}

// DefaultPackageLimits leaves room for two of the largest versions being
// uploaded at once, and a day to finish one.
func DefaultPackageLimits() PackageLimits {
	return PackageLimits{MaxPendingBytes: 2 * pkgformat.MaxSize, MaxPendingChunks: 2 * pkgformat.MaxChunks, PendingTTL: 24 * time.Hour}
}

func (l PackageLimits) withDefaults() PackageLimits {
	d := DefaultPackageLimits()
	l.MaxPendingBytes = cmp.Or(max(l.MaxPendingBytes, 0), d.MaxPendingBytes)
	l.MaxPendingChunks = cmp.Or(max(l.MaxPendingChunks, 0), d.MaxPendingChunks)
	l.PendingTTL = cmp.Or(max(l.PendingTTL, 0), d.PendingTTL)
	return l
}

// collectBatch bounds the pending chunks one upload collects, so its
// transaction stays small; the next uploads collect the rest.
const collectBatch = 256

func versionPB(v store.PackageVersion, p store.Package) *fleetv1.PackageVersion {
	out := &fleetv1.PackageVersion{Name: v.Name, Version: v.Version, Platform: v.Platform, Size: v.Size,
		UnpackedSize: v.UnpackedSize, Sha256: v.SHA256, ChunkCount: uint32(v.ChunkCount), CreatedBy: v.CreatedBy, CreatedAt: ts(v.CreatedAt)}
	for _, tag := range slices.Sorted(maps.Keys(p.Tags)) {
		if p.Tags[tag] == v.Version {
			out.Tags = append(out.Tags, tag)
		}
	}
	return out
}

func packagePB(p store.Package, vs []store.PackageVersion) *fleetv1.Package {
	out := &fleetv1.Package{OrgId: p.OrgID, Name: p.Name, Type: p.Type, Tags: p.Tags, VersionCount: uint32(len(vs)), UpdatedAt: ts(p.UpdatedAt)}
	if len(vs) > 0 {
		out.LatestVersion = vs[len(vs)-1].Version
	}
	return out
}

// packageName checks a request's package name.
func packageName(name string) error {
	if err := pkgformat.ValidName(name); err != nil {
		return invalid("name: %v", err)
	}
	return nil
}

// getPackage reads a package, NotFound naming it when there is none.
func getPackage(ctx context.Context, tx store.Tx, org, name string) (store.Package, error) {
	p, err := tx.GetPackage(ctx, org, name)
	if errors.Is(err, store.ErrNotFound) {
		return p, connect.NewError(connect.CodeNotFound, fmt.Errorf("org/%s has no package %q (list with `outpost package list`)", org, name))
	}
	return p, err
}

func (ps packageService) MissingChunks(ctx context.Context, req *connect.Request[fleetv1.MissingChunksRequest]) (*connect.Response[fleetv1.MissingChunksResponse], error) {
	org, sums := req.Msg.GetOrgId(), req.Msg.GetSha256()
	if len(sums) > pkgformat.MaxChunks {
		return nil, invalid("sha256: %d hashes, at most %d a call", len(sums), pkgformat.MaxChunks)
	}
	for i, s := range sums {
		if len(s) != sha256.Size {
			return nil, invalid("sha256[%d]: %d bytes, want %d", i, len(s), sha256.Size)
		}
	}
	out := &fleetv1.MissingChunksResponse{}
	err := ps.s.view(ctx, func(tx store.Tx) error {
		out.Missing = nil
		seen := map[[32]byte]bool{}
		for _, s := range sums {
			if seen[[32]byte(s)] {
				continue
			}
			seen[[32]byte(s)] = true
			has, err := tx.HasPackageChunk(ctx, org, s)
			if err != nil {
				return err
			}
			if !has {
				out.Missing = append(out.Missing, s)
			}
		}
		return nil
	})
	return reply(out, err)
}

// UploadChunk stores a chunk outside Server.update: a chunk alone changes
// no document and no record people read, so it neither writes an audit
// event nor makes every part's documents be checked again.
func (ps packageService) UploadChunk(ctx context.Context, req *connect.Request[fleetv1.UploadChunkRequest]) (*connect.Response[fleetv1.UploadChunkResponse], error) {
	org, data := req.Msg.GetOrgId(), req.Msg.GetData()
	if len(data) == 0 || len(data) > pkgformat.MaxChunk {
		return nil, invalid("data: %d bytes, want 1 to %d", len(data), pkgformat.MaxChunk)
	}
	sum := sha256.Sum256(data)
	now := ps.s.clock.Now().UTC()
	lim := ps.s.pkgLim
	err := ps.s.st.Update(ctx, func(tx store.Tx) error {
		has, err := tx.HasPackageChunk(ctx, org, sum[:])
		if err != nil || has {
			return err
		}
		if err := collectPending(ctx, tx, org, now.Add(-lim.PendingTTL)); err != nil {
			return err
		}
		u, err := tx.PendingChunkUsage(ctx, org)
		if err != nil {
			return err
		}
		if u.Chunks+1 > lim.MaxPendingChunks || u.Bytes+int64(len(data)) > lim.MaxPendingBytes {
			return connect.NewError(connect.CodeResourceExhausted, fmt.Errorf("org/%s holds %d chunks (%d bytes) uploaded for versions not created yet, "+
				"at most %d chunks or %d bytes: create the versions they are for (the upload's last step), or wait for unfinished uploads to be collected %v after they started",
				org, u.Chunks, u.Bytes, lim.MaxPendingChunks, lim.MaxPendingBytes, lim.PendingTTL))
		}
		if err := tx.PutPackageChunk(ctx, org, sum[:], data); err != nil {
			return err
		}
		return tx.PutPendingChunk(ctx, store.PendingChunk{OrgID: org, SHA256: sum[:], Size: len(data), UploadedAt: now})
	})
	return reply(&fleetv1.UploadChunkResponse{Sha256: sum[:]}, err)
}

// collectPending deletes the oldest of an organization's pending chunks
// uploaded before a time, at most collectBatch of them. A pending chunk is
// named by no version (creating one forgets its chunks' records), so its
// bytes go too.
func collectPending(ctx context.Context, tx store.Tx, org string, before time.Time) error {
	old, err := tx.ListPendingChunks(ctx, org, before, collectBatch)
	if err != nil {
		return err
	}
	for _, c := range old {
		if err := tx.DeletePackageChunk(ctx, org, c.SHA256); err != nil {
			return err
		}
		if err := tx.DeletePendingChunk(ctx, org, c.SHA256); err != nil {
			return err
		}
	}
	return nil
}

func (ps packageService) CreateVersion(ctx context.Context, req *connect.Request[fleetv1.CreateVersionRequest]) (*connect.Response[fleetv1.CreateVersionResponse], error) {
	msg := req.Msg
	org := msg.GetOrgId()
	call := callFrom(ctx)
	call.setAuditResource("package/"+org+"/"+msg.GetName(), org)
	now := ps.s.clock.Now().UTC()
	m := &syncv1.PackageManifest{OrgId: org, Name: msg.GetName(), Version: msg.GetVersion(), Type: msg.GetType(), Platform: msg.GetPlatform(),
		Size: msg.GetSize(), Sha256: msg.GetSha256(), Chunks: msg.GetChunks(), CreatedAt: timestamppb.New(now), UnpackedSize: msg.GetUnpackedSize()}
	if err := pkgformat.ValidateManifest(m); err != nil {
		return nil, invalid("%v", strings.TrimPrefix(err.Error(), "manifest: "))
	}
	if msg.GetUnpackedSize() > maxUnpackedSize {
		return nil, invalid("unpacked_size: %d bytes, at most %d", msg.GetUnpackedSize(), uint64(maxUnpackedSize))
	}
	// Every chunk must be held with the size the list says, and together
	// they must hash to the stream's hash. Chunks never change once held,
	// so this reads them outside the transaction that creates the version.
	whole := sha256.New()
	err := ps.s.view(ctx, func(tx store.Tx) error {
		whole.Reset()
		for i, c := range m.GetChunks() {
			data, err := tx.GetPackageChunk(ctx, org, c.GetSha256())
			if errors.Is(err, store.ErrNotFound) {
				return connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("chunks[%d] (%x) is not uploaded: upload the missing chunks first (MissingChunks)", i, c.GetSha256()))
			}
			if err != nil {
				return err
			}
			if len(data) != int(c.GetSize()) {
				return invalid("chunks[%d] (%x) is %d bytes, the list says %d", i, c.GetSha256(), len(data), c.GetSize())
			}
			whole.Write(data)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(whole.Sum(nil), m.GetSha256()) {
		return nil, invalid("sha256: the chunks hash to %x, not %x", whole.Sum(nil), m.GetSha256())
	}
	return respond(ctx, ps.s.update, func(tx store.Tx) (*fleetv1.CreateVersionResponse, error) {
		// The chunks were read above; one collected since (its upload
		// outlived PendingTTL) must be uploaded again. Those this version
		// names are pending no more.
		for i, c := range m.GetChunks() {
			has, err := tx.HasPackageChunk(ctx, org, c.GetSha256())
			if err != nil {
				return nil, err
			}
			if !has {
				return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("chunks[%d] (%x) was collected before the version was created: upload it again", i, c.GetSha256()))
			}
			if err := tx.DeletePendingChunk(ctx, org, c.GetSha256()); err != nil {
				return nil, err
			}
		}
		p, err := tx.GetPackage(ctx, org, m.GetName())
		switch {
		case errors.Is(err, store.ErrNotFound):
			p = store.Package{OrgID: org, Name: m.GetName(), Type: m.GetType(), CreatedAt: now}
		case err != nil:
			return nil, err
		case p.Type != m.GetType():
			return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("package %s/%s is a %s package, not a %s one", org, p.Name, p.Type, m.GetType()))
		}
		signedDoc, err := ps.s.docs.signer.Sign(m)
		if err != nil {
			return nil, err
		}
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(signedDoc)
		if err != nil {
			return nil, fmt.Errorf("encode the signed manifest: %w", err)
		}
		v := store.PackageVersion{OrgID: org, Name: p.Name, Version: m.GetVersion(), Platform: m.GetPlatform(), Seq: p.NextSeq,
			Manifest: b, Size: m.GetSize(), UnpackedSize: m.GetUnpackedSize(), SHA256: m.GetSha256(), ChunkCount: len(m.GetChunks()),
			CreatedBy: call.principal.ref(), CreatedAt: now}
		if err := tx.PutPackageVersion(ctx, v); errors.Is(err, store.ErrExists) {
			return nil, connect.NewError(connect.CodeAlreadyExists, fmt.Errorf("package %s/%s already has version %s for %s: versions never change; upload a new version", org, p.Name, v.Version, v.Platform))
		} else if err != nil {
			return nil, err
		}
		p.NextSeq++
		p.UpdatedAt = now
		if err := tx.PutPackage(ctx, p); err != nil {
			return nil, err
		}
		return &fleetv1.CreateVersionResponse{Version: versionPB(v, p)}, nil
	})
}

func (ps packageService) ListPackages(ctx context.Context, req *connect.Request[fleetv1.ListPackagesRequest]) (*connect.Response[fleetv1.ListPackagesResponse], error) {
	out := &fleetv1.ListPackagesResponse{}
	err := ps.s.view(ctx, func(tx store.Tx) error {
		out.Packages = nil
		pkgs, err := tx.ListPackages(ctx, req.Msg.GetOrgId())
		if err != nil {
			return err
		}
		for _, p := range pkgs {
			vs, err := tx.ListPackageVersions(ctx, p.OrgID, p.Name)
			if err != nil {
				return err
			}
			out.Packages = append(out.Packages, packagePB(p, vs))
		}
		return nil
	})
	return reply(out, err)
}

func (ps packageService) ListVersions(ctx context.Context, req *connect.Request[fleetv1.ListVersionsRequest]) (*connect.Response[fleetv1.ListVersionsResponse], error) {
	org, name := req.Msg.GetOrgId(), req.Msg.GetName()
	if err := packageName(name); err != nil {
		return nil, err
	}
	return respond(ctx, ps.s.view, func(tx store.Tx) (*fleetv1.ListVersionsResponse, error) {
		p, err := getPackage(ctx, tx, org, name)
		if err != nil {
			return nil, err
		}
		vs, err := tx.ListPackageVersions(ctx, org, name)
		if err != nil {
			return nil, err
		}
		out := &fleetv1.ListVersionsResponse{Package: packagePB(p, vs)}
		for _, v := range slices.Backward(vs) {
			out.Versions = append(out.Versions, versionPB(v, p))
		}
		return out, nil
	})
}

func (ps packageService) TagVersion(ctx context.Context, req *connect.Request[fleetv1.TagVersionRequest]) (*connect.Response[fleetv1.TagVersionResponse], error) {
	msg := req.Msg
	org, name := msg.GetOrgId(), msg.GetName()
	if err := packageName(name); err != nil {
		return nil, err
	}
	if err := pkgformat.ValidTag(msg.GetTag()); err != nil {
		return nil, invalid("tag: %v", err)
	}
	if err := pkgformat.ValidVersion(msg.GetVersion()); err != nil {
		return nil, invalid("version: %v", err)
	}
	callFrom(ctx).setAuditResource("package/"+org+"/"+name, org)
	return respond(ctx, ps.s.update, func(tx store.Tx) (*fleetv1.TagVersionResponse, error) {
		p, err := getPackage(ctx, tx, org, name)
		if err != nil {
			return nil, err
		}
		vs, err := tx.ListPackageVersions(ctx, org, name)
		if err != nil {
			return nil, err
		}
		if !slices.ContainsFunc(vs, func(v store.PackageVersion) bool { return v.Version == msg.GetVersion() }) {
			return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("package %s/%s has no version %s (list with `outpost package versions`)", org, name, msg.GetVersion()))
		}
		out := &fleetv1.TagVersionResponse{PreviousVersion: p.Tags[msg.GetTag()]}
		if p.Tags == nil {
			p.Tags = map[string]string{}
		}
		p.Tags[msg.GetTag()] = msg.GetVersion()
		p.UpdatedAt = ps.s.clock.Now().UTC()
		return out, tx.PutPackage(ctx, p)
	})
}

func (ps packageService) DeleteVersion(ctx context.Context, req *connect.Request[fleetv1.DeleteVersionRequest]) (*connect.Response[fleetv1.DeleteVersionResponse], error) {
	msg := req.Msg
	org, name, version := msg.GetOrgId(), msg.GetName(), msg.GetVersion()
	if err := packageName(name); err != nil {
		return nil, err
	}
	if err := pkgformat.ValidVersion(version); err != nil {
		return nil, invalid("version: %v", err)
	}
	if pl := msg.GetPlatform(); pl != "" {
		if err := pkgformat.ValidPlatform(pl); err != nil {
			return nil, invalid("platform: %v", err)
		}
	}
	callFrom(ctx).setAuditResource("package/"+org+"/"+name, org)
	snap, err := ps.s.snaps.get(ctx)
	if err != nil {
		return nil, err
	}
	return respond(ctx, ps.s.update, func(tx store.Tx) (*fleetv1.DeleteVersionResponse, error) {
		p, err := getPackage(ctx, tx, org, name)
		if err != nil {
			return nil, err
		}
		vs, err := tx.ListPackageVersions(ctx, org, name)
		if err != nil {
			return nil, err
		}
		var doomed []store.PackageVersion
		for _, v := range vs {
			if v.Version == version && (msg.GetPlatform() == "" || v.Platform == msg.GetPlatform()) {
				doomed = append(doomed, v)
			}
		}
		if len(doomed) == 0 {
			return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("package %s/%s has no version %s%s", org, name, version, forPlatform(msg.GetPlatform())))
		}
		// Only the whole version leaving breaks what names it.
		if len(doomed) == countVersion(vs, version) {
			var tags []string
			for _, tag := range slices.Sorted(maps.Keys(p.Tags)) {
				if p.Tags[tag] == version {
					tags = append(tags, tag)
				}
			}
			if len(tags) > 0 {
				return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("version %s is what tag %s points at: move the tag first (`outpost package tag`)", version, strings.Join(tags, ", ")))
			}
			users, err := packageUsers(ctx, tx, snap, org, name)
			if err != nil {
				return nil, err
			}
			var pinned []string
			for _, u := range users {
				if slices.Contains(u.versions, version) {
					pinned = append(pinned, "machine/"+u.machineID)
				}
			}
			if len(pinned) > 0 {
				return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("version %s is pinned by the config of %s: change their configs first", version, strings.Join(pinned, ", ")))
			}
		}
		for _, v := range doomed {
			if err := tx.DeletePackageVersion(ctx, org, name, v.Version, v.Platform); err != nil {
				return nil, err
			}
		}
		p.UpdatedAt = ps.s.clock.Now().UTC()
		if err := tx.PutPackage(ctx, p); err != nil {
			return nil, err
		}
		return &fleetv1.DeleteVersionResponse{}, collectChunks(ctx, tx, org, doomed)
	})
}

func (ps packageService) DeletePackage(ctx context.Context, req *connect.Request[fleetv1.DeletePackageRequest]) (*connect.Response[fleetv1.DeletePackageResponse], error) {
	org, name := req.Msg.GetOrgId(), req.Msg.GetName()
	if err := packageName(name); err != nil {
		return nil, err
	}
	callFrom(ctx).setAuditResource("package/"+org+"/"+name, org)
	snap, err := ps.s.snaps.get(ctx)
	if err != nil {
		return nil, err
	}
	return respond(ctx, ps.s.update, func(tx store.Tx) (*fleetv1.DeletePackageResponse, error) {
		if _, err := getPackage(ctx, tx, org, name); err != nil {
			return nil, err
		}
		users, err := packageUsers(ctx, tx, snap, org, name)
		if err != nil {
			return nil, err
		}
		if len(users) > 0 {
			var ms []string
			for _, u := range users {
				ms = append(ms, "machine/"+u.machineID)
			}
			return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("package %s/%s is in the config of %s: remove it from their configs (and fragments) first", org, name, strings.Join(ms, ", ")))
		}
		vs, err := tx.ListPackageVersions(ctx, org, name)
		if err != nil {
			return nil, err
		}
		for _, v := range vs {
			if err := tx.DeletePackageVersion(ctx, org, name, v.Version, v.Platform); err != nil {
				return nil, err
			}
		}
		if err := tx.DeletePackage(ctx, org, name); err != nil {
			return nil, err
		}
		return &fleetv1.DeletePackageResponse{}, collectChunks(ctx, tx, org, vs)
	})
}

func forPlatform(p string) string {
	if p == "" {
		return ""
	}
	return " for " + p
}

func countVersion(vs []store.PackageVersion, version string) int {
	n := 0
	for _, v := range vs {
		if v.Version == version {
			n++
		}
	}
	return n
}

// collectChunks deletes the chunks of deleted versions that no remaining
// version of the organization names. Chunks uploaded for a version not yet
// created are not touched: they are named by no deleted version.
func collectChunks(ctx context.Context, tx store.Tx, org string, deleted []store.PackageVersion) error {
	doomed := map[[32]byte]bool{}
	for _, v := range deleted {
		m, err := manifestOf(v)
		if err != nil {
			return err
		}
		for _, c := range m.GetChunks() {
			doomed[[32]byte(c.GetSha256())] = true
		}
	}
	if len(doomed) == 0 {
		return nil
	}
	pkgs, err := tx.ListPackages(ctx, org)
	if err != nil {
		return err
	}
	for _, p := range pkgs {
		vs, err := tx.ListPackageVersions(ctx, org, p.Name)
		if err != nil {
			return err
		}
		for _, v := range vs {
			m, err := manifestOf(v)
			if err != nil {
				return err
			}
			for _, c := range m.GetChunks() {
				delete(doomed, [32]byte(c.GetSha256()))
			}
		}
	}
	for sum := range doomed {
		if err := tx.DeletePackageChunk(ctx, org, sum[:]); err != nil {
			return err
		}
	}
	return nil
}

// manifestOf decodes a stored version's manifest (the cloud's own, signed
// when it was created).
func manifestOf(v store.PackageVersion) (*syncv1.PackageManifest, error) {
	var sd syncv1.SignedDocument
	if err := proto.Unmarshal(v.Manifest, &sd); err != nil {
		return nil, fmt.Errorf("decode the manifest of %s/%s %s %s: %w", v.OrgID, v.Name, v.Version, v.Platform, err)
	}
	var m syncv1.PackageManifest
	if err := proto.Unmarshal(sd.GetPayload(), &m); err != nil {
		return nil, fmt.Errorf("decode the manifest of %s/%s %s %s: %w", v.OrgID, v.Name, v.Version, v.Platform, err)
	}
	if len(m.GetChunks()) > 0 {
		for _, c := range m.GetChunks() {
			if len(c.GetSha256()) != sha256.Size {
				return nil, fmt.Errorf("the manifest of %s/%s %s %s names a malformed chunk", v.OrgID, v.Name, v.Version, v.Platform)
			}
		}
	}
	return &m, nil
}

func (ps packageService) GetRolloutStatus(ctx context.Context, req *connect.Request[fleetv1.GetRolloutStatusRequest]) (*connect.Response[fleetv1.GetRolloutStatusResponse], error) {
	org, name := req.Msg.GetOrgId(), req.Msg.GetName()
	if err := packageName(name); err != nil {
		return nil, err
	}
	snap, err := ps.s.snaps.get(ctx)
	if err != nil {
		return nil, err
	}
	want := org + "/" + name
	out := &fleetv1.GetRolloutStatusResponse{}
	err = ps.s.view(ctx, func(tx store.Tx) error {
		out.Parts = nil
		if _, err := getPackage(ctx, tx, org, name); err != nil {
			return err
		}
		users, err := packageUsers(ctx, tx, snap, org, name)
		if err != nil {
			return err
		}
		for _, u := range users {
			m := snap.machines[u.machineID]
			ps2, err := machineParts(snap, m.ID, "")
			if err != nil {
				return err
			}
			mm, err := mergeMachine(ctx, tx, m.ID, nil, nil)
			if err != nil {
				return err
			}
			shares := config.Split(mm.config, partsPB(ps2))
			slices.SortFunc(ps2, func(a, b store.Part) int { return cmp.Compare(a.Name, b.Name) })
			for _, p := range ps2 {
				for _, ref := range shares[p.Name].GetPackages() {
					if ref.GetPackage() != want {
						continue
					}
					pr, err := ps.s.partRollout(ctx, tx, org, m, p, ref)
					if err != nil {
						return err
					}
					out.Parts = append(out.Parts, pr)
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	running, issued := map[string]uint32{}, map[string]uint32{}
	for _, p := range out.Parts {
		running[p.GetStatus().GetRunningVersion()]++
		issued[p.GetIssuedVersion()]++
	}
	out.Running, out.Issued = versionCounts(running), versionCounts(issued)
	return connect.NewResponse(out), nil
}

// partRollout is one part's view of one of its package references.
func (s *Server) partRollout(ctx context.Context, tx store.Tx, org string, m store.Machine, p store.Part, ref *configv1.PackageRef) (*fleetv1.PartRollout, error) {
	pr := &fleetv1.PartRollout{MachineId: m.ID, MachineName: m.Name, PartId: p.ID, PartName: p.Name}
	st, err := s.statusOf(ctx, p.ID)
	if err != nil {
		return nil, err
	}
	if st != nil {
		pr.ReportedAt, pr.Platform = ts(st.At), platformOf(st.Status)
		for _, ps := range st.Status.GetPackages() {
			if ps.GetName() == ref.GetName() {
				pr.Status = ps
			}
		}
	}
	v, problem, err := resolvePackage(ctx, tx, org, ref, pr.Platform)
	if err != nil {
		return nil, err
	}
	pr.IssuedVersion, pr.Problem = v.Version, problem
	return pr, nil
}

func versionCounts(n map[string]uint32) []*fleetv1.PackageVersionCount {
	var out []*fleetv1.PackageVersionCount
	for _, v := range slices.Sorted(maps.Keys(n)) {
		out = append(out, &fleetv1.PackageVersionCount{Version: v, Parts: n[v]})
	}
	return out
}
