package builtin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"time"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/robot/component"
)

// DefaultCommandTimeout bounds a command sensor's run when its config names
// no timeout.
const DefaultCommandTimeout = 5 * time.Second

// maxCommandOutput bounds what a command sensor reads: readings are small.
const maxCommandOutput = 1 << 20

// ErrCommandTimeout is returned when a command sensor's program outlives its
// timeout (it is killed, with its children).
var ErrCommandTimeout = errors.New("command timed out")

// CommandSensor runs a program on every Readings call and parses its
// standard output as a JSON object of readings.
type CommandSensor struct {
	fake
	clk     clock.Clock
	command string
	args    []string
	timeout time.Duration
}

func commandSensorCtor(opts Options) component.Constructor {
	return func(_ context.Context, cfg *configv1.Component, _ component.Deps) (component.Component, error) {
		attrs := cfg.GetAttributes().GetFields()
		s := &CommandSensor{fake: fake{name: cfg.GetName()}, clk: opts.Clock, command: attrs["command"].GetStringValue(), timeout: DefaultCommandTimeout}
		if s.command == "" {
			return nil, errors.New("no command attribute")
		}
		for _, a := range attrs["args"].GetListValue().GetValues() {
			s.args = append(s.args, a.GetStringValue())
		}
		if t := attrs["timeout"].GetStringValue(); t != "" {
			d, err := time.ParseDuration(t)
			if err != nil || d <= 0 {
				return nil, fmt.Errorf("timeout %q: want a positive duration", t)
			}
			s.timeout = d
		}
		return s, nil
	}
}

// limitedBuffer keeps the first max bytes and notes that more came.
type limitedBuffer struct {
	bytes.Buffer
	max       int
	truncated bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); room < len(p) {
		b.truncated = true
		if room > 0 {
			b.Buffer.Write(p[:room])
		}
		return len(p), nil
	}
	return b.Buffer.Write(p)
}

// Readings runs the program and parses its output.
func (s *CommandSensor) Readings(ctx context.Context) (map[string]any, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The timeout runs on the injected clock, so a test drives it.
	timer := s.clk.NewTimer(s.timeout)
	defer timer.Stop()
	timedOut := make(chan struct{})
	go func() {
		select {
		case <-timer.C():
			close(timedOut)
			cancel()
		case <-ctx.Done():
		}
	}()

	cmd := exec.CommandContext(ctx, s.command, s.args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Kill the whole group: a shell script's children hold stdout open, and
	// Wait would otherwise wait for them.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	stdout := &limitedBuffer{max: maxCommandOutput}
	stderr := &limitedBuffer{max: 4 << 10}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	err := cmd.Run()
	select {
	case <-timedOut:
		return nil, fmt.Errorf("command sensor %q: %s: %w after %v", s.name, s.command, ErrCommandTimeout, s.timeout)
	default:
	}
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return nil, fmt.Errorf("command sensor %q: %s exited with %v; stderr: %q", s.name, s.command, exit.ProcessState, tail(stderr.String(), 512))
		}
		return nil, fmt.Errorf("command sensor %q: run %s: %w", s.name, s.command, err)
	}
	if stdout.truncated {
		return nil, fmt.Errorf("command sensor %q: %s printed more than %d bytes", s.name, s.command, maxCommandOutput)
	}
	var readings map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &readings); err != nil || readings == nil {
		if err == nil {
			err = errors.New("null")
		}
		return nil, fmt.Errorf("command sensor %q: %s: output is not a JSON object (%v); it began %q", s.name, s.command, err, head(stdout.String(), 80))
	}
	return readings, nil
}

func head(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
