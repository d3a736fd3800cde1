package cputime

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

func TestReadAgreesWithSelf(t *testing.T) {
	// Spend some CPU, so that both readings are well above a tick.
	x := 0
	for i := range 50_000_000 {
		x += i % 7
	}
	_ = x
	self := Self(t)
	p, err := Read(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if p.PPID != os.Getppid() {
		t.Errorf("PPID = %d, want %d", p.PPID, os.Getppid())
	}
	// /proc counts in ticks of 10 ms and getrusage finer: they agree to
	// within a few ticks.
	if d := self - p.CPU; d < -50e6 || d > 50e6 {
		t.Errorf("Read says %v, Self %v", p.CPU, self)
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	if d := time.Duration(ru.Stime.Nano()) - p.System; p.System < 0 || p.System > p.CPU || d < -50e6 || d > 50e6 {
		t.Errorf("Read says %v of %v in the kernel, getrusage %v", p.System, p.CPU, time.Duration(ru.Stime.Nano()))
	}
	if _, err := Read(-1); err == nil {
		t.Error("Read(-1) succeeded")
	}
}

func TestProfile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cpu.pprof")
	stop := Profile(t, path)
	x := 0
	for i := range 10_000_000 {
		x += i % 7
	}
	_ = x
	stop()
	if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
		t.Fatalf("the profile: %v, %v", fi, err)
	}
}
