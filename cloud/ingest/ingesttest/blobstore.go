package ingesttest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/outpost-robotics/outpost/cloud/ingest"
)

// OpenBlobs returns a fresh, empty blob store.
type OpenBlobs func(t *testing.T) ingest.BlobStore

// RunBlobStore runs the conformance tests of ingest.BlobStore against
// stores from open: every implementation (a folder, PostgreSQL, an object
// store later) moves bytes the same way.
func RunBlobStore(t *testing.T, open OpenBlobs) {
	tests := []struct {
		name string
		fn   func(t *testing.T, b ingest.BlobStore)
	}{
		{"HostileIDs", testBlobIDs},
		{"WriteAt", testBlobWriteAt},
		{"CommitAndDelete", testBlobCommit},
		{"Large", testBlobLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

func readAll(t *testing.T, b ingest.BlobStore, key ingest.BlobKey) []byte {
	t.Helper()
	rc, err := b.Open(context.Background(), key)
	if err != nil {
		t.Fatalf("open %.40v: %v", key, err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %.40v: %v", key, err)
	}
	return got
}

// testBlobIDs: ids a part chooses (paths, quotes, the longest) name their
// own blob and nothing else; ids no store may hold are ErrInvalid.
func testBlobIDs(t *testing.T, b ingest.BlobStore) {
	ctx := context.Background()
	ids := []string{"../../escape", "/etc/passwd", "a/b", ".", "..", `'; DROP TABLE x; --`, `%_\`, "é" + strings.Repeat("x", ingest.MaxIDLen-2)}
	for i, id := range ids {
		key := ingest.BlobKey{PartID: "..", BlobID: id}
		if err := b.WriteAt(ctx, key, 0, []byte{byte(i)}); err != nil {
			t.Fatalf("%.20q: %v", id, err)
		}
		if err := b.Commit(ctx, key); err != nil {
			t.Fatalf("%.20q: %v", id, err)
		}
	}
	for i, id := range ids {
		if got := readAll(t, b, ingest.BlobKey{PartID: "..", BlobID: id}); !bytes.Equal(got, []byte{byte(i)}) {
			t.Errorf("%.20q reads %v, want [%d]", id, got, i)
		}
	}
	for _, key := range []ingest.BlobKey{
		{PartID: "p", BlobID: ""},
		{PartID: "", BlobID: "b"},
		{PartID: "p", BlobID: "nul\x00"},
		{PartID: "p", BlobID: "\xff"},
		{PartID: "p", BlobID: strings.Repeat("x", ingest.MaxIDLen+1)},
	} {
		if err := b.WriteAt(ctx, key, 0, []byte("x")); !errors.Is(err, ingest.ErrInvalid) {
			t.Errorf("WriteAt(%.20q) = %v, want ErrInvalid", key, err)
		}
		if _, err := b.Open(ctx, key); err == nil {
			t.Errorf("Open(%.20q) opened", key)
		}
	}
}

// testBlobWriteAt: no holes, and a write drops what lay past its end.
func testBlobWriteAt(t *testing.T, b ingest.BlobStore) {
	ctx := context.Background()
	key := ingest.BlobKey{PartID: "p", BlobID: "b"}
	steps := []struct {
		off  uint64
		data string
		ok   bool
	}{
		{1, "a hole at the start", false},
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
	if got := readAll(t, b, key); string(got) != "hello world" {
		t.Fatalf("blob reads %q", got)
	}
	if err := b.Discard(ctx, ingest.BlobKey{PartID: "p", BlobID: "never"}); err != nil {
		t.Fatalf("discarding nothing: %v", err)
	}
}

// testBlobCommit: an empty blob, a discarded partial copy, a committed blob
// replaced by a later commit, and deletes.
func testBlobCommit(t *testing.T, b ingest.BlobStore) {
	ctx := context.Background()
	empty := ingest.BlobKey{PartID: "p", BlobID: "empty"}
	if err := b.WriteAt(ctx, empty, 0, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(ctx, empty); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, b, empty); len(got) != 0 {
		t.Fatalf("the empty blob reads %d bytes", len(got))
	}
	key := ingest.BlobKey{PartID: "p", BlobID: "b"}
	if err := b.WriteAt(ctx, key, 0, []byte("first")); err != nil {
		t.Fatal(err)
	}
	if err := b.Discard(ctx, key); err != nil {
		t.Fatal(err)
	}
	if err := b.WriteAt(ctx, key, 3, []byte("x")); !errors.Is(err, ingest.ErrInvalid) {
		t.Fatalf("writing past the start of a discarded copy: %v, want ErrInvalid", err)
	}
	for _, content := range []string{"one", "two, longer"} {
		if err := b.WriteAt(ctx, key, 0, []byte(content)); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(ctx, key); err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, b, key); string(got) != content {
			t.Fatalf("blob reads %q, want %q", got, content)
		}
	}
	// Delete takes the blob and a partial copy; a missing one is no error.
	if err := b.WriteAt(ctx, key, 0, []byte("partial")); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := b.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Open(ctx, key); !errors.Is(err, ingest.ErrNotFound) {
		t.Fatalf("a deleted blob opens: %v", err)
	}
	if err := b.WriteAt(ctx, key, 1, []byte("x")); !errors.Is(err, ingest.ErrInvalid) {
		t.Fatalf("the partial copy outlived the delete: %v", err)
	}
}

// testBlobLarge writes a few MiB in uneven pieces, rewriting and cutting
// back as a part resuming and retrying would, and reads back exactly what
// the writes leave.
func testBlobLarge(t *testing.T, b ingest.BlobStore) {
	ctx := context.Background()
	key := ingest.BlobKey{PartID: "p", BlobID: "large"}
	rng := rand.New(rand.NewPCG(1, 2))
	var want []byte
	for range 40 {
		off := uint64(0)
		if len(want) > 0 {
			off = uint64(rng.IntN(len(want) + 1))
			if rng.IntN(3) > 0 {
				off = uint64(len(want)) // mostly appends
			}
		}
		data := make([]byte, rng.IntN(700<<10))
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		if err := b.WriteAt(ctx, key, off, data); err != nil {
			t.Fatal(err)
		}
		want = append(want[:off], data...)
	}
	if err := b.Commit(ctx, key); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, b, key); !bytes.Equal(got, want) {
		t.Fatalf("the blob reads %d bytes, want %d, or they differ", len(got), len(want))
	}
}
