package packages

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/cloudsync"
	"github.com/outpost-robotics/outpost/packages/packagetest"
	"github.com/outpost-robotics/outpost/signed"
)

// BenchmarkDeltaUpdate measures the bytes a part downloads for a new
// version of a 100 MB package that changes 5% of it (the goal: at most 10%
// of the package): in one place (a rebuilt part of a binary, a retrained
// layer of a model), and scattered over 20 places, where each change costs
// the whole chunks it touches.
func BenchmarkDeltaUpdate(b *testing.B) {
	const size = 100 << 20
	base := []byte(noise(20, size))
	signer := newSigner(b, "cloud-1")
	v1 := packagetest.New(b, "model", "1.0.0", testPlatform, map[string]string{"model.bin": string(base)})
	srv := packagetest.NewServer(b)
	srv.Add(v1)
	for _, places := range []int{1, 20} {
		b.Run(fmt.Sprintf("places=%d", places), func(b *testing.B) {
			changed := bytes.Clone(base)
			rng := rand.New(rand.NewPCG(1, uint64(places)))
			span := size / 20 / places
			for i := range places {
				off := i*(size/places) + rng.IntN(size/places-span)
				copy(changed[off:off+span], noise(uint64(100+i), span))
			}
			v2 := packagetest.New(b, "model", "1.1.0", testPlatform, map[string]string{"model.bin": string(changed)})
			srv.Add(v2)
			var moved int64
			for b.Loop() {
				m, err := New(Options{Dir: filepath.Join(b.TempDir(), "packages"), Keys: signed.Keys{"cloud-1": signer.Key.Public().(ed25519.PublicKey)},
					Platform: testPlatform, Fetcher: client(srv.URL), Clock: clock.NewFake(time.Unix(0, 0))})
				if err != nil {
					b.Fatal(err)
				}
				m.Issue([]*syncv1.ResolvedPackage{v1.Resolved(b, signer, "model")}, nil)
				m.Step(b.Context())
				before := srv.Served.Load()
				m.Issue([]*syncv1.ResolvedPackage{v2.Resolved(b, signer, "model")}, nil)
				m.Step(b.Context())
				if st := m.Status()[0]; st.GetRunningVersion() != "1.1.0" {
					b.Fatalf("status %v", st)
				}
				moved = srv.Served.Load() - before
			}
			b.ReportMetric(float64(moved)/(1<<20), "MB-moved")
			b.ReportMetric(100*float64(moved)/float64(v2.Manifest.GetSize()), "%-of-package")
		})
	}
}

// BenchmarkDownloadRSS measures a part's resident memory while it
// downloads and unpacks a 500 MB package (the goal: at most 16 MB above
// idle). The part runs in a child process (this test binary, running
// TestDownloadRSSChild) so that the server's memory is not counted.
func BenchmarkDownloadRSS(b *testing.B) {
	size := int64(500 << 20)
	if s := os.Getenv("OUTPOST_PKG_RSS_SIZE"); s != "" {
		size, _ = strconv.ParseInt(s, 10, 64)
	}
	dir := b.TempDir()
	chunks := filepath.Join(dir, "cloud")
	if err := os.Mkdir(chunks, 0o700); err != nil {
		b.Fatal(err)
	}
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		_ = tw.WriteHeader(&tar.Header{Name: "model.bin", Typeflag: tar.TypeReg, Mode: 0o644, Size: size, ModTime: time.Unix(0, 0), Format: tar.FormatPAX})
		_, err := io.CopyN(tw, rand.NewChaCha8([32]byte{9}), size)
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	p := packagetest.BuildTo(b, packagetest.Agreed, "model", "1.0.0", testPlatform, pr, uint64(size), chunks)
	srv := packagetest.NewServer(b)
	srv.Add(p)
	signer := newSigner(b, "cloud-1")
	raw, err := proto.Marshal(p.Resolved(b, signer, "model"))
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "resolved.pb"), raw, 0o600); err != nil {
		b.Fatal(err)
	}
	var res rssResult
	for b.Loop() {
		part := filepath.Join(b.TempDir(), "part")
		cmd := exec.Command(os.Args[0], "-test.run=^TestDownloadRSSChild$", "-test.v")
		cmd.Env = append(os.Environ(), "OUTPOST_PKG_RSS_CHILD="+dir, "OUTPOST_PKG_RSS_PART="+part, "OUTPOST_PKG_RSS_URL="+srv.URL,
			"OUTPOST_PKG_RSS_KEY="+base64.StdEncoding.EncodeToString(signer.Key.Public().(ed25519.PublicKey)))
		out, err := cmd.CombinedOutput()
		if err != nil {
			b.Fatalf("child: %v\n%s", err, out)
		}
		if _, sampled, ok := strings.Cut(string(out), "sampled RSS: "); ok {
			sampled, _, _ = strings.Cut(sampled, "\n")
			b.Logf("the part's resident memory, sampled: %s", sampled)
		}
		_, js, ok := strings.Cut(string(out), "\nRSS ")
		if !ok {
			b.Fatalf("child said no RSS:\n%s", out)
		}
		js, _, _ = strings.Cut(js, "\n")
		if err := json.Unmarshal([]byte(js), &res); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(size)/(1<<20), "MB-package")
	b.ReportMetric(float64(res.Idle)/(1<<20), "MB-idle-RSS")
	b.ReportMetric(float64(res.Peak)/(1<<20), "MB-peak-RSS")
	b.ReportMetric(float64(res.Peak-res.Idle)/(1<<20), "MB-above-idle")
}

