package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	"github.com/outpost-robotics/outpost/cloud/cloudtest"
	"github.com/outpost-robotics/outpost/cloud/partsync"
	"github.com/outpost-robotics/outpost/signed"
)

// addPart adds a part to a machine and bootstraps it, as an owner would
// with `outpost part add` and `outpost part bootstrap`.
func addPart(t *testing.T, cl *cloudtest.Cloud, machineID, cloudURL string) cloudtest.Part {
	t.Helper()
	ctx := context.Background()
	admin := cl.Admin(t)
	added, err := admin.Machine.AddPart(ctx, connect.NewRequest(&fleetv1.AddPartRequest{MachineId: machineID, Name: fmt.Sprintf("part-%d", time.Now().UnixNano())}))
	if err != nil {
		t.Fatal(err)
	}
	cl.Remember(added.Msg.GetSecret())
	if cloudURL == "" {
		cloudURL = cl.URL
	}
	boot, err := admin.Machine.BootstrapPart(ctx, connect.NewRequest(&fleetv1.BootstrapPartRequest{PartId: added.Msg.GetPart().GetId(), CloudUrl: cloudURL}))
	if err != nil {
		t.Fatal(err)
	}
	b := boot.Msg.GetBootstrap()
	cl.Remember(b.GetPartSecret())
	b.CaFile = cl.CAFile
	keys, err := signed.KeysFromProto(b.GetCloudKeys())
	if err != nil {
		t.Fatal(err)
	}
	m, err := admin.Machine.GetMachine(ctx, connect.NewRequest(&fleetv1.GetMachineRequest{MachineId: machineID}))
	if err != nil {
		t.Fatal(err)
	}
	return cloudtest.Part{ID: b.GetPartId(), Secret: b.GetPartSecret(), MachineID: machineID, LocationID: m.Msg.GetMachine().GetLocationId(),
		CloudURL: b.GetCloudUrl(), Keys: keys, Bootstrap: b}
}

// lines counts the lines of a file; 0 when it does not exist yet.
func lines(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}

// restarted counts the restarts a daemon's log says it made for the cloud.
func restarted(rp *robotPart) int {
	return strings.Count(rp.logs.String(), `"msg":"restarted the robot as the cloud asked"`)
}

// partRestart is a part's restart as the fleet API shows it, and when the
// cloud last heard from the part.
func partRestart(t *testing.T, cl *cloudtest.Cloud, machineID, partID string) (*fleetv1.PartRestart, time.Time) {
	t.Helper()
	st, err := cl.Admin(t).Machine.GetMachineStatus(context.Background(), connect.NewRequest(&fleetv1.GetMachineStatusRequest{MachineId: machineID}))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range st.Msg.GetParts() {
		if p.GetPart().GetId() == partID {
			return p.GetPart().GetRestart(), p.GetLastSeen().AsTime()
		}
	}
	t.Fatalf("machine/%s has no part/%s", machineID, partID)
	return nil, time.Time{}
}

