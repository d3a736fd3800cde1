package daemon

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/outpost-robotics/outpost/cache"
	"github.com/outpost-robotics/outpost/clock"
)

func TestStopListRunsNewestFirst(t *testing.T) {
	boom := errors.New("boom")
	for _, tc := range []struct {
		name     string
		shutdown bool
		want     []string
	}{
		{"shutdown runs every step", true, []string{"c", "b", "a"}},
		{"a failed start skips the shutdown-only steps", false, []string{"c", "a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ran []string
			step := func(name string, err error) func(context.Context) error {
				return func(context.Context) error { ran = append(ran, name); return err }
			}
			var l stopList
			l.push("close a", step("a", boom))
			l.pushShutdownOnly("b", step("b", nil))
			l.push("c", step("c", nil))
			err := l.run(context.Background(), tc.shutdown)
			if !slices.Equal(ran, tc.want) {
				t.Errorf("ran %v, want %v", ran, tc.want)
			}
			if !errors.Is(err, boom) || err.Error() != "close a: boom" {
				t.Errorf("run: %v, want the failing step's error under its name", err)
			}
			if len(l) != 0 {
				t.Errorf("%d steps left after run, want none", len(l))
			}
		})
	}
}

// TestFailedStartStopsWhatStarted starts a daemon whose control port is
// taken: start fails after the store, the log sink, the syncer, the robot
// and control started, and the stop list undoes them, so the store opens
// again; the steps for a daemon that ran (final sync, "stopped") do not run.
func TestFailedStartStopsWhatStarted(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	p := newPart(t)
	var stderr syncBuffer
	err = Run(context.Background(), Options{ConfigPath: p.BootPath, DataDir: p.DataDir, RuntimeDir: p.RunDir, Listen: taken.Addr().String(),
		MetricsListen: "-", Clock: clock.NewFake(epoch), Stderr: &stderr, LogFormat: "json", Signals: make(chan os.Signal)})
	if err == nil || !strings.Contains(err.Error(), "listen for the control plane") {
		t.Fatalf("Run on a taken port: %v, want a listen error", err)
	}
	st, err := cache.Open(context.Background(), filepath.Join(p.DataDir, "store"), cache.Options{Clock: clock.NewFake(epoch), GCInterval: -1})
	if err != nil {
		t.Fatalf("the failed start left the store open: %v", err)
	}
	defer st.Close()
	for _, unwanted := range []string{"final sync", `"msg":"stopped"`} {
		if strings.Contains(stderr.String(), unwanted) {
			t.Errorf("a failed start logged %q:\n%s", unwanted, tail(stderr.String()))
		}
	}
}
