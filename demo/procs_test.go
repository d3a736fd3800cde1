package demo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/outpost-robotics/outpost/clock"
)

// waitGone polls until pid is gone or a zombie, with a generous deadline:
// a killed orphan is reaped by init, whenever init gets to it.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	clk := clock.NewReal()
	for start := clk.Uptime(); clk.Uptime()-start < 30*time.Second; {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if errors.Is(err, os.ErrNotExist) {
			return
		}
		// The state follows the command name in parentheses.
		if i := bytes.LastIndexByte(b, ')'); err == nil && i >= 0 && bytes.HasPrefix(b[i+1:], []byte(" Z")) {
			return
		}
		if err := clk.Sleep(context.Background(), 10*time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	t.Fatalf("process %d still runs", pid)
}

// readPID waits for a child to write its grandchild's pid into path.
func readPID(t *testing.T, path string) int {
	t.Helper()
	clk := clock.NewReal()
	for start := clk.Uptime(); clk.Uptime()-start < 30*time.Second; {
		if b, err := os.ReadFile(path); err == nil && strings.HasSuffix(string(b), "\n") {
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				t.Fatal(err)
			}
			return pid
		}
		if err := clk.Sleep(context.Background(), 10*time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	t.Fatalf("no pid in %s", path)
	return 0
}

func TestChildStop(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var cs children
	defer cs.killAll()

	t.Run("exits 0 on SIGTERM", func(t *testing.T) {
		ready := filepath.Join(dir, "ready")
		c, err := cs.start("sh", filepath.Join(dir, "ok.log"), nil, "/bin/sh", "-c", `trap 'echo bye; exit 0' TERM; echo $$ > `+ready+`; while :; do sleep 0.05; done`)
		if err != nil {
			t.Fatal(err)
		}
		readPID(t, ready) // the trap is set
		if _, err := c.stop(ctx, clock.NewReal(), time.Minute); err != nil {
			t.Fatalf("stop: %v", err)
		}
		if got := lastLines(c.log, 1); got != "bye" {
			t.Fatalf("last output %q", got)
		}
	})

	t.Run("a non-zero exit is an error naming the last output", func(t *testing.T) {
		c, err := cs.start("sh", filepath.Join(dir, "fail.log"), nil, "/bin/sh", "-c", `echo "shut down: it went wrong"; exit 3`)
		if err != nil {
			t.Fatal(err)
		}
		<-c.done
		_, err = c.stop(ctx, clock.NewReal(), time.Minute)
		if err == nil || !strings.Contains(err.Error(), "exit status 3") || !strings.Contains(err.Error(), "it went wrong") {
			t.Fatalf("stop: %v", err)
		}
	})

	t.Run("ignoring SIGTERM gets the whole group killed after the grace", func(t *testing.T) {
		pidFile := filepath.Join(dir, "grandchild")
		c, err := cs.start("sh", filepath.Join(dir, "stubborn.log"), nil, "/bin/sh", "-c", `trap '' TERM; sleep 600 & echo $! > `+pidFile+`; wait; wait`)
		if err != nil {
			t.Fatal(err)
		}
		grandchild := readPID(t, pidFile)
		clk := clock.NewFake(time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC))
		errc := make(chan error, 1)
		go func() { _, err := c.stop(ctx, clk, 10*time.Second); errc <- err }()
		if err := clk.BlockUntil(ctx, 1); err != nil {
			t.Fatal(err)
		}
		clk.Advance(10 * time.Second)
		if err := <-errc; err == nil || !strings.Contains(err.Error(), "did not exit within 10s") {
			t.Fatalf("stop: %v", err)
		}
		waitGone(t, grandchild)
	})

	t.Run("killAll ends what runs", func(t *testing.T) {
		pidFile := filepath.Join(dir, "sleeper")
		c, err := cs.start("sh", filepath.Join(dir, "sleeper.log"), nil, "/bin/sh", "-c", `sleep 600 & echo $! > `+pidFile+`; wait`)
		if err != nil {
			t.Fatal(err)
		}
		grandchild := readPID(t, pidFile)
		cs.killAll()
		if c.running() {
			t.Fatal("still running")
		}
		waitGone(t, grandchild)
	})
}

func TestRunCmd(t *testing.T) {
	ctx := context.Background()
	res, err := runCmd(ctx, nil, "piped in", "/bin/sh", "-c", `cat; echo oops >&2; exit 4`)
	if err != nil {
		t.Fatal(err)
	}
	if string(res.stdout) != "piped in" || string(res.stderr) != "oops\n" || res.exitErr == nil {
		t.Fatalf("runCmd = %q %q %v", res.stdout, res.stderr, res.exitErr)
	}
	if _, err := runCmd(ctx, nil, "", filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("ran a missing program")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := runCmd(cctx, nil, "", "/bin/sh", "-c", "sleep 600"); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

func TestFreePorts(t *testing.T) {
	addrs, err := freePorts(5)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, a := range addrs {
		host, _, err := net.SplitHostPort(a)
		if err != nil || host != "127.0.0.1" || seen[a] {
			t.Fatalf("addresses %v", addrs)
		}
		seen[a] = true
	}
}
