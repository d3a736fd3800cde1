package proc

import (
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/outpost-robotics/outpost/clock"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

type harness struct {
	t      *testing.T
	clk    *clock.Fake
	events chan Event
	logs   *observer.ObservedLogs
	lines  chan string
	ctx    context.Context
}

func newHarness(t *testing.T) *harness {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return &harness{t: t, clk: clock.NewFake(time.Unix(1_700_000_000, 0)), events: make(chan Event, 100), lines: make(chan string, 100), ctx: ctx}
}

func (h *harness) start(spec Spec) *Supervisor {
	core, logs := observer.New(zapcore.DebugLevel)
	h.logs = logs
	log := zap.New(core, zap.Hooks(func(e zapcore.Entry) error {
		select {
		case h.lines <- e.Message:
		default:
		}
		return nil
	}))
	s := Start(spec, Options{Clock: h.clk, Log: log, OnEvent: func(e Event) { h.events <- e }})
	h.t.Cleanup(func() { _ = s.Stop(context.Background()) })
	return s
}

func (h *harness) next(kind EventKind) Event {
	h.t.Helper()
	select {
	case e := <-h.events:
		if e.Kind != kind {
			h.t.Fatalf("event %+v, want kind %d", e, kind)
		}
		return e
	case <-h.ctx.Done():
		h.t.Fatalf("no event of kind %d", kind)
	}
	return Event{}
}

// waitLine waits for the process to print want (it arrives through the log).
func (h *harness) waitLine(want string) {
	h.t.Helper()
	for {
		select {
		case l := <-h.lines:
			if l == want {
				return
			}
		case <-h.ctx.Done():
			h.t.Fatalf("process never printed %q", want)
		}
	}
}

// backoff advances the fake clock past the pending restart backoff.
func (h *harness) backoff(want time.Duration) {
	h.t.Helper()
	if err := h.clk.BlockUntil(h.ctx, 1); err != nil {
		h.t.Fatal(err)
	}
	d, ok := h.clk.NextDeadline()
	if !ok || d != want {
		h.t.Fatalf("backoff = %v (armed %v), want %v", d, ok, want)
	}
	h.clk.Advance(d)
}

func sh(script string, policy Policy) Spec {
	return Spec{ID: "p", Command: "/bin/sh", Args: []string{"-c", script}, Restart: policy, StopTimeout: 5 * time.Second}
}

func TestRestartPolicies(t *testing.T) {
	tests := []struct {
		name    string
		script  string
		policy  Policy
		restart bool
	}{
		{"always after success", "exit 0", Always, true},
		{"always after failure", "exit 1", Always, true},
		{"on-failure after failure", "exit 1", OnFailure, true},
		{"on-failure after success", "exit 0", OnFailure, false},
		{"never after failure", "exit 1", Never, false},
		{"never after success", "exit 0", Never, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			s := h.start(sh(tt.script, tt.policy))
			h.next(EventStarted)
			e := h.next(EventExited)
			if e.Restarting != tt.restart {
				t.Fatalf("restarting = %v, want %v", e.Restarting, tt.restart)
			}
			if (e.Err != nil) != strings.Contains(tt.script, "exit 1") {
				t.Fatalf("exit error %v for %q", e.Err, tt.script)
			}
			if !tt.restart {
				if st := s.Status(); st.State != StateExited && st.State != StateStopped {
					t.Fatalf("state %v, want exited", st.State)
				}
				if n := h.clk.Waiters(); n != 0 {
					t.Fatalf("%d timers armed for a process that is not restarted", n)
				}
				return
			}
			// Backoff doubles from 100ms: 100ms, 200ms, 400ms.
			for i, want := range []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond} {
				h.backoff(want)
				if e := h.next(EventStarted); e.Restarts != i+1 {
					t.Fatalf("restarts = %d, want %d", e.Restarts, i+1)
				}
				h.next(EventExited)
			}
			if err := s.Stop(h.ctx); err != nil {
				t.Fatal(err)
			}
			if st := s.Status(); st.State != StateStopped || st.Restarts != 3 {
				t.Fatalf("status after stop %+v", st)
			}
		})
	}
}

