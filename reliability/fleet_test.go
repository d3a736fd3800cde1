package reliability

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/control/v1/controlv1connect"
	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	"github.com/outpost-robotics/outpost/cloud/cloudtest"
)

// fleet is the admin's view of the cloud: the fleet API's clients, each
// call proving the admin's token.
type fleet struct{ *cloudtest.Clients }

func newFleet(url, token string, now func() time.Time) *fleet {
	return &fleet{cloudtest.NewClients(http.DefaultClient, url, connect.WithInterceptors(cloudtest.CloudAuth(token, now)))}
}

// machine is what provision made.
type machine struct {
	orgID, machineID, partID string
	revision                 uint64
}

// provision creates an organization, a location and a machine with cfg,
// and writes the main part's bootstrap file to bootPath with partURL as the
// cloud's address (the fault proxy's, so the part reaches the cloud
// through it), exactly as `outpost part bootstrap --cloud-url` does.
func (f *fleet) provision(ctx context.Context, cfg *configv1.RobotConfig, bootPath, partURL string) (machine, error) {
	var m machine
	org, err := f.Org.CreateOrg(ctx, connect.NewRequest(&fleetv1.CreateOrgRequest{Name: "Acme"}))
	if err != nil {
		return m, fmt.Errorf("create org: %w", err)
	}
	m.orgID = org.Msg.GetOrg().GetId()
	loc, err := f.Location.CreateLocation(ctx, connect.NewRequest(&fleetv1.CreateLocationRequest{OrgId: m.orgID, Name: "Plant"}))
	if err != nil {
		return m, fmt.Errorf("create location: %w", err)
	}
	mc, err := f.Machine.CreateMachine(ctx, connect.NewRequest(&fleetv1.CreateMachineRequest{LocationId: loc.Msg.GetLocation().GetId(), Name: "rover"}))
	if err != nil {
		return m, fmt.Errorf("create machine: %w", err)
	}
	m.machineID, m.partID = mc.Msg.GetMachine().GetId(), mc.Msg.GetMachine().GetParts()[0].GetId()
	if err := f.setConfig(ctx, &m, cfg); err != nil {
		return m, err
	}
	boot, err := f.Machine.BootstrapPart(ctx, connect.NewRequest(&fleetv1.BootstrapPartRequest{PartId: m.partID, CloudUrl: partURL}))
	if err != nil {
		return m, fmt.Errorf("bootstrap part: %w", err)
	}
	raw, err := protojson.Marshal(boot.Msg.GetBootstrap())
	if err != nil {
		return m, fmt.Errorf("encode the bootstrap file: %w", err)
	}
	if err := os.WriteFile(bootPath, raw, 0o600); err != nil {
		return m, fmt.Errorf("write the bootstrap file: %w", err)
	}
	return m, nil
}

// setConfig writes the machine's next config revision.
func (f *fleet) setConfig(ctx context.Context, m *machine, cfg *configv1.RobotConfig) error {
	res, err := f.Config.UpdateMachineConfig(ctx, connect.NewRequest(&fleetv1.UpdateMachineConfigRequest{MachineId: m.machineID, BaseRevision: m.revision, Config: cfg}))
	if err != nil {
		return fmt.Errorf("update the machine config: %w", err)
	}
	m.revision = res.Msg.GetRevision().GetRevision()
	return nil
}

// sensors is a config of fake sensors, each captured at hz with the given
// priority; pad makes each reading about that many bytes bigger.
func sensors(hz float64, pad int, prio map[string]uint32) *configv1.RobotConfig {
	cfg := &configv1.RobotConfig{LogLevel: "info"}
	// A stable order, so a config written twice is the same config.
	names := slices.Sorted(maps.Keys(prio))
	for _, n := range names {
		c := &configv1.Component{Name: n, Type: configv1.ComponentType_COMPONENT_TYPE_SENSOR, Model: "fake"}
		if pad > 0 {
			attrs, err := structpb.NewStruct(map[string]any{"readings": map[string]any{"pad": strings.Repeat("x", pad)}})
			if err != nil {
				panic(err) // a literal map of strings always converts
			}
			c.Attributes = attrs
		}
		cfg.Components = append(cfg.Components, c)
		cfg.Captures = append(cfg.Captures, &configv1.CaptureMethod{Component: n, Method: "readings", FrequencyHz: hz, Priority: prio[n]})
	}
	return cfg
}

// withoutCaptures is cfg with capture turned off: the way a test stops new
// records so that the part can drain.
func withoutCaptures(cfg *configv1.RobotConfig) *configv1.RobotConfig {
	return &configv1.RobotConfig{Components: cfg.GetComponents(), LogLevel: cfg.GetLogLevel(), StoreBudget: cfg.GetStoreBudget()}
}

// socketClient talks HTTP over the break-glass Unix socket.
func socketClient(path string) *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", path)
	}}}
}

// breakGlass is the control API over the part's break-glass socket.
func breakGlass(path string) controlv1connect.ControlServiceClient {
	return controlv1connect.NewControlServiceClient(socketClient(path), "http://outpostd")
}

