// Package packagetest builds signed package versions the way the CLI and
// the cloud do (pkgformat's tar stream and chunking) and serves their chunks through the generated
// SyncService handler, for the part's tests and end-to-end tests.
package packagetest

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
	"os"
	"path"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/restic/chunker"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/outpost-robotics/outpost/api/codec"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1/syncv1connect"
	"github.com/outpost-robotics/outpost/pkgformat"
	"github.com/outpost-robotics/outpost/signed"
)

// Chunking is the chunker's bounds and average.
type Chunking struct {
	Min, Max    uint
	AverageBits int
}

// Agreed is the chunking every side uses (pkgformat.NewChunker). Small
// cuts chunks of 16 to 128 KiB, so a test of a few hundred KiB has many
// chunks; the part accepts any chunk up to the maximum.
var (
	Agreed = Chunking{Min: pkgformat.MinChunk, Max: pkgformat.MaxChunk, AverageBits: pkgformat.AverageBits}
	Small  = Chunking{Min: 16 << 10, Max: 128 << 10, AverageBits: 15}
)

// Entry is one tar entry; hostile tests set what a well-formed package
// never has.
type Entry struct {
	Name     string
	Type     byte
	Body     []byte
	Mode     int64
	Linkname string
}

// Files turns a name-to-content map into entries in lexical order, each
// file executable, with the directories they need.
func Files(files map[string]string) []Entry {
	dirs := map[string]bool{}
	var out []Entry
	for name, body := range files {
		out = append(out, Entry{Name: name, Type: tar.TypeReg, Body: []byte(body), Mode: 0o755})
		for d := path.Dir(name); d != "."; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	for d := range dirs {
		out = append(out, Entry{Name: d + "/", Type: tar.TypeDir, Mode: 0o755})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Tar writes entries as they are, hostile ones too, as an uncompressed tar
// with zeroed mtimes and returns it with the bytes its regular files hold.
// A well-formed package is written by pkgformat.WriteTar (New).
func Tar(tb testing.TB, entries []Entry) ([]byte, uint64) {
	tb.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	var unpacked uint64
	for _, e := range entries {
		size := int64(0)
		if e.Type == tar.TypeReg {
			size = int64(len(e.Body))
		}
		h := &tar.Header{Name: e.Name, Typeflag: e.Type, Mode: e.Mode, Size: size, Linkname: e.Linkname, ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
		if err := tw.WriteHeader(h); err != nil {
			tb.Fatal(err)
		}
		if e.Type == tar.TypeReg {
			if _, err := tw.Write(e.Body); err != nil {
				tb.Fatal(err)
			}
			unpacked += uint64(size)
		}
	}
	if err := tw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes(), unpacked
}

// Package is a built version: its manifest and its chunks by hash, in
// memory or, for packages too large for that, in files under Dir named by
// their hex hash.
type Package struct {
	Manifest *syncv1.PackageManifest
	Chunks   map[[32]byte][]byte
	Dir      string
}

// Build cuts stream into chunks and describes it in a manifest for
// org1/NAME at version for platform.
func Build(tb testing.TB, name, version, platform string, stream []byte, unpacked uint64) *Package {
	tb.Helper()
	return BuildTo(tb, Agreed, name, version, platform, bytes.NewReader(stream), unpacked, "")
}

// BuildTo is Build reading the stream as it goes; with dir set, the chunks
// are written there instead of kept in memory.
func BuildTo(tb testing.TB, ch Chunking, name, version, platform string, stream io.Reader, unpacked uint64, dir string) *Package {
	tb.Helper()
	p := &Package{Chunks: map[[32]byte][]byte{}, Dir: dir}
	whole := sha256.New()
	m := &syncv1.PackageManifest{OrgId: "org1", Name: name, Version: version, Type: "module", Platform: platform,
		UnpackedSize: unpacked, CreatedAt: timestamppb.New(time.Unix(1_800_000_000, 0))}
	c := pkgformat.NewChunker(io.TeeReader(stream, whole))
	if ch != Agreed {
		c = chunker.NewWithBoundaries(io.TeeReader(stream, whole), pkgformat.Polynomial, ch.Min, ch.Max)
		c.SetAverageBits(ch.AverageBits)
	}
	buf := make([]byte, ch.Max)
	for {
		ch, err := c.Next(buf)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			tb.Fatal(err)
		}
		h := sha256.Sum256(ch.Data)
		switch {
		case dir != "":
			if err := os.WriteFile(filepath.Join(dir, hex.EncodeToString(h[:])), ch.Data, 0o600); err != nil {
				tb.Fatal(err)
			}
		default:
			if _, ok := p.Chunks[h]; !ok {
				p.Chunks[h] = bytes.Clone(ch.Data)
			}
		}
		m.Chunks = append(m.Chunks, &syncv1.PackageChunk{Sha256: h[:], Size: uint32(ch.Length)})
		m.Size += uint64(ch.Length)
	}
	m.Sha256 = whole.Sum(nil)
	p.Manifest = m
	return p
}

// New builds a package of files (see Files), chunked as agreed.
func New(tb testing.TB, name, version, platform string, files map[string]string) *Package {
	tb.Helper()
	return NewChunked(tb, Agreed, name, version, platform, files)
}

// NewChunked is New with the chunking ch. The files are written to a
// temporary directory, executable, and streamed by pkgformat.WriteTar, as
// `outpost package upload` does.
func NewChunked(tb testing.TB, ch Chunking, name, version, platform string, files map[string]string) *Package {
	tb.Helper()
	dir := tb.TempDir()
	for _, e := range Files(files) {
		p := filepath.Join(dir, filepath.FromSlash(e.Name))
		var err error
		if e.Type == tar.TypeDir {
			err = os.MkdirAll(p, 0o755)
		} else {
			err = os.WriteFile(p, e.Body, 0o755)
		}
		if err == nil {
			err = os.Chmod(p, os.FileMode(e.Mode)) // whatever the umask
		}
		if err != nil {
			tb.Fatal(err)
		}
	}
	var stream bytes.Buffer
	c, err := pkgformat.WriteTar(context.Background(), &stream, dir)
	if err != nil {
		tb.Fatal(err)
	}
	return BuildTo(tb, ch, name, version, platform, &stream, c.UnpackedSize, "")
}

// Resolved signs the manifest and issues it under the local name local, as
// a config document carries it.
func (p *Package) Resolved(tb testing.TB, signer signed.Signer, local string) *syncv1.ResolvedPackage {
	tb.Helper()
	doc, err := signer.Sign(p.Manifest)
	if err != nil {
		tb.Fatal(err)
	}
	return &syncv1.ResolvedPackage{Name: local, Requested: "tag:stable", Manifest: doc}
}

// NewSigner returns a signer with a fresh key named id.
func NewSigner(tb testing.TB, id string) signed.Signer {
	tb.Helper()
	_, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		tb.Fatal(err)
	}
	return signed.Signer{KeyID: id, Key: priv}
}

// Server is the cloud's GetPackageChunk on a real HTTP server on
// loopback, through the generated connect handler; every other call is
// refused with 401 at once, as a cloud that does not know the part.
type Server struct {
	syncv1connect.UnimplementedSyncServiceHandler
	mu     sync.Mutex
	chunks map[[32]byte][]byte
	files  map[[32]byte]string
	tamper func(chunk []byte) []byte
	refuse connect.Code
	// Requests counts chunk requests; Served counts the chunk bytes sent.
	Requests, Served atomic.Int64
	// MostAtOnce is the most chunk requests the server had in flight at
	// once.
	MostAtOnce atomic.Int64
	inFlight   atomic.Int64
	// URL is the server's base URL.
	URL string
}

// NewServer starts a chunk server, closed when tb ends.
func NewServer(tb testing.TB) *Server {
	tb.Helper()
	s := &Server{chunks: map[[32]byte][]byte{}, files: map[[32]byte]string{}}
	mux := http.NewServeMux()
	path, h := syncv1connect.NewSyncServiceHandler(s, codec.HandlerOption())
	mux.Handle(path+"GetPackageChunk", h)
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, `{"code":"unauthenticated","message":"test cloud refuses"}`, http.StatusUnauthorized)
	})
	srv := httptest.NewServer(mux)
	tb.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// Add serves p's chunks.
