package qemutest

import (
	"fmt"
	"os"
	"testing"
)

// TestChild starts this test as a child that prints three lines and waits
// to be killed: the parent reads them in order, and Kill ends it and
// returns none left over.
func TestChild(t *testing.T) {
	if os.Getenv("OUTPOST_QEMUTEST_CHILD") != "" {
		fmt.Println("ready")
		fmt.Println("one")
		fmt.Println("two")
		select {}
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