// runningRevision is the machine revision the part runs, over the
// break-glass socket; 0 before it applied any config.
func runningRevision(ctx context.Context, sock string) (uint64, error) {
	res, err := breakGlass(sock).GetConfig(ctx, connect.NewRequest(&controlv1.GetConfigRequest{}))
	if err != nil {
		return 0, err
	}
	return res.Msg.GetMachineRevision(), nil
}

// drain stops capture through the cloud and waits until the part has
// uploaded everything but the log lines that keep coming, then stops the
// daemon (its final sync takes what is left). It returns the daemon's last
// metrics before the stop.
func drain(ctx context.Context, f *fleet, m *machine, p *partProc, cfg *configv1.RobotConfig) (map[string]float64, error) {
	if err := f.setConfig(ctx, m, withoutCaptures(cfg)); err != nil {
		return nil, err
	}
	want := m.revision
	if err := waitFor(waitDeadline, func() (bool, error) {
		rev, err := runningRevision(ctx, p.socket())
		return err == nil && rev >= want, nil
	}); err != nil {
		return nil, fmt.Errorf("the part did not apply revision %d (capture off): %w", want, err)
	}
	var last map[string]float64
	if err := waitFor(waitDeadline, func() (bool, error) {
		m, err := p.scrape(ctx)
		if err != nil {
			return false, nil
		}
		last = m
		for _, st := range []string{"captures", "gaps", "audit", "proposals"} {
			if m[`outpost_backlog_records{stream="`+st+`"}`] != 0 {
				return false, nil
			}
		}
		return true, nil
	}); err != nil {
		return nil, fmt.Errorf("the part did not drain its backlog (last metrics %v): %w", backlogOf(last), err)
	}
	return last, p.stop()
}

// backlogOf picks the backlog figures out of a scrape, for messages.
func backlogOf(m map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range m {
		if strings.HasPrefix(k, "outpost_backlog_records") {
			out[strings.TrimSuffix(strings.TrimPrefix(k, `outpost_backlog_records{stream="`), `"}`)] = v
		}
	}
	return out
}

// rig is what a process scenario runs on: the cloud as a child process, the
// fleet API as its admin, the link (fault proxy) the part reaches it by, and
// one part provisioned on a machine with cfg, not yet started.
type rig struct {
	cloud *cloudProc
	fleet *fleet
	link  *link
	part  *partProc
	m     machine
}

// newRig starts the cloud and provisions a part with cfg; a failure ends
// the scenario.
func newRig(ctx context.Context, t *testing.T, rep *report, cfg *configv1.RobotConfig) *rig {
	return newRigWith(ctx, t, rep, cfg)
}

// newRigWith is newRig with args added to the flags of both binaries.
func newRigWith(ctx context.Context, t *testing.T, rep *report, cfg *configv1.RobotConfig, args ...string) *rig {
	cl := newCloud(t, args...)
	token, err := cl.adminToken()
	if err != nil {
		rep.fatal("%v", err)
	}
	r := &rig{cloud: cl, fleet: newFleet(cl.URL(), token, time.Now), link: newLink(t, cl.URL()), part: newPart(t)}
	r.part.args = args
	if r.m, err = r.fleet.provision(ctx, cfg, r.part.boot, r.link.URL()); err != nil {
		rep.fatal("provision: %v", err)
	}
	return r
}

// startWithBudget starts the part so that its config's store budget is in
// force: the store takes a budget at open, so the part starts, saves the
// budget its config sets, and restarts; then it waits until the part is
// online. It returns the daemon that runs.
func (r *rig) startWithBudget(ctx context.Context, rep *report) *child {
	p := r.part
	if _, err := p.start(); err != nil {
		rep.fatal("start: %v", err)
	}
	if err := waitFor(waitDeadline, func() (bool, error) {
		_, err := os.Stat(filepath.Join(p.data, "budget.json"))
		return err == nil, nil
	}); err != nil {
		rep.fatal("the part never saved the config's budget: %v", err)
	}
	if err := p.stop(); err != nil {
		rep.fatal("%v", err)
	}
	if _, err := p.start(); err != nil {
		rep.fatal("restart with the budget: %v", err)
	}
	if err := waitFor(waitDeadline, func() (bool, error) {
		mt, err := p.scrape(ctx)
		return err == nil && mt[`outpost_sync_state{state="online"}`] == 1, nil
	}); err != nil {
		rep.fatal("the part did not get online: %v", err)
	}
	return p.c
}

// settle reads the drained part's store, stops the cloud and reads what it
// holds of the part's current store and of the earlier ones named.
func (r *rig) settle(ctx context.Context, rep *report, earlier ...string) (storeView, *cloudView) {
	sv, err := inspectStore(ctx, r.part.data, true)
	if err != nil {
		rep.fatal("final inspection: %v", err)
	}
	if err := r.cloud.stop(); err != nil {
		rep.fatal("%v", err)
	}
	cv, err := readCloud(ctx, r.cloud.dir, r.m.partID, append(earlier, sv.id)...)
	if err != nil {
		rep.fatal("%v", err)
	}
	return sv, cv
}
