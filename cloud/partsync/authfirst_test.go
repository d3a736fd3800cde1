package partsync_test

import (
	"bytes"
	"cmp"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"connectrpc.com/connect"
	"github.com/klauspost/compress/zstd"
	"google.golang.org/protobuf/proto"

	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1/syncv1connect"
	"github.com/outpost-robotics/outpost/cloud/partsync"
)

// countingBody counts the bytes the server reads of a request body.
type countingBody struct {
	r    io.Reader
	read *atomic.Int64
}

func (b countingBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.read.Add(int64(n))
	return n, err
}

func (countingBody) Close() error { return nil }

// zstdBomb is an upload whose 64 MiB of zeros compress to a few KiB.
func zstdBomb(t *testing.T) []byte {
	t.Helper()
	msg, err := proto.Marshal(&syncv1.UploadRequest{StoreId: "s", Stream: "captures",
		Records: []*syncv1.Record{{Seq: 1, Payload: make([]byte, 64<<20)}}})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	enc, err := zstd.NewWriter(&buf, zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := enc.Write(msg); err != nil {
		t.Fatal(err)
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestRefusedBeforeTheBodyIsRead: a caller without a valid part
// credential sends a zstd bomb, over the Connect and the gRPC protocol;
// it is refused without one byte of its body read, so it costs the cloud
// no decompression and no parsing. The same body from the part is read
// (and refused for its decoded size).
func TestRefusedBeforeTheBodyIsRead(t *testing.T) {
	e := newEnv(t, partsync.Options{AuthFailureBurst: 100, MaxRequestBytes: 1 << 20})
	secret := e.backend.provision("part-a")
	_, h := partsync.NewHandler(e.backend, e.store, partsync.Options{AuthFailureBurst: 100, MaxRequestBytes: 1 << 20})
	bomb := zstdBomb(t)
	// A gRPC message is framed: flag 1 (compressed) and a 4-byte length.
	framed := append([]byte{1, byte(len(bomb) >> 24), byte(len(bomb) >> 16), byte(len(bomb) >> 8), byte(len(bomb))}, bomb...)

	protocols := []struct {
		name        string
		body        []byte
		contentType string
		encoding    [2]string // header, value
	}{
		{"connect", bomb, "application/proto", [2]string{"Content-Encoding", "zstd"}},
		{"grpc", framed, "application/grpc+proto", [2]string{"Grpc-Encoding", "zstd"}},
	}
	creds := []struct {
		name string
		auth string
		read bool // whether the body may be read
	}{
		{"no credential", "", false},
		{"wrong secret", "Part part-a:not-the-secret", false},
		{"malformed", "Part part-a", false},
		{"unknown part", "Part part-z:" + secret, false},
		{"the part", "Part part-a:" + secret, true},
	}
	for _, p := range protocols {
		for _, c := range creds {
			var read atomic.Int64
			req := httptest.NewRequestWithContext(context.Background(), http.MethodPost, syncv1connect.SyncServiceUploadProcedure, nil)
			req.Body = countingBody{r: bytes.NewReader(p.body), read: &read}
			req.ContentLength = int64(len(p.body))
			req.Header.Set("Content-Type", p.contentType)
			req.Header.Set(p.encoding[0], p.encoding[1])
			if p.name == "grpc" {
				req.Header.Set("Te", "trailers")
				req.ProtoMajor, req.ProtoMinor = 2, 0
			}
			if c.auth != "" {
				req.Header.Set("Authorization", c.auth)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			code := rec.Code
			status := cmp.Or(rec.Header().Get("Grpc-Status"), rec.Result().Trailer.Get("Grpc-Status"))
			switch {
			case !c.read && read.Load() != 0:
				t.Errorf("%s, %s: the cloud read %d bytes of an unauthenticated body", p.name, c.name, read.Load())
			case !c.read && p.name == "connect" && code != http.StatusUnauthorized:
				t.Errorf("%s, %s: HTTP %d, want 401", p.name, c.name, code)
			case !c.read && p.name == "grpc" && status != "16":
				t.Errorf("%s, %s: grpc-status %q, want 16 (unauthenticated)", p.name, c.name, status)
			case c.read && read.Load() == 0:
				t.Errorf("%s, %s: the part's body was not read", p.name, c.name)
			case c.read && p.name == "connect" && code != http.StatusTooManyRequests:
				t.Errorf("%s, %s: HTTP %d, want 429 (resource exhausted: decoded past the bound)", p.name, c.name, code)
			}
		}
	}

	// Over the wire, the refusal comes before the client has sent much of
	// a body that would take minutes to send.
	var read atomic.Int64
	huge := countingBody{r: io.LimitReader(zeros{}, 1<<30), read: &read}
	req, err := http.NewRequest(http.MethodPost, e.url+syncv1connect.SyncServiceUploadProcedure, huge)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = 1 << 30
	req.Header.Set("Content-Type", "application/proto")
	req.Header.Set("Authorization", "Part part-a:guess")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Errorf("a 1 GiB body without credentials: HTTP %d, want 401", res.StatusCode)
	}
	if n := read.Load(); n > 64<<20 {
		t.Errorf("the client sent %d MiB before the refusal", n>>20)
	}
	if _, err := e.part("part-b").Pull(context.Background(), connect.NewRequest(&syncv1.PullRequest{})); err != nil {
		t.Errorf("a part after the refusals: %v", err)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
