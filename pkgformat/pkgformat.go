// Package pkgformat is what the cloud and the parts agree on about a
// package's content: the name syntax, the content stream (a deterministic
// POSIX tar of the package's files), how that stream is cut into
// content-defined chunks, and the limits a PackageManifest must keep.
//
// The CLI writes and cuts the stream, the cloud checks the manifests it
// signs, and a part checks them again before it fetches anything, so the
// same files always make the same chunks on every side, and a new version
// that shares most bytes with the old one shares most chunks.
package pkgformat

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"regexp"

	"github.com/restic/chunker"

	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
)

// Polynomial is the irreducible polynomial every side cuts content with.
// It is fixed, not random per upload, so that chunk boundaries depend only
// on the bytes: that is what lets versions and parts share chunks.
const Polynomial chunker.Pol = 0x3DA3358B4DC173

// How content is cut (decision 44). Every chunk but a stream's last is at
// least MinChunk and none is larger than MaxChunk; past MinChunk a boundary
// falls where the rolling hash's low AverageBits bits are zero, so chunks
// average MinChunk + 2^AverageBits = 128 KiB. Small chunks are what make a
// scattered change cheap: each change costs the chunks it touches, about
// 180 KiB beyond the changed bytes (BenchmarkDeltaUpdate: 5% changed in 20
// places of a 100 MB package moves 8.7% of it, and 38% with chunks of
// 512 KiB to 4 MiB). MaxChunk bounds what a part holds for one chunk while
// it downloads (BenchmarkDownloadRSS). MinChunk is not smaller because it
// sets MaxChunks, and with it the largest manifest.
const (
	MinChunk    = 64 << 10
	AverageBits = 16
	MaxChunk    = 512 << 10
)

// Limits of one version's content stream. MaxChunks is what MaxSize takes
// at MinChunk (content the rolling hash cuts at every chance, such as runs
// of zeros, is cut that small), so any honestly cut stream within MaxSize
// fits. A chunk takes at most ChunkListEntryBytes of an encoded chunk list,
// so a manifest's chunk list is at most MaxChunkListBytes (2.5 MiB; about
// 1.25 MiB for 4 GiB of ordinary content): what a registry call that
// carries one must accept, and well under a signed document's bound.
const (
	MaxSize             = 4 << 30
	MaxChunks           = MaxSize / MinChunk
	ChunkListEntryBytes = 40
	MaxChunkListBytes   = MaxChunks * ChunkListEntryBytes
)

// Package types.
const (
	TypeModule  = "module"
	TypeMLModel = "ml_model"
	TypeProcess = "process"
	TypeFile    = "file"
)

// PlatformAny is the platform of content that runs anywhere; a part falls
// back to it when no version exists for its own platform.
const PlatformAny = "any"

var (
	nameRe     = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
	versionRe  = regexp.MustCompile(`^(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})(-[0-9A-Za-z][0-9A-Za-z.-]{0,31})?$`)
	tagRe      = regexp.MustCompile(`^[a-z][a-z0-9._-]{0,31}$`)
	platformRe = regexp.MustCompile(`^[a-z0-9]{1,16}/[a-z0-9]{1,16}$`)
)

// ValidName checks a package name: [a-z0-9][a-z0-9._-]{0,62}.
func ValidName(name string) error {
	if !nameRe.MatchString(name) {
		return fmt.Errorf("package name %q: want 1 to 63 of a-z, 0-9, '.', '_', '-', starting with a letter or digit", Printable(name))
	}
	return nil
}

// ValidVersion checks a version: MAJOR.MINOR.PATCH with an optional
// -PRERELEASE ("1.4.0", "2.0.0-rc.1").
func ValidVersion(v string) error {
	if !versionRe.MatchString(v) {
		return fmt.Errorf("version %q: want MAJOR.MINOR.PATCH or MAJOR.MINOR.PATCH-PRE, such as 1.4.0 or 2.0.0-rc.1", Printable(v))
	}
	return nil
}