func TestBackoffResetsAfterStableRun(t *testing.T) {
	h := newHarness(t)
	dir := t.TempDir()
	// The process exits when the file "go" appears; the test decides how
	// long a run lasts on the fake clock before creating it.
	spec := sh(`echo up; while [ ! -e `+dir+`/go ]; do sleep 0.01; done; rm `+dir+`/go; exit 1`, OnFailure)
	h.start(spec)
	release := func() {
		h.waitLine("up")
		if err := os.WriteFile(dir+"/go", nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	h.next(EventStarted)
	release()
	h.next(EventExited)
	h.backoff(100 * time.Millisecond)
	h.next(EventStarted)
	release()
	h.next(EventExited)
	h.backoff(200 * time.Millisecond)
	h.next(EventStarted)
	h.clk.Advance(DefaultStableAfter) // a long, healthy run
	release()
	h.next(EventExited)
	h.backoff(100 * time.Millisecond)
}

func TestStopTermThenKill(t *testing.T) {
	t.Run("exits on SIGTERM", func(t *testing.T) {
		h := newHarness(t)
		s := h.start(sh(`trap 'echo bye; exit 0' TERM; echo ready; while :; do sleep 0.05; done`, Always))
		h.next(EventStarted)
		h.waitLine("ready")
		if err := s.Stop(h.ctx); err != nil {
			t.Fatal(err)
		}
		if st := s.Status(); st.State != StateStopped {
			t.Fatalf("state %v", st.State)
		}
	})
	t.Run("ignores SIGTERM, killed after the timeout, children too", func(t *testing.T) {
		h := newHarness(t)
		// The grandchild holds the write end of a pipe (fd 3): the read end
		// reaches EOF only once every process in the group is dead.
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		spec := sh(`trap '' TERM; sleep 1000 & echo ready; wait`, Always)
		spec.ExtraFiles = []*os.File{w}
		s := h.start(spec)
		h.next(EventStarted)
		w.Close()
		h.waitLine("ready")
		stopped := make(chan error, 1)
		go func() { stopped <- s.Stop(h.ctx) }()
		if err := h.clk.BlockUntil(h.ctx, 1); err != nil { // the stop timer
			t.Fatal(err)
		}
		if d, _ := h.clk.NextDeadline(); d != 5*time.Second {
			t.Fatalf("stop timer %v, want the 5s stop timeout", d)
		}
		select {
		case <-stopped:
			t.Fatal("stopped before the timeout although SIGTERM is ignored")
		default:
		}
		h.clk.Advance(5 * time.Second)
		if err := <-stopped; err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadAll(r); err != nil {
			t.Fatal(err)
		}
		// ReadAll returned: no process holds the pipe, the grandchild is dead.
	})
}

func TestOutputIsLogged(t *testing.T) {
	h := newHarness(t)
	h.start(sh(`echo to-stdout; echo to-stderr >&2; exit 0`, Never))
	h.next(EventStarted)
	h.next(EventExited)
	for _, want := range []string{"to-stdout", "to-stderr"} {
		for {
			if h.logs.FilterMessage(want).Len() == 1 {
				break
			}
			h.waitLine(want)
		}
	}
	if e := h.logs.FilterMessage("to-stderr").All()[0]; e.ContextMap()["stream"] != "stderr" || e.ContextMap()["process"] != "p" {
		t.Fatalf("stderr line fields %v", e.ContextMap())
	}
}

func TestStartFailure(t *testing.T) {
	h := newHarness(t)
	h.start(Spec{ID: "ghost", Command: "/nonexistent/program", Restart: OnFailure})
	e := h.next(EventExited)
	if e.Err == nil || !strings.Contains(e.Err.Error(), "/nonexistent/program") || !e.Restarting {
		t.Fatalf("event %+v", e)
	}
}

// TestFailuresCountACrashLoop: failed runs in a row are counted, so a
// process that keeps crashing reads as crash-looping (at CrashLoop) while
// it waits to restart; a run that lasts StableAfter reads 0 while it runs.
func TestFailuresCountACrashLoop(t *testing.T) {
	h := newHarness(t)
	dir := t.TempDir()
	spec := sh(`echo up; if [ -e `+dir+`/stay ]; then while [ ! -e `+dir+`/go ]; do sleep 0.01; done; fi; exit 1`, OnFailure)
	s := h.start(spec)
	for i, wait := range []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond} {
		h.next(EventStarted)
		h.next(EventExited)
		if st := s.Status(); st.Failures != i+1 {
			t.Fatalf("after crash %d: %+v", i+1, st)
		}
		if i == 2 {
			if err := os.WriteFile(dir+"/stay", nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		h.backoff(wait)
	}
	h.next(EventStarted)
	h.waitLine("up")
	if st := s.Status(); st.Failures != CrashLoop || st.State != StateRunning {
		t.Fatalf("running again right after a crash loop: %+v, want %d failures", st, CrashLoop)
	}
	h.clk.Advance(DefaultStableAfter)
	if st := s.Status(); st.Failures != 0 {
		t.Fatalf("after a stable run: %+v", st)
	}
	if err := os.WriteFile(dir+"/go", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	h.next(EventExited)
	if st := s.Status(); st.Failures != 1 {
		t.Fatalf("a crash after a stable run counts from 1: %+v", st)
	}
}
