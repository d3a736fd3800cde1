package packages

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/pkgformat"
	"github.com/outpost-robotics/outpost/signed"
)

// MaxEntries bounds the files and directories of one package.
const MaxEntries = 100_000

// ErrManifest marks a manifest that fails verification or its checks.
var ErrManifest = errors.New("package manifest refused")

// verifyManifest checks doc's signature against keys, decodes it and
// checks the manifest for platform (the part's "GOOS/GOARCH").
func verifyManifest(keys signed.Keys, doc *syncv1.SignedDocument, platform string) (*syncv1.PackageManifest, error) {
	var m syncv1.PackageManifest
	if err := signed.Verify(keys, doc, &m); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrManifest, err)
	}
	if err := checkManifest(&m); err != nil {
		return nil, err
	}
	if m.GetPlatform() != pkgformat.PlatformAny && m.GetPlatform() != platform {
		return nil, fmt.Errorf("%w: %s/%s %s is built for %s, and this part is %s", ErrManifest, m.GetOrgId(), m.GetName(), m.GetVersion(), m.GetPlatform(), platform)
	}
	return &m, nil
}

// checkManifest checks what a signature cannot: that the manifest keeps
// the limits the cloud and the parts share (pkgformat.ValidateManifest,
// whose names and versions are also safe to make a path of), and that the
// stream can be the tar the part unpacks.
func checkManifest(m *syncv1.PackageManifest) error {
	if err := pkgformat.ValidateManifest(m); err != nil {
		return fmt.Errorf("%w: %w", ErrManifest, err)
	}
	// A tar stream is at least its 1024-byte end marker.
	if m.GetSize() < 1024 {
		return fmt.Errorf("%w: a %d-byte stream is no tar", ErrManifest, m.GetSize())
	}
	if m.GetUnpackedSize() > m.GetSize() {
		return fmt.Errorf("%w: unpacked size %d exceeds the %d-byte stream that holds it", ErrManifest, m.GetUnpackedSize(), m.GetSize())
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
