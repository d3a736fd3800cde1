package control

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"slices"
	"strconv"
	"syscall"
)

// DefaultSocketPath is the break-glass socket (systemd's RuntimeDirectory).
const DefaultSocketPath = "/run/outpost/control.sock"

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
	return &socketListener{Listener: ln, allowed: peerPolicy{self: uint32(os.Geteuid()), gid: gid, groupsOf: groupsOf}}, nil
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
}

func (l *socketListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		uid, gid, ok := peerCred(c)
		if ok && l.allowed.allows(uid, gid) {
			return c, nil
		}
		c.Close()
	}
}

// peerCred reads the peer's uid and gid of a Unix connection, through
// wrappers that give the connection they wrap (netlimit's).
func peerCred(c net.Conn) (uid, gid uint32, ok bool) {
	for {
		w, wraps := c.(interface{ NetConn() net.Conn })
		if !wraps {
			break
		}
		c = w.NetConn()
	}
	uc, isUnix := c.(*net.UnixConn)
	if !isUnix {
		return 0, 0, false
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return 0, 0, false
	}
	var cred *syscall.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil || cerr != nil {
		return 0, 0, false
	}
	return cred.Uid, cred.Gid, true
}

// peerUID returns a socket peer's uid for audit records (the listener has
// already admitted it).
func peerUID(c net.Conn) uint32 {
	uid, _, _ := peerCred(c)
	return uid
}
