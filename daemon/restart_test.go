package daemon

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1/syncv1connect"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/cloud/cloudtest"
	"github.com/outpost-robotics/outpost/cloud/partsync"
	"github.com/outpost-robotics/outpost/faultproxy"
)

// TestCloudRestartRestartsTheRobotOnce runs the real cloud and a real
// daemon whose config runs a process that appends its PID to a file when
// it starts. A machine restart restarts the robot once (a new PID), even
// while the status reports that would clear it are lost and the daemon
// itself is restarted; once a report gets through the cloud clears the
// request and nothing restarts again. A restart asked while the part is
// cut off happens once it is back.
func TestCloudRestartRestartsTheRobotOnce(t *testing.T) {
	ctx := context.Background()
	cl := cloudtest.New(t, cloudtest.Options{Sync: partsync.Options{PollInterval: time.Second}})
	var blockReports atomic.Bool
	var pulls atomic.Int64
	proxy, err := faultproxy.New(cl.URL, func(_ int64, r *http.Request) faultproxy.Fault {
		switch r.URL.Path {
		case syncv1connect.SyncServicePullProcedure:
			pulls.Add(1)
		case syncv1connect.SyncServiceReportStatusProcedure:
			if blockReports.Load() {
				return faultproxy.Status503
			}
		}
		return faultproxy.Pass
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })

	p := &part{Dir: t.TempDir()}
	p.BootPath, p.DataDir, p.RunDir = filepath.Join(p.Dir, "outpostd.json"), filepath.Join(p.Dir, "data"), filepath.Join(p.Dir, "run")
	starts := filepath.Join(p.Dir, "starts")
	cfg := &configv1.RobotConfig{LogLevel: "info", Processes: []*configv1.Process{{Id: "recorder", Command: "/bin/sh",
		Args: []string{"-c", `echo "$$" >> "$0"; exec sleep 1000`, starts}, Restart: configv1.RestartPolicy_RESTART_POLICY_NEVER}}}
	cp := cl.Provision(t, cloudtest.PartOptions{CloudURL: proxy.URL(), Config: cfg})
	cp.WriteBootstrap(t, p.Dir)
	machines := cl.Admin(t).Machine
	pids := func() []string {
		b, err := os.ReadFile(starts)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		return strings.Fields(string(b))
	}
	waitStarts := func(n int) {
		t.Helper()
		cloudtest.Eventually(t, fmt.Sprintf("%d starts of the recorder", n), func() error {
			if got := pids(); len(got) != n {
				return fmt.Errorf("starts %v", got)
			}
			return nil
		})
	}
	restart := func() *fleetv1.PartRestart {
		t.Helper()
		m, err := machines.GetMachine(ctx, connect.NewRequest(&fleetv1.GetMachineRequest{MachineId: cp.MachineID}))
		if err != nil {
			t.Fatal(err)
		}
		return m.Msg.GetMachine().GetParts()[0].GetRestart()
	}
	// waitPulls waits for n more pulls to pass the proxy: cycles ran.
	waitPulls := func(n int64) {
		t.Helper()
		from := pulls.Load()
		cloudtest.Eventually(t, "more pulls", func() error {
			if got := pulls.Load() - from; got < n {
				return fmt.Errorf("%d pulls", got)
			}
			return nil
		})
	}
	restartedLines := func(r *running) int {
		return strings.Count(r.stderr.String(), `"msg":"restarted the robot as the cloud asked"`)
	}

	blockReports.Store(true)
	r := run(t, p, clock.NewReal(), func(o *Options) { o.SyncInterval = time.Second })
	<-r.ready
	waitStarts(1)
	if _, err := machines.RestartMachine(ctx, connect.NewRequest(&fleetv1.RestartMachineRequest{MachineId: cp.MachineID})); err != nil {
		t.Fatal(err)
	}
	waitStarts(2)
	waitPulls(2)
	if got := pids(); len(got) != 2 || got[0] == got[1] || restartedLines(r) != 1 {
		t.Fatalf("after the request: recorder PIDs %v, %d restarts logged; want a second PID and one restart", got, restartedLines(r))
	}
	if st := restart(); st.GetRequestedAt() == nil {
		t.Fatalf("with the reports lost the cloud shows %v, want still pending", st)
	}

	// The daemon restarts; the cloud still sends the order; it is done.
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	r = run(t, p, clock.NewReal(), func(o *Options) { o.SyncInterval = time.Second })
	<-r.ready
	waitStarts(3) // the daemon's own start
	waitPulls(3)
	if got := pids(); len(got) != 3 || restartedLines(r) != 0 || restart().GetRequestedAt() == nil {
		t.Fatalf("after the daemon restarted: recorder PIDs %v, %d restarts logged, cloud shows %v; want 3, none, still pending", got, restartedLines(r), restart())
	}

	blockReports.Store(false)
	cloudtest.Eventually(t, "the cloud clears the request", func() error {
		if st := restart(); st.GetRequestedAt() != nil || st.GetOutcome() != "restarted" {
			return fmt.Errorf("the cloud shows %v", st)
		}
		return nil
	})
	waitPulls(2)
	if got := pids(); len(got) != 3 {
		t.Fatalf("once cleared: recorder PIDs %v, want 3", got)
	}

	// Asked while the part is cut off: it happens once it is back.
	proxy.SetDown(true)
	if _, err := machines.RestartMachine(ctx, connect.NewRequest(&fleetv1.RestartMachineRequest{MachineId: cp.MachineID})); err != nil {
		t.Fatal(err)
	}
	from := proxy.Requests()
	cloudtest.Eventually(t, "the part tries the cloud during the partition", func() error {
		if proxy.Requests()-from < 2 {
			return fmt.Errorf("%d requests", proxy.Requests()-from)
		}
		return nil
	})
	if got := pids(); len(got) != 3 {
		t.Fatalf("during the partition: recorder PIDs %v, want 3", got)
	}
	proxy.SetDown(false)
	waitStarts(4)
	cloudtest.Eventually(t, "the cloud clears the second request", func() error {
		if st := restart(); st.GetRequestedAt() != nil || st.GetOutcome() != "restarted" {
			return fmt.Errorf("the cloud shows %v", st)
		}
		return nil
	})
	waitPulls(2)
	if got := pids(); len(got) != 4 || restartedLines(r) != 1 {
		t.Fatalf("after the partition: recorder PIDs %v, %d restarts logged; want 4, 1", got, restartedLines(r))
	}
}
