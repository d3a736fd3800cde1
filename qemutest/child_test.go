package qemutest

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"testing"
)

// TestChild starts this test as a child that prints three lines and waits
// to be killed: the parent reads them in order, and Kill ends it and
// returns none left over.
func TestChild(t *testing.T) {
	if os.Getenv("OUTPOST_QEMUTEST_CHILD") != "" {
		// Waiting on a signal, not on nothing: a child whose goroutines
		// all block forever is ended by the runtime's deadlock check,
		// before the parent's SIGKILL when the machine is slow.
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
		defer stop()
		fmt.Println("ready")
		fmt.Println("one")
		fmt.Println("two")
		<-ctx.Done()
		return
	}
	c := StartChild(t, "TestChild", "OUTPOST_QEMUTEST_CHILD=1")
	if !c.Ready(t) {
		t.Fatal("the child's output ended before it was ready")
	}
	for _, want := range []string{"one", "two"} {
		if l, ok := c.Next(); !ok || l != want {
			t.Fatalf("Next = %q, %v; want %q", l, ok, want)
		}
	}
	if rest := c.Kill(t); len(rest) != 0 {
		t.Errorf("Kill returned %q, want nothing left", rest)
	}
	if l, ok := c.Next(); ok {
		t.Errorf("Next after Kill = %q, want the end", l)
	}
}

// TestChildStop starts this test as a child that echoes what it is sent
// and serves until its stdin closes, then says so: Stop ends it and
// returns that last line, which a child killed would not have printed.
func TestChildStop(t *testing.T) {
	if os.Getenv("OUTPOST_QEMUTEST_STOP") != "" {
		fmt.Println("ready")
		in := bufio.NewScanner(os.Stdin)
		for in.Scan() {
			fmt.Println("got " + in.Text())
		}
		fmt.Println("stopped")
		return
	}
	c := StartChild(t, "TestChildStop", "OUTPOST_QEMUTEST_STOP=1")
	if !c.Ready(t) {
		t.Fatal("the child's output ended before it was ready")
	}
	if c.Pid() <= 0 || c.Pid() == os.Getpid() {
		t.Errorf("Pid = %d", c.Pid())
	}
	c.Send(t, "hello")
	if l, ok := c.Next(); !ok || l != "got hello" {
		t.Fatalf("Next = %q, %v; want the child's answer", l, ok)
	}
	rest := c.Stop(t)
	if len(rest) == 0 || rest[0] != "stopped" {
		t.Errorf("Stop returned %q, want the child's last line first", rest)
	}
}
