// Package cputime reads the CPU time processes have used, for benchmarks
// that report CPU per operation: this process's own, and any process's
// on Linux from /proc; and it writes a process's CPU profile. It is a test
// helper; no binary links it.
package cputime

import (
	"bytes"
	"fmt"
	"os"
	"runtime/pprof"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// Self is the CPU time, user and system, this process has used so far.
func Self(tb testing.TB) time.Duration {
	tb.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatalf("read this process's CPU time: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Proc is what /proc/PID/stat says of a process.
type Proc struct {
	// PPID is its parent's pid.
	PPID int
	// CPU is its CPU time, user and system, so far.
	CPU time.Duration
	// System is the share of CPU spent in the kernel on its behalf.
	System time.Duration
}

// userHZ is the unit of /proc/PID/stat's times: USER_HZ, 100 on Linux.
const userHZ = 100

// Read reads process pid's /proc/PID/stat.
func Read(pid int) (Proc, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return Proc{}, fmt.Errorf("read process %d's CPU time: %w", pid, err)
	}
	// The fields after the command's closing parenthesis (the command
	// may hold spaces and parentheses): ppid is the 2nd, utime the 12th,
	// stime the 13th.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return Proc{}, fmt.Errorf("read process %d's CPU time: no command in %q", pid, b)
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 13 {
		return Proc{}, fmt.Errorf("read process %d's CPU time: %d fields in %q", pid, len(f), b)
	}
	ppid, err1 := strconv.Atoi(string(f[1]))
	ut, err2 := strconv.ParseInt(string(f[11]), 10, 64)
	st, err3 := strconv.ParseInt(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return Proc{}, fmt.Errorf("read process %d's CPU time: bad fields in %q", pid, b)
	}
	return Proc{PPID: ppid, CPU: time.Duration(ut+st) * time.Second / userHZ, System: time.Duration(st) * time.Second / userHZ}, nil
}

// Profile writes this process's CPU profile to path until stop is called:
// for one span of a benchmark, or for a benchmark's child process, neither
// of which the test framework's -test.cpuprofile gives.
func Profile(tb testing.TB, path string) (stop func()) {
	tb.Helper()
	f, err := os.Create(path)
	if err != nil {
		tb.Fatalf("CPU profile: %v", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		tb.Fatalf("CPU profile: %v", err)
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}
}
