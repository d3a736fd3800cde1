package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
)

// buildBinaries builds outpost, outpostd and outpost-cloud into a
// temporary folder, as `make build` does into bin/. Not with the race
// detector, even under -race: it makes every CLI call of the demo several
// times slower, and each binary's own packages are tested with it.
func buildBinaries(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the demo's test builds the binaries and needs go on PATH: %v", err)
	}
	dir := t.TempDir()
	args := []string{"build", "-o", dir + "/", "./cmd/outpost", "./cmd/outpostd", "./cmd/outpost-cloud"}
	cmd := exec.Command(goBin, args...)
	cmd.Dir = ".." // the module's root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return dir
}

// shortTempDir is a new folder under the system's temporary folder, not
// t.TempDir(): the test's name would make outpostd's socket path longer
// than a Unix socket's path may be.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "odt-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// syncBuffer is the demo's output, read while the demo writes it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	// at is closed when the output first contains mark.
	mark string
	at   chan struct{}
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, err := s.buf.Write(p)
	if s.at != nil && strings.Contains(s.buf.String(), s.mark) {
		select {
		case <-s.at:
		default:
			close(s.at)
		}
	}
	return n, err
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// processesUnder lists the processes whose command line names dir: the
// demo's children all take paths inside their folder.
func processesUnder(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue // not a process, or gone
		}
		if cmd := strings.ReplaceAll(string(b), "\x00", " "); strings.Contains(cmd, dir) {
			found = append(found, e.Name()+": "+cmd)
		}
	}
	return found
}

