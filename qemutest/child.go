package qemutest

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"testing"
)

// Child is this test binary started again as a child process: the parent
// side of a crash test, or of a benchmark that serves from a process of its
// own. The child runs the named test with its environment, does the work
// under test and prints a line per result; the parent reads them with Next
// while it runs and gets the rest from Kill, or, for a child that serves
// until its stdin closes (and so never outlives its parent), from Stop.
type Child struct {
	test  string
	proc  *os.Process
	stdin io.WriteCloser
	wait  func() error
	state *os.ProcessState
	done  chan struct{}

	mu    sync.Mutex
	cond  *sync.Cond
	lines []string
	next  int  // the first line Next has not returned
	ended bool // the child's output ended
}

// StartChild starts os.Args[0] running only the test named test (through
// the emulator when these tests run emulated), with env added to this
// process's environment and its stderr on this one's. A child still
// running when t ends is killed.
func StartChild(t testing.TB, test string, env ...string) *Child {
	t.Helper()
	cmd := Command(os.Args[0], "-test.run=^"+test+"$", "-test.v=false")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the child of %s: %v", test, err)
	}
	c := &Child{test: test, proc: cmd.Process, stdin: in, done: make(chan struct{})}
	c.cond = sync.NewCond(&c.mu)
	c.wait = func() error {
		err := cmd.Wait()
		c.state = cmd.ProcessState
		return err
	}
	// Lines are kept however many the child prints, so the reader never
	// blocks and the child never waits on its pipe.
	go func() {
		defer close(c.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			c.mu.Lock()
			c.lines = append(c.lines, sc.Text())
			c.cond.Broadcast()
			c.mu.Unlock()
		}
		c.mu.Lock()
		c.ended = true
		c.cond.Broadcast()
		c.mu.Unlock()
	}()
	t.Cleanup(func() {
		if c.state == nil {
			_ = c.proc.Kill()
			<-c.done
			_ = c.wait()
		}
	})
	return c
}

// Pid is the child's process id.
func (c *Child) Pid() int { return c.proc.Pid }

// Send writes line to the child's stdin.
func (c *Child) Send(t testing.TB, line string) {
	t.Helper()
	if _, err := fmt.Fprintln(c.stdin, line); err != nil {
		t.Fatalf("write to the child of %s: %v", c.test, err)
	}
}

// Next waits for the child's next line; false once its output ended.
func (c *Child) Next() (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.next == len(c.lines) && !c.ended {
		c.cond.Wait()
	}
	if c.next == len(c.lines) {
		return "", false
	}
	c.next++
	return c.lines[c.next-1], true
}

// Ready waits for the child's first line and fails t unless it is
// "ready"; it reports false when the child's output ended first.
func (c *Child) Ready(t testing.TB) bool {
	t.Helper()
	l, ok := c.Next()
	if ok && l != "ready" {
		t.Fatalf("child said %q, want ready", l)
	}
	return ok
}

// Kill sends SIGKILL, waits for the child and its output to end, fails t
// unless the signal is what ended it, and returns the lines Next had not
// returned.
func (c *Child) Kill(t testing.TB) []string {
	t.Helper()
	if err := c.proc.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill the child: %v", err)
	}
	rest := c.finish()
	if st, ok := c.state.Sys().(syscall.WaitStatus); !ok || !st.Signaled() {
		t.Fatalf("the child ended on its own: %v", c.state)
	}
	return rest
}

// finish waits for the child and its output to end and returns the lines
// Next had not returned.
func (c *Child) finish() []string {
	_ = c.stdin.Close()
	<-c.done
	_ = c.wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	rest := c.lines[c.next:]
	c.next = len(c.lines)
	return rest
}

// Stop closes the child's stdin, the cue for a child that serves until
// then, waits for it and its output to end, fails t unless it ended well,
// and returns the lines Next had not returned.
func (c *Child) Stop(t testing.TB) []string {
	t.Helper()
	rest := c.finish()
	if !c.state.Success() {
		t.Errorf("the child of %s: %v", c.test, c.state)
	}
	return rest
}