type rssResult struct{ Idle, Peak int64 }

// TestDownloadRSSChild is BenchmarkDownloadRSS's part; it runs only as
// the benchmark's child process.
func TestDownloadRSSChild(t *testing.T) {
	dir := os.Getenv("OUTPOST_PKG_RSS_CHILD")
	if dir == "" {
		t.Skip("run by BenchmarkDownloadRSS")
	}
	raw, err := os.ReadFile(filepath.Join(dir, "resolved.pb"))
	if err != nil {
		t.Fatal(err)
	}
	var rp syncv1.ResolvedPackage
	if err := proto.Unmarshal(raw, &rp); err != nil {
		t.Fatal(err)
	}
	key, _ := base64.StdEncoding.DecodeString(os.Getenv("OUTPOST_PKG_RSS_KEY"))
	// The part's chunk client, as the daemon builds it.
	c, err := cloudsync.NewClient(cloudsync.ClientOptions{CloudURL: os.Getenv("OUTPOST_PKG_RSS_URL"), PartID: "part-1", PartSecret: "secret-0123456789abcdef", Compression: "none"})
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(Options{Dir: os.Getenv("OUTPOST_PKG_RSS_PART"), Keys: signed.Keys{"cloud-1": ed25519.PublicKey(key)}, Platform: testPlatform, Fetcher: c})
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	idle := procStatus(t, "VmRSS")
	// Peak resident memory counts from here.
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Fatal(err)
	}
	m.Issue([]*syncv1.ResolvedPackage{&rp}, nil)
	stop := make(chan struct{})
	sampled := make(chan [2]int64)
	go func() {
		// The peak while chunks download, and while the stream unpacks.
		var peaks [2]int64
		for {
			select {
			case <-stop:
				sampled <- peaks
				return
			case <-time.After(20 * time.Millisecond):
			}
			st := m.Status()[0]
			phase := 0
			if st.GetBytesDone() == st.GetBytesTotal() {
				phase = 1
			}
			peaks[phase] = max(peaks[phase], procStatus(t, "VmRSS"))
		}
	}()
	m.Step(t.Context())
	close(stop)
	peaks := <-sampled
	fmt.Printf("sampled RSS: downloading %d MB, unpacking %d MB\n", peaks[0]>>20, peaks[1]>>20)
	if st := m.Status()[0]; st.GetState() != StateRunning {
		t.Fatalf("status %v", st)
	}
	peak := procStatus(t, "VmHWM")
	js, _ := json.Marshal(rssResult{Idle: idle, Peak: peak})
	fmt.Printf("RSS %s\n", js)
}

// procStatus reads a kB field of /proc/self/status, in bytes.
func procStatus(t *testing.T, field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc/self/status", field)
	return 0
}
