package control

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestListenLocalServesOnlyLoopback(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	for _, addr := range []string{"0.0.0.0:0", ":0", "localhost:0", "192.0.2.1:9464", "nonsense"} {
		if l, err := ListenLocal(addr, h, nil); err == nil {
			l.Close()
			t.Errorf("ListenLocal(%q) accepted an address the network could reach", addr)
		}
	}
	l, err := ListenLocal("127.0.0.1:0", h, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Serve(ctx) }()
	res, err := http.Get("http://" + l.Addr() + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if string(body) != "ok" {
		t.Fatalf("body %q", body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve after cancel: %v", err)
	}
}

// TestListenSocketPathTooLong: a runtime folder too deep for a Unix socket
// is refused with what to do, not the kernel's bare "invalid argument".
func TestListenSocketPathTooLong(t *testing.T) {
	path := "/tmp/" + strings.Repeat("d", 120) + "/control.sock"
	_, err := ListenSocket(path, DefaultSocketGroup)
	if err == nil || !strings.Contains(err.Error(), "choose a shorter --runtime-dir") {
		t.Fatalf("ListenSocket(%d-byte path) = %v, want the path-length error", len(path), err)
	}
}
