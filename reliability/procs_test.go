package reliability

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1/fleetv1connect"
)

// Generous bounds that only stop a hung test; nothing waits for them to pass.
const (
	startDeadline = 60 * time.Second
	stopDeadline  = 30 * time.Second
	waitDeadline  = 90 * time.Second
)

// maxReady bounds start to READY=1 after any kill: a restarted part must
// answer again at once, whatever its store held.
const maxReady = 2 * time.Second

// child is a process the suite started; its output goes to a file.
type child struct {
	name   string
	cmd    *exec.Cmd
	log    string
	exited chan struct{}
	err    error // Wait's result, once exited is closed
}

// startChild runs bin with args, appending its output to logPath. The
// child dies with the test process (PR_SET_PDEATHSIG), so a test that
// times out leaves nothing running.
func startChild(name, logPath string, env []string, bin string, args ...string) (*child, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open the log of %s: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(cleanEnv(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, log: logPath, exited: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		f.Close()
		close(c.exited)
	}()
	return c, nil
}

// cleanEnv is the test's environment without what systemd would set for
// the test process itself.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "NOTIFY_SOCKET=") || strings.HasPrefix(kv, "WATCHDOG_") || strings.HasPrefix(kv, "LISTEN_") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// running reports whether the child has not exited.
func (c *child) running() bool {
	select {
	case <-c.exited:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL and waits for the child to be gone.
func (c *child) kill() {
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.exited
}

// stop sends SIGTERM and returns the exit status; a child that does not
// exit within stopDeadline is killed and that is the error.
func (c *child) stop() error {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
		return c.err
	case <-time.After(stopDeadline):
		c.kill()
		return fmt.Errorf("%s did not exit within %s of SIGTERM", c.name, stopDeadline)
	}
}

// tail returns the last lines of a log file, for failure messages.
func tail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	ls := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}

// fixedAddr returns a free loopback address for a listener that must come
// back on the same port after a kill (the cloud behind the proxy, the
// part's metrics). The port is below the kernel's ephemeral range (32768 up
// by default), so no outgoing connection takes it while its owner is down.
func fixedAddr(t *testing.T) string {
	t.Helper()
	for range 100 {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", 20000+rand.IntN(12000)))
		if err != nil {
			continue
		}
		defer ln.Close()
		return ln.Addr().String()
	}
	t.Fatal("no free loopback port between 20000 and 32000")
	return ""
}

// shortDir is a fresh folder with a short path: Unix socket paths (the
// notify socket, the break-glass socket) must fit in 108 bytes.
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "rel-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// cloudProc is outpost-cloud running as a child on a fixed loopback
// address, so a restart comes back where the proxy points.
type cloudProc struct {
	dir, addr, log string
	args           []string // more flags for every start
	env            []string // more environment for every start
	c              *child
}

// newCloud starts outpost-cloud on an empty data folder, with args added
// to its flags at every start.
func newCloud(t *testing.T, args ...string) *cloudProc {
	t.Helper()
	dir := t.TempDir()
	cp := &cloudProc{dir: filepath.Join(dir, "data"), addr: fixedAddr(t), log: filepath.Join(dir, "outpost-cloud.log"), args: args}
	if err := cp.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cp.c != nil && cp.c.running() {
			cp.c.kill()
		}
	})
	return cp
}

// URL is the cloud's base URL.
func (cp *cloudProc) URL() string { return "http://" + cp.addr }

// start runs the cloud and waits until its fleet API answers.
func (cp *cloudProc) start() error {
	c, err := startChild("outpost-cloud", cp.log, cp.env, suite.cloud, append([]string{"serve", "--data-dir", cp.dir, "--listen", cp.addr,
		"--poll-interval", "1s", "--log-level", "warn"}, cp.args...)...)
	if err != nil {
		return err
	}
	cp.c = c
	info := fleetv1connect.NewServerServiceClient(http.DefaultClient, cp.URL())
	deadline := time.Now().Add(startDeadline)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := info.GetServerInfo(ctx, connect.NewRequest(&fleetv1.GetServerInfoRequest{}))
		cancel()
		if err == nil {
			return nil
		}
		if !c.running() {
			return fmt.Errorf("outpost-cloud exited at start (%v):\n%s", c.err, tail(cp.log, 20))
		}
		if time.Now().After(deadline) {
			c.kill()
			return fmt.Errorf("outpost-cloud did not answer within %s: %v\n%s", startDeadline, err, tail(cp.log, 20))
		}
		pause(20 * time.Millisecond)
	}
}

// kill SIGKILLs the cloud.
func (cp *cloudProc) kill() { cp.c.kill() }

// stop SIGTERMs the cloud and checks it exited cleanly, so its stores are
// closed and the test may open them.
func (cp *cloudProc) stop() error {
	if err := cp.c.stop(); err != nil {
		return fmt.Errorf("outpost-cloud stop: %w\n%s", err, tail(cp.log, 20))
	}
	return nil
}

