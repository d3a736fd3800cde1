package packages

import (
	"archive/tar"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/config"
	"github.com/outpost-robotics/outpost/faultproxy"
	"github.com/outpost-robotics/outpost/packages/packagetest"
	"github.com/outpost-robotics/outpost/pkgformat"
	"github.com/outpost-robotics/outpost/signed"
)

// noise is n deterministic random bytes, as a string for files.
func noise(seed uint64, n int) string {
	var s [32]byte
	s[0], s[1] = byte(seed), byte(seed>>8)
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(s).Read(b)
	return string(b)
}

// fixture is a manager over a temporary directory and a chunk server.
type fixture struct {
	t      *testing.T
	dir    string
	signer signed.Signer
	srv    *packagetest.Server
	clk    *clock.Fake
	health map[string]Health
	allow  func() (bool, string)
	change int
	opts   Options
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{t: t, dir: t.TempDir(), signer: newSigner(t, "cloud-1"), srv: packagetest.NewServer(t),
		clk: clock.NewFake(time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)), health: map[string]Health{}}
	f.opts = Options{Dir: filepath.Join(f.dir, "packages"), Keys: signed.Keys{"cloud-1": f.signer.Key.Public().(signedKey)},
		Platform: testPlatform, Fetcher: client(f.srv.URL), Clock: f.clk,
		Health: func(name string) Health {
			if h, ok := f.health[name]; ok {
				return h
			}
			return Health{Up: true}
		},
		Allowed: func(context.Context, *configv1.MaintenanceWindow) (bool, string) {
			if f.allow == nil {
				return true, ""
			}
			return f.allow()
		},
		OnChange: func(context.Context) { f.change++ },
	}
	return f
}

func (f *fixture) manager() *Manager {
	f.t.Helper()
	m, err := New(f.opts)
	if err != nil {
		f.t.Fatal(err)
	}
	return m
}

// issue publishes p on the server and issues it to m as "blinker".
func (f *fixture) issue(m *Manager, p *pkg) {
	f.srv.Add(p)
	m.Issue([]*syncv1.ResolvedPackage{p.Resolved(f.t, f.signer, "blinker")}, nil)
}

func status(t *testing.T, m *Manager) *syncv1.PackageStatus {
	t.Helper()
	st := m.Status()
	if len(st) != 1 {
		t.Fatalf("status of %d packages, want 1", len(st))
	}
	return st[0]
}

func wantState(t *testing.T, m *Manager, state, running string) *syncv1.PackageStatus {
	t.Helper()
	st := status(t, m)
	if st.GetState() != state || st.GetRunningVersion() != running {
		t.Fatalf("state %q running %q (error %q), want %q running %q", st.GetState(), st.GetRunningVersion(), st.GetError(), state, running)
	}
	return st
}

