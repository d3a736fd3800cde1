package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/control/v1/controlv1connect"
	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/cloud/cloudtest"
	"github.com/outpost-robotics/outpost/cloud/ingest"
	"github.com/outpost-robotics/outpost/cloud/partsync"
	"github.com/outpost-robotics/outpost/control"
	"github.com/outpost-robotics/outpost/controlclient"
	"github.com/outpost-robotics/outpost/faultproxy"
	"github.com/outpost-robotics/outpost/partfile"
)

// outpostdProc is a real outpostd process.
type outpostdProc struct {
	cmd     *exec.Cmd
	dir     string // where its bootstrap file is
	control string // its control address, from its "outpostd ready" line
	logs    *lockedLog
	done    chan struct{}
}

// buildOutpostd builds the daemon once for the test.
func buildOutpostd(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	bin := filepath.Join(t.TempDir(), "outpostd")
	build := exec.Command("go", "build", "-o", bin, "./cmd/outpostd")
	build.Dir = filepath.Dir(filepath.Dir(file))
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build outpostd: %v\n%s", err, out)
	}
	return bin
}

// startOutpostd runs part's daemon as a child process on loopback, syncing
// every second, and waits for it to be ready.
func startOutpostd(t *testing.T, bin string, part cloudtest.Part) *outpostdProc {
	t.Helper()
	dir := t.TempDir()
	boot := part.WriteBootstrap(t, dir)
	cmd := exec.Command(bin, "--config", boot, "--data-dir", filepath.Join(dir, "data"), "--runtime-dir", filepath.Join(dir, "run"),
		"--listen", "127.0.0.1:0", "--metrics", "-", "--mdns", "-", "--sync-interval", "1s", "--log-format", "json")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &outpostdProc{cmd: cmd, dir: dir, logs: &lockedLog{}, done: make(chan struct{})}
	ready := make(chan string, 1)
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			_, _ = p.logs.Write(append(line, '\n'))
			var l struct {
				Msg     string `json:"msg"`
				Control string `json:"control"`
			}
			if json.Unmarshal(line, &l) == nil && l.Msg == "outpostd ready" {
				select {
				case ready <- l.Control:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		_ = cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
	})
	select {
	case p.control = <-ready:
	case <-p.done:
		t.Fatalf("outpostd exited before it was ready:\n%s", p.logs.String())
	case <-time.After(time.Minute):
		t.Fatalf("outpostd not ready within a minute:\n%s", p.logs.String())
	}
	return p
}

