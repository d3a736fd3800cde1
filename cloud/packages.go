package cloud

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/cloud/ingest"
	"github.com/outpost-robotics/outpost/cloud/partsync"
	"github.com/outpost-robotics/outpost/cloud/store"
	"github.com/outpost-robotics/outpost/config"
	"github.com/outpost-robotics/outpost/pkgformat"
)

var _ partsync.PackageChunks = (*documents)(nil)

// resolvePackage picks the version a package reference of a machine in
// organization org names, for a part of platform: the reference's version
// ("1.4.0"), its tag's version ("tag:stable"), or the newest upload
// ("latest") that has a build for the platform, or else one for "any". A
// reference that resolves to nothing answers a problem saying why (people
// read it in the rollout status) and no error; an error is the store's.
// A package of another organization never resolves: a config names only
// its own organization's packages.
func resolvePackage(ctx context.Context, tx store.Tx, org string, ref *configv1.PackageRef, platform string) (store.PackageVersion, string, error) {
	pkgOrg, name, err := config.ParsePackage(ref.GetPackage())
	if err != nil {
		return store.PackageVersion{}, err.Error(), nil
	}
	if pkgOrg != org {
		return store.PackageVersion{}, fmt.Sprintf("package %s belongs to another organization: a machine uses its own organization's packages", ref.GetPackage()), nil
	}
	p, err := tx.GetPackage(ctx, pkgOrg, name)
	if errors.Is(err, store.ErrNotFound) {
		return store.PackageVersion{}, fmt.Sprintf("no package %s: upload it with `outpost package upload`", ref.GetPackage()), nil
	}
	if err != nil {
		return store.PackageVersion{}, "", err
	}
	kind, value, err := config.ParseVersionSelector(ref.GetVersion())
	if err != nil {
		return store.PackageVersion{}, err.Error(), nil
	}
	vs, err := tx.ListPackageVersions(ctx, pkgOrg, name)
	if err != nil {
		return store.PackageVersion{}, "", err
	}
	fits := func(v store.PackageVersion) bool {
		return (platform != "" && v.Platform == platform) || v.Platform == pkgformat.PlatformAny
	}
	// A build for the part's own platform wins over one for "any".
	pick := func(version string) (store.PackageVersion, bool) {
		var found store.PackageVersion
		ok := false
		for _, v := range vs {
			if v.Version != version || !fits(v) {
				continue
			}
			if !ok || v.Platform != pkgformat.PlatformAny {
				found, ok = v, true
			}
		}
		return found, ok
	}
	want := value
	switch kind {
	case "tag":
		if want = p.Tags[value]; want == "" {
			return store.PackageVersion{}, fmt.Sprintf("package %s has no tag %q: set it with `outpost package tag`", ref.GetPackage(), value), nil
		}
	case config.VersionLatest:
		want = ""
		for _, v := range slices.Backward(vs) {
			if fits(v) {
				want = v.Version
				break
			}
		}
		if want == "" {
			return store.PackageVersion{}, noBuild(ref.GetPackage(), "any version", platform), nil
		}
	}
	v, ok := pick(want)
	if !ok {
		if !slices.ContainsFunc(vs, func(v store.PackageVersion) bool { return v.Version == want }) {
			return store.PackageVersion{}, fmt.Sprintf("package %s has no version %s", ref.GetPackage(), want), nil
		}
		return store.PackageVersion{}, noBuild(ref.GetPackage(), "version "+want, platform), nil
	}
	return v, "", nil
}

// noBuild says a package has no build a part can run.
func noBuild(pkg, what, platform string) string {
	if platform == "" {
		return fmt.Sprintf("package %s: %s has no build for \"any\", and the part has not reported its platform yet", pkg, what)
	}
	return fmt.Sprintf("package %s: %s has no build for %s or \"any\"", pkg, what, platform)
}

// platform is the platform a part last reported, or "" before it did (or
// when its report cannot be read: the part then gets only "any" builds
// until it can).
func (d *documents) platform(ctx context.Context, partID string) string {
	if d.s.ingest == nil {
		return ""
	}
	st, err := d.s.ingest.Status(ctx, partID)
	if err != nil {
		return ""
	}
	return platformOf(st.Status)
}

// platformOf is the platform a status reports, or "" when it reports none
// or one that is not a platform's name.
func platformOf(st *syncv1.PartStatus) string {
	if p := st.GetPlatform(); pkgformat.ValidPlatform(p) == nil {
		return p
	}
	return ""
}

