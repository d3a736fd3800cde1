package sync

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"connectrpc.com/connect"

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
		{"unknown compression", func(o *ClientOptions) { o.Compression = "brotli" }},
	}
	for _, tc := range tests {
		o := good
		tc.edit(&o)
		if _, err := NewClient(o); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
}

func TestCheckCloudURLNeverQuotesTheURL(t *testing.T) {
	for _, raw := range []string{"", "ftp://user:hunter2@cloud.example.com", "https://user:hunter2@cloud.example.com", "https://cloud.example.com/?token=hunter2", "hunter2"} {
		err := CheckCloudURL(raw)
		if err == nil {
			t.Errorf("%q accepted", raw)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("error for %q quotes it: %v", raw, err)
		}
	}
	for _, ok := range []string{"https://cloud.example.com", "http://127.0.0.1:8080", "https://cloud.example.com/outpost/"} {
		if err := CheckCloudURL(ok); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
}