func readFile(t *testing.T, m *Manager, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(m.Dirs()["blinker"], name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var v1Files = map[string]string{"bin/blinker": "#!/bin/sh\necho v1\n", "model/weights.bin": noise(1, 256<<10), "README": "v1"}

func TestInstallSwitchAndOffline(t *testing.T) {
	f := newFixture(t)
	m := f.manager()
	v1 := newPkg(t, f.signer, "1.0.0", v1Files)
	f.issue(m, v1)
	m.Step(t.Context())
	st := wantState(t, m, StateRunning, "1.0.0")
	if st.GetBytesDone() != st.GetBytesTotal() || st.GetIssuedVersion() != "1.0.0" || st.GetPackage() != "org1/blinker" {
		t.Fatalf("status %v", st)
	}
	if got := readFile(t, m, "bin/blinker"); got != v1Files["bin/blinker"] {
		t.Fatalf("bin/blinker = %q", got)
	}
	if fi, err := os.Stat(filepath.Join(m.Dirs()["blinker"], "bin/blinker")); err != nil || fi.Mode().Perm()&0o100 == 0 {
		t.Fatalf("the executable lost its Mode: %v %v", fi.Mode(), err)
	}
	if want := filepath.Join(f.opts.Dir, "versions/org1/blinker/1.0.0-linux-amd64"); m.Dirs()["blinker"] != want {
		t.Fatalf("dir %q, want %q", m.Dirs()["blinker"], want)
	}
	if f.change != 1 {
		t.Fatalf("OnChange called %d times, want 1", f.change)
	}

	// A restart with the cloud gone: the version runs from disk at once.
	f.opts.Fetcher = client("http://127.0.0.1:1")
	m2 := f.manager()
	if got := readFile(t, m2, "README"); got != "v1" {
		t.Fatalf("after a restart README = %q", got)
	}
	f.issue(m2, v1)
	m2.Step(t.Context())
	wantState(t, m2, StateRunning, "1.0.0")
}

func TestRefusedManifests(t *testing.T) {
	f := newFixture(t)
	m := f.manager()
	v1 := newPkg(t, f.signer, "1.0.0", v1Files)
	f.issue(m, v1)
	m.Step(t.Context())
	before := f.srv.Requests.Load()

	other := newSigner(t, "cloud-1") // the same key id, another key
	stranger := newSigner(t, "stranger")
	arm := newPkg(t, f.signer, "2.0.0", map[string]string{"x": "y"})
	arm.Manifest.Platform = "linux/arm64"
	badName := newPkg(t, f.signer, "../../etc", map[string]string{"x": "y"})
	tests := []struct {
		name string
		rp   *syncv1.ResolvedPackage
		want string
	}{
		{"another key", newPkg(t, other, "2.0.0", map[string]string{"x": "y"}).Resolved(t, other, "blinker"), "signature does not verify"},
		{"unknown key", newPkg(t, stranger, "2.0.0", map[string]string{"x": "y"}).Resolved(t, stranger, "blinker"), "unknown key"},
		{"wrong platform", arm.Resolved(t, f.signer, "blinker"), "built for linux/arm64"},
		{"path in the version", badName.Resolved(t, f.signer, "blinker"), "version"},
		{"payload changed after signing", func() *syncv1.ResolvedPackage {
			rp := newPkg(t, f.signer, "2.0.0", map[string]string{"x": "y"}).Resolved(t, f.signer, "blinker")
			rp.Manifest.Payload = append(rp.Manifest.Payload, 0x08, 0x01)
			return rp
		}(), "signature does not verify"},
		{"no manifest", &syncv1.ResolvedPackage{Name: "blinker", Requested: "latest"}, "no document"},
		{"a grant bundle as a manifest", func() *syncv1.ResolvedPackage {
			doc, _ := f.signer.Sign(&syncv1.GrantBundle{PartId: "p"})
			return &syncv1.ResolvedPackage{Name: "blinker", Manifest: doc}
		}(), "wrong type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m.Issue([]*syncv1.ResolvedPackage{tt.rp}, nil)
			m.Step(t.Context())
			st := status(t, m)
			if st.GetState() != StateFailed || !strings.Contains(st.GetError(), tt.want) || st.GetRunningVersion() != "1.0.0" {
				t.Fatalf("status %v, want failed with %q, 1.0.0 running", st, tt.want)
			}
			if !strings.HasPrefix(st.GetError(), ErrManifest.Error()) || st.GetName() != "blinker" {
				t.Fatalf("status %v, want the package named and its error to start %q", st, ErrManifest)
			}
			if got := readFile(t, m, "README"); got != "v1" {
				t.Fatalf("the running version changed: README %q", got)
			}
		})
	}
	if f.srv.Requests.Load() != before {
		t.Fatal("a refused manifest's chunks were downloaded")
	}
}

func TestTamperedChunk(t *testing.T) {
	v2Files := map[string]string{"bin/blinker": "v2", "model/weights.bin": noise(2, 200<<10)}
	for _, tc := range []struct {
		name   string
		tamper func([]byte) []byte
		want   string
	}{
		{"a byte flipped", func(c []byte) []byte { c[len(c)/2] ^= 0xff; return c }, "has another hash"},
		{"cut short", func(c []byte) []byte { return c[:len(c)-1] }, "the manifest says"},
		{"a byte more", func(c []byte) []byte { return append(c, 0) }, "the manifest says"},
		{"empty", func([]byte) []byte { return nil }, "is 0 bytes"},
		{"larger than any chunk", func([]byte) []byte { return make([]byte, pkgformat.MaxChunk+1) }, "the manifest says"},
		{"zeros of the right size", func(c []byte) []byte { return make([]byte, len(c)) }, "has another hash"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			m := f.manager()
			f.issue(m, newPkg(t, f.signer, "1.0.0", v1Files))
			m.Step(t.Context())
			f.srv.TamperWith(tc.tamper)
			f.issue(m, newPkg(t, f.signer, "2.0.0", v2Files))
			m.Step(t.Context())
			st := wantState(t, m, StateFailed, "1.0.0")
			// The status names the version, the chunk, and what was wrong.
			for _, want := range []string{"download chunk", "org1/blinker 2.0.0", ErrContent.Error(), "tampered with", tc.want} {
				if !strings.Contains(st.GetError(), want) {
					t.Fatalf("error %q, want it to say %q", st.GetError(), want)
				}
			}
			if st.GetIssuedVersion() != "2.0.0" || st.GetBytesDone() >= st.GetBytesTotal() {
				t.Fatalf("status %v, want 2.0.0 issued and not all of it held", st)
			}
			chunks, _ := os.ReadDir(filepath.Join(f.opts.Dir, "chunks"))
			for _, c := range chunks {
				if !f.srv.Has(hexKey(t, c.Name())) {
					t.Fatalf("chunk %s is kept but is no chunk the cloud has", c.Name())
				}
			}
			if got := readFile(t, m, "README"); got != "v1" {
				t.Fatalf("the running version changed: README %q", got)
			}
			// Once the cloud serves the real bytes, the download goes
			// through (after the retry wait).
			f.srv.TamperWith(nil)
			m.Step(t.Context())
			wantState(t, m, StateFailed, "1.0.0")
			f.clk.Advance(retryAfter)
			m.Step(t.Context())
			wantState(t, m, StateRunning, "2.0.0")
		})
	}
}

