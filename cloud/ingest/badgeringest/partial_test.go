package badgeringest_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/cloud/ingest"
	"github.com/outpost-robotics/outpost/cloud/ingest/badgeringest"
	"github.com/outpost-robotics/outpost/cloud/ingest/ingesttest"
)

func TestPartialBlobs(t *testing.T) {
	ingesttest.RunPartialBlobs(t, func(t *testing.T, quota uint64, maxCount int, ttl time.Duration, clk clock.Clock) (ingest.Store, ingest.BlobStore) {
		dir := t.TempDir()
		blobs, err := ingest.NewFileBlobStore(filepath.Join(dir, "blobs"))
		if err != nil {
			t.Fatal(err)
		}
		s, err := badgeringest.Open(badgeringest.Options{Dir: filepath.Join(dir, "db"), Blobs: blobs, Clock: clk,
			PartialBlobQuota: quota, MaxPartialBlobs: maxCount, PartialBlobTTL: ttl})
		if err != nil {
			t.Fatal(err)
		}
		return s, blobs
	})
}

// TestPartialBlobDefaults: with no options, five 8 MiB chunks of blobs
// declaring 64 GiB each leave one blob started and refuse the rest, and
// the quota survives a restart.
func TestPartialBlobDefaults(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, _ := open(t, dir)
	sum := sha256.Sum256([]byte("x"))
	chunk := make([]byte, 8<<20)
	for i := range 5 {
		_, err := s.PutBlobChunk(ctx, ingest.BlobChunk{PartID: "p", BlobID: string(rune('a' + i)), Data: chunk, Size: 64 << 30, SHA256: sum[:]})
		if (i == 0) != (err == nil) || i > 0 && !errors.Is(err, ingest.ErrBlobQuota) {
			t.Fatalf("blob %d of 64 GiB: %v", i, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, _ = open(t, dir)
	defer s.Close()
	if _, err := s.PutBlobChunk(ctx, ingest.BlobChunk{PartID: "p", BlobID: "after", Data: chunk, Size: 1 << 30, SHA256: sum[:]}); !errors.Is(err, ingest.ErrBlobQuota) {
		t.Fatalf("after a restart: %v, want ErrBlobQuota", err)
	}
}