// TestRestartFromTheCloud is `outpost part restart` and `outpost machine
// restart` end to end: the real cloud and two real daemons, the main part
// and a second part of one machine, each running a process that appends
// its PID to one file when it starts. Restarting the second part restarts
// only it, once, and the cloud clears the request; restarting the machine
// restarts both, once each; `outpost machine status` shows it. An
// operator, an unknown part and another organization's part are refused.
func TestRestartFromTheCloud(t *testing.T) {
	cl := cloudtest.New(t, cloudtest.Options{Sync: partsync.Options{PollInterval: time.Second}})
	starts := filepath.Join(t.TempDir(), "starts")
	cfg := proto.Clone(robotConfig).(*configv1.RobotConfig)
	cfg.Processes = []*configv1.Process{{Id: "recorder", Command: "/bin/sh", Args: []string{"-c", `echo "$$" >> "$0"; exec sleep 1000`, starts},
		Restart: configv1.RestartPolicy_RESTART_POLICY_NEVER}}
	mainPart := startRobot(t, cl, robotOptions{config: cfg, syncEvery: time.Second})
	machine := mainPart.part.MachineID
	second := startRobot(t, cl, robotOptions{addTo: machine, syncEvery: time.Second})
	// Each part runs its own recorder: a process is placed on one part.
	onSecond := proto.CloneOf(cfg.Processes[0])
	onSecond.Part = partName(t, cl, machine, second.part.ID)
	cfg.Processes = append(cfg.Processes, onSecond)
	cl.SetMachineConfig(t, machine, cfg)
	cloudtest.Eventually(t, "both parts run the recorder", func() error {
		if n := lines(t, starts); n != 2 {
			return fmt.Errorf("%d starts", n)
		}
		return nil
	})
	elsewhere := cl.Provision(t, cloudtest.PartOptions{})
	s := newRobotSession(t, map[string]string{"OUTPOST_CLOUD": cl.URL, "OUTPOST_TOKEN": mainPart.operator.Token})

	// Refused: an operator (the seed: "Restart the machine" is for owners
	// only), a part that does not exist, a malformed id, and a part in
	// another organization.
	s.fails(connect.CodePermissionDenied, "part", "restart", second.part.ID)
	s.fails(connect.CodePermissionDenied, "machine", "restart", machine)
	s.vars["OUTPOST_TOKEN"] = mainPart.owner.Token
	s.fails(connect.CodeNotFound, "part", "restart", "0123456789abcdef0123456789abcdef")
	s.fails(connect.CodeInvalidArgument, "part", "restart", "../"+second.part.ID)
	s.fails(connect.CodePermissionDenied, "part", "restart", elsewhere.ID)
	if r, _ := partRestart(t, cl, elsewhere.MachineID, elsewhere.ID); r != nil {
		t.Fatalf("a refused restart left %v", r)
	}

	// One part.
	out := s.ok("part", "restart", second.part.ID)
	if !strings.Contains(out, "part/"+second.part.ID+" restarts at its next sync") {
		t.Fatalf("part restart printed:\n%s", out)
	}
	var cleared time.Time
	cloudtest.Eventually(t, "the second part restarts and the cloud clears the request", func() error {
		r, seen := partRestart(t, cl, machine, second.part.ID)
		if r.GetRequestedAt() != nil || r.GetOutcome() != "restarted" {
			return fmt.Errorf("the cloud shows %v", r)
		}
		cleared = seen
		return nil
	})
	cloudtest.Eventually(t, "two more status reports of the second part", func() error {
		if _, seen := partRestart(t, cl, machine, second.part.ID); !seen.After(cleared.Add(time.Second)) {
			return fmt.Errorf("last seen %v, cleared at %v", seen, cleared)
		}
		return nil
	})
	if n, a, b := lines(t, starts), restarted(mainPart), restarted(second); n != 3 || a != 0 || b != 1 {
		t.Fatalf("after `part restart`: %d starts, main restarted %d times, second %d; want 3, 0, 1", n, a, b)
	}
	if r, _ := partRestart(t, cl, machine, mainPart.part.ID); r != nil {
		t.Fatalf("the main part shows %v, asked nothing", r)
	}

	// The whole machine.
	s.ok("machine", "restart", machine)
	cloudtest.Eventually(t, "both parts restart and the cloud clears both requests", func() error {
		for _, p := range []string{mainPart.part.ID, second.part.ID} {
			if r, _ := partRestart(t, cl, machine, p); r.GetRequestedAt() != nil || r.GetOutcome() != "restarted" {
				return fmt.Errorf("part/%s: the cloud shows %v", p, r)
			}
		}
		return nil
	})
	if n, a, b := lines(t, starts), restarted(mainPart), restarted(second); n != 5 || a != 1 || b != 2 {
		t.Fatalf("after `machine restart`: %d starts, main restarted %d times, second %d; want 5, 1, 2", n, a, b)
	}
	status := s.ok("machine", "status", machine)
	if !strings.Contains(status, "LAST RESTART") || strings.Count(status, " restarted") != 2 {
		t.Fatalf("machine status shows no restart per part:\n%s", status)
	}
}
