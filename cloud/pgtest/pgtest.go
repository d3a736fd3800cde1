// Package pgtest runs a real PostgreSQL server for tests: Debian's
// PostgreSQL (scripts/deps installs it), a private cluster in a temporary
// folder, listening only on a Unix socket in that folder (no TCP port, no
// Docker), and a fresh database for each test that asks.
//
// A test binary that uses it calls Main from TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
// and each test takes a database with Database, which returns its URL and
// drops it when the test ends. The binary's server starts with the first
// test that asks (a run that selects no such test starts nothing) and Main
// stops it and removes its folder once the tests are done. That one server
// is this package's only package-level state: a test binary has one
// cluster, shared by its tests, each in its own database. Start runs a
// server a test owns, for a test that stops and restarts PostgreSQL.
//
// PostgreSQL refuses to run as root, and tests here run as root (CI is a
// fresh Debian machine): as root, initdb and postgres run as the postgres
// account Debian's package creates (nobody where there is none), through
// the credentials of the child process, and the folder is that account's,
// mode 0700, so no other user reaches the socket. The server is the
// test process's child with a parent-death signal, so a test binary that is
// killed (a timeout) takes its server with it.
//
// Without PostgreSQL, the tests that ask for it fail, saying to run
// scripts/deps: a test that needs a real server never passes without one.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Superuser is the role every connection uses: the cluster's owner, whose
// local connections are trusted (only its account reaches the socket).
const Superuser = "postgres"

// startTimeout bounds how long a server may take to accept connections:
// generous, so a loaded machine is slow rather than failing.
const startTimeout = 2 * time.Minute

// shared is the test binary's server, started by the first Database call
// and stopped by Main.
var shared struct {
	mu      sync.Mutex
	running bool // Main is running the tests
	srv     *Server
	err     error // why the server could not start, for every later test
}

// Main runs the tests of a binary that uses Database, then stops the
// binary's server, if one started, and exits with the tests' status.
func Main(m *testing.M) {
	shared.mu.Lock()
	shared.running = true
	shared.mu.Unlock()
	code := m.Run()
	shared.mu.Lock()
	srv := shared.srv
	shared.srv, shared.running = nil, false
	shared.mu.Unlock()
	if srv != nil {
		if err := srv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest:", err)
			if code == 0 {
				code = 1
			}
		}
	}
	os.Exit(code)
}

// Database creates a new, empty database on the test binary's server and
// returns its URL; the database is dropped when the test ends, so whatever
// uses it must be closed first (a Cleanup registered after this call is).
// The test binary's TestMain must call Main.
func Database(tb testing.TB) string {
	tb.Helper()
	srv := sharedServer(tb)
	name := "t_" + randomHex(8)
	ctx := context.Background()
	if err := srv.CreateDatabase(ctx, name); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := srv.DropDatabase(context.Background(), name); err != nil {
			tb.Error(err)
		}
	})
	return srv.URL(name)
}

func sharedServer(tb testing.TB) *Server {
	tb.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if !shared.running {
		tb.Fatal("pgtest: the test binary's TestMain must call pgtest.Main(m), which stops the server the tests share")
	}
	if shared.srv == nil && shared.err == nil {
		dir, err := newDir()
		if err == nil {
			shared.srv, err = Start(context.Background(), dir)
			if err != nil {
				_ = os.RemoveAll(dir)
			}
		}
		shared.err = err
	}
	if shared.err != nil {
		tb.Fatal(shared.err)
	}
	return shared.srv
}

// NewServer starts a server that the test owns, in a new folder, and stops
// it and removes the folder when the test ends: for a test that stops and
// restarts PostgreSQL under a store.
func NewServer(tb testing.TB) *Server { return newServer(tb, false) }

// NewDurableServer is NewServer with every commit synced to disk, as in
// production, for benchmarks: the other servers skip syncing, which tests
// do not need and which would make them crawl.
func NewDurableServer(tb testing.TB) *Server { return newServer(tb, true) }

func newServer(tb testing.TB, durable bool) *Server {
	tb.Helper()
	dir, err := newDir()
	if err != nil {
		tb.Fatal(err)
	}
	srv, err := start(context.Background(), dir, durable)
	if err != nil {
		_ = os.RemoveAll(dir)
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := srv.Stop(); err != nil {
			tb.Error(err)
		}
	})
	return srv
}