// adminToken is the token the cloud wrote on its first start.
func (cp *cloudProc) adminToken() (string, error) {
	b, err := os.ReadFile(filepath.Join(cp.dir, "admin.token"))
	if err != nil {
		return "", fmt.Errorf("read the admin token: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// partProc is a provisioned part on disk, run as outpostd children.
type partProc struct {
	dir, boot, data, run, log string
	metrics                   string   // the loopback metrics address
	args                      []string // more flags for every start
	starts                    int
	c                         *child
}

// newPart lays out a part's folders; provision writes its bootstrap file.
func newPart(t *testing.T) *partProc {
	t.Helper()
	dir := shortDir(t)
	p := &partProc{dir: dir, boot: filepath.Join(dir, "outpostd.json"), data: filepath.Join(dir, "data"), run: filepath.Join(dir, "run"),
		log: filepath.Join(dir, "outpostd.log"), metrics: fixedAddr(t)}
	t.Cleanup(func() {
		if p.c != nil && p.c.running() {
			p.c.kill()
		}
		if t.Failed() {
			t.Logf("outpostd log tail:\n%s", tail(p.log, 40))
		}
	})
	return p
}

// start runs outpostd as systemd would (Type=notify, with a notify socket
// served here) and returns the time from exec to READY=1.
func (p *partProc) start() (time.Duration, error) {
	p.starts++
	sock := filepath.Join(p.dir, "n"+strconv.Itoa(p.starts)+".sock")
	ns, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		return 0, fmt.Errorf("notify socket: %w", err)
	}
	defer func() { ns.Close(); os.Remove(sock) }()
	begin := time.Now()
	c, err := startChild("outpostd", p.log, []string{"NOTIFY_SOCKET=" + sock}, suite.outpostd,
		append([]string{"--config", p.boot, "--data-dir", p.data, "--runtime-dir", p.run, "--listen", "127.0.0.1:0",
			"--metrics", p.metrics, "--mdns", "-", "--sync-interval", "1s", "--log-format", "json"}, p.args...)...)
	if err != nil {
		return 0, err
	}
	p.c = c
	// An exit closes the socket, so the read below does not wait for the
	// deadline when the daemon dies before READY.
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-c.exited:
			ns.Close()
		case <-done:
		}
	}()
	_ = ns.SetReadDeadline(time.Now().Add(startDeadline))
	buf := make([]byte, 4096)
	for {
		n, err := ns.Read(buf)
		if err != nil {
			if c.running() {
				c.kill()
			}
			return 0, fmt.Errorf("no READY=1 from outpostd (%v, exit %v):\n%s", err, c.err, tail(p.log, 20))
		}
		if strings.HasPrefix(string(buf[:n]), "READY=1") {
			return time.Since(begin), nil
		}
	}
}

// kill SIGKILLs the daemon.
func (p *partProc) kill() { p.c.kill() }

// ownStartup is the daemon's own start figure from its last "outpostd
// ready" line (from daemon.Run to READY, without exec and runtime start),
// to tell a slow daemon from a slow machine when a start is slow.
func (p *partProc) ownStartup() string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return err.Error()
	}
	i := strings.LastIndex(string(b), `"msg":"outpostd ready"`)
	if i < 0 {
		return "no ready line"
	}
	line := string(b[i:])
	if j := strings.IndexByte(line, '\n'); j >= 0 {
		line = line[:j]
	}
	_, after, ok := strings.Cut(line, `"startup":"`)
	if !ok {
		return "no startup figure"
	}
	v, _, _ := strings.Cut(after, `"`)
	return v
}

// stop SIGTERMs the daemon and wants exit code 0.
func (p *partProc) stop() error {
	if err := p.c.stop(); err != nil {
		return fmt.Errorf("outpostd stop: %w\n%s", err, tail(p.log, 20))
	}
	return nil
}

// socket is the break-glass socket's path.
func (p *partProc) socket() string { return filepath.Join(p.run, "control.sock") }

// scrape reads the daemon's Prometheus metrics as "name{labels}" -> value.
func (p *partProc) scrape(ctx context.Context) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.metrics+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape metrics: %s", resp.Status)
	}
	return parseMetrics(bufio.NewScanner(resp.Body))
}

// parseMetrics reads the Prometheus text format's samples.
func parseMetrics(sc *bufio.Scanner) (map[string]float64, error) {
	out := map[string]float64{}
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read metrics: %w", err)
	}
	return out, nil
}

// errTimeout is what waitFor returns when its condition never held.
var errTimeout = errors.New("condition not met before the deadline")

// waitFor polls cond until it returns true or an error, or the deadline
// passes; the deadline only stops a hung test.
func waitFor(deadline time.Duration, cond func() (bool, error)) error {
	end := time.Now().Add(deadline)
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(end) {
			return errTimeout
		}
		pause(50 * time.Millisecond)
	}
}

// pause is the poll interval between checks of a condition. It is the
// suite's only sleep, and no result depends on its length.
func pause(d time.Duration) { time.Sleep(d) }
