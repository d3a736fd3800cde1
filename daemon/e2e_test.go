package daemon

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"go.uber.org/zap"
	"google.golang.org/protobuf/encoding/protojson"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1/fleetv1connect"
	"github.com/outpost-robotics/outpost/capture"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/cloud"
	"github.com/outpost-robotics/outpost/cloud/ingest"
	"github.com/outpost-robotics/outpost/cloud/ingest/badgeringest"
	"github.com/outpost-robotics/outpost/cloud/partsync"
	"github.com/outpost-robotics/outpost/cloud/store/badgerstore"
)

// firstAck signals the first capture the store acknowledged.
type firstAck struct {
	capture.Sink
	once chan struct{}
}

func (f *firstAck) Append(ctx context.Context, st capture.Stream, rec capture.Record) (uint64, error) {
	seq, err := f.Sink.Append(ctx, st, rec)
	if err == nil {
		select {
		case <-f.once:
		default:
			close(f.once)
		}
	}
	return seq, err
}

// TestEndToEndWithTheCloud provisions a part on a real outpost-cloud on
// loopback, gives its machine a config, and runs the daemon from the
// bootstrap file the cloud made: the daemon pulls and applies the config,
// captures, and on SIGTERM its final sync puts the captures and its log
// lines in the cloud, where the fleet API reads them back.
func TestEndToEndWithTheCloud(t *testing.T) {
	ctx := context.Background()
	log := zap.NewNop()
	clk := clock.NewReal()
	dir := t.TempDir()
	st, err := badgerstore.Open("", log)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	signer, _, err := cloud.Bootstrap(ctx, st, dir, clk, log)
	if err != nil {
		t.Fatal(err)
	}
	token, err := os.ReadFile(filepath.Join(dir, cloud.AdminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := ingest.NewFileBlobStore(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	ing, err := badgeringest.Open(badgeringest.Options{Dir: filepath.Join(dir, "ingest"), Blobs: blobs})
	if err != nil {
		t.Fatal(err)
	}
	defer ing.Close()
	srv, err := cloud.New(cloud.Config{Store: st, Signer: signer, Clock: clk, Log: log, Ingest: ing, Sync: partsync.Options{PollInterval: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- cloud.Serve(cctx, ln, srv.Handler(), "", "", log) }()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("cloud: %v", err)
		}
	}()
	url := "http://" + ln.Addr().String()

	// The admin provisions a machine with a config and bootstraps its part.
	bearer := connect.WithInterceptors(connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			req.Header().Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
			return next(ctx, req)
		}
	}))
	hc := http.DefaultClient
	orgs := fleetv1connect.NewOrgServiceClient(hc, url, bearer)
	locs := fleetv1connect.NewLocationServiceClient(hc, url, bearer)
	machines := fleetv1connect.NewMachineServiceClient(hc, url, bearer)
	configs := fleetv1connect.NewConfigServiceClient(hc, url, bearer)
	data := fleetv1connect.NewDataServiceClient(hc, url, bearer)
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
	r := run(t, p, clk, func(o *Options) {
		o.afterApply = func(source string, err error) {
			if source == "cloud" {
				fromCloud <- err
			}
		}
		o.wrapSink = func(s capture.Sink) capture.Sink { return &firstAck{Sink: s, once: captured} }
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