// kill ends the process at once, as a crash or a pulled plug would.
func (p *outpostdProc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// partName reads a part's name at the cloud.
func partName(t *testing.T, cl *cloudtest.Cloud, machineID, partID string) string {
	t.Helper()
	m, err := cl.Admin(t).Machine.GetMachine(context.Background(), connect.NewRequest(&fleetv1.GetMachineRequest{MachineId: machineID}))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range m.Msg.GetMachine().GetParts() {
		if p.GetId() == partID {
			return p.GetName()
		}
	}
	t.Fatalf("machine/%s has no part/%s", machineID, partID)
	return ""
}

// TestMachineOfSeveralParts runs a machine of two parts as real outpostd
// processes with the real cloud on loopback: the second part runs only the
// components placed on it; a field tech who talks to the main part only
// lists and drives the second part's motor through it, over gRPC and over
// WebRTC; with the cloud unreachable this still works; once the second part
// is killed only its components fail, with its name in the error; and
// `outpost machine status` shows each part's role and whether the main part
// reaches it. A third outpostd is another robot, a remote of the machine:
// its motor is driven through the main part as "arm-bot:arm", with an API
// key of its own kept in a file on the main part, until that key is revoked
// at the cloud and the remote, at its next sync, refuses it. Every call is
// audited by each part that decided it, and a remote pinned to another
// certificate is refused, naming the field.
func TestMachineOfSeveralParts(t *testing.T) {
	bin := buildOutpostd(t)
	cl := cloudtest.New(t, cloudtest.Options{Sync: partsync.Options{PollInterval: time.Second}})
	proxy, err := faultproxy.New(cl.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })

	mainPart := cl.Provision(t, cloudtest.PartOptions{CloudURL: proxy.URL()})
	machine := mainPart.MachineID
	second := addPart(t, cl, machine, proxy.URL())
	secondName := partName(t, cl, machine, second.ID)
	pan := &configv1.Component{Name: "pan", Type: configv1.ComponentType_COMPONENT_TYPE_MOTOR, Model: "fake", Part: secondName}
	wheels := &configv1.Component{Name: "wheels", Type: configv1.ComponentType_COMPONENT_TYPE_MOTOR, Model: "fake"}
	cl.SetMachineConfig(t, machine, &configv1.RobotConfig{Components: []*configv1.Component{wheels, pan}})
	operator := cl.CreateAPIKey(t, "operator", "machine/"+machine)
	owner := cl.CreateAPIKey(t, "owner", "machine/"+machine)

	// The remote robot syncs with the cloud directly: cutting the main
	// part's link leaves the remote's (and its revocations) alone.
	arm := &configv1.Component{Name: "arm", Type: configv1.ComponentType_COMPONENT_TYPE_MOTOR, Model: "fake"}
	remotePart := cl.Provision(t, cloudtest.PartOptions{Config: &configv1.RobotConfig{Components: []*configv1.Component{arm}}})
	remoteKey := cl.CreateAPIKey(t, "operator", "machine/"+remotePart.MachineID)

	var wg sync.WaitGroup
	var mainProc, secondProc, remoteProc *outpostdProc
	wg.Go(func() { mainProc = startOutpostd(t, bin, mainPart) })
	wg.Go(func() { secondProc = startOutpostd(t, bin, second) })
	wg.Go(func() { remoteProc = startOutpostd(t, bin, remotePart) })
	wg.Wait()
	if t.Failed() {
		return
	}

	s := newRobotSession(t, map[string]string{"OUTPOST_ROBOT": secondProc.control, "OUTPOST_API_KEY": operator.Token, "OUTPOST_CLOUD": cl.URL})
	s.ok("robot", "trust", secondProc.control, "--yes")
	mainFP := reFingerprint.FindString(s.ok("robot", "trust", mainProc.control, "--yes"))
	remoteFP := reFingerprint.FindString(s.ok("robot", "trust", remoteProc.control, "--yes"))
	keyDir := filepath.Join(mainProc.dir, partfile.RemotesDir)
	if err := os.MkdirAll(keyDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(keyDir, remoteKey.ID+".key"), []byte(remoteKey.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	withRemote := func(fp string) {
		cl.SetMachineConfig(t, machine, &configv1.RobotConfig{Components: []*configv1.Component{wheels, pan},
			Remotes: []*configv1.Remote{{Name: "arm-bot", Address: remoteProc.control, Fingerprint: fp, ApiKeyId: remoteKey.ID}}})
	}
	withRemote(remoteFP)
	cloudtest.Eventually(t, "the second part runs pan, and only pan", func() error {
		out, err := s.run("robot", "components")
		if err != nil || !strings.Contains(out, "pan") || strings.Contains(out, "wheels") || !strings.Contains(out, "running") {
			return fmt.Errorf("the second part lists:\n%s%v", out, err)
		}
		return nil
	})

	// Through the main part: it lists every part's components, each with
	// its part, once it holds the second part's pin and address.
	s.vars["OUTPOST_ROBOT"] = mainProc.control
	cloudtest.Eventually(t, "the main part lists the second part's pan as running", func() error {
		out, err := s.run("robot", "components")
		if err != nil || !strings.Contains(out, "pan") || !strings.Contains(out, secondName) || strings.Contains(out, "failed") {
			return fmt.Errorf("the main part lists:\n%s%v", out, err)
		}
		return nil
	})
	drive := func(via ...string) {
		t.Helper()
		for _, p := range []struct{ power, want string }{{"0.5", "pan moving: true\n"}, {"0", "pan moving: false\n"}} {
			args := append(append([]string{"robot"}, via...), "motor", "pan", "--power", p.power)
			if got := s.ok(args...); got != p.want {
				t.Errorf("outpost %s = %q, want %q", strings.Join(args, " "), got, p.want)
			}
		}
	}
	drive()
	drive("--webrtc")
	cloudtest.Eventually(t, "the main part lists the remote's arm as arm-bot:arm", func() error {
		out, err := s.run("robot", "components")
		if err != nil || !strings.Contains(out, "arm-bot:arm") {
			return fmt.Errorf("the main part lists:\n%s%v", out, err)
		}
		return nil
	})
	driveRemote := func(via ...string) {
		t.Helper()
		args := append(append([]string{"robot"}, via...), "motor", "arm-bot:arm", "--power", "0.5")
		if got := s.ok(args...); got != "arm-bot:arm moving: true\n" {
			t.Errorf("outpost %s = %q", strings.Join(args, " "), got)
		}
	}
	driveRemote()
	driveRemote("--webrtc")

	// Each call is audited where it was decided: pan's on the main part and
	// on the second part, which names the main part as the peer; the
	// remote's arm on the main part for the operator and on the remote for
	// the remote's key. The next syncs bring each part's records to the
	// cloud.
	audited := func(part, subject, peer string) error {
		recs, _, err := cl.Ingest().Records(context.Background(), ingest.Query{PartIDs: []string{part}, Stream: "audit"})
		if err != nil {
			return err
		}
		for _, r := range recs {
			var ev syncv1.AuditEvent
			if proto.Unmarshal(r.Payload, &ev) == nil && ev.GetAllowed() && ev.GetSubject() == subject &&
				ev.GetProcedure() == controlv1connect.ComponentServiceMotorSetPowerProcedure && strings.HasPrefix(ev.GetPeer(), peer) {
				return nil
			}
		}
		return fmt.Errorf("part/%s has no record of %s driving a motor from %q", part, subject, peer)
	}
	cloudtest.Eventually(t, "both parts and the remote audit the calls", func() error {
		return errors.Join(
			audited(mainPart.ID, "apikey/"+operator.ID, ""),
			audited(second.ID, "apikey/"+operator.ID, "part/"+mainPart.ID+" for "),
			audited(remotePart.ID, "apikey/"+remoteKey.ID, ""),
		)
	})

	// A remote pinned to another certificate than the one it presents is
	// refused, naming the field.
	withRemote(mainFP)
	cloudtest.Eventually(t, "a remote with a wrong fingerprint is refused, naming the field", func() error {
		_, err := s.run("robot", "motor", "arm-bot:arm", "--power", "0.5")
		if err == nil || !strings.Contains(err.Error(), "remotes[0].fingerprint pins "+mainFP) {
			return fmt.Errorf("a call for the remote's arm: %v", err)
		}
		return nil
	})
	withRemote(remoteFP)
	cloudtest.Eventually(t, "the remote answers again once the config pins its certificate", func() error {
		_, err := s.run("robot", "motor", "arm-bot:arm", "--power", "0.5")
		return err
	})

	cloudtest.Eventually(t, "machine status shows the parts' roles and that the main part reaches the second", func() error {
		s.vars["OUTPOST_API_KEY"], s.vars["OUTPOST_TOKEN"] = "", owner.Token
		out, err := s.run("machine", "status", machine)
		s.vars["OUTPOST_API_KEY"], s.vars["OUTPOST_TOKEN"] = operator.Token, ""
		if err != nil || !strings.Contains(out, "REACHED BY MAIN") || !strings.Contains(out, "main") || !strings.Contains(out, "yes ("+secondProc.control+")") || !strings.Contains(out, "1/1 running") {
			return fmt.Errorf("machine status:\n%s%v", out, err)
		}
		return nil
	})

	// A tech who names a caller as the main part would is refused by the
	// second part: only the main part's pinned certificate may. The tech
	// calls from an address of its own: the main part's address may still
	// be throttled for the calls it sent before the second part knew its
	// certificate.
	tlsCfg, err := controlclient.PinnedTLSConfig(reFingerprint.FindString(s.ok("robot", "trust", secondProc.control, "--yes")))
	if err != nil {
		t.Fatal(err)
	}
	techHost := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
	tr := &http.Transport{TLSClientConfig: tlsCfg, ForceAttemptHTTP2: true, DialContext: techHost.DialContext}
	defer tr.CloseIdleConnections()
	req := connect.NewRequest(&controlv1.MotorSetPowerRequest{Name: "pan", Power: 1})
	req.Header().Set(control.HeaderForwardedSubject, "apikey/"+owner.ID)
	_, err = controlv1connect.NewComponentServiceClient(&http.Client{Transport: tr}, "https://"+secondProc.control).MotorSetPower(context.Background(), req)
	if connect.CodeOf(err) != connect.CodeUnauthenticated || !strings.Contains(err.Error(), "accepted only from this machine's main part") {
		t.Errorf("a forged forwarded call: %v", err)
	}

	// Without the cloud.
	proxy.SetDown(true)
	drive()
	drive("--webrtc")

	// The second part dies: its components fail, naming it; the main
	// part's own still answer.
	secondProc.kill()
	err = s.fails(connect.CodeUnavailable, "robot", "motor", "pan", "--power", "0.5")
	if !strings.Contains(err.Error(), fmt.Sprintf("part %q (part/%s) cannot be reached", secondName, second.ID)) {
		t.Errorf("a call for the dead part's motor: %v", err)
	}
	if got := s.ok("robot", "motor", "wheels", "--power", "0.5"); got != "wheels moving: true\n" {
		t.Errorf("the main part's own motor: %q", got)
	}
	out := s.ok("robot", "components")
	if !strings.Contains(out, "pan") || !strings.Contains(out, "failed") || !strings.Contains(out, secondName) {
		t.Errorf("with the second part down the main part lists:\n%s", out)
	}
	if strings.Contains(mainProc.logs.String(), operator.Token[len(operator.Token)-43:]) {
		t.Error("the operator's key appears in the main part's log")
	}

	// The remote still answers with the main part's cloud cut; revoking
	// its key at the cloud cuts it at the remote's next sync.
	driveRemote()
	cl.RevokeAPIKey(t, remoteKey.ID)
	cloudtest.Eventually(t, "the remote refuses the revoked key", func() error {
		_, err := s.run("robot", "motor", "arm-bot:arm", "--power", "0.5")
		if connect.CodeOf(err) != connect.CodeUnauthenticated || !strings.Contains(err.Error(), fmt.Sprintf(`remote "arm-bot" refused apikey/%s (remotes[0].api_key_id)`, remoteKey.ID)) {
			return fmt.Errorf("a call for the remote's arm: %v", err)
		}
		return nil
	})
	if out := s.ok("robot", "components"); strings.Contains(out, "arm-bot:arm") || !strings.Contains(out, "arm-bot:") {
		t.Errorf("with the remote's key revoked the main part lists:\n%s", out)
	}
	if strings.Contains(mainProc.logs.String(), remoteKey.Token[len(remoteKey.Token)-43:]) {
		t.Error("the remote's key appears in the main part's log")
	}
}
