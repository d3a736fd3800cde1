package control

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// maxSocketPath is the longest Unix socket path Linux takes: sun_path is
// 108 bytes, one of them the terminating NUL.
const maxSocketPath = 107

// DefaultSocketGroup is the group whose members may use the socket.
const DefaultSocketGroup = "outpost"

// ListenSocket listens on the break-glass Unix socket at path: mode 0660,
// group group (when it exists), so the file system admits root and that
// group. The listener checks each peer's credentials (SO_PEERCRED) again on
// accept, because a socket can be passed around: root, the daemon's own
// user, and members of group are let in; others are closed at once.
//
// Processes the daemon started are refused whatever their credentials:
// modules, configured processes and command sensors run as the daemon's
// user (under the hardened unit it has no capability to give them
// another), and the socket must not make them owners of the machine. A
// peer is the daemon's when its process descends from the daemon's, or,
// when the daemon runs as a systemd service, when it is in the service's
// cgroup, which a child cannot leave (forking twice leaves the process
// tree, not the cgroup; the unit makes the cgroup file system read-only).
// The daemon's own process (tests serve and call in one process) is let in.
func ListenSocket(path, group string) (net.Listener, error) {
	// The kernel's answer to a long path is a bare EINVAL; say what to do.
	if len(path) > maxSocketPath {
		return nil, fmt.Errorf("break-glass socket %s: the path is %d bytes, and a Unix socket's may be at most %d: choose a shorter --runtime-dir", path, len(path), maxSocketPath)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove stale socket %s: %w", path, err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on break-glass socket %s: %w", path, err)
	}
	gid := -1
	if g, err := user.LookupGroup(group); err == nil {
		if n, err := strconv.Atoi(g.Gid); err == nil {
			gid = n
		}
	}
	if gid >= 0 {
		if err := os.Chown(path, -1, gid); err != nil {
			ln.Close()
			return nil, fmt.Errorf("give socket %s to group %s: %w", path, group, err)
		}
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, fmt.Errorf("restrict socket %s: %w", path, err)
	}
	return &socketListener{Listener: ln, allowed: peerPolicy{self: uint32(os.Geteuid()), gid: gid, groupsOf: groupsOf},
		startedByUs: startedByDaemon(int32(os.Getpid()), "/proc")}, nil
}

// peerPolicy says who may use the socket.
type peerPolicy struct {
	self     uint32
	gid      int // -1 when the group does not exist
	groupsOf func(uid uint32) []int
}

func (p peerPolicy) allows(uid, gid uint32) bool {
	if uid == 0 || uid == p.self {
		return true
	}
	if p.gid < 0 {
		return false
	}
	return int(gid) == p.gid || slices.Contains(p.groupsOf(uid), p.gid)
}

// groupsOf returns uid's supplementary groups.
func groupsOf(uid uint32) []int {
	u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10))
	if err != nil {
		return nil
	}
	ids, err := u.GroupIds()
	if err != nil {
		return nil
	}
	var out []int
	for _, s := range ids {
		if n, err := strconv.Atoi(s); err == nil {
			out = append(out, n)
		}
	}
	return out
}

type socketListener struct {
	net.Listener
	allowed peerPolicy
	// startedByUs says a peer process is one the daemon started.
	startedByUs func(pid int32) bool
}

func (l *socketListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		cred, ok := peerUcred(c)
		if ok && l.allowed.allows(cred.Uid, cred.Gid) && !l.startedByUs(cred.Pid) {
			return c, nil
		}
		c.Close()
	}
}

// peerCred reads the peer's uid and gid of a Unix connection.
func peerCred(c net.Conn) (uid, gid uint32, ok bool) {
	cred, ok := peerUcred(c)
	return cred.Uid, cred.Gid, ok
}

// peerUcred reads the peer's credentials of a Unix connection, through
// wrappers that give the connection they wrap (netlimit's).
func peerUcred(c net.Conn) (syscall.Ucred, bool) {
	for {
		w, wraps := c.(interface{ NetConn() net.Conn })
		if !wraps {
			break
		}
		c = w.NetConn()
	}
	uc, isUnix := c.(*net.UnixConn)
	if !isUnix {
		return syscall.Ucred{}, false
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return syscall.Ucred{}, false
	}
	var cred *syscall.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil || cerr != nil {
		return syscall.Ucred{}, false
	}
	return *cred, true
}

// maxAncestry bounds the walk up the process tree.
const maxAncestry = 128

// startedByDaemon returns whether a process, read from procfs at proc, was
// started by the daemon of process self: it descends from self, or self
// runs in a systemd service's cgroup and so does it. A process it cannot
// read (gone already) counts as started by the daemon: refused.
func startedByDaemon(self int32, proc string) func(pid int32) bool {
	ownCgroup := cgroupOf(proc, self)
	service := strings.HasSuffix(ownCgroup, ".service")
	return func(pid int32) bool {
		if pid == self {
			return false
		}
		if service && cgroupOf(proc, pid) == ownCgroup {
			return true
		}
		p := pid
		for range maxAncestry {
			pp, ok := parentOf(proc, p)
			if !ok {
				return true
			}
			if pp == self {
				return true
			}
			if pp <= 1 {
				return false
			}
			p = pp
		}
		return true
	}
}

// parentOf reads a process's parent from procfs's stat: the fourth field,
// after the command name in parentheses (which may itself hold spaces and
// parentheses, so the last ")" ends it).
func parentOf(proc string, pid int32) (int32, bool) {
	b, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(int(pid)), "stat"))
	if err != nil {
		return 0, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0, false
	}
	pp, err := strconv.ParseInt(f[1], 10, 32)
	if err != nil {
		return 0, false
	}
	return int32(pp), true
}

// cgroupOf returns a process's cgroup v2 path ("" when unknown).
func cgroupOf(proc string, pid int32) string {
	b, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(int(pid)), "cgroup"))
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if path, ok := strings.CutPrefix(line, "0::"); ok {
			return path
		}
	}
	return ""
}

// peerUID returns a socket peer's uid for audit records (the listener has
// already admitted it).
func peerUID(c net.Conn) uint32 {
	uid, _, _ := peerCred(c)
	return uid
}
