package packages

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
)

// FuzzCheckManifest feeds checkManifest any decodable manifest: it must
// not panic, and what it accepts must be safe to make paths of.
func FuzzCheckManifest(f *testing.F) {
	signer := newSigner(f, "k")
	p := newPkg(f, signer, "1.0.0", map[string]string{"a": "b"})
	raw, _ := proto.Marshal(p.Manifest)
	f.Add(raw)
	bad := proto.Clone(p.Manifest).(*syncv1.PackageManifest)
	bad.Version = ".."
	raw, _ = proto.Marshal(bad)
	f.Add(raw)
	f.Fuzz(func(t *testing.T, raw []byte) {
		var m syncv1.PackageManifest
		if proto.Unmarshal(raw, &m) != nil {
			return
		}
		if checkManifest(&m) != nil {
			return
		}
		for _, s := range []string{m.GetOrgId(), m.GetName(), versionKey(&m)} {
			if strings.ContainsAny(s, "/\\\x00") || s == "." || s == ".." || !filepath.IsLocal(s) {
				t.Fatalf("accepted %q as a path component", s)
			}
		}
		var total uint64
		for _, c := range m.GetChunks() {
			total += uint64(c.GetSize())
		}
		if total != m.GetSize() {
			t.Fatal("accepted chunks that do not add up to the stream")
		}
	})
}

// FuzzUntar feeds the tar reader any stream: it must not panic, and
// nothing it writes may land outside its root or be anything but a
// directory or a regular file.
func FuzzUntar(f *testing.F) {
	stream, _ := tarStream(f, files(map[string]string{"bin/x": "y", "z": "w"}))
	f.Add(stream, uint64(2))
	hostile, _ := tarStream(f, []entry{{Name: "../x", Type: tar.TypeReg, Body: []byte("x")}, {Name: "l", Type: tar.TypeSymlink, Linkname: "/"}})
	f.Add(hostile, uint64(1))
	f.Fuzz(func(t *testing.T, stream []byte, unpacked uint64) {
		parent := t.TempDir()
		root := filepath.Join(parent, "v")
		_ = untar(bytes.NewReader(stream), root, unpacked%(1<<20))
		outside, _ := os.ReadDir(parent)
		if len(outside) > 1 {
			t.Fatalf("untar wrote %d entries beside its root", len(outside))
		}
		_ = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && !d.Type().IsRegular() {
				t.Fatalf("untar made %s, of mode %v", path, d.Type())
			}
			return nil
		})
	})
}

// FuzzParseState feeds the persisted state's decoder anything.
func FuzzParseState(f *testing.F) {
	f.Add([]byte(`{"blinker":{"package":"o/b","current":{"version":"1","stream":"ab","dir":"versions/o/b/1-any"}}}`))
	f.Add([]byte(`{"blinker":{"current":{"dir":"../../etc"}}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		recs, err := parseState(raw)
		if err != nil {
			return
		}
		for _, r := range recs {
			for _, v := range []*version{r.Current, r.Previous} {
				if v != nil && (!filepath.IsLocal(v.Dir) || !strings.HasPrefix(filepath.ToSlash(v.Dir), "versions/")) {
					t.Fatalf("accepted directory %q", v.Dir)
				}
			}
		}
	})
}