// TestBusyCloud checks that a cloud turning chunk requests away as busy
// is no failure: the part says it is waiting, keeps what it holds, and
// goes on after a short wait.
func TestBusyCloud(t *testing.T) {
	f := newFixture(t)
	m := f.manager()
	f.issue(m, newPkg(t, f.signer, "1.0.0", v1Files))
	m.Step(t.Context())
	f.srv.Refuse(connect.CodeResourceExhausted)
	f.issue(m, newPkg(t, f.signer, "2.0.0", map[string]string{"bin/blinker": "v2", "model/weights.bin": noise(2, 200<<10)}))
	m.Step(t.Context())
	st := wantState(t, m, StateDownloading, "1.0.0")
	for _, want := range []string{"the cloud is busy", "goes on in 15s", "org1/blinker 2.0.0", "resource_exhausted"} {
		if !strings.Contains(st.GetError(), want) {
			t.Fatalf("error %q, want it to say %q", st.GetError(), want)
		}
	}
	// Not before the wait.
	f.srv.Refuse(0)
	asked := f.srv.Requests.Load()
	f.clk.Advance(busyRetryAfter - time.Second)
	m.Step(t.Context())
	wantState(t, m, StateDownloading, "1.0.0")
	if f.srv.Requests.Load() != asked {
		t.Fatal("the part asked again before the wait was over")
	}
	f.clk.Advance(time.Second)
	m.Step(t.Context())
	if st := wantState(t, m, StateRunning, "2.0.0"); st.GetError() != "" {
		t.Fatalf("status %v, want no error once running", st)
	}
}

