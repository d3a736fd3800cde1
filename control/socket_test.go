package control

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestStartedByDaemon: this process stands for the daemon. Its child and
// the child's child are its own; pid 1 and this process itself are not.
func TestStartedByDaemon(t *testing.T) {
	self := int32(os.Getpid())
	cmd := exec.Command("/bin/sh", "-c", "sleep 60 & echo $!; wait")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	buf := make([]byte, 32)
	n, err := out.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	grandchild, err := strconv.Atoi(strings.TrimSpace(string(buf[:n])))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p, err := os.FindProcess(grandchild); err == nil {
			_ = p.Kill()
		}
	})
	ours := startedByDaemon(self, "/proc")
	for _, tc := range []struct {
		name string
		pid  int32
		want bool
	}{
		{"child", int32(cmd.Process.Pid), true},
		{"grandchild", int32(grandchild), true},
		{"the daemon itself", self, false},
		{"init", 1, false},
		{"a process that is gone", 1 << 30, true},
	} {
		if got := ours(tc.pid); got != tc.want {
			t.Errorf("%s (pid %d): started by the daemon = %v, want %v", tc.name, tc.pid, got, tc.want)
		}
	}
}

// TestStartedByDaemonService: under systemd every process the service
// started stays in its cgroup, even one that left the process tree by
// forking twice; a process elsewhere is not the service's. The procfs here
// is a folder laid out as /proc is, since a test cannot make cgroups.
func TestStartedByDaemonService(t *testing.T) {
	proc := t.TempDir()
	write := func(pid int, ppid int, cgroup string) {
		dir := filepath.Join(proc, strconv.Itoa(pid))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		stat := strconv.Itoa(pid) + " (a (strange) name) S " + strconv.Itoa(ppid) + " 1 1 0 -1\n"
		if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(stat), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "cgroup"), []byte("0::"+cgroup+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(100, 1, "/system.slice/outpostd.service")             // the daemon
	write(200, 1, "/system.slice/outpostd.service")             // a module that forked twice
	write(300, 250, "/user.slice/user-0.slice/session-4.scope") // sudo outpost robot --socket
	write(250, 1, "/user.slice/user-0.slice/session-4.scope")
	ours := startedByDaemon(100, proc)
	if !ours(200) {
		t.Error("a process in the service's cgroup, outside its process tree, is let in")
	}
	if ours(300) {
		t.Error("the admin's process in its own session is refused")
	}
	// Outside a service (a daemon run by hand) only the process tree counts.
	write(100, 1, "/user.slice/user-0.slice/session-4.scope")
	if startedByDaemon(100, proc)(300) {
		t.Error("outside a service, a process of the same session that the daemon did not start is refused")
	}
}