// ValidTag checks a tag name: [a-z][a-z0-9._-]{0,31}. "latest" is not a
// tag: it always means the newest version.
func ValidTag(tag string) error {
	if !tagRe.MatchString(tag) {
		return fmt.Errorf("tag %q: want 1 to 32 of a-z, 0-9, '.', '_', '-', starting with a letter", Printable(tag))
	}
	if tag == "latest" {
		return errors.New(`tag "latest" is reserved: it always means the newest version`)
	}
	return nil
}

// ValidType checks a package type.
func ValidType(t string) error {
	switch t {
	case TypeModule, TypeMLModel, TypeProcess, TypeFile:
		return nil
	}
	return fmt.Errorf("package type %q: want module, ml_model, process or file", Printable(t))
}

// ValidPlatform checks a platform: "GOOS/GOARCH" such as "linux/arm64", or
// "any".
func ValidPlatform(p string) error {
	if p == PlatformAny || platformRe.MatchString(p) {
		return nil
	}
	return fmt.Errorf("platform %q: want GOOS/GOARCH such as linux/arm64, or any", Printable(p))
}

// ValidChunks checks a chunk list against the limits and returns the total
// size: between 1 and MaxChunks chunks, each 1 to MaxChunk bytes with a
// 32-byte hash, at most MaxSize in all.
func ValidChunks(chunks []*syncv1.PackageChunk) (uint64, error) {
	if len(chunks) == 0 {
		return 0, errors.New("no chunks: a version has content")
	}
	if len(chunks) > MaxChunks {
		return 0, fmt.Errorf("%d chunks: at most %d", len(chunks), MaxChunks)
	}
	var total uint64
	for i, c := range chunks {
		if len(c.GetSha256()) != sha256.Size {
			return 0, fmt.Errorf("chunk %d: hash of %d bytes, want %d (SHA-256)", i, len(c.GetSha256()), sha256.Size)
		}
		if c.GetSize() == 0 || c.GetSize() > MaxChunk {
			return 0, fmt.Errorf("chunk %d: %d bytes, want 1 to %d", i, c.GetSize(), MaxChunk)
		}
		total += uint64(c.GetSize())
	}
	if total > MaxSize {
		return 0, fmt.Errorf("content of %d bytes: at most %d", total, uint64(MaxSize))
	}
	return total, nil
}

// ValidateManifest checks a manifest's syntax and limits: names, version,
// type, platform, the chunk list, and that the chunks' sizes add up to
// size. It cannot check hashes against content; the cloud does that when it
// creates the version and the part when it fetches.
func ValidateManifest(m *syncv1.PackageManifest) error {
	if m == nil {
		return errors.New("manifest: none")
	}
	if m.GetOrgId() == "" || len(m.GetOrgId()) > 64 || !printableID(m.GetOrgId()) {
		return fmt.Errorf("manifest: organization id %q", Printable(m.GetOrgId()))
	}
	for _, check := range []func() error{
		func() error { return ValidName(m.GetName()) },
		func() error { return ValidVersion(m.GetVersion()) },
		func() error { return ValidType(m.GetType()) },
		func() error { return ValidPlatform(m.GetPlatform()) },
	} {
		if err := check(); err != nil {
			return fmt.Errorf("manifest: %w", err)
		}
	}
	if len(m.GetSha256()) != sha256.Size {
		return fmt.Errorf("manifest: content hash of %d bytes, want %d (SHA-256)", len(m.GetSha256()), sha256.Size)
	}
	total, err := ValidChunks(m.GetChunks())
	if err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	if total != m.GetSize() {
		return fmt.Errorf("manifest: chunks add up to %d bytes, size says %d", total, m.GetSize())
	}
	return nil
}

// printableID reports whether s holds only characters ids are made of.
func printableID(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// Printable shortens s, a name from outside, for an error message, so a
// hostile name cannot make a status or log line large; quoting it (%q)
// escapes the rest.
func Printable(s string) string {
	const limit = 80
	if len(s) > limit {
		return s[:limit] + "..."
	}
	return s
}