func TestBudget(t *testing.T) {
	f := newFixture(t)
	f.opts.Budget = Budget{MaxBytes: 256 << 10}
	m := f.manager()
	f.issue(m, newPkg(t, f.signer, "1.0.0", map[string]string{"small": noise(3, 64<<10)}))
	m.Step(t.Context())
	wantState(t, m, StateRunning, "1.0.0")
	before := f.srv.Requests.Load()
	f.issue(m, newPkg(t, f.signer, "2.0.0", map[string]string{"big": noise(4, 200<<10)}))
	m.Step(t.Context())
	st := wantState(t, m, StateFailed, "1.0.0")
	if !strings.Contains(st.GetError(), "does not fit the disk budget") || !strings.Contains(st.GetError(), "budget is 262144 bytes") {
		t.Fatalf("error %q, want a clear budget refusal", st.GetError())
	}
	if f.srv.Requests.Load() != before {
		t.Fatal("a version over the budget was downloaded")
	}

	// Free disk: a budget that leaves less free than the disk has refuses too.
	f.opts.Budget = Budget{MinFreeBytes: 1 << 62}
	m2 := f.manager()
	f.issue(m2, newPkg(t, f.signer, "3.0.0", map[string]string{"x": "y"}))
	m2.Step(t.Context())
	if st := status(t, m2); st.GetState() != StateFailed || !strings.Contains(st.GetError(), "must stay free") {
		t.Fatalf("status %v, want a free-disk refusal", st)
	}
}

func TestCutAndResume(t *testing.T) {
	f := newFixture(t)
	proxy, err := faultproxy.New(f.srv.URL, faultproxy.Script(faultproxy.Pass, faultproxy.Pass, faultproxy.ResetAfter))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	f.opts.Fetcher = client(proxy.URL())
	m := f.manager()
	p := newPkg(t, f.signer, "1.0.0", map[string]string{"model.bin": noise(5, 512<<10)})
	if len(p.Manifest.GetChunks()) < 4 {
		t.Fatalf("%d chunks: the test needs more", len(p.Manifest.GetChunks()))
	}
	f.issue(m, p)
	m.Step(t.Context())
	st := status(t, m)
	if st.GetState() != StateFailed || st.GetBytesDone() == 0 || st.GetBytesDone() >= st.GetBytesTotal() {
		t.Fatalf("after the cut: %v, want failed part way", st)
	}
	held := st.GetBytesDone()

	// A restart, and the link is back: the chunks kept survive it.
	m = f.manager()
	f.issue(m, p)
	f.clk.Advance(retryAfter)
	m.Step(t.Context())
	wantState(t, m, StateRunning, "1.0.0")
	// Two chunks before the cut, the one cut (the cloud served it, the
	// part never got it), then each of the rest once: nothing kept is
	// fetched again.
	if got, want := f.srv.Requests.Load(), int64(len(p.Manifest.GetChunks())+1); got != want {
		t.Fatalf("the cloud served %d chunk requests for %d chunks, want %d (only the cut one twice)", got, len(p.Manifest.GetChunks()), want)
	}
	if held == 0 {
		t.Fatal("nothing was kept before the cut")
	}
	if most := f.srv.MostAtOnce.Load(); most > fetches {
		t.Fatalf("%d chunk requests at once, want at most %d", most, fetches)
	}
	if got := readFile(t, m, "model.bin"); got != noise(5, 512<<10) {
		t.Fatal("model.bin differs after the resumed download")
	}
}

func TestDeltaDownloadsOnlyWhatChanged(t *testing.T) {
	f := newFixture(t)
	m := f.manager()
	base := noise(6, 1<<20)
	f.issue(m, newPkg(t, f.signer, "1.0.0", map[string]string{"model.bin": base}))
	m.Step(t.Context())
	f.srv.Served.Store(0)
	changed := base[:512<<10] + noise(7, 16<<10) + base[512<<10+16<<10:]
	v2 := newPkg(t, f.signer, "1.1.0", map[string]string{"model.bin": changed})
	f.issue(m, v2)
	m.Step(t.Context())
	wantState(t, m, StateRunning, "1.1.0")
	if got := f.srv.Served.Load(); got <= 0 || got > int64(len(base))/4 {
		t.Fatalf("moved %d bytes for a 16 KiB change to a 1 MiB package", got)
	}
}