// packageProblems lists, for each of a machine's parts (in the order of
// parts), the package references of its share of the machine's merged
// config that resolve to no version for the platform platform(i) names,
// each with why: what the part's config document goes without.
func packageProblems(ctx context.Context, tx store.Tx, org, machineID string, parts []store.Part, platform func(i int) string) ([][]*fleetv1.PackageProblem, error) {
	out := make([][]*fleetv1.PackageProblem, len(parts))
	mm, err := mergeMachine(ctx, tx, machineID, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("merge the config of machine/%s: %w", machineID, err)
	}
	if len(mm.config.GetPackages()) == 0 {
		return out, nil
	}
	shares := config.Split(mm.config, partsPB(parts))
	for i, p := range parts {
		for _, ref := range shares[p.Name].GetPackages() {
			_, problem, err := resolvePackage(ctx, tx, org, ref, platform(i))
			if err != nil {
				return nil, err
			}
			if problem != "" {
				out[i] = append(out[i], &fleetv1.PackageProblem{Name: ref.GetName(), Package: ref.GetPackage(),
					Version: cmp.Or(ref.GetVersion(), config.VersionLatest), Problem: problem})
			}
		}
	}
	return out, nil
}

// issuedChunks is the chunks a part may fetch, as of a documents token.
type issuedChunks struct {
	token string
	org   string
	sums  map[[32]byte]bool
}

// PackageChunk serves a chunk of a package version in the part's current
// or previous signed config document. The set of such chunks is cached per
// part with the documents token, so a download's many fetches read the
// store once for the set and once per chunk.
func (d *documents) PackageChunk(ctx context.Context, part partsync.Part, sum []byte) ([]byte, error) {
	tok, err := d.token(ctx)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	ic := d.chunks[part.ID]
	d.mu.Unlock()
	if ic == nil || ic.token != tok {
		ic = &issuedChunks{token: tok, org: part.OrgID, sums: map[[32]byte]bool{}}
		err := d.s.st.View(ctx, func(tx store.Tx) error {
			rec, err := tx.GetPartDocuments(ctx, part.ID)
			if errors.Is(err, store.ErrNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			for _, b := range [][]byte{rec.Config, rec.PreviousConfig} {
				if err := addIssuedChunks(ic, b); err != nil {
					return fmt.Errorf("read the packages issued to part/%s: %w", part.ID, err)
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		d.mu.Lock()
		d.chunks[part.ID] = ic
		d.mu.Unlock()
	}
	if len(sum) != 32 || !ic.sums[[32]byte(sum)] {
		return nil, fmt.Errorf("chunk %x for part/%s: %w", sum, part.ID, partsync.ErrNoChunk)
	}
	var data []byte
	err = d.s.st.View(ctx, func(tx store.Tx) error {
		var err error
		data, err = tx.GetPackageChunk(ctx, ic.org, sum)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		// Issued, then deleted with its version: gone for this part too.
		return nil, fmt.Errorf("chunk %x for part/%s: %w", sum, part.ID, partsync.ErrNoChunk)
	}
	return data, err
}

// addIssuedChunks adds the chunks of the package manifests in a serialized
// signed config document (the cloud's own, read back unverified).
func addIssuedChunks(ic *issuedChunks, signedDoc []byte) error {
	if len(signedDoc) == 0 {
		return nil
	}
	var sd syncv1.SignedDocument
	if err := proto.Unmarshal(signedDoc, &sd); err != nil {
		return err
	}
	var doc syncv1.ConfigDocument
	if err := proto.Unmarshal(sd.GetPayload(), &doc); err != nil {
		return err
	}
	for _, rp := range doc.GetPackages() {
		var m syncv1.PackageManifest
		if err := proto.Unmarshal(rp.GetManifest().GetPayload(), &m); err != nil {
			return err
		}
		if m.GetOrgId() != ic.org {
			continue
		}
		for _, c := range m.GetChunks() {
			if len(c.GetSha256()) == 32 {
				ic.sums[[32]byte(c.GetSha256())] = true
			}
		}
	}
	return nil
}

// packageUser is a machine whose merged config names a package.
type packageUser struct {
	machineID string
	// versions are the selectors its references use ("1.4.0", "tag:x").
	versions []string
}

// packageUsers lists the machines of org whose current merged config names
// the package org/name.
func packageUsers(ctx context.Context, tx store.Tx, snap *snapshot, org, name string) ([]packageUser, error) {
	want := org + "/" + name
	var out []packageUser
	for _, id := range slices.Sorted(func(yield func(string) bool) {
		for id := range snap.machines {
			if !yield(id) {
				return
			}
		}
	}) {
		m := snap.machines[id]
		if snap.locations[m.LocationID].OrgID != org {
			continue
		}
		mm, err := mergeMachine(ctx, tx, id, nil, nil)
		if err != nil {
			return nil, err
		}
		var u *packageUser
		for _, r := range mm.config.GetPackages() {
			if r.GetPackage() != want {
				continue
			}
			if u == nil {
				out = append(out, packageUser{machineID: id})
				u = &out[len(out)-1]
			}
			u.versions = append(u.versions, r.GetVersion())
		}
	}
	return out, nil
}

// statusOf is a part's last status, or nil before it reported.
func (s *Server) statusOf(ctx context.Context, partID string) (*ingest.PartStatus, error) {
	if s.ingest == nil {
		return nil, nil
	}
	st, err := s.ingest.Status(ctx, partID)
	if errors.Is(err, ingest.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &st, nil
}
