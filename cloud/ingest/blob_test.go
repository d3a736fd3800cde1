package ingest_test

import (
	"bytes"
	"context"
	"crypto/sha256"
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

// TestNextChunk: a chunk adds only the bytes past what the blob holds; a
// gap, a repeat or a damaged hash state adds nothing.
func TestNextChunk(t *testing.T) {
	st, err := ingest.EmptyHashState()
	if err != nil {
		t.Fatal(err)
	}
	abc := sha256.Sum256([]byte("abc"))
	_, afterA, _, err := ingest.NextChunk(ingest.BlobChunk{Offset: 0, Data: []byte("a")}, 0, st)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		c        ingest.BlobChunk
		received uint64
		state    []byte
		want     string
		sum      []byte
		err      bool
	}{
		{"first bytes", ingest.BlobChunk{Offset: 0, Data: []byte("abc")}, 0, st, "abc", abc[:], false},
		{"overlap: only what is new", ingest.BlobChunk{Offset: 0, Data: []byte("abc")}, 1, afterA, "bc", abc[:], false},
		{"a gap", ingest.BlobChunk{Offset: 2, Data: []byte("c")}, 1, afterA, "", nil, false},
		{"received before", ingest.BlobChunk{Offset: 0, Data: []byte("a")}, 1, afterA, "", nil, false},
		{"empty at the end", ingest.BlobChunk{Offset: 1}, 1, afterA, "", nil, false},
		{"damaged state", ingest.BlobChunk{Offset: 1, Data: []byte("bc")}, 1, []byte("not a sha256 state"), "", nil, true},
	} {
		data, _, sum, err := ingest.NextChunk(tc.c, tc.received, tc.state)
		if (err != nil) != tc.err || string(data) != tc.want || !bytes.Equal(sum, tc.sum) {
			t.Errorf("%s: data %q sum %x err %v; want %q %x error %v", tc.name, data, sum, err, tc.want, tc.sum, tc.err)
		}
	}
}
