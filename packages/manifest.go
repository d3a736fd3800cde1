package packages

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"

	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/signed"
)

// The agreed limits of a content stream (see docs/ARCHITECTURE.md): chunks
// are cut by restic/chunker with these bounds. The last chunk of a stream
// may be shorter than the minimum.
const (
	MinChunk = 512 << 10
	MaxChunk = 4 << 20
	// MaxChunks bounds a manifest's chunk list: 64 GiB of content at the
	// smallest chunks, more than any part's disk.
	MaxChunks = 1 << 17
	// MaxEntries bounds the files and directories of one package.
	MaxEntries = 100_000
)

// ErrManifest marks a manifest that fails verification or its checks.
var ErrManifest = errors.New("package manifest refused")

// The package types a manifest may name.
var packageTypes = map[string]bool{"module": true, "ml_model": true, "process": true, "file": true}

var (
	// nameRE is an organization id, a package name or a version: one path
	// component the part makes a directory of, never "." or "..".
	nameRE     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$`)
	platformRE = regexp.MustCompile(`^[a-z0-9]{1,16}/[a-z0-9]{1,16}$`)
)

// verifyManifest checks doc's signature against keys, decodes it and
// checks the manifest for platform (the part's "GOOS/GOARCH").
//
// This is the part's own check until the shared ValidateManifest of the
// cloud's package code takes over its structural half (checkManifest).
func verifyManifest(keys signed.Keys, doc *syncv1.SignedDocument, platform string) (*syncv1.PackageManifest, error) {
	var m syncv1.PackageManifest
	if err := signed.Verify(keys, doc, &m); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrManifest, err)
	}
	if err := checkManifest(&m); err != nil {
		return nil, err
	}
	if m.GetPlatform() != "any" && m.GetPlatform() != platform {
		return nil, fmt.Errorf("%w: %s/%s %s is built for %s, and this part is %s", ErrManifest, m.GetOrgId(), m.GetName(), m.GetVersion(), m.GetPlatform(), platform)
	}
	return &m, nil
}

// checkManifest checks what a signature cannot: that the manifest is
// consistent and names nothing the part cannot safely make a path of.
func checkManifest(m *syncv1.PackageManifest) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrManifest, fmt.Sprintf(format, args...))
	}
	for _, f := range []struct{ what, v string }{{"org id", m.GetOrgId()}, {"name", m.GetName()}, {"version", m.GetVersion()}} {
		if !nameRE.MatchString(f.v) || strings.Trim(f.v, ".") == "" {
			return bad("%s %q: want letters, digits, '.', '_', '+' or '-', at most 128, starting with a letter or digit", f.what, f.v)
		}
	}
	if !packageTypes[m.GetType()] {
		return bad("type %q: want module, ml_model, process or file", m.GetType())
	}
	if m.GetPlatform() != "any" && !platformRE.MatchString(m.GetPlatform()) {
		return bad("platform %q: want \"any\" or OS/ARCH such as linux/arm64", m.GetPlatform())
	}
	if len(m.GetSha256()) != sha256.Size {
		return bad("stream hash of %d bytes, want %d", len(m.GetSha256()), sha256.Size)
	}
	if len(m.GetChunks()) > MaxChunks {
		return bad("%d chunks, at most %d", len(m.GetChunks()), MaxChunks)
	}
	if m.GetSize() > 0 && len(m.GetChunks()) == 0 {
		return bad("a %d-byte stream without chunks", m.GetSize())
	}
	var total uint64
	for i, c := range m.GetChunks() {
		if len(c.GetSha256()) != sha256.Size {
			return bad("chunk %d: hash of %d bytes, want %d", i, len(c.GetSha256()), sha256.Size)
		}
		if c.GetSize() == 0 || c.GetSize() > MaxChunk {
			return bad("chunk %d: %d bytes, want 1 to %d", i, c.GetSize(), MaxChunk)
		}
		total += uint64(c.GetSize())
	}
	if total != m.GetSize() {
		return bad("chunks add up to %d bytes but the stream is %d", total, m.GetSize())
	}
	// A tar stream is at least its 1024-byte end marker.
	if m.GetSize() < 1024 {
		return bad("a %d-byte stream is no tar", m.GetSize())
	}
	if m.GetUnpackedSize() > m.GetSize() {
		return bad("unpacked size %d exceeds the %d-byte stream that holds it", m.GetUnpackedSize(), m.GetSize())
	}
	return nil
}

// versionKey names a version on disk: "<version>-<os>-<arch>" or
// "<version>-any".
func versionKey(m *syncv1.PackageManifest) string {
	return m.GetVersion() + "-" + strings.ReplaceAll(m.GetPlatform(), "/", "-")
}

// streamID is the hex SHA-256 of a manifest's content stream: what
// identifies a version's content wherever it came from.
func streamID(m *syncv1.PackageManifest) string { return hex.EncodeToString(m.GetSha256()) }
