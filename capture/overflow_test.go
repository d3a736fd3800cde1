package capture

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/outpost-robotics/outpost/clock"
)

// TestOverflowRescans loses a file's events on purpose (its directory's
// watch is removed), then reports a kernel queue overflow: the rescan must
// find the file and watch the directory again.
func TestOverflowRescans(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	events := make(chan FileEvent, 10)
	fw, err := WatchFolder(ctx, FileSyncOptions{Clock: clock.NewFake(time.Unix(0, 0)), Sink: nopSink{}, OnEvent: func(e FileEvent) { events <- e }}, Folder{Path: dir, Quiet: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer fw.Close()
	if err := fw.w.Remove(sub); err != nil {
		t.Fatal(err)
	}
	lost := filepath.Join(sub, "lost.bin")
	if err := os.WriteFile(lost, []byte("no event for me"), 0o644); err != nil {
		t.Fatal(err)
	}
	fw.w.Errors <- fsnotify.ErrEventOverflow
	select {
	case e := <-events:
		if e.Kind != FileSeen || e.Path != lost {
			t.Fatalf("event %+v, want %s seen", e, lost)
		}
	case <-ctx.Done():
		t.Fatal("overflow did not rescan")
	}
	// sub is watched again: a new file there is seen through its events.
	again := filepath.Join(sub, "again.bin")
	if err := os.WriteFile(again, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case e := <-events:
			if e.Path == again {
				return
			}
		case <-ctx.Done():
			t.Fatal("directory not watched after the rescan")
		}
	}
}

// nopSink stores nothing: this test only looks at what is seen.
type nopSink struct{}

func (nopSink) Append(context.Context, Stream, Record) (uint64, error) { return 1, nil }
func (nopSink) Queue(context.Context, Stream, Record) (Queued, error)  { return nopQueued{}, nil }

type nopQueued struct{}

func (nopQueued) Done() <-chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}
func (nopQueued) Wait() (uint64, error) { return 1, nil }

func (nopSink) PutBlobChunk(context.Context, string, int64, []byte) error { return nil }
func (nopSink) SealBlob(context.Context, string) error                    { return nil }
func (nopSink) PutState(context.Context, string, []byte) error            { return nil }
func (nopSink) GetState(context.Context, string) ([]byte, error)          { return nil, ErrNotFound }
