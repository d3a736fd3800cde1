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

	key := ingest.BlobKey{PartID: "p", BlobID: "b"}
	steps := []struct {
		off  uint64
		data string
		ok   bool
	}{
		{0, "hello", true},
		{9, "past the end", false}, // no holes
		{5, " world, and a tail never recorded", true},
		{5, " world", true}, // the store rewrites from its offset: the tail goes
	}
	for _, st := range steps {
		err := b.WriteAt(ctx, key, st.off, []byte(st.data))
		if (err == nil) != st.ok || (err != nil && !errors.Is(err, ingest.ErrInvalid)) {
			t.Fatalf("WriteAt(%d, %q) = %v", st.off, st.data, err)
		}
	}
	if _, err := b.Open(ctx, key); !errors.Is(err, ingest.ErrNotFound) {
		t.Fatalf("a partial blob opens: %v", err)
	}
	for range 2 { // committing again is a no-op
		if err := b.Commit(ctx, key); err != nil {
			t.Fatal(err)
		}
	}
	if got := read(key); got != "hello world" {
		t.Fatalf("blob reads %q", got)
	}
	if err := b.Discard(ctx, ingest.BlobKey{PartID: "p", BlobID: "never"}); err != nil {
		t.Fatalf("discarding nothing: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "partial")); err != nil {
		t.Fatal(err)
	}
	if err := b.WriteAt(ctx, ingest.BlobKey{PartID: "p", BlobID: ""}, 0, nil); !errors.Is(err, ingest.ErrInvalid) {
		t.Fatalf("empty blob id: %v", err)
	}
}
