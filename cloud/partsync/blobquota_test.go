package partsync_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"

	"connectrpc.com/connect"

	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/cloud/partsync"
)

// TestIncompleteBlobQuota: a part sends five 8 MiB chunks, each the first
// of a blob declaring 64 GiB; past the part's quota of incomplete blobs
// the cloud refuses them (resource exhausted, naming the quota), while
// another part is still served.
func TestIncompleteBlobQuota(t *testing.T) {
	e := newEnv(t, partsync.Options{})
	c := e.part("part-a")
	sum := sha256.Sum256([]byte("never sent whole"))
	data := make([]byte, 8<<20)
	ctx := context.Background()
	refused := 0
	for i := range 5 {
		_, err := c.UploadBlob(ctx, connect.NewRequest(&syncv1.UploadBlobRequest{BlobId: fmt.Sprint("huge-", i), Data: data,
			Size: 64 << 30, Sha256: sum[:]}))
		switch {
		case err == nil:
		case codeOf(err) == connect.CodeResourceExhausted && strings.Contains(err.Error(), "quota"):
			refused++
		default:
			t.Fatalf("chunk %d: %v", i, err)
		}
	}
	if refused != 4 {
		t.Errorf("%d of 5 blobs of 64 GiB refused, want 4 (the quota holds one)", refused)
	}
	if _, err := e.part("part-b").UploadBlob(ctx, connect.NewRequest(&syncv1.UploadBlobRequest{BlobId: "huge-0", Data: data,
		Size: 64 << 30, Sha256: sum[:]})); err != nil {
		t.Errorf("another part: %v", err)
	}
}
