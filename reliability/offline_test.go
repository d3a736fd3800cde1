package reliability

import (
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/control/v1/controlv1connect"
	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/cloud"
	"github.com/outpost-robotics/outpost/cloud/cloudtest"
	"github.com/outpost-robotics/outpost/cloud/partsync"
	"github.com/outpost-robotics/outpost/controlclient"
	"github.com/outpost-robotics/outpost/daemon"
	"github.com/outpost-robotics/outpost/logging"
)

const day = 24 * time.Hour

// offlineSync is the sync interval of the in-process scenario (part and
// cloud); a cycle's deadline is 4/5 of it.
const offlineSync = 10 * time.Second

// TestSixtyDaysOffline runs outpostd and the cloud in this process on one
// fake clock (the cloud lives the sixty days too), with the part behind
// the fault proxy. A field tech's API key works over the part's TLS port
// every day of a partition up to the last second of day 60, and is refused
// from then on with the reason; the break-glass socket keeps working and the
// machine is stopped; the network heals, and the first sync cycle that
// reaches the cloud brings fresh grants and config.
func TestSixtyDaysOffline(t *testing.T) {
	rep := newReport(t, "sixty-days-offline")
	ctx := context.Background()
	clk := clock.NewFake(time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC))
	cl := cloudtest.New(t, cloudtest.Options{Clock: clk, Sync: partsync.Options{PollInterval: offlineSync}})
	url, token := cl.URL, cl.AdminToken(t)
	f := newFleet(url, token, clk.Now)
	ln := newLink(t, url)
	dir := shortDir(t)
	boot := filepath.Join(dir, "outpostd.json")
	cfg := sensors(1, 0, map[string]uint32{"imu": 5})
	cfg.Components = append(cfg.Components, &configv1.Component{Name: "wheel", Type: configv1.ComponentType_COMPONENT_TYPE_MOTOR, Model: "fake"})
	m, err := f.provision(ctx, cfg, boot, ln.URL())
	if err != nil {
		rep.fatal("provision: %v", err)
	}
	key, err := f.APIKey.CreateAPIKey(ctx, connect.NewRequest(&fleetv1.CreateAPIKeyRequest{Name: "field-tech", Role: "operator", Scope: "machine/" + m.machineID}))
	if err != nil {
		rep.fatal("create an API key: %v", err)
	}

	// The daemon, told about systemd through a notify socket as in production.
	notify := listenNotify(t, dir)
	ep := runDaemon(t, clk, boot, dir)
	bg := breakGlass(ep.Socket)
	status := func() (*controlv1.StatusResponse, error) {
		res, err := bg.Status(ctx, connect.NewRequest(&controlv1.StatusRequest{}))
		if err != nil {
			return nil, err
		}
		return res.Msg, nil
	}
	// The first cycle runs at once: grants, config, status report.
	var first *controlv1.StatusResponse
	if err := waitFor(waitDeadline, func() (bool, error) {
		st, err := status()
		first = st
		return err == nil && st.GetGrantsVersion() > 0 && st.GetConfigVersion() > 0, nil
	}); err != nil {
		rep.fatal("the part never got its grants and config: %v (status %v)", err, first)
	}
	// The tech pins the certificate the cloud reports for the part.
	var pin string
	if err := waitFor(waitDeadline, func() (bool, error) {
		res, err := f.Machine.GetMachineStatus(ctx, connect.NewRequest(&fleetv1.GetMachineStatusRequest{MachineId: m.machineID}))
		if err != nil || len(res.Msg.GetParts()) == 0 {
			return false, nil
		}
		pin = hex.EncodeToString(res.Msg.GetParts()[0].GetStatus().GetControlCertSha256())
		return pin != "", nil
	}); err != nil {
		rep.fatal("the cloud never learnt the part's certificate: %v", err)
	}
	tech, err := techClient(ep.Control, pin, key.Msg.GetToken(), clk.Now)
	if err != nil {
		rep.fatal("%v", err)
	}
	// ListResources is machine.control: what an operator does with the robot.
	call := func() error {
		_, err := tech.ListResources(ctx, connect.NewRequest(&controlv1.ListResourcesRequest{}))
		return err
	}
	if err := call(); err != nil {
		rep.fatal("the API key is refused while online: %v", err)
	}
	// The tech leaves the wheel turning.
	if _, err := tech.MotorSetPower(ctx, connect.NewRequest(&controlv1.MotorSetPowerRequest{Name: "wheel", Power: 0.5})); err != nil {
		rep.fatal("drive the wheel while online: %v", err)
	}

	expires := first.GetGrantsExpireAt().AsTime()
	issued := expires.Add(-cloud.DefaultDocumentTTL)
	rep.set("lifetime_days", int(expires.Sub(issued)/day))

	// The partition: day by day, the key keeps working.
	ln.setDown(true)
	honoured := 0
	for d := 1; d < 60; d++ {
		clk.Advance(issued.Add(time.Duration(d) * day).Sub(clk.Now()))
		if err := call(); err != nil {
			rep.fail("day %d offline: the API key is refused: %v", d, err)
			break
		}
		honoured++
	}
	clk.Advance(expires.Add(-time.Second).Sub(clk.Now()))
	lastSecond := call() == nil
	clk.Advance(time.Second)
	refusal := call()
	rep.set("honoured_days", honoured)
	rep.set("last_second", lastSecond)
	rep.check(honoured == 59 && lastSecond, "grants not honoured until day 60: %d days, last second %v", honoured, lastSecond)
	reasonOK := connect.CodeOf(refusal) == connect.CodeUnauthenticated && refusal != nil &&
		strings.Contains(refusal.Error(), "grants expired") && strings.Contains(refusal.Error(), "break-glass")
	rep.set("refused_at_day_60", reasonOK)
	rep.check(reasonOK, "at day 60 the API key call gave %v, want a refusal saying the grants expired and what to do", refusal)

	// The sync loop notices too (its minute tick): the machine stops and
	// systemd's status says why.
	var expiredStatus string
	if err := waitFor(waitDeadline, func() (bool, error) {
		if s, ok := notify.find("STATUS=EXPIRED: "); ok {
			expiredStatus = s
			return true, nil
		}
		clk.Advance(time.Minute)
		return false, nil
	}); err != nil {
		rep.fail("no EXPIRED status to systemd after day 60: %v", err)
	}
	rep.check(strings.Contains(expiredStatus, "break-glass"), "the EXPIRED status does not say what to do: %q", expiredStatus)

	// Break-glass still works, and shows the machine stopped.
	st, err := status()
	breakGlassOK := err == nil && st.GetSyncState() == controlv1.SyncState_SYNC_STATE_EXPIRED
	if _, err := bg.GetConfig(ctx, connect.NewRequest(&controlv1.GetConfigRequest{})); err != nil {
		breakGlassOK = false
	}
	rep.set("break_glass", breakGlassOK)
	rep.check(breakGlassOK, "the break-glass socket after expiry: status %v, %v", st, err)
	// Expired, the machine is brought to a safe state.
	comps := controlv1connect.NewComponentServiceClient(socketClient(ep.Socket), "http://outpostd")
	moving, err := comps.MotorIsMoving(ctx, connect.NewRequest(&controlv1.MotorIsMovingRequest{Name: "wheel"}))
	safe := err == nil && !moving.Msg.GetMoving()
	rep.set("machine_safe", safe)
	rep.check(safe, "the wheel after expiry: %v, %v (want stopped)", moving, err)

	// Reconnect: the network heals, and the first pull that reaches the
	// cloud must bring fresh grants. The clock moves a second at a time,
	// only until a pull got through, so no cycle is cut short by the test.
	ln.forget()
	ln.setDown(false)
	pulls := 0
	fresh := func() bool {
		st, err := status()
		return err == nil && st.GetGrantsExpireAt().AsTime().After(clk.Now().Add(59*day))
	}
	if err := waitFor(waitDeadline, func() (bool, error) {
		pulls += countCalls(ln, "Pull")
		if fresh() {
			return true, nil
		}
		if pulls == 0 {
			clk.Advance(time.Second)
		}
		return false, nil
	}); err != nil {
		rep.fatal("no fresh grants after reconnecting (%d pulls reached the cloud): %v", pulls, err)
	}
	pulls += countCalls(ln, "Pull")
	rep.set("refresh_pulls", pulls)
	rep.check(pulls == 1, "the grants were renewed after %d pulls reached the cloud, want the first", pulls)
	rep.check(call() == nil, "the API key is still refused after fresh grants: %v", call())
	_, err = tech.MotorSetPower(ctx, connect.NewRequest(&controlv1.MotorSetPowerRequest{Name: "wheel", Power: 0.3}))
	rep.set("control_back", err == nil)
	rep.check(err == nil, "the tech cannot drive the wheel after reconnecting: %v", err)
}

