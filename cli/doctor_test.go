package cli

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/outpost-robotics/outpost/daemon"
)

// doctorPart runs a real daemon in-process against a TLS cloud that
// refuses everything (404), with a bootstrap file trusting the cloud's CA.
func doctorPart(t *testing.T) doctorOptions {
	t.Helper()
	cloud := httptest.NewTLSServer(http.NotFoundHandler())
	t.Cleanup(cloud.Close)
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cloud.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	pub := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32)).Public().(ed25519.PublicKey)
	boot := `{"cloudUrl": "` + cloud.URL + `", "partId": "part-1", "partSecret": "` + strings.Repeat("s", 40) + `",
  "cloudKeys": [{"keyId": "k1", "ed25519": "` + base64.StdEncoding.EncodeToString(pub) + `"}], "caFile": "` + ca + `"}`
	bootPath := filepath.Join(dir, "outpostd.json")
	if err := os.WriteFile(bootPath, []byte(boot), 0o600); err != nil {
		t.Fatal(err)
	}
	sig := make(chan os.Signal, 1)
	ready := make(chan daemon.Endpoints, 1)
	errc := make(chan error, 1)
	o := daemon.Options{ConfigPath: bootPath, DataDir: filepath.Join(dir, "data"), RuntimeDir: filepath.Join(dir, "run"),
		Listen: "127.0.0.1:0", MetricsListen: "-", Stderr: io.Discard, Signals: sig, OnReady: func(e daemon.Endpoints) { ready <- e }}
	go func() { errc <- daemon.Run(context.Background(), o) }()
	var ep daemon.Endpoints
	select {
	case ep = <-ready:
	case err := <-errc:
		t.Fatalf("daemon did not start: %v", err)
	}
	t.Cleanup(func() {
		sig <- syscall.SIGTERM
		if err := <-errc; err != nil {
			t.Errorf("daemon: %v", err)
		}
	})
	return doctorOptions{config: bootPath, dataDir: o.DataDir, socket: ep.Socket, controlAddr: ep.Control, timeout: 10 * time.Second, now: time.Now}
}

func TestDoctor(t *testing.T) {
	base := doctorPart(t)
	tests := []struct {
		name string
		edit func(*doctorOptions)
		want []string // lines (or line starts) the report must hold
	}{
		{"healthy but never synced", func(*doctorOptions) {}, []string{
			"ok    bootstrap file: ", "ok    cloud https://127.0.0.1:", "TLS certificate valid until",
			"ok    daemon: ", "ok    clock: within 2m0s of the cloud's", "ok    disk: ", "ok    store budget: ",
			"ok    control certificate: SHA-256 ",
			"FAIL  grants: the part holds no grant bundle", "warn  config: the part runs no config from the cloud yet",
		}},
		{"clock an hour ahead", func(o *doctorOptions) { o.now = func() time.Time { return time.Now().Add(time.Hour) } }, []string{
			// The cloud's time has one-second resolution (and the call takes
			// time): the skew reads 1h0m0s or 1h0m1s.
			"FAIL  clock: 1h0m", "off the cloud's clock", "fix: turn on time sync",
		}},
		{"no bootstrap file", func(o *doctorOptions) { o.config = filepath.Join(t.TempDir(), "missing.json") }, []string{
			"FAIL  bootstrap file: bootstrap file ", "does not exist", "fix: write it with `outpost part bootstrap PART_ID",
		}},
		{"daemon not running", func(o *doctorOptions) { o.socket = filepath.Join(t.TempDir(), "none.sock") }, []string{
			"FAIL  daemon: no answer on ", "fix: start it with `sudo systemctl start outpostd`",
		}},
		{"wrong control port", func(o *doctorOptions) { o.controlAddr = "127.0.0.1:1" }, []string{
			"FAIL  control certificate: the control port 127.0.0.1:1 does not answer",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := base
			tc.edit(&o)
			var buf bytes.Buffer
			printDoctor(&buf, runDoctor(context.Background(), o))
			for _, w := range tc.want {
				if !strings.Contains(buf.String(), w) {
					t.Errorf("report lacks %q:\n%s", w, buf.String())
				}
			}
		})
	}
}

func TestDoctorCommandFailsOnProblems(t *testing.T) {
	root := newRoot(env{getenv: func(string) string { return "" }, stdin: strings.NewReader("")})
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs([]string{"doctor", "--config", filepath.Join(t.TempDir(), "none.json"), "--socket", filepath.Join(t.TempDir(), "none.sock"),
		"--data-dir", t.TempDir(), "--control", "127.0.0.1:1"})
	err := root.ExecuteContext(context.Background())
	if err == nil || !strings.Contains(err.Error(), "check(s) failed") {
		t.Fatalf("doctor with nothing installed: %v, want failed checks\n%s", err, out.String())
	}
}
