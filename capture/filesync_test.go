package capture_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	"github.com/outpost-robotics/outpost/capture"
	"github.com/outpost-robotics/outpost/capture/capturetest"
	"github.com/outpost-robotics/outpost/clock"
)

type fsHarness struct {
	t      *testing.T
	ctx    context.Context
	clk    *clock.Fake
	sink   *capturetest.Sink
	events chan capture.FileEvent
	seen   map[string]int64  // last size seen per path
	taken  map[string]string // path -> blob id
}

func newFSHarness(t *testing.T) *fsHarness {
	return &fsHarness{
		t: t, ctx: testCtx(t), clk: clock.NewFake(time.Unix(1_700_000_000, 0)), sink: capturetest.New(),
		events: make(chan capture.FileEvent, 20000), seen: map[string]int64{}, taken: map[string]string{},
	}
}

func (h *fsHarness) watch(f capture.Folder) *capture.FolderWatcher {
	h.t.Helper()
	w, err := capture.WatchFolder(h.ctx, capture.FileSyncOptions{Clock: h.clk, Sink: h.sink, OnEvent: func(e capture.FileEvent) { h.events <- e }}, f)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { _ = w.Close() })
	return w
}

// until consumes file events until done says so.
func (h *fsHarness) until(what string, done func() bool) {
	h.t.Helper()
	for !done() {
		select {
		case e := <-h.events:
			switch e.Kind {
			case capture.FileSeen:
				h.seen[e.Path] = e.Size
			case capture.FileTaken:
				h.taken[e.Path] = e.BlobID
			case capture.FileFailed:
				h.t.Fatalf("%s failed: %v", e.Path, e.Err)
			}
		case <-h.ctx.Done():
			h.t.Fatalf("waiting for %s: %v", what, h.ctx.Err())
		}
	}
}

func (h *fsHarness) advance(d time.Duration) {
	h.t.Helper()
	if err := h.clk.BlockUntil(h.ctx, 1); err != nil {
		h.t.Fatal(err)
	}
	h.clk.Advance(d)
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func content(i int) []byte { return bytes.Repeat([]byte(fmt.Sprintf("file %d\n", i)), 1+i%7) }

// TestFileSyncThousandFiles syncs 1,000 files: 100 there before the watch
// (the start-up rescan), 898 written into new nested folders made while it
// runs, one renamed into place (taken at once), and one still being written
// (taken only once quiet).
func TestFileSyncThousandFiles(t *testing.T) {
	h := newFSHarness(t)
	dir := t.TempDir()
	want := map[string][]byte{}
	for i := range 100 {
		p := filepath.Join(dir, "old", fmt.Sprintf("a%d", i%3), "b", fmt.Sprintf("f%03d.dat", i))
		want[p] = content(i)
		writeFile(t, p, want[p])
	}
	w := h.watch(capture.Folder{Path: dir, Quiet: 5 * time.Second, Tags: []string{"cam"}, Priority: 3})

	for i := 100; i < 998; i++ {
		p := filepath.Join(dir, "new", fmt.Sprintf("d%02d", i%30), "sub", fmt.Sprintf("f%03d.dat", i))
		want[p] = content(i)
		writeFile(t, p, want[p])
	}
	// Renamed into place: written under a temporary name, then renamed.
	renamed := filepath.Join(dir, "new", "d00", "renamed.jpg")
	want[renamed] = []byte("a complete image")
	writeFile(t, renamed+".tmp", want[renamed])
	if err := os.Rename(renamed+".tmp", renamed); err != nil {
		t.Fatal(err)
	}
	// Still being written: half now, the rest later.
	growing := filepath.Join(dir, "new", "d01", "growing.log")
	want[growing] = bytes.Repeat([]byte("x"), 2000)
	gf, err := os.Create(growing)
	if err != nil {
		t.Fatal(err)
	}
	defer gf.Close()
	if _, err := gf.Write(want[growing][:1000]); err != nil {
		t.Fatal(err)
	}

	h.until("every file seen and the renamed one taken", func() bool {
		for p, b := range want {
			if p == renamed {
				continue
			}
			size := int64(len(b))
			if p == growing {
				size = 1000
			}
			if h.seen[p] != size {
				return false
			}
		}
		return h.taken[renamed] != ""
	})
	if len(h.taken) != 1 {
		t.Fatalf("taken before any quiet period: %v", h.taken)
	}

	h.advance(3 * time.Second)
	if _, err := gf.Write(want[growing][1000:]); err != nil {
		t.Fatal(err)
	}
	h.until("the growing file's new size", func() bool { return h.seen[growing] == 2000 })
	h.advance(2 * time.Second) // 5s since the others changed, 2s since the growing file did
	h.until("the quiet files taken", func() bool { return len(h.taken) == 999 })
	if _, ok := h.taken[growing]; ok {
		t.Fatal("a file still being written was taken")
	}
	h.advance(3 * time.Second)
	h.until("the growing file taken", func() bool { return len(h.taken) == 1000 })

	for p, b := range want {
		blob, sealed := h.sink.Blob(h.taken[p])
		if !sealed || !bytes.Equal(blob, b) {
			t.Fatalf("%s: blob %q sealed %v, want %q", p, blob, sealed, b)
		}
	}
	caps, err := h.sink.Captures(capture.StreamCaptures)
	if err != nil {
		t.Fatal(err)
	}
	if len(caps) != 1000 {
		t.Fatalf("%d records, want 1000", len(caps))
	}
	for _, c := range caps {
		if c.Kind != "file" || c.File == nil || c.Tags[0] != "cam" || strings.HasPrefix(c.File.Path, "/") || c.File.Folder != dir {
			t.Fatalf("record %+v", c)
		}
	}
	if r := h.sink.Records(capture.StreamCaptures)[0]; r.Priority != 3 {
		t.Fatalf("priority %d", r.Priority)
	}
	// The folder did not opt in: a confirmation deletes nothing.
	if deleted, err := w.Confirmed(h.taken[renamed]); deleted || err != nil {
		t.Fatalf("confirmed without opt-in: %v %v", deleted, err)
	}
	for p := range want {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("user file touched: %v", err)
		}
	}
	if n := h.clk.Waiters(); n != 0 {
		t.Fatalf("%d timers armed with nothing pending", n)
	}
}