// runDaemon runs outpostd in this process on clk and returns its endpoints
// once it is ready; the test's end stops it with SIGTERM.
func runDaemon(t *testing.T, clk clock.Clock, boot, dir string) daemon.Endpoints {
	t.Helper()
	sig := make(chan os.Signal, 1)
	ready := make(chan daemon.Endpoints, 1)
	errc := make(chan error, 1)
	logs, err := os.Create(filepath.Join(dir, "outpostd.log"))
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		errc <- daemon.Run(context.Background(), daemon.Options{
			ConfigPath: boot, DataDir: filepath.Join(dir, "data"), RuntimeDir: filepath.Join(dir, "run"),
			Listen: "127.0.0.1:0", MetricsListen: "-", Clock: clk, Stderr: logs, LogFormat: logging.FormatJSON,
			Signals: sig, SyncInterval: offlineSync, OnReady: func(e daemon.Endpoints) { ready <- e },
		})
	}()
	t.Cleanup(func() {
		sig <- syscall.SIGTERM
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("outpostd: %v", err)
			}
		case <-time.After(stopDeadline):
			t.Errorf("outpostd did not stop within %s of SIGTERM", stopDeadline)
		}
		logs.Close()
		if t.Failed() {
			t.Logf("outpostd log tail:\n%s", tail(logs.Name(), 40))
		}
	})
	select {
	case ep := <-ready:
		return ep
	case err := <-errc:
		t.Fatalf("outpostd did not start: %v", err)
	case <-time.After(startDeadline):
		t.Fatalf("outpostd not ready within %s", startDeadline)
	}
	return daemon.Endpoints{}
}

