package pkgformat_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/pkgformat"
)

func TestPolynomialIsIrreducible(t *testing.T) {
	if !pkgformat.Polynomial.Irreducible() {
		t.Fatal("the chunking polynomial must be irreducible")
	}
}

func TestNames(t *testing.T) {
	tests := []struct {
		check func(string) error
		in    string
		ok    bool
	}{
		{pkgformat.ValidName, "blinker", true},
		{pkgformat.ValidName, "a.b_c-9", true},
		{pkgformat.ValidName, "0", true},
		{pkgformat.ValidName, "", false},
		{pkgformat.ValidName, "Blinker", false},
		{pkgformat.ValidName, "-x", false},
		{pkgformat.ValidName, "../x", false},
		{pkgformat.ValidName, "a/b", false},
		{pkgformat.ValidName, strings.Repeat("a", 63), true},
		{pkgformat.ValidName, strings.Repeat("a", 64), false},
		{pkgformat.ValidName, "a\x00b", false},
		{pkgformat.ValidVersion, "1.4.0", true},
		{pkgformat.ValidVersion, "0.0.1-rc.1", true},
		{pkgformat.ValidVersion, "1.4", false},
		{pkgformat.ValidVersion, "01.4.0", false},
		{pkgformat.ValidVersion, "v1.4.0", false},
		{pkgformat.ValidVersion, "latest", false},
		{pkgformat.ValidVersion, "1.4.0-", false},
		{pkgformat.ValidVersion, "1.4.0\n", false},
		{pkgformat.ValidTag, "stable", true},
		{pkgformat.ValidTag, "canary-2", true},
		{pkgformat.ValidTag, "latest", false},
		{pkgformat.ValidTag, "2x", false},
		{pkgformat.ValidTag, strings.Repeat("a", 33), false},
		{pkgformat.ValidType, "module", true},
		{pkgformat.ValidType, "ml_model", true},
		{pkgformat.ValidType, "exe", false},
		{pkgformat.ValidPlatform, "linux/arm64", true},
		{pkgformat.ValidPlatform, "any", true},
		{pkgformat.ValidPlatform, "linux", false},
		{pkgformat.ValidPlatform, "linux/arm64/v8", false},
		{pkgformat.ValidPlatform, "Linux/ARM64", false},
	}
	for _, tt := range tests {
		if err := tt.check(tt.in); (err == nil) != tt.ok {
			t.Errorf("check(%q) = %v, want ok=%v", tt.in, err, tt.ok)
		}
	}
}

func manifest() *syncv1.PackageManifest {
	sum := sha256.Sum256([]byte("x"))
	return &syncv1.PackageManifest{
		OrgId: "org1", Name: "blinker", Version: "1.0.0", Type: "module", Platform: "linux/arm64",
		Size: 3, Sha256: sum[:],
		Chunks: []*syncv1.PackageChunk{{Sha256: sum[:], Size: 1}, {Sha256: sum[:], Size: 2}},
	}
}

// TestLargestChunkList checks the bound a registry call carrying a chunk
// list relies on: the most chunks a version may have, each at the size
// that encodes longest, fit MaxChunkListBytes, and such a list is valid.
func TestLargestChunkList(t *testing.T) {
	sum := sha256.Sum256([]byte("x"))
	if n := proto.Size(&syncv1.PackageManifest{Chunks: []*syncv1.PackageChunk{{Sha256: sum[:], Size: pkgformat.MaxChunk}}}); n > pkgformat.ChunkListEntryBytes {
		t.Fatalf("a chunk of the largest size encodes in %d bytes, more than %d", n, pkgformat.ChunkListEntryBytes)
	}
	m := manifest()
	c := &syncv1.PackageChunk{Sha256: sum[:], Size: pkgformat.MinChunk}
	m.Chunks = make([]*syncv1.PackageChunk, pkgformat.MaxChunks)
	for i := range m.Chunks {
		m.Chunks[i] = c
	}
	m.Size = pkgformat.MaxSize
	if err := pkgformat.ValidateManifest(m); err != nil {
		t.Fatal(err)
	}
	if n := proto.Size(&syncv1.PackageManifest{Chunks: m.Chunks}); n > pkgformat.MaxChunkListBytes {
		t.Fatalf("the largest chunk list encodes in %d bytes, more than %d", n, pkgformat.MaxChunkListBytes)
	}
}

