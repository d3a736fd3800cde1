package packages

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/restic/chunker"
	"google.golang.org/protobuf/types/known/timestamppb"

	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1/syncv1connect"
	"github.com/outpost-robotics/outpost/signed"
)

// testPol is the chunker polynomial of the tests; the cloud's shared
// package fixes the production one.
const testPol = chunker.Pol(0x3DA3358B4DC173)

// entry is one tar entry of a test package; hostile tests set the fields
// a well-formed package never has.
type entry struct {
	name     string
	typ      byte
	body     []byte
	mode     int64
	linkname string
	size     int64 // when not len(body): a header that lies
}

// pkg is a built test package: its manifest and its chunks.
type pkg struct {
	m      *syncv1.PackageManifest
	chunks map[[32]byte][]byte
}

// files turns a name-to-content map into entries in lexical order, with
// the directories they need, the way the cloud's tar writer does.
func files(fs map[string]string) []entry {
	dirs := map[string]bool{}
	var out []entry
	for name, body := range fs {
		out = append(out, entry{name: name, typ: tar.TypeReg, body: []byte(body), mode: 0o755})
		for d := name; ; {
			i := bytes.LastIndexByte([]byte(d), '/')
			if i < 0 {
				break
			}
			d = d[:i]
			dirs[d] = true
		}
	}
	for d := range dirs {
		out = append(out, entry{name: d + "/", typ: tar.TypeDir, mode: 0o755})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// tarStream writes entries as an uncompressed tar with zeroed mtimes, and
// returns it with the bytes its regular files hold.
func tarStream(t testing.TB, entries []entry) ([]byte, uint64) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	var unpacked uint64
	for _, e := range entries {
		size := int64(len(e.body))
		if e.typ != tar.TypeReg {
			size = 0
		}
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Size: size, Linkname: e.linkname, ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			if _, err := tw.Write(e.body); err != nil {
				t.Fatal(err)
			}
			unpacked += uint64(size)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), unpacked
}

// build cuts stream into chunks and signs its manifest with signer.
func build(t testing.TB, signer signed.Signer, version, platform string, stream []byte, unpacked uint64) *pkg {
	t.Helper()
	p := &pkg{chunks: map[[32]byte][]byte{}}
	sum := sha256.Sum256(stream)
	m := &syncv1.PackageManifest{OrgId: "org1", Name: "blinker", Version: version, Type: "module", Platform: platform,
		Size: uint64(len(stream)), Sha256: sum[:], UnpackedSize: unpacked, CreatedAt: timestamppb.New(time.Unix(1_800_000_000, 0))}
	c := chunker.NewWithBoundaries(bytes.NewReader(stream), testPol, MinChunk, MaxChunk)
	buf := make([]byte, MaxChunk)
	for {
		ch, err := c.Next(buf)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.Sum256(ch.Data)
		p.chunks[h] = bytes.Clone(ch.Data)
		m.Chunks = append(m.Chunks, &syncv1.PackageChunk{Sha256: h[:], Size: uint32(ch.Length)})
	}
	p.m = m
	return p
}

// newPkg builds a package of files, signed by signer.
func newPkg(t testing.TB, signer signed.Signer, version string, fs map[string]string) *pkg {
	t.Helper()
	stream, unpacked := tarStream(t, files(fs))
	return build(t, signer, version, testPlatform, stream, unpacked)
}

const testPlatform = "linux/amd64"

func (p *pkg) resolved(t testing.TB, signer signed.Signer, name string) *syncv1.ResolvedPackage {
	t.Helper()
	doc, err := signer.Sign(p.m)
	if err != nil {
		t.Fatal(err)
	}
	return &syncv1.ResolvedPackage{Name: name, Requested: "tag:stable", Manifest: doc}
}

func newSigner(t testing.TB, id string) signed.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return signed.Signer{KeyID: id, Key: priv}
}

// chunkServer is the cloud's GetPackageChunk on a real HTTP server on
// loopback, through the generated connect handler.
type chunkServer struct {
	syncv1connect.UnimplementedSyncServiceHandler
	mu       sync.Mutex
	chunks   map[[32]byte][]byte
	tamper   bool
	requests atomic.Int64
	served   atomic.Int64 // bytes
	url      string
}

func newChunkServer(t testing.TB) *chunkServer {
	t.Helper()
	s := &chunkServer{chunks: map[[32]byte][]byte{}}
	mux := http.NewServeMux()
	mux.Handle(syncv1connect.NewSyncServiceHandler(s))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	s.url = srv.URL
	return s
}

func (s *chunkServer) add(p *pkg) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for h, c := range p.chunks {
		s.chunks[h] = c
	}
}

func (s *chunkServer) GetPackageChunk(_ context.Context, req *connect.Request[syncv1.GetPackageChunkRequest]) (*connect.Response[syncv1.GetPackageChunkResponse], error) {
	s.requests.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	var h [32]byte
	copy(h[:], req.Msg.GetSha256())
	c, ok := s.chunks[h]
	if !ok {
		return nil, connect.NewError(connect.CodeNotFound, errors.New("no such chunk"))
	}
	if s.tamper {
		c = bytes.Clone(c)
		c[len(c)/2] ^= 0xff
	}
	s.served.Add(int64(len(c)))
	return connect.NewResponse(&syncv1.GetPackageChunkResponse{Data: c}), nil
}

// client is a connect client of url, without retries, so a cut is a
// failed download.
func client(url string) Fetcher {
	return syncv1connect.NewSyncServiceClient(&http.Client{Timeout: time.Minute}, url)
}

type signedKey = ed25519.PublicKey

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

// errorOf turns a status's error back into an error for errors.Is; it
// only ever matches by text.
func errorOf(st *syncv1.PackageStatus) error { return errors.New(st.GetError()) }