func TestRollback(t *testing.T) {
	for _, tc := range []struct {
		name   string
		health Health
		wait   time.Duration
		want   string
	}{
		{"crashes at start", Health{Failed: true, Err: "module/blinker: exited with status 2"}, 0, "exited with status 2"},
		{"never comes up", Health{Err: "module/blinker: no handshake"}, DefaultDeadline, "not up 1m0s after the switch: module/blinker: no handshake"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			m := f.manager()
			v1 := newPkg(t, f.signer, "1.0.0", v1Files)
			f.issue(m, v1)
			m.Step(t.Context())
			f.clk.Advance(DefaultDeadline)
			m.Step(t.Context()) // v1 came up: it stays

			v2 := newPkg(t, f.signer, "2.0.0", map[string]string{"bin/blinker": "#!/bin/sh\nexit 2\n"})
			f.issue(m, v2)
			m.Step(t.Context())
			wantState(t, m, StateRunning, "2.0.0")
			f.health["blinker"] = tc.health
			if tc.wait > 0 {
				f.clk.Advance(tc.wait - time.Second)
				m.Step(t.Context())
				wantState(t, m, StateRunning, "2.0.0")
				f.clk.Advance(time.Second)
			}
			m.Step(t.Context())
			st := wantState(t, m, StateRolledBack, "1.0.0")
			if st.GetRolledBackFrom() != "2.0.0" || !strings.Contains(st.GetError(), tc.want) || st.GetIssuedVersion() != "2.0.0" {
				t.Fatalf("status %v, want rolled back from 2.0.0 with %q", st, tc.want)
			}
			if got := readFile(t, m, "README"); got != "v1" {
				t.Fatalf("after the rollback README = %q", got)
			}

			// The part remembers across a restart: v2 again is not tried.
			delete(f.health, "blinker")
			m = f.manager()
			f.issue(m, v2)
			m.Step(t.Context())
			st = wantState(t, m, StateRolledBack, "1.0.0")
			if st.GetRolledBackFrom() != "2.0.0" {
				t.Fatalf("after a restart: %v", st)
			}
			// Another version from the cloud is tried.
			f.issue(m, newPkg(t, f.signer, "2.0.1", map[string]string{"bin/blinker": "fixed"}))
			m.Step(t.Context())
			wantState(t, m, StateRunning, "2.0.1")
		})
	}
}

func TestMaintenanceWindowHoldsThenSwitches(t *testing.T) {
	f := newFixture(t)
	mw := &configv1.MaintenanceWindow{Windows: []*configv1.TimeWindow{{Start: "02:00", End: "04:00"}}, Sensor: "dock", AllowedKey: "docked"}
	docked := false
	f.allow = func() (bool, string) {
		return config.Allowed(mw, f.clk.Now(), map[string]any{"docked": docked})
	}
	m := f.manager()
	f.issue(m, newPkg(t, f.signer, "1.0.0", v1Files))
	m.Step(t.Context())
	st := wantState(t, m, StateHeld, "")
	if st.GetBytesDone() != st.GetBytesTotal() || !strings.Contains(st.GetError(), "outside the maintenance windows") {
		t.Fatalf("held: %v, want downloaded and a reason", st)
	}
	f.clk.SetWall(time.Date(2026, 12, 5, 2, 30, 0, 0, time.UTC))
	m.Step(t.Context())
	if st := wantState(t, m, StateHeld, ""); !strings.Contains(st.GetError(), "docked=false") {
		t.Fatalf("held: %v", st)
	}
	docked = true
	m.Step(t.Context())
	wantState(t, m, StateRunning, "1.0.0")
}

func TestGCKeepsCurrentAndPrevious(t *testing.T) {
	f := newFixture(t)
	m := f.manager()
	var ps []*pkg
	for i, v := range []string{"1.0.0", "2.0.0", "3.0.0"} {
		p := newPkg(t, f.signer, v, map[string]string{"bin": noise(uint64(10+i), 64<<10)})
		ps = append(ps, p)
		f.issue(m, p)
		m.Step(t.Context())
		f.clk.Advance(DefaultDeadline)
		m.Step(t.Context())
	}
	dirs, _ := filepath.Glob(filepath.Join(f.opts.Dir, "versions/org1/blinker/*"))
	var names []string
	for _, d := range dirs {
		names = append(names, filepath.Base(d))
	}
	if strings.Join(names, ",") != "2.0.0-linux-amd64,3.0.0-linux-amd64" {
		t.Fatalf("versions on disk %v, want 2.0.0 and 3.0.0", names)
	}
	for i, p := range ps {
		_, err := os.Stat(filepath.Join(f.opts.Dir, "chunks", hexOf(p.Manifest.GetChunks()[0].GetSha256())))
		if kept := err == nil; kept != (i > 0) {
			t.Fatalf("version %s: chunk kept %v", p.Manifest.GetVersion(), kept)
		}
	}
}