func TestDeleteAfterSyncAndRestart(t *testing.T) {
	h := newFSHarness(t)
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.bin"), filepath.Join(dir, "b.bin")
	writeFile(t, a, []byte("aaa"))
	writeFile(t, b, []byte("bbb"))
	folder := capture.Folder{Path: dir, DeleteAfterSync: true, Quiet: time.Second}
	w := h.watch(folder)
	h.until("both seen", func() bool { return len(h.seen) == 2 })
	h.advance(time.Second)
	h.until("both taken", func() bool { return len(h.taken) == 2 })

	// b is rewritten after it was taken: its confirmation must not delete
	// the new content.
	writeFile(t, b, []byte("bbb, longer now"))
	h.until("b's new content seen", func() bool { return h.seen[b] == 15 })
	if deleted, err := w.Confirmed(h.taken[b]); deleted || err != nil {
		t.Fatalf("confirm rewritten b: %v %v", deleted, err)
	}
	if deleted, err := w.Confirmed(h.taken[a]); !deleted || err != nil {
		t.Fatalf("confirm a: %v %v", deleted, err)
	}
	if _, err := os.Stat(a); !os.IsNotExist(err) {
		t.Fatalf("a not deleted: %v", err)
	}
	if _, err := os.Stat(b); err != nil {
		t.Fatalf("b deleted: %v", err)
	}

	// A restart rescans: the new b is pending, nothing is taken twice, and
	// a file taken before the restart is still deleted on confirmation.
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	c := filepath.Join(dir, "c.bin")
	writeFile(t, c, []byte("ccc"))
	h.seen = map[string]int64{}
	w2 := h.watch(folder)
	h.until("rescan", func() bool { return len(h.seen) == 2 })
	if _, ok := h.seen[c]; !ok || h.seen[b] != 15 {
		t.Fatalf("rescan saw %v", h.seen)
	}
	h.advance(time.Second)
	h.until("b and c taken", func() bool { return len(h.taken) == 3 })
	w3c := h.taken[c]
	_ = w2.Close()
	w3 := h.watch(folder)
	if len(h.events) != 0 {
		t.Fatalf("a rescan of taken files made events: %v", <-h.events)
	}
	if deleted, err := w3.Confirmed(w3c); !deleted || err != nil {
		t.Fatalf("confirm c after restart: %v %v", deleted, err)
	}
}

func TestFileSyncApply(t *testing.T) {
	h := newFSHarness(t)
	s := capture.NewFileSync(capture.FileSyncOptions{Clock: h.clk, Sink: h.sink})
	defer s.Close()
	err := s.Apply(h.ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(h.ctx, folders(t.TempDir(), "/nonexistent/outpost")); err == nil || !strings.Contains(err.Error(), "/nonexistent/outpost") {
		t.Fatalf("missing folder: %v", err)
	}
}

func folders(paths ...string) []*configv1.SyncFolder {
	var out []*configv1.SyncFolder
	for _, p := range paths {
		out = append(out, &configv1.SyncFolder{Path: p})
	}
	return out
}