func TestValidateManifest(t *testing.T) {
	tests := []struct {
		name string
		edit func(m *syncv1.PackageManifest)
		want string
	}{
		{"valid", func(*syncv1.PackageManifest) {}, ""},
		{"no org", func(m *syncv1.PackageManifest) { m.OrgId = "" }, "organization"},
		{"org with a slash", func(m *syncv1.PackageManifest) { m.OrgId = "a/b" }, "organization"},
		{"bad name", func(m *syncv1.PackageManifest) { m.Name = "../etc" }, "package name"},
		{"bad version", func(m *syncv1.PackageManifest) { m.Version = "one" }, "version"},
		{"bad type", func(m *syncv1.PackageManifest) { m.Type = "rootkit" }, "package type"},
		{"bad platform", func(m *syncv1.PackageManifest) { m.Platform = "x" }, "platform"},
		{"short hash", func(m *syncv1.PackageManifest) { m.Sha256 = m.Sha256[:5] }, "content hash"},
		{"no chunks", func(m *syncv1.PackageManifest) { m.Chunks = nil }, "no chunks"},
		{"empty chunk", func(m *syncv1.PackageManifest) { m.Chunks[0].Size = 0 }, "chunk 0"},
		{"chunk over the limit", func(m *syncv1.PackageManifest) {
			m.Chunks[0].Size = pkgformat.MaxChunk + 1
			m.Size = pkgformat.MaxChunk + 3
		}, "chunk 0"},
		{"chunk hash short", func(m *syncv1.PackageManifest) { m.Chunks[1].Sha256 = nil }, "chunk 1"},
		{"sizes do not add up", func(m *syncv1.PackageManifest) { m.Size = 4 }, "add up"},
		{"too many chunks", func(m *syncv1.PackageManifest) {
			c := m.Chunks[0]
			m.Chunks = make([]*syncv1.PackageChunk, pkgformat.MaxChunks+1)
			for i := range m.Chunks {
				m.Chunks[i] = c
			}
			m.Size = uint64(len(m.Chunks))
		}, "chunks: at most"},
		{"too large", func(m *syncv1.PackageManifest) {
			c := &syncv1.PackageChunk{Sha256: m.Chunks[0].Sha256, Size: pkgformat.MaxChunk}
			m.Chunks = make([]*syncv1.PackageChunk, pkgformat.MaxSize/pkgformat.MaxChunk+1)
			for i := range m.Chunks {
				m.Chunks[i] = c
			}
			m.Size = uint64(len(m.Chunks)) * pkgformat.MaxChunk
		}, "at most"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := manifest()
			tt.edit(m)
			err := pkgformat.ValidateManifest(m)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error with %q", err, tt.want)
			}
		})
	}
	if err := pkgformat.ValidateManifest(nil); err == nil {
		t.Fatal("a nil manifest passed")
	}
}

// writeTree makes a small package directory.
func writeTree(t *testing.T, dir string, big []byte) {
	t.Helper()
	for name, data := range map[string][]byte{
		"bin/run":     []byte("#!/bin/sh\necho hi\n"),
		"a.txt":       []byte("a"),
		"a/b.txt":     []byte("b"),
		"model.bin":   big,
		"empty/.keep": nil,
	} {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(dir, "bin/run"), 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestWriteTarIsDeterministic(t *testing.T) {
	ctx := context.Background()
	big := make([]byte, 3<<20)
	rand.NewChaCha8([32]byte{1}).Read(big)
	var streams [2][]byte
	for i := range streams {
		dir := t.TempDir()
		writeTree(t, dir, big)
		var buf bytes.Buffer
		c, err := pkgformat.WriteTar(ctx, &buf, dir)
		if err != nil {
			t.Fatal(err)
		}
		if c.Files != 5 || c.UnpackedSize != uint64(len(big))+1+1+18 {
			t.Fatalf("contents %+v", c)
		}
		streams[i] = buf.Bytes()
	}
	if !bytes.Equal(streams[0], streams[1]) {
		t.Fatal("the same files made two different streams")
	}
	tr := tar.NewReader(bytes.NewReader(streams[0]))
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Uid != 0 || h.Gid != 0 || h.ModTime.Unix() != 0 || h.Uname != "" {
			t.Errorf("%s: owner %d/%d %q, mtime %v", h.Name, h.Uid, h.Gid, h.Uname, h.ModTime)
		}
		if h.Name == "bin/run" && h.Mode&0o111 == 0 {
			t.Errorf("bin/run lost its executable bits: %o", h.Mode)
		}
		names = append(names, h.Name)
	}
	want := "a/ a.txt a/b.txt bin/ bin/run empty/ empty/.keep model.bin"
	if got := strings.Join(names, " "); got != want {
		t.Fatalf("entries %q, want %q", got, want)
	}
}

func TestWriteTarOneFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "model.bin")
	if err := os.WriteFile(p, []byte("weights"), 0o600); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := pkgformat.WriteTar(context.Background(), &buf, p); err != nil {
		t.Fatal(err)
	}
	h, err := tar.NewReader(&buf).Next()
	if err != nil || h.Name != "model.bin" || h.Size != 7 {
		t.Fatalf("got %+v, %v", h, err)
	}
}