// notifySocket collects what the daemon tells systemd.
type notifySocket struct {
	mu   sync.Mutex
	msgs []string
}

// listenNotify serves NOTIFY_SOCKET for the in-process daemon.
func listenNotify(t *testing.T, dir string) *notifySocket {
	t.Helper()
	path := filepath.Join(dir, "notify.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("NOTIFY_SOCKET", path)
	n := &notifySocket{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			k, err := c.Read(buf)
			if err != nil {
				return
			}
			n.mu.Lock()
			n.msgs = append(n.msgs, string(buf[:k]))
			n.mu.Unlock()
		}
	}()
	t.Cleanup(func() { c.Close(); <-done })
	return n
}

// find returns the first message starting with prefix.
func (n *notifySocket) find(prefix string) (string, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, m := range n.msgs {
		if strings.HasPrefix(m, prefix) {
			return m, true
		}
	}
	return "", false
}

// techClient is a field tech's component client: TLS pinned to the part's
// certificate, proofs of an API key's possession made for that part.
func techClient(addr, pin, token string, now func() time.Time) (controlv1connect.ComponentServiceClient, error) {
	tlsCfg, err := controlclient.PinnedTLSConfig(pin)
	if err != nil {
		return nil, fmt.Errorf("pin the part's certificate: %w", err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg, ForceAttemptHTTP2: true}}
	base := "https://" + addr
	bearer := connect.WithInterceptors(cloudtest.PartAuth(token, pin, hc, base, now))
	return controlv1connect.NewComponentServiceClient(hc, base, bearer), nil
}

// countCalls takes the calls reported so far and counts those of method.
func countCalls(ln *link, method string) int {
	n := 0
	for {
		select {
		case m := <-ln.calls:
			if m == method {
				n++
			}
		default:
			return n
		}
	}
}
