package packages

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"net/http"
	"testing"
	"time"

	"github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1/syncv1connect"
	"github.com/outpost-robotics/outpost/packages/packagetest"
	"github.com/outpost-robotics/outpost/signed"
)

type (
	entry     = packagetest.Entry
	pkg       = packagetest.Package
	signedKey = ed25519.PublicKey
)

const testPlatform = "linux/amd64"

func files(fs map[string]string) []entry { return packagetest.Files(fs) }

func tarStream(t testing.TB, entries []entry) ([]byte, uint64) { return packagetest.Tar(t, entries) }

func build(t testing.TB, _ signed.Signer, version, platform string, stream []byte, unpacked uint64) *pkg {
	return packagetest.BuildTo(t, packagetest.Small, "blinker", version, platform, bytes.NewReader(stream), unpacked, "")
}

func newPkg(t testing.TB, _ signed.Signer, version string, fs map[string]string) *pkg {
	return packagetest.NewChunked(t, packagetest.Small, "blinker", version, testPlatform, fs)
}

func newSigner(t testing.TB, id string) signed.Signer { return packagetest.NewSigner(t, id) }

// client is a connect client of url, without retries, so a cut is a
// failed download.
func client(url string) Fetcher {
	return syncv1connect.NewSyncServiceClient(&http.Client{Timeout: time.Minute}, url)
}

func hexOf(b []byte) string { return hex.EncodeToString(b) }

func hexKey(t testing.TB, s string) [32]byte {
	t.Helper()
	var k [32]byte
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 {
		t.Fatalf("chunk file %q is not a hash", s)
	}
	copy(k[:], b)
	return k
}
