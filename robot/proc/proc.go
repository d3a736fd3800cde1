// Package proc supervises child processes: sidecar processes from the config
// and module programs. Each child runs in its own process group, so stopping
// it stops its children too; its output goes into the logs line by line; it
// is restarted by its policy with exponential backoff timed by the injected
// clock; and Stop sends SIGTERM, then SIGKILL after the stop timeout.
package proc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/outpost-robotics/outpost/clock"
	"go.uber.org/zap"
)

// Policy says when a process is started again after it exits.
type Policy int

// The restart policies of the config (outpost.config.v1.RestartPolicy).
const (
	Always    Policy = iota // after any exit
	OnFailure               // after a non-zero exit or a death by signal
	Never                   // never
)

func (p Policy) String() string {
	switch p {
	case Always:
		return "always"
	case OnFailure:
		return "on-failure"
	case Never:
		return "never"
	}
	return fmt.Sprintf("Policy(%d)", int(p))
}

// Defaults for Spec and Options fields left zero.
const (
	DefaultStopTimeout = 10 * time.Second
	DefaultMinBackoff  = 100 * time.Millisecond
	DefaultMaxBackoff  = 30 * time.Second
	// DefaultStableAfter is how long a run must last for the next failure
	// to start the backoff from its minimum again.
	DefaultStableAfter = 10 * time.Second
	// CrashLoop is how many failed runs in a row, none lasting
	// StableAfter, make a process crash-looping: failing, not restarting.
	CrashLoop = 3
)

// Spec is what to run.
type Spec struct {
	// ID names the process in logs and status.
	ID string
	// Command is a path or a name looked up in PATH.
	Command string
	Args    []string
	// Env is added to the daemon's environment, as KEY=VALUE.
	Env []string
	// Dir is the working directory; empty means the daemon's.
	Dir string
	// Restart is the restart policy.
	Restart Policy
	// StopTimeout is how long after SIGTERM the group gets SIGKILL.
	StopTimeout time.Duration
	// ExtraFiles are passed as fds 3, 4, ... (a module gets its listening
	// socket this way). The supervisor does not close them.
	ExtraFiles []*os.File
}

// EventKind says what happened to a process.
type EventKind int

// The events a Supervisor reports.
const (
	EventStarted EventKind = iota + 1 // a run began (PID set)
	EventExited                       // a run ended (Err set when it failed)
	EventStopped                      // Stop finished; no more events follow
)

// Event is one thing that happened, for Options.OnEvent.
type Event struct {
	Kind EventKind
	PID  int
	// Err is why a run ended, nil for a clean exit.
	Err error
	// Restarting is whether the exit will be followed by a restart.
	Restarting bool
	// Restarts counts restarts so far.
	Restarts int
}

// Options are a supervisor's collaborators.
type Options struct {
	Clock clock.Clock
	Log   *zap.Logger
	// MinBackoff and MaxBackoff bound the wait before a restart; it doubles
	// from min to max with each failure in a row.
	MinBackoff, MaxBackoff time.Duration
	// StableAfter resets the backoff when a run lasted this long.
	StableAfter time.Duration
	// OnEvent, when set, is called for every event, in order, from the
	// supervisor's goroutine; it must not call Stop.
	OnEvent func(Event)
}

// State is where a supervised process stands.
type State int

// The states.
const (
	StateStarting State = iota
	StateRunning
	StateBackoff  // waiting to restart
	StateExited   // ended and, by its policy, not restarted
	StateStopping // Stop was called
	StateStopped  // stopped by Stop
)

func (s State) String() string {
	return [...]string{"starting", "running", "backoff", "exited", "stopping", "stopped"}[s]
}

// Status is a snapshot of a supervised process.
type Status struct {
	State    State
	PID      int
	Restarts int
	// LastErr is why the last run ended, nil after a clean exit.
	LastErr error
	// Failures counts the failed runs in a row, none of which lasted
	// StableAfter; it reads 0 once the current run has lasted that long.
	// At CrashLoop or more the process is crash-looping.
	Failures int
}

// Supervisor runs one process by its spec.
type Supervisor struct {
	spec Spec
	opts Options
	log  *zap.Logger

	stop chan struct{}
	done chan struct{}
	once sync.Once

	mu     sync.Mutex
	status Status
	// runStart is the uptime the current run started at.
	runStart time.Duration
}

// Start begins supervising spec; the first run starts at once.
func Start(spec Spec, opts Options) *Supervisor {
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = DefaultMinBackoff
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(DefaultMaxBackoff, opts.MinBackoff)
	}
	if opts.StableAfter <= 0 {
		opts.StableAfter = DefaultStableAfter
	}
	if spec.StopTimeout <= 0 {
		spec.StopTimeout = DefaultStopTimeout
	}
	s := &Supervisor{
		spec: spec, opts: opts,
		log:  opts.Log.With(zap.String("process", spec.ID)),
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	go s.run()
	return s
}

// Status returns a snapshot.
func (s *Supervisor) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.status
	if st.State == StateRunning && s.opts.Clock.Uptime()-s.runStart >= s.opts.StableAfter {
		st.Failures = 0 // running steadily again: the loop is over
	}
	return st
}

// Done is closed when the supervisor has stopped.
func (s *Supervisor) Done() <-chan struct{} { return s.done }

// Stop stops the process (SIGTERM to its group, SIGKILL after the stop
// timeout) and supervision. It returns when the process is gone, or with
// ctx's error if ctx ends first (the process is still killed in time).
func (s *Supervisor) Stop(ctx context.Context) error {
	s.once.Do(func() { close(s.stop) })
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop process %s: %w", s.spec.ID, ctx.Err())
	}
}