func (s *Server) Add(p *Package) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for h, c := range p.Chunks {
		s.chunks[h] = c
	}
	if p.Dir != "" {
		for _, c := range p.Manifest.GetChunks() {
			var h [32]byte
			copy(h[:], c.GetSha256())
			s.files[h] = filepath.Join(p.Dir, hex.EncodeToString(h[:]))
		}
	}
}

// Has reports whether the server has a chunk of hash h.
func (s *Server) Has(h [32]byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.chunks[h]
	_, onDisk := s.files[h]
	return ok || onDisk
}

// Tamper makes the server flip a byte in every chunk it sends, or stop.
func (s *Server) Tamper(on bool) {
	if !on {
		s.TamperWith(nil)
		return
	}
	s.TamperWith(func(c []byte) []byte {
		c[len(c)/2] ^= 0xff
		return c
	})
}

// TamperWith makes the server send what fn makes of each chunk (fn gets
// a copy it may change) instead of the chunk; nil stops.
func (s *Server) TamperWith(fn func(chunk []byte) []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tamper = fn
}

// Refuse makes the server answer every chunk request with code, as a
// busy cloud does with connect.CodeResourceExhausted; 0 serves again.
func (s *Server) Refuse(code connect.Code) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuse = code
}

// GetPackageChunk serves a chunk by hash.
func (s *Server) GetPackageChunk(_ context.Context, req *connect.Request[syncv1.GetPackageChunkRequest]) (*connect.Response[syncv1.GetPackageChunkResponse], error) {
	s.Requests.Add(1)
	n := s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	for {
		most := s.MostAtOnce.Load()
		if n <= most || s.MostAtOnce.CompareAndSwap(most, n) {
			break
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refuse != 0 {
		return nil, connect.NewError(s.refuse, errors.New("too many chunks being served; try again later"))
	}
	var h [32]byte
	copy(h[:], req.Msg.GetSha256())
	c, ok := s.chunks[h]
	if file, onDisk := s.files[h]; onDisk && !ok {
		var err error
		if c, err = os.ReadFile(file); err != nil {
			return nil, connect.NewError(connect.CodeInternal, err)
		}
		ok = true
	}
	if !ok {
		return nil, connect.NewError(connect.CodeNotFound, errors.New("no such chunk"))
	}
	if s.tamper != nil {
		c = s.tamper(bytes.Clone(c))
	}
	s.Served.Add(int64(len(c)))
	return connect.NewResponse(&syncv1.GetPackageChunkResponse{Data: c}), nil
}
