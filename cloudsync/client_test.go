package cloudsync

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"connectrpc.com/connect"

	"github.com/outpost-robotics/outpost/api/codec"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1/syncv1connect"
)

// pullServer answers pulls over TLS and records the Authorization header.
type pullServer struct {
	syncv1connect.UnimplementedSyncServiceHandler
	auth chan string
}

func (p pullServer) Pull(_ context.Context, req *connect.Request[syncv1.PullRequest]) (*connect.Response[syncv1.PullResponse], error) {
	p.auth <- req.Header().Get("Authorization")
	return connect.NewResponse(&syncv1.PullResponse{}), nil
}

// TestClientTrustsOnlyTheConfiguredCA runs a real TLS server whose
// certificate no system CA signs: the client reaches it with the CA file
// and refuses it without, and the credentials travel only in the header.
func TestClientTrustsOnlyTheConfiguredCA(t *testing.T) {
	srvImpl := pullServer{auth: make(chan string, 1)}
	mux := http.NewServeMux()
	mux.Handle(syncv1connect.NewSyncServiceHandler(srvImpl))
	srv := httptest.NewTLSServer(mux)
	defer srv.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	secret := strings.Repeat("s", 40)
	opts := ClientOptions{CloudURL: srv.URL, PartID: "part-1", PartSecret: secret, RetryMax: 1, RetryWaitMin: 1, RetryWaitMax: 2, Compression: "identity"}

	without, err := NewClient(opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := without.Pull(context.Background(), connect.NewRequest(&syncv1.PullRequest{})); err == nil {
		t.Fatal("reached a cloud whose certificate nothing trusted")
	}

	opts.CAFile = caFile
	with, err := NewClient(opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := with.Pull(context.Background(), connect.NewRequest(&syncv1.PullRequest{})); err != nil {
		t.Fatalf("with the CA file: %v", err)
	}
	if got := <-srvImpl.auth; got != "Part part-1:"+secret {
		t.Fatalf("Authorization %q", got)
	}
}

func TestNewClientRefusesBadOptions(t *testing.T) {
	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := ClientOptions{CloudURL: "https://cloud.example.com", PartID: "p", PartSecret: "s"}
	tests := []struct {
		name string
		edit func(*ClientOptions)
	}{
		{"no scheme", func(o *ClientOptions) { o.CloudURL = "cloud.example.com" }},
		{"credentials in the URL", func(o *ClientOptions) { o.CloudURL = "https://u:p@cloud.example.com" }},
		{"query in the URL", func(o *ClientOptions) { o.CloudURL = "https://cloud.example.com/?secret=x" }},
		{"no secret", func(o *ClientOptions) { o.PartSecret = "" }},
		{"colon in the part id", func(o *ClientOptions) { o.PartID = "a:b" }},
		{"missing CA file", func(o *ClientOptions) { o.CAFile = "/nonexistent/ca.pem" }},
		{"CA file without a certificate", func(o *ClientOptions) { o.CAFile = notPEM }},
		{"unknown compression", func(o *ClientOptions) { o.Compression = "brotli" }},
		{"bad proxy setting", func(o *ClientOptions) {
			o.Getenv = func(k string) string { return map[string]string{"HTTPS_PROXY": "http://[::1"}[k] }
		}},
	}
	for _, tc := range tests {
		o := good
		tc.edit(&o)
		_, err := NewClient(o)
		if err == nil {
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		// The daemon blames the bootstrap file's ca_file for these only.
		if isCA := strings.HasPrefix(tc.name, "missing CA") || strings.HasPrefix(tc.name, "CA file"); errors.Is(err, ErrCAFile) != isCA {
			t.Errorf("%s: errors.Is(%v, ErrCAFile) = %v, want %v", tc.name, err, !isCA, isCA)
		}
	}
}

// TestProxySettings checks which requests go through which proxy, per the
// environment each client was given.
func TestProxySettings(t *testing.T) {
	tests := []struct {
		name  string
		env   map[string]string
		cloud string
		want  string // proxy host, "" for direct
	}{
		{"HTTPS_PROXY for an https cloud", map[string]string{"HTTPS_PROXY": "http://proxy:3128"}, "https://cloud.example.com", "proxy:3128"},
		{"HTTPS_PROXY without a scheme", map[string]string{"HTTPS_PROXY": "proxy:3128"}, "https://cloud.example.com", "proxy:3128"},
		{"HTTPS_PROXY is not for an http cloud", map[string]string{"HTTPS_PROXY": "http://proxy:3128"}, "http://cloud.example.com", ""},
		{"HTTP_PROXY for an http cloud", map[string]string{"HTTP_PROXY": "http://proxy:3128"}, "http://cloud.example.com", "proxy:3128"},
		{"lower case wins", map[string]string{"HTTPS_PROXY": "http://upper:1", "https_proxy": "http://lower:2"}, "https://cloud.example.com", "lower:2"},
		{"NO_PROXY names the cloud", map[string]string{"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": "cloud.example.com"}, "https://cloud.example.com", ""},
		{"NO_PROXY names its domain", map[string]string{"HTTPS_PROXY": "http://proxy:3128", "no_proxy": "other.org, .example.com"}, "https://cloud.example.com", ""},
		{"NO_PROXY names another host", map[string]string{"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": "example.org"}, "https://cloud.example.com", "proxy:3128"},
		{"NO_PROXY names another port", map[string]string{"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": "cloud.example.com:8443"}, "https://cloud.example.com", "proxy:3128"},
		{"NO_PROXY is a star", map[string]string{"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": "*"}, "https://cloud.example.com", ""},
		{"loopback is never proxied", map[string]string{"HTTPS_PROXY": "http://proxy:3128"}, "https://127.0.0.1:8443", ""},
		{"no settings", nil, "https://cloud.example.com", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resolve, err := proxyFunc(func(k string) string { return tc.env[k] })
			if err != nil {
				t.Fatal(err)
			}
			u, _ := url.Parse(tc.cloud)
			via, err := resolve(&http.Request{URL: u})
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			if via != nil {
				got = via.Host
			}
			if got != tc.want {
				t.Fatalf("proxy %q, want %q", got, tc.want)
			}
		})
	}
}

// TestBadProxySettingsNeverQuoteThem refuses settings that are not proxy
// URLs, naming the variable and never its value, which may hold a password.
func TestBadProxySettingsNeverQuoteThem(t *testing.T) {
	for _, env := range []map[string]string{
		{"HTTPS_PROXY": "http://user:hunter2@[::1"},
		{"https_proxy": "ftp://user:hunter2@proxy:21"},
		{"HTTP_PROXY": "http://user:hunter2@proxy:bad port"},
	} {
		_, err := NewClient(ClientOptions{CloudURL: "https://cloud.example.com", PartID: "p", PartSecret: "s", Getenv: func(k string) string { return env[k] }})
		if err == nil {
			t.Errorf("%v accepted", env)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "user") {
			t.Errorf("error quotes the setting: %v", err)
		}
		for k := range env {
			if !strings.Contains(err.Error(), k) {
				t.Errorf("error %q does not name %s", err, k)
			}
		}
	}
	// In a CGI environment HTTP_PROXY may come from a request header
	// (httpoxy): it is refused per request, again without quoting it.
	resolve, err := proxyFunc(func(k string) string {
		return map[string]string{"HTTP_PROXY": "http://user:hunter2@proxy:3128", "REQUEST_METHOD": "GET"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse("http://cloud.example.com")
	if _, err := resolve(&http.Request{URL: u}); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("CGI HTTP_PROXY: %v", err)
	}
}

// FuzzProxySettings feeds arbitrary proxy settings to NewClient: it must
// never panic, and an error must never quote the setting, which may hold
// a password.
func FuzzProxySettings(f *testing.F) {
	for _, s := range []string{"http://proxy:3128", "proxy:3128", "http://u:secretpass@proxy:3128", "ftp://u:secretpass@p", "http://u:secretpass@[::1", "socks5h://u:secretpass@p:1080", "%zz", ""} {
		f.Add(s, "cloud.example.com")
	}
	f.Fuzz(func(t *testing.T, setting, noProxy string) {
		env := map[string]string{"HTTPS_PROXY": setting, "NO_PROXY": noProxy}
		_, err := NewClient(ClientOptions{CloudURL: "https://cloud.example.com", PartID: "p", PartSecret: "s", Getenv: func(k string) string { return env[k] }})
		if err != nil && len(setting) >= 8 && strings.Contains(err.Error(), setting) {
			t.Fatalf("error quotes the setting: %v", err)
		}
	})
}

// uploadServer takes uploads, counting them and the records each carried.
type uploadServer struct {
	syncv1connect.UnimplementedSyncServiceHandler
	records chan int
}

func (u uploadServer) Upload(_ context.Context, req *connect.Request[syncv1.UploadRequest]) (*connect.Response[syncv1.UploadResponse], error) {
	u.records <- len(req.Msg.GetRecords())
	return connect.NewResponse(&syncv1.UploadResponse{AckedThrough: uint64(len(req.Msg.GetRecords()))}), nil
}

// TestRetriesResendTheWholeBody: the client replays connect's request body
// rather than a copy of its own, so a retried upload must still carry all
// of it, in each compression, after answers that retry (503, a reset).
func TestRetriesResendTheWholeBody(t *testing.T) {
	for _, compression := range []string{"zstd", "gzip", "identity"} {
		t.Run(compression, func(t *testing.T) {
			srv := uploadServer{records: make(chan int, 10)}
			mux := http.NewServeMux()
			mux.Handle(syncv1connect.NewSyncServiceHandler(srv, codec.HandlerOption()))
			var attempts atomic.Int32
			lengths := make(chan int64, 10)
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				lengths <- r.ContentLength
				switch attempts.Add(1) {
				case 1:
					w.WriteHeader(http.StatusServiceUnavailable)
				case 2:
					if hj, ok := w.(http.Hijacker); ok {
						if c, _, err := hj.Hijack(); err == nil {
							c.Close()
							return
						}
					}
					t.Error("could not reset the connection")
				default:
					mux.ServeHTTP(w, r)
				}
			}))
			defer ts.Close()
			c, err := NewClient(ClientOptions{CloudURL: ts.URL, PartID: "part-1", PartSecret: strings.Repeat("s", 40), RetryMax: 3, RetryWaitMin: 1, RetryWaitMax: 2, Compression: compression})
			if err != nil {
				t.Fatal(err)
			}
			req := &syncv1.UploadRequest{StoreId: "s", Stream: "captures"}
			for i := range 500 {
				req.Records = append(req.Records, &syncv1.Record{Seq: uint64(i + 1), Payload: []byte(strings.Repeat("reading ", 50))})
			}
			res, err := c.Upload(context.Background(), connect.NewRequest(req))
			if err != nil {
				t.Fatal(err)
			}
			if got := <-srv.records; got != 500 || res.Msg.GetAckedThrough() != 500 {
				t.Fatalf("the cloud got %d records of 500 after retries", got)
			}
			if n := attempts.Load(); n != 3 {
				t.Fatalf("%d attempts, want 3", n)
			}
			first := <-lengths
			for range 2 {
				if n := <-lengths; n != first || n <= 0 {
					t.Fatalf("attempts sent %d then %d bytes", first, n)
				}
			}
		})
	}
}

// hugeChunkServer answers every chunk request with more bytes than any
// honest answer holds.
type hugeChunkServer struct {
	syncv1connect.UnimplementedSyncServiceHandler
}

func (hugeChunkServer) GetPackageChunk(context.Context, *connect.Request[syncv1.GetPackageChunkRequest]) (*connect.Response[syncv1.GetPackageChunkResponse], error) {
	return connect.NewResponse(&syncv1.GetPackageChunkResponse{Data: make([]byte, MaxResponseBytes+1)}), nil
}

// TestHugeAnswersAreRefused: an answer larger than MaxResponseBytes, plain
// or compressed (where it is small on the wire and large once read), ends
// the call with an error that says so instead of being held in the part's
// memory.
func TestHugeAnswersAreRefused(t *testing.T) {
	for _, compression := range []string{"zstd", "gzip", "identity"} {
		t.Run(compression, func(t *testing.T) {
			mux := http.NewServeMux()
			mux.Handle(syncv1connect.NewSyncServiceHandler(hugeChunkServer{}, codec.HandlerOption()))
			ts := httptest.NewServer(mux)
			defer ts.Close()
			c, err := NewClient(ClientOptions{CloudURL: ts.URL, PartID: "part-1", PartSecret: strings.Repeat("s", 40), RetryMax: 1, RetryWaitMin: 1, RetryWaitMax: 2, Compression: compression})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.GetPackageChunk(context.Background(), connect.NewRequest(&syncv1.GetPackageChunkRequest{Sha256: make([]byte, 32)}))
			if code := connect.CodeOf(err); code != connect.CodeInternal || !errors.Is(err, ErrResponseTooLarge) {
				t.Fatalf("a huge answer: %v (code %v), want internal, too large (not resource_exhausted: a busy cloud)", err, code)
			}
		})
	}
}

// bigPull answers every pull with a config document of size bytes, or with
// the error busy when it is set.
type bigPull struct {
	syncv1connect.UnimplementedSyncServiceHandler
	size int
	busy error
}

func (b bigPull) Pull(context.Context, *connect.Request[syncv1.PullRequest]) (*connect.Response[syncv1.PullResponse], error) {
	if b.busy != nil {
		return nil, b.busy
	}
	return connect.NewResponse(&syncv1.PullResponse{Config: &syncv1.SignedDocument{Payload: make([]byte, b.size)}}), nil
}

// TestAnswerTooLargeIsNotABusyCloud serves, on loopback, answers over the
// part's read limit: the call fails as Internal, saying the answer was too
// large and the limit, not as ResourceExhausted, which the package
// downloader reads as a busy cloud; a cloud that is busy still says so.
func TestAnswerTooLargeIsNotABusyCloud(t *testing.T) {
	for _, compression := range []string{"", "none", "identity"} {
		for _, tc := range []struct {
			name     string
			srv      bigPull
			wantCode connect.Code
			tooLarge bool
		}{
			{"oversized", bigPull{size: MaxResponseBytes + 1}, connect.CodeInternal, true},
			{"busy", bigPull{busy: connect.NewError(connect.CodeResourceExhausted, errors.New("too many chunk downloads"))}, connect.CodeResourceExhausted, false},
			{"at the limit", bigPull{size: MaxResponseBytes - 64}, 0, false},
		} {
			t.Run(compression+"/"+tc.name, func(t *testing.T) {
				mux := http.NewServeMux()
				mux.Handle(syncv1connect.NewSyncServiceHandler(tc.srv, codec.HandlerOption()))
				srv := httptest.NewServer(mux)
				defer srv.Close()
				c, err := NewClient(ClientOptions{CloudURL: srv.URL, PartID: "p", PartSecret: "s", RetryMax: 1, RetryWaitMin: 1, RetryWaitMax: 2, Compression: compression})
				if err != nil {
					t.Fatal(err)
				}
				_, err = c.Pull(context.Background(), connect.NewRequest(&syncv1.PullRequest{}))
				if tc.wantCode == 0 {
					if err != nil {
						t.Fatalf("an answer within the limit: %v", err)
					}
					return
				}
				if got := connect.CodeOf(err); got != tc.wantCode {
					t.Fatalf("code %v (%v), want %v", got, err, tc.wantCode)
				}
				if errors.Is(err, ErrResponseTooLarge) != tc.tooLarge {
					t.Fatalf("errors.Is(%v, ErrResponseTooLarge) = %v", err, !tc.tooLarge)
				}
				if tc.tooLarge && !strings.Contains(err.Error(), fmt.Sprint(MaxResponseBytes)) {
					t.Fatalf("%v does not say the limit", err)
				}
			})
		}
	}
}