func TestHostileEntries(t *testing.T) {
	good := entry{Name: "ok", Type: tar.TypeReg, Body: []byte("fine"), Mode: 0o644}
	tests := []struct {
		name    string
		entries []entry
		want    string
	}{
		{"dot dot", []entry{good, {Name: "../escape", Type: tar.TypeReg, Body: []byte("x"), Mode: 0o644}}, "escapes the package directory"},
		{"dot dot inside", []entry{{Name: "a/../../escape", Type: tar.TypeReg, Body: []byte("x"), Mode: 0o644}}, "not a clean path"},
		{"absolute", []entry{{Name: "/etc/passwd", Type: tar.TypeReg, Body: []byte("x"), Mode: 0o644}}, "absolute"},
		{"symlink", []entry{{Name: "link", Type: tar.TypeSymlink, Linkname: "/etc", Mode: 0o777}}, "symbolic link"},
		{"hard link", []entry{good, {Name: "hard", Type: tar.TypeLink, Linkname: "ok", Mode: 0o644}}, "hard link"},
		{"device", []entry{{Name: "dev", Type: tar.TypeChar, Mode: 0o644}}, "device"},
		{"fifo", []entry{{Name: "fifo", Type: tar.TypeFifo, Mode: 0o644}}, "device or pipe"},
		{"duplicate", []entry{good, good}, "appears twice"},
		{"file under a file", []entry{good, {Name: "ok/x", Type: tar.TypeReg, Body: []byte("x"), Mode: 0o644}}, "ok/x"},
		{"backslash", []entry{{Name: `a\..\..\x`, Type: tar.TypeReg, Body: []byte("x"), Mode: 0o644}}, "backslash"},
		{"long name", []entry{{Name: "../" + strings.Repeat("a", 256<<10), Type: tar.TypeReg, Body: []byte("x"), Mode: 0o644}}, "escapes the package directory"},
		{"long link", []entry{{Name: "link", Type: tar.TypeSymlink, Linkname: strings.Repeat("../", 64<<10), Mode: 0o777}}, "symbolic link"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stream, unpacked := tarStream(t, tt.entries)
			root := filepath.Join(t.TempDir(), "v")
			err := untar(strings.NewReader(string(stream)), root, unpacked)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("untar = %.300v, want an error with %q", err, tt.want)
			}
			// The error reaches the part's status: a hostile name must
			// not make it large.
			if len(err.Error()) > 512 {
				t.Fatalf("an error of %d bytes: %.300s", len(err.Error()), err)
			}
			if _, err := os.Lstat(filepath.Join(filepath.Dir(root), "escape")); err == nil {
				t.Fatal("an entry escaped")
			}
		})
	}
	t.Run("sizes disagree", func(t *testing.T) {
		stream, unpacked := tarStream(t, []entry{good})
		for _, claim := range []uint64{unpacked - 1, unpacked + 1} {
			if err := untar(strings.NewReader(string(stream)), filepath.Join(t.TempDir(), "v"), claim); err == nil || !strings.Contains(err.Error(), "manifest says") {
				t.Fatalf("untar with unpacked %d of %d: %v", claim, unpacked, err)
			}
		}
	})

	// Through the manager: a signed package whose entries would escape is
	// refused, nothing of it stays, and the running version runs on.
	f := newFixture(t)
	m := f.manager()
	f.issue(m, newPkg(t, f.signer, "1.0.0", v1Files))
	m.Step(t.Context())
	for i, tc := range []struct {
		entry entry
		want  string
	}{
		{entry{Name: "zz", Type: tar.TypeSymlink, Linkname: "../../../../etc/passwd"}, `entry "zz" is a symbolic link`},
		{entry{Name: "../../../../escape", Type: tar.TypeReg, Body: []byte("x"), Mode: 0o644}, `entry "../../../../escape": escapes the package directory`},
		{entry{Name: "/tmp/escape", Type: tar.TypeReg, Body: []byte("x"), Mode: 0o644}, `entry "/tmp/escape": an absolute path`},
		{entry{Name: "a/../../escape", Type: tar.TypeReg, Body: []byte("x"), Mode: 0o644}, `entry "a/../../escape": not a clean path`},
	} {
		version := fmt.Sprintf("2.0.%d", i)
		stream, unpacked := tarStream(t, []entry{good, tc.entry})
		f.issue(m, build(t, f.signer, version, testPlatform, stream, unpacked))
		m.Step(t.Context())
		st := wantState(t, m, StateFailed, "1.0.0")
		for _, want := range []string{"unpack org1/blinker " + version, ErrContent.Error(), tc.want} {
			if !strings.Contains(st.GetError(), want) {
				t.Fatalf("error %q, want it to say %q", st.GetError(), want)
			}
		}
		if leftovers, _ := os.ReadDir(filepath.Join(f.opts.Dir, "tmp")); len(leftovers) != 0 {
			t.Fatalf("the refused unpack left %d entries in tmp", len(leftovers))
		}
		if _, err := os.Stat(filepath.Join(f.opts.Dir, "versions/org1/blinker", version+"-linux-amd64")); err == nil {
			t.Fatal("the refused version has a directory")
		}
		if _, err := os.Lstat(filepath.Join(f.dir, "escape")); err == nil {
			t.Fatal("an entry escaped")
		}
		if got := readFile(t, m, "README"); got != "v1" {
			t.Fatalf("the running version changed: README %q", got)
		}
	}
}

