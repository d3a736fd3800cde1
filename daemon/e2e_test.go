package daemon

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	"github.com/outpost-robotics/outpost/capture"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/cloud/cloudtest"
	"github.com/outpost-robotics/outpost/cloud/partsync"
)

// TestEndToEndWithTheCloud provisions a part on a real outpost-cloud on
// loopback, gives its machine a config, and runs the daemon from the
// bootstrap file the cloud made: the daemon pulls and applies the config,
// captures, and on SIGTERM its final sync puts the captures and its log
// lines in the cloud, where the fleet API reads them back.
func TestEndToEndWithTheCloud(t *testing.T) {
	ctx := context.Background()
	cl := cloudtest.New(t, cloudtest.Options{Sync: partsync.Options{PollInterval: time.Second}})
	url := cl.URL

	// The admin provisions a machine with a config and bootstraps its part.
	admin := cl.Admin(t)
	orgs, locs, machines, configs, data := admin.Org, admin.Location, admin.Machine, admin.Config, admin.Data
	org, err := orgs.CreateOrg(ctx, connect.NewRequest(&fleetv1.CreateOrgRequest{Name: "Acme"}))
	if err != nil {
		t.Fatal(err)
	}
	loc, err := locs.CreateLocation(ctx, connect.NewRequest(&fleetv1.CreateLocationRequest{OrgId: org.Msg.GetOrg().GetId(), Name: "Plant"}))
	if err != nil {
		t.Fatal(err)
	}
	m, err := machines.CreateMachine(ctx, connect.NewRequest(&fleetv1.CreateMachineRequest{LocationId: loc.Msg.GetLocation().GetId(), Name: "rover"}))
	if err != nil {
		t.Fatal(err)
	}
	machineID := m.Msg.GetMachine().GetId()
	if _, err := configs.UpdateMachineConfig(ctx, connect.NewRequest(&fleetv1.UpdateMachineConfigRequest{MachineId: machineID, Config: sensorConfig(20, "sensor1")})); err != nil {
		t.Fatal(err)
	}
	boot, err := machines.BootstrapPart(ctx, connect.NewRequest(&fleetv1.BootstrapPartRequest{PartId: m.Msg.GetMachine().GetParts()[0].GetId(), CloudUrl: url}))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := protojson.Marshal(boot.Msg.GetBootstrap())
	if err != nil {
		t.Fatal(err)
	}
	p := &part{Dir: t.TempDir()}
	p.BootPath, p.DataDir, p.RunDir = filepath.Join(p.Dir, "outpostd.json"), filepath.Join(p.Dir, "data"), filepath.Join(p.Dir, "run")
	if err := os.WriteFile(p.BootPath, raw, 0o600); err != nil {
		t.Fatal(err)
	}

	// The part starts with an empty store and gets everything from the cloud.
	fromCloud := make(chan error, 1)
	captured := make(chan struct{})
	r := run(t, p, clock.NewReal(), func(o *Options) {
		o.afterApply = func(source string, err error) {
			if source == "cloud" {
				fromCloud <- err
			}
		}
		// captured is closed at the first capture the store acknowledged.
		var first sync.Once
		o.wrapSink = func(s capture.Sink) capture.Sink {
			return ackedSink{Sink: s, acked: func(uint64, capture.Record) { first.Do(func() { close(captured) }) }}
		}
	})
	ep := <-r.ready
	if err := <-fromCloud; err != nil {
		t.Fatalf("config from the cloud not applied: %v", err)
	}
	<-captured
	if ep.Control == "" {
		t.Fatal("no control address")
	}
	r.sig <- syscall.SIGTERM
	if err := <-r.errc; err != nil {
		t.Fatalf("Run: %v", err)
	}
	r.errc <- nil
	if !strings.Contains(r.stderr.String(), `"msg":"final sync done"`) {
		t.Fatalf("the final sync did not complete:\n%s", tail(r.stderr.String()))
	}

	caps, err := data.ListCaptures(ctx, connect.NewRequest(&fleetv1.ListCapturesRequest{MachineId: machineID, Component: "sensor1"}))
	if err != nil {
		t.Fatal(err)
	}
	if len(caps.Msg.GetCaptures()) == 0 || caps.Msg.GetCaptures()[0].GetCapture().GetMethod() != "readings" {
		t.Fatalf("the cloud holds captures %v, want sensor1's readings", caps.Msg.GetCaptures())
	}
	logs, err := data.ListLogs(ctx, connect.NewRequest(&fleetv1.ListLogsRequest{MachineId: machineID}))
	if err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for _, e := range logs.Msg.GetEntries() {
		msgs = append(msgs, e.GetEntry().GetMessage())
	}
	for _, want := range []string{"outpostd ready", "config applied", "stopping"} {
		found := false
		for _, m := range msgs {
			found = found || m == want
		}
		if !found {
			t.Errorf("the cloud's log of the part lacks %q: %q", want, msgs)
		}
	}
}
