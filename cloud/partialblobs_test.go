package cloud_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/cloud"
	"github.com/outpost-robotics/outpost/cloud/cloudtest"
	"github.com/outpost-robotics/outpost/cloud/ingest"
	"github.com/outpost-robotics/outpost/cloud/ingest/badgeringest"
)

// TestSweepExpiresAbandonedBlobs: the cloud's sweep, on its clock,
// discards an incomplete blob nobody has sent a chunk of for the TTL.
func TestSweepExpiresAbandonedBlobs(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	clk := clock.NewFake(epoch)
	dir := t.TempDir()
	blobs, err := ingest.NewFileBlobStore(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	ing, err := badgeringest.Open(badgeringest.Options{Dir: filepath.Join(dir, "ingest"), Blobs: blobs, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	defer ing.Close()
	sum := sha256.Sum256([]byte("whole"))
	if _, err := ing.PutBlobChunk(ctx, ingest.BlobChunk{PartID: "p", BlobID: "b", Data: []byte("wh"), Size: 5, SHA256: sum[:]}); err != nil {
		t.Fatal(err)
	}
	sweepCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); cloud.SweepPartialBlobs(sweepCtx, clk, ing, zap.NewNop()) }()
	defer func() { stop(); <-done }()
	if err := clk.BlockUntil(ctx, 1); err != nil {
		t.Fatal(err)
	}
	for clk.Now().Before(epoch.Add(ingest.DefaultPartialBlobTTL + cloud.PartialBlobSweep)) {
		clk.Advance(cloud.PartialBlobSweep)
	}
	cloudtest.Eventually(t, "the abandoned blob is dropped after its TTL", func() error {
		if _, err := ing.Blob(ctx, "p", "b"); !errors.Is(err, ingest.ErrNotFound) {
			clk.Advance(cloud.PartialBlobSweep)
			return fmt.Errorf("still held: %v", err)
		}
		return nil
	})
}