func TestSubstitute(t *testing.T) {
	// Unvalidated: the executable is absolute only once substituted.
	cfg := &configv1.RobotConfig{}
	err := protojson.Unmarshal([]byte(`{
		"modules": [{"name": "blinker", "executable": "${packages.blinker}/bin/blinker", "args": ["--model=${packages.model}/w.bin"]}],
		"processes": [{"id": "cam", "command": "${packages.cam}/run", "workingDir": "${packages.cam}", "args": ["plain"]}],
		"components": [{"name": "det", "type": "COMPONENT_TYPE_CAMERA", "model": "fake", "attributes": {"model_path": "${packages.model}/w.bin", "list": ["${packages.model}"], "n": 3}},
		               {"name": "other", "type": "COMPONENT_TYPE_MOTOR", "model": "fake"}]
	}`), cfg)
	if err != nil {
		t.Fatal(err)
	}
	out, uses := Substitute(cfg, map[string]string{"blinker": "/d/b", "model": "/d/m"})
	if got := out.GetModules()[0].GetExecutable(); got != "/d/b/bin/blinker" {
		t.Fatalf("executable %q", got)
	}
	if got := out.GetModules()[0].GetArgs()[0]; got != "--model=/d/m/w.bin" {
		t.Fatalf("arg %q", got)
	}
	if got := out.GetProcesses()[0].GetCommand(); got != NotReady+"/cam/run" {
		t.Fatalf("a package without a version: %q", got)
	}
	attrs := out.GetComponents()[0].GetAttributes().AsMap()
	if attrs["model_path"] != "/d/m/w.bin" || attrs["list"].([]any)[0] != "/d/m" || attrs["n"] != 3.0 {
		t.Fatalf("attributes %v", attrs)
	}
	if cfg.GetModules()[0].GetExecutable() != "${packages.blinker}/bin/blinker" {
		t.Fatal("Substitute changed its input")
	}
	want := map[string]string{"blinker": "module/blinker", "model": "module/blinker,component/det", "cam": "process/cam"}
	for name, w := range want {
		if got := strings.Join(uses[name], ","); got != w {
			t.Fatalf("uses[%s] = %q, want %q", name, got, w)
		}
	}
}