func (s *Supervisor) setState(f func(st *Status)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&s.status)
}

func (s *Supervisor) emit(e Event) {
	if s.opts.OnEvent != nil {
		s.opts.OnEvent(e)
	}
}

func (s *Supervisor) run() {
	defer close(s.done)
	defer s.emit(Event{Kind: EventStopped})
	failures := 0
	for {
		s.setState(func(st *Status) { st.State = StateStarting })
		began := s.opts.Clock.Uptime()
		exited, pid, err := s.start()
		if err == nil {
			s.setState(func(st *Status) { st.State, st.PID = StateRunning, pid })
			s.mu.Lock()
			s.runStart = began
			s.mu.Unlock()
			s.log.Info("process started", zap.Int("pid", pid))
			s.emit(Event{Kind: EventStarted, PID: pid, Restarts: s.Status().Restarts})
			select {
			case err = <-exited:
				// Children left behind by the leader belong to this run;
				// a restart must not pile them up.
				_ = syscall.Kill(-pid, syscall.SIGKILL)
			case <-s.stop:
				s.terminate(pid, exited)
				return
			}
		}
		restart := s.spec.Restart == Always || (s.spec.Restart == OnFailure && err != nil)
		// The state is final before the event goes out, so whoever acts on
		// the event reads the status it announces.
		lasted := s.opts.Clock.Uptime() - began
		s.setState(func(st *Status) {
			st.PID, st.LastErr = 0, err
			switch {
			case err == nil:
				st.Failures = 0
			case lasted >= s.opts.StableAfter:
				st.Failures = 1
			default:
				st.Failures++
			}
			// The run is over: a status read between this event and the
			// backoff must not report it running (and, once StableAfter
			// passed, its failures as reset).
			if restart {
				st.State = StateBackoff
			} else {
				st.State = StateExited
			}
		})
		if err != nil {
			s.log.Warn("process failed", zap.Error(err), zap.Bool("restarting", restart))
		} else {
			s.log.Info("process exited", zap.Bool("restarting", restart))
		}
		s.emit(Event{Kind: EventExited, PID: pid, Err: err, Restarting: restart, Restarts: s.Status().Restarts})
		if !restart {
			<-s.stop
			s.setState(func(st *Status) { st.State = StateStopped })
			return
		}
		// A run that lasted StableAfter starts the backoff over: a process
		// that crashes once a day is not punished like one in a crash loop.
		if lasted >= s.opts.StableAfter {
			failures = 0
		}
		wait := s.opts.MinBackoff << min(failures, 30)
		if wait > s.opts.MaxBackoff || wait <= 0 {
			wait = s.opts.MaxBackoff
		}
		failures++
		s.setState(func(st *Status) { st.State = StateBackoff })
		t := s.opts.Clock.NewTimer(wait)
		select {
		case <-t.C():
			s.setState(func(st *Status) { st.Restarts++ })
		case <-s.stop:
			t.Stop()
			s.setState(func(st *Status) { st.State = StateStopped })
			return
		}
	}
}

// start starts one run; exited delivers how it ended.
func (s *Supervisor) start() (exited <-chan error, pid int, err error) {
	cmd := exec.Command(s.spec.Command, s.spec.Args...)
	cmd.Dir = s.spec.Dir
	cmd.Env = append(os.Environ(), s.spec.Env...)
	cmd.ExtraFiles = s.spec.ExtraFiles
	// Its own process group, so that Stop reaches its children too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Our own pipes rather than io.Writers: exec would then wait in Wait
	// for a grandchild that keeps the pipe open; this way the logging
	// goroutines simply end at EOF.
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, 0, fmt.Errorf("start %s: %w", s.spec.Command, err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, 0, fmt.Errorf("start %s: %w", s.spec.Command, err)
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	err = cmd.Start()
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return nil, 0, fmt.Errorf("start %s: %w", s.spec.Command, err)
	}
	go s.logLines(outR, "stdout")
	go s.logLines(errR, "stderr")
	ch := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		if err != nil {
			err = fmt.Errorf("%s: %w", s.spec.Command, err)
		}
		ch <- err
	}()
	return ch, cmd.Process.Pid, nil
}

// logLines logs each line the process writes; a very long line is logged
// in 64 KiB pieces.
func (s *Supervisor) logLines(r io.ReadCloser, stream string) {
	defer r.Close()
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, _, err := br.ReadLine()
		if len(line) > 0 {
			s.log.Info(string(line), zap.String("stream", stream))
		}
		if err != nil {
			return
		}
	}
}

// terminate sends SIGTERM to the group and SIGKILL after the stop timeout.
func (s *Supervisor) terminate(pid int, exited <-chan error) {
	s.setState(func(st *Status) { st.State = StateStopping })
	if err := syscall.Kill(-pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		s.log.Warn("SIGTERM failed", zap.Error(err))
	}
	t := s.opts.Clock.NewTimer(s.spec.StopTimeout)
	defer t.Stop()
	var err error
	select {
	case err = <-exited:
		// The leader is gone; its children may not be, and they belong
		// to the process too.
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	case <-t.C():
		s.log.Warn("process ignored SIGTERM; killing", zap.Duration("stop_timeout", s.spec.StopTimeout))
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		err = <-exited
	}
	s.setState(func(st *Status) { st.State, st.PID, st.LastErr = StateStopped, 0, err })
	s.log.Info("process stopped")
}