func TestWriteTarRefusesLinks(t *testing.T) {
	dir := t.TempDir()
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "passwd")); err != nil {
		t.Fatal(err)
	}
	_, err := pkgformat.WriteTar(context.Background(), io.Discard, dir)
	if err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("got %v, want a refused symbolic link", err)
	}
	if _, err := pkgformat.WriteTar(context.Background(), io.Discard, filepath.Join(dir, "passwd")); err == nil {
		t.Fatal("a symbolic link as the path was accepted")
	}
	if _, err := pkgformat.WriteTar(context.Background(), io.Discard, filepath.Join(dir, "missing")); err == nil {
		t.Fatal("a missing path was accepted")
	}
}

// TestSplitSharesChunks checks what the format is for: a version that
// changes a little of its content shares most chunks with the previous one.
func TestSplitSharesChunks(t *testing.T) {
	ctx := context.Background()
	data := make([]byte, 12<<20)
	rand.NewChaCha8([32]byte{2}).Read(data)
	split := func(b []byte) ([]*syncv1.PackageChunk, uint64, []byte) {
		t.Helper()
		var joined bytes.Buffer
		chunks, size, sum, err := pkgformat.Split(ctx, bytes.NewReader(b), func(d []byte, s [32]byte) error {
			if sha256.Sum256(d) != s {
				t.Fatal("chunk hash does not match its bytes")
			}
			joined.Write(d)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(joined.Bytes(), b) {
			t.Fatal("the chunks do not join to the stream")
		}
		for i, c := range chunks[:len(chunks)-1] {
			if c.Size < pkgformat.MinChunk || c.Size > pkgformat.MaxChunk {
				t.Fatalf("chunk %d of %d bytes", i, c.Size)
			}
		}
		return chunks, size, sum
	}
	a, size, sum := split(data)
	if size != uint64(len(data)) {
		t.Fatalf("size %d", size)
	}
	if want := sha256.Sum256(data); !bytes.Equal(sum, want[:]) {
		t.Fatal("stream hash")
	}
	if err := pkgformat.ValidateManifest(&syncv1.PackageManifest{
		OrgId: "o", Name: "n", Version: "1.0.0", Type: "file", Platform: "any", Size: size, Sha256: sum, Chunks: a,
	}); err != nil {
		t.Fatal(err)
	}
	changed := bytes.Clone(data)
	copy(changed[6<<20:], bytes.Repeat([]byte{0xAA}, 100<<10))
	b, _, _ := split(changed)
	have := map[string]bool{}
	for _, c := range a {
		have[string(c.Sha256)] = true
	}
	// A change inside one chunk makes that chunk new and, until the
	// boundaries meet again, at most the next one.
	var fresh int
	for _, c := range b {
		if !have[string(c.Sha256)] {
			fresh++
		}
	}
	if fresh > 2 || len(b) < 4 {
		t.Fatalf("a 100 KiB change makes %d of %d chunks new", fresh, len(b))
	}
}

func FuzzValidateManifest(f *testing.F) {
	b, _ := proto.Marshal(manifest())
	f.Add(b)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var m syncv1.PackageManifest
		if proto.Unmarshal(b, &m) != nil {
			return
		}
		if pkgformat.ValidateManifest(&m) == nil {
			var total uint64
			for _, c := range m.GetChunks() {
				total += uint64(c.GetSize())
			}
			if total != m.GetSize() || len(m.GetChunks()) == 0 {
				t.Fatal("an inconsistent manifest passed")
			}
		}
	})
}
