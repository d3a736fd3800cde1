package ingest_test

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/outpost-robotics/outpost/cloud/ingest"
	"github.com/outpost-robotics/outpost/cloud/ingest/ingesttest"
)

func TestFileBlobStore(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "blobs")
	b, err := ingest.NewFileBlobStore(root)
	if err != nil {
		t.Fatal(err)
	}
	read := func(key ingest.BlobKey) string {
		t.Helper()
		rc, err := b.Open(ctx, key)
		if err != nil {
			t.Fatalf("open %v: %v", key, err)
		}
		defer rc.Close()
		got, _ := io.ReadAll(rc)
		return string(got)
	}
	// Ids a part chooses cannot name a path outside the folder.
	for _, id := range []string{"../../escape", "/etc/passwd", "a/b", ".", ".."} {
		key := ingest.BlobKey{PartID: "..", BlobID: id}
		if err := b.WriteAt(ctx, key, 0, []byte("x")); err != nil {
			t.Fatalf("%q: %v", id, err)
		}
		if err := b.Commit(ctx, key); err != nil {
			t.Fatalf("%q: %v", id, err)
		}
		if got := read(key); got != "x" {
			t.Fatalf("%q reads %q", id, got)
		}
	}
	err = filepath.WalkDir(filepath.Dir(root), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !strings.HasPrefix(p, root) && p != filepath.Dir(root) {
			t.Errorf("a file outside the blob folder: %s", p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	if err := b.WriteAt(ctx, ingest.BlobKey{PartID: "p", BlobID: ""}, 0, nil); !errors.Is(err, ingest.ErrInvalid) {
		t.Fatalf("empty blob id: %v", err)
	}
	// Discarding nothing leaves the folder of partial copies in place.
	if err := b.Discard(ctx, ingest.BlobKey{PartID: "p", BlobID: "never"}); err != nil {
		t.Fatalf("discarding nothing: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "partial")); err != nil {
		t.Fatal(err)
	}
}

func TestFileBlobStoreConformance(t *testing.T) {
	ingesttest.RunBlobStore(t, func(t *testing.T) ingest.BlobStore {
		b, err := ingest.NewFileBlobStore(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
}