// Server is one running PostgreSQL cluster.
type Server struct {
	// Dir holds the cluster (Dir/data), its log and its socket.
	Dir     string
	bin     string
	durable bool
	cmd     *exec.Cmd
	// exited is closed when the server process has exited; waitErr is why.
	exited  chan struct{}
	waitErr error
}

// newDir makes a folder for a cluster: short, so the socket's path fits
// the 107 bytes a Unix socket allows, and owned by the account the server
// runs as.
func newDir() (string, error) {
	if _, _, err := binaries(); err != nil {
		return "", err
	}
	parent := os.TempDir()
	if len(parent) > 60 {
		parent = "/tmp"
	}
	dir, err := os.MkdirTemp(parent, "pgtest-")
	if err != nil {
		return "", fmt.Errorf("pgtest: make the cluster's folder: %w", err)
	}
	if cred, err := serverCredential(); err != nil {
		_ = os.RemoveAll(dir)
		return "", err
	} else if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			_ = os.RemoveAll(dir)
			return "", fmt.Errorf("pgtest: give the cluster's folder to the server's account: %w", err)
		}
	}
	return dir, nil
}

// binaries finds initdb and postgres: Debian's newest version under
// /usr/lib/postgresql, else the PATH.
func binaries() (initdb, postgres string, err error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return vb - va
	})
	for _, d := range dirs {
		i, p := filepath.Join(d, "initdb"), filepath.Join(d, "postgres")
		if isFile(i) && isFile(p) {
			return i, p, nil
		}
	}
	if p, err := exec.LookPath("postgres"); err == nil {
		if i := filepath.Join(filepath.Dir(p), "initdb"); isFile(i) {
			return i, p, nil
		}
	}
	return "", "", errors.New("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/postgres and none on PATH): scripts/deps installs it (Debian package postgresql)")
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// serverCredential is the account the server runs as when the tests run
// as root (PostgreSQL refuses root), or nil to run as the test's own user.
func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil || uid == 0 {
			continue
		}
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
	}
	return nil, errors.New("pgtest: running as root, and neither a postgres nor a nobody account exists to run PostgreSQL as: scripts/deps installs PostgreSQL, which creates the postgres account")
}

// StartTemp starts a server in a new folder of its own, for a program
// outside tests (the demo's --postgres); Stop ends it and removes the
// folder.
func StartTemp(ctx context.Context) (*Server, error) {
	dir, err := newDir()
	if err != nil {
		return nil, err
	}
	srv, err := start(ctx, dir, false)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return srv, nil
}

// Start runs a server on the cluster in dir, creating the cluster when
// dir has none; dir must belong to the account the server runs as (see
// the package comment). The server listens only on a Unix socket in dir.
func Start(ctx context.Context, dir string) (*Server, error) { return start(ctx, dir, false) }

func start(ctx context.Context, dir string, durable bool) (*Server, error) {
	initdb, postgres, err := binaries()
	if err != nil {
		return nil, err
	}
	cred, err := serverCredential()
	if err != nil {
		return nil, err
	}
	s := &Server{Dir: dir, bin: postgres, durable: durable}
	data := filepath.Join(dir, "data")
	if _, err := os.Stat(filepath.Join(data, "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		// C collation: text sorts by byte, as the stores' contracts say.
		cmd := exec.CommandContext(ctx, initdb, "-D", data, "-U", Superuser, "--auth=trust",
			"--encoding=UTF8", "--no-locale", "--no-sync")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "LC_ALL=C", "TZ=UTC")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("pgtest: initdb in %s: %w\n%s", data, err, out)
		}
	}
	if err := s.start(cred); err != nil {
		return nil, err
	}
	if err := s.waitReady(ctx); err != nil {
		_ = s.stop()
		return nil, err
	}
	return s, nil
}