// TestDemo runs the whole demo against the real binaries, as `make demo`
// does, then checks what it reported, that it printed no secret, and that
// it left no process behind; and a second run interrupted halfway.
func TestDemo(t *testing.T) {
	bin := buildBinaries(t)

	t.Run("the whole demo", func(t *testing.T) {
		parent := shortTempDir(t)
		// With Stay (--keep), the cloud serves the fleet app after the
		// summary until the run is interrupted, and the run still passes.
		out := &syncBuffer{mark: "keep running: open the fleet app at ", at: make(chan struct{})}
		ctx, stop := context.WithCancel(context.Background())
		defer stop()
		type result struct {
			sum *Summary
			err error
		}
		done := make(chan result, 1)
		go func() {
			sum, err := Run(ctx, Options{Bin: bin, Out: out, Keep: true, Stay: true, TempDir: parent})
			done <- result{sum, err}
		}()
		var res result
		select {
		case <-out.at:
			url := regexp.MustCompile(`fleet app at (http://\S+/) `).FindStringSubmatch(out.String())
			if url == nil {
				t.Fatalf("the stay names no URL:\n%s", out)
			}
			resp, err := http.Get(url[1])
			if err != nil {
				t.Fatalf("the fleet app during the stay: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("the fleet app during the stay answered %s", resp.Status)
			}
			stop()
			res = <-done
		case res = <-done:
		}
		sum, err := res.sum, res.err
		if err != nil {
			t.Fatalf("demo: %v\n%s", err, out)
		}
		if !strings.Contains(out.String(), "The fleet app will be at http://") {
			t.Error("the demo does not open with where the fleet app is")
		}
		text := out.String()
		t.Logf("the demo took %s", sum.Elapsed)
		defer func() {
			if t.Failed() || testing.Verbose() {
				t.Log("\n" + text)
			}
		}()

		for n := 1; n <= 15; n++ {
			if !strings.Contains(text, fmt.Sprintf("\n%2d. ", n)) {
				t.Errorf("step %d not printed", n)
			}
		}
		if !strings.Contains(text, "Outpost demo passed") || !strings.Contains(text, "shortened from 15s") {
			t.Error("no summary, or the shortened interval is not said")
		}
		for _, p := range []string{"main", "arm"} {
			if sum.Held[p] < 25 || sum.Arrived[p] != sum.Held[p] {
				t.Errorf("part %s held %d captures offline and the cloud got %d of them", p, sum.Held[p], sum.Arrived[p])
			}
		}
		if sum.Online == 0 || sum.Offline <= 0 || sum.RevokedAfter <= 0 {
			t.Errorf("summary %+v", sum)
		}
		if !strings.Contains(sum.Refused, "machine.view is only for") || !strings.Contains(sum.Revoked, "revoked") {
			t.Errorf("refusals %q and %q", sum.Refused, sum.Revoked)
		}

		// No secret reached the output: the admin's token, the owner's
		// saved token, the API key's secret.
		secrets := map[string]string{}
		b, err := os.ReadFile(filepath.Join(sum.Dir, "cloud", "admin.token"))
		if err != nil {
			t.Fatal(err)
		}
		secrets["the admin's token"] = strings.TrimSpace(string(b))
		var saved struct{ Token string }
		b, err = os.ReadFile(filepath.Join(sum.Dir, "laptop", "outpost", "credentials.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &saved); err != nil || saved.Token == "" {
			t.Fatalf("the owner's saved token: %v", err)
		}
		secrets["the owner's token"] = saved.Token
		for what, s := range secrets {
			if len(s) < 20 || strings.Contains(text, s) {
				t.Errorf("%s was printed (or is not a token: %q)", what, s)
			}
		}
		for _, m := range regexp.MustCompile(`OUTPOST_API_KEY=(\S+)`).FindAllStringSubmatch(text, -1) {
			if visible, sec, ok := apiKeyParts(m[1]); !ok || len(visible) != len("opk__")+32 || sec != mask {
				t.Errorf("an API key printed as %q", m[1])
			}
		}
		if strings.Contains(text, "main_part_secret") || strings.Contains(text, "access_token") {
			t.Error("a raw answer holding a secret was printed")
		}
		for _, p := range []string{"main", "arm"} {
			b, err := os.ReadFile(filepath.Join(sum.Dir, p, "outpostd.json"))
			if err != nil {
				t.Fatal(err)
			}
			var boot syncv1.Bootstrap
			if err := protojson.Unmarshal(b, &boot); err != nil {
				t.Fatal(err)
			}
			if sec := boot.GetPartSecret(); len(sec) < 20 || strings.Contains(text, sec) {
				t.Errorf("part %s's secret was printed", p)
			}
		}
		if left := processesUnder(t, sum.Dir); len(left) > 0 {
			t.Errorf("processes left behind:\n%s", strings.Join(left, "\n"))
		}
	})

	t.Run("interrupted, it stops everything and cleans up", func(t *testing.T) {
		parent := shortTempDir(t)
		out := &syncBuffer{mark: "\n 8. ", at: make(chan struct{})}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan error, 1)
		go func() {
			_, err := Run(ctx, Options{Bin: bin, Out: out, TempDir: parent})
			done <- err
		}()
		select {
		case <-out.at: // both parts run: the cloud and two daemons to stop
		case err := <-done:
			t.Fatalf("the demo ended before step 8: %v\n%s", err, out)
		}
		cancel()
		err := <-done
		var se *StepError
		if !errors.Is(err, context.Canceled) || !errors.As(err, &se) || se.Step < 8 {
			t.Fatalf("interrupted demo: %v", err)
		}
		if left := processesUnder(t, parent); len(left) > 0 {
			t.Errorf("processes left behind:\n%s", strings.Join(left, "\n"))
		}
		if entries, err := os.ReadDir(parent); err != nil || len(entries) > 0 {
			t.Errorf("the demo's folder is still there: %v %v", entries, err)
		}
	})
}

func TestMissingBinaries(t *testing.T) {
	_, err := Run(context.Background(), Options{Bin: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "make build") {
		t.Fatalf("Run without binaries: %v", err)
	}
}

func TestTooDeepFolder(t *testing.T) {
	bin := t.TempDir()
	for _, b := range []string{binCLI, binDaemon, binCloud} {
		if err := os.WriteFile(filepath.Join(bin, b), []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	deep := filepath.Join(t.TempDir(), strings.Repeat("d", 100))
	if err := os.Mkdir(deep, 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := Run(context.Background(), Options{Bin: bin, TempDir: deep})
	if err == nil || !strings.Contains(err.Error(), "set TMPDIR to a shorter folder") {
		t.Fatalf("Run in a deep folder: %v", err)
	}
	if entries, err := os.ReadDir(deep); err != nil || len(entries) > 0 {
		t.Fatalf("left %v %v", entries, err)
	}
}
