package demo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/outpost-robotics/outpost/clock"
)

// child is a long-running program the demo started: the cloud or a part's
// daemon. It runs in its own process group, so a Ctrl-C at the terminal
// reaches the demo only, which then stops its children in order, and so a
// kill takes anything the child started with it.
type child struct {
	name string
	cmd  *exec.Cmd
	log  string // the file holding its stdout and stderr
	done chan struct{}
	err  error // how it exited; set before done is closed
}

// children are the programs the demo runs; killAll ends every one still
// running.
type children struct {
	mu   sync.Mutex
	list []*child
}

// start runs bin with args, its output appended to logPath.
func (cs *children) start(name, logPath string, env []string, bin string, args ...string) (*child, error) {
	out, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = out, out
	// Pdeathsig is a backstop for a demo killed with SIGKILL, which runs no
	// cleanup: the kernel then kills the child too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		out.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		out.Close()
		close(c.done)
	}()
	cs.mu.Lock()
	cs.list = append(cs.list, c)
	cs.mu.Unlock()
	return c, nil
}

// running says whether the child has not exited yet.
func (c *child) running() bool {
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// stop asks the child to exit with SIGTERM and waits up to grace for it,
// then kills its process group. It returns how long the child took and how
// it exited: nil for exit status 0 after SIGTERM.
func (c *child) stop(ctx context.Context, clk clock.Clock, grace time.Duration) (time.Duration, error) {
	start := clk.Uptime()
	if !c.running() {
		return 0, fmt.Errorf("%s had already exited: %v", c.name, c.exitDesc())
	}
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return 0, fmt.Errorf("stop %s: %w", c.name, err)
	}
	t := clk.NewTimer(grace)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C():
		c.kill()
		return clk.Uptime() - start, fmt.Errorf("%s did not exit within %s of SIGTERM; killed it", c.name, grace)
	case <-ctx.Done():
		c.kill()
		return clk.Uptime() - start, ctx.Err()
	}
	took := clk.Uptime() - start
	if c.err != nil {
		return took, fmt.Errorf("%s exited after SIGTERM with %s", c.name, c.exitDesc())
	}
	return took, nil
}

// kill ends the child's process group at once and waits for the child.
func (c *child) kill() {
	if c.running() {
		// The group's id is the child's pid (Setpgid).
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
	}
	<-c.done
}

// exitDesc says how the child exited, with the last line it wrote.
func (c *child) exitDesc() string {
	desc := "exit status 0"
	if c.err != nil {
		desc = c.err.Error()
	}
	if last := lastLines(c.log, 1); last != "" {
		desc += ", last output: " + clip(last, 300)
	}
	return desc
}

// killAll kills every child still running, newest first.
func (cs *children) killAll() {
	cs.mu.Lock()
	list := append([]*child(nil), cs.list...)
	cs.mu.Unlock()
	for i := len(list) - 1; i >= 0; i-- {
		list[i].kill()
	}
}

// lastLines is the last n lines of a file ("" when unreadable).
func lastLines(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// freePorts returns n distinct free TCP ports on 127.0.0.1, found by
// listening on port 0. All n are held until all are known, so they differ;
// another program could still take one before the demo's child binds it,
// which the child then reports as an error.
func freePorts(n int) ([]string, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	var addrs []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port on 127.0.0.1: %w", err)
		}
		lns = append(lns, ln)
		addrs = append(addrs, ln.Addr().String())
	}
	return addrs, nil
}

// runResult is what one command run by the demo did.
type runResult struct {
	stdout, stderr []byte
	exitErr        error // nil when it exited 0
}

// runCmd runs a short command to completion, in its own process group so
// a Ctrl-C meant for the demo does not interrupt it halfway; ctx ending
// kills it.
func runCmd(ctx context.Context, env []string, stdin string, bin string, args ...string) (runResult, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &limitedBuffer{b: &stdout}, &limitedBuffer{b: &stderr}
	err := cmd.Run()
	res := runResult{stdout: stdout.Bytes(), stderr: stderr.Bytes()}
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		res.exitErr = err
		return res, nil
	}
	if err != nil {
		return res, fmt.Errorf("run %s: %w", bin, err)
	}
	return res, nil
}

// limitedBuffer keeps at most maxOutput bytes and drops the rest, so a
// runaway command cannot fill the demo's memory.
type limitedBuffer struct{ b *bytes.Buffer }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := maxOutput + 1 - l.b.Len(); room > 0 {
		l.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