// start runs postgres as a child that dies with this process.
func (s *Server) start(cred *syscall.Credential) error {
	logPath := filepath.Join(s.Dir, "postgres.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("pgtest: open the server's log: %w", err)
	}
	args := []string{"-D", filepath.Join(s.Dir, "data"),
		"-k", s.Dir, // the socket's folder
		"-c", "listen_addresses=", // no TCP
		"-c", "unix_socket_permissions=0700",
		"-c", "max_connections=200",
		"-c", "log_min_messages=warning",
	}
	if !s.durable {
		// Durability against the machine crashing is not what tests
		// check, and syncing every commit makes them crawl; a server
		// killed with the machine up loses nothing either way.
		args = append(args, "-c", "fsync=off", "-c", "full_page_writes=off")
	}
	cmd := exec.Command(s.bin, args...)
	cmd.Dir = s.Dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "TZ=UTC")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// SIGQUIT is an immediate shutdown: a killed test binary leaves no
	// server behind. The parent-death signal is tied to the thread that
	// started the child, so that thread stays locked until the server
	// exits. Its own process group keeps a terminal's Ctrl-C for the test
	// binary, which then stops the server in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT, Setpgid: true}
	started := make(chan error, 1)
	s.exited = make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer logFile.Close()
		if err := cmd.Start(); err != nil {
			started <- fmt.Errorf("pgtest: start %s: %w", s.bin, err)
			close(s.exited)
			return
		}
		started <- nil
		s.waitErr = cmd.Wait()
		close(s.exited)
		// The thread is ended with the goroutine (it stays locked), so no
		// other child inherits its parent-death tie.
	}()
	if err := <-started; err != nil {
		return err
	}
	s.cmd = cmd
	return nil
}

// waitReady polls until the server accepts a connection, or fails with
// its log when it exits or takes longer than startTimeout.
func (s *Server) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(startTimeout)
	for {
		conn, err := pgx.Connect(ctx, s.URL("postgres"))
		if err == nil {
			return conn.Close(ctx)
		}
		select {
		case <-s.exited:
			return fmt.Errorf("pgtest: the server exited (%v) before accepting connections; its log:\n%s", s.waitErr, s.logTail())
		default:
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("pgtest: the server accepts no connection after %v: %w; its log:\n%s", startTimeout, err, s.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "postgres.log"))
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-30):], "\n")
}

// Pid is the server's process id (its backends are its children), for a
// benchmark that counts the database's CPU time; 0 when it is not running.
func (s *Server) Pid() int {
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// URL is the connection URL of database db on the server.
func (s *Server) URL(db string) string {
	return (&url.URL{Scheme: "postgres", User: url.User(Superuser), Path: "/" + db,
		RawQuery: url.Values{"host": {s.Dir}, "sslmode": {"disable"}}.Encode()}).String()
}

// CreateDatabase creates the database name, which must be a plain
// identifier (letters, digits, underscores).
func (s *Server) CreateDatabase(ctx context.Context, name string) error {
	return s.admin(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
}

// DropDatabase drops the database name, ending its connections.
func (s *Server) DropDatabase(ctx context.Context, name string) error {
	return s.admin(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
}

func (s *Server) admin(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		return fmt.Errorf("pgtest: connect to the server: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("pgtest: %s: %w", sql, err)
	}
	return nil
}

// Stop shuts the server down (a fast shutdown: connections are ended) and
// removes its folder, cluster and all.
func (s *Server) Stop() error {
	err := s.stop()
	if rerr := os.RemoveAll(s.Dir); rerr != nil && err == nil {
		err = fmt.Errorf("pgtest: remove the cluster: %w", rerr)
	}
	return err
}

// Restart stops the server and starts it again on the same cluster: what
// a database restart under a running cloud looks like.
func (s *Server) Restart(ctx context.Context) error {
	if err := s.stop(); err != nil {
		return err
	}
	cred, err := serverCredential()
	if err != nil {
		return err
	}
	if err := s.start(cred); err != nil {
		return err
	}
	return s.waitReady(ctx)
}

func (s *Server) stop() error {
	if s.cmd == nil {
		return nil
	}
	select {
	case <-s.exited:
	default:
		if err := s.cmd.Process.Signal(syscall.SIGINT); err != nil {
			return fmt.Errorf("pgtest: stop the server: %w", err)
		}
		<-s.exited
	}
	s.cmd = nil
	var ee *exec.ExitError
	if s.waitErr != nil && !errors.As(s.waitErr, &ee) {
		return fmt.Errorf("pgtest: the server: %w", s.waitErr)
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
