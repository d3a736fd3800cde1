package cloud_test

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/cache"
	"github.com/outpost-robotics/outpost/cloudsync"
	"github.com/outpost-robotics/outpost/signed"
)

// TestDaemonSyncer runs the daemon's own Syncer, with a real cache, against
// the real cloud: it is provisioned from its bootstrap file, pulls and
// verifies its config and grants, uploads logs and captures, reports its
// status, and sees a revoked grant disappear in its next cycle.
func TestDaemonSyncer(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	f := newFleet(t, e)
	admin := e.client(e.adminToken)
	b := f.boot
	e.Remember(b.GetPartSecret())

	st, err := cache.Open(ctx, filepath.Join(t.TempDir(), "cache"), cache.Options{Clock: e.clk, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	client, err := cloudsync.NewClient(cloudsync.ClientOptions{CloudURL: b.GetCloudUrl(), PartID: b.GetPartId(), PartSecret: b.GetPartSecret(), Compression: "gzip", RetryMax: 1})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := signed.KeysFromProto(b.GetCloudKeys())
	if err != nil {
		t.Fatal(err)
	}
	offline := cloudsync.NewOfflineClock(e.clk, cache.OfflineClock{})
	syncer, err := cloudsync.New(cloudsync.Options{Store: st, Client: client, Clock: e.clk, Trust: cloudsync.NewTrust(b.GetPartId(), keys, offline), Offline: offline})
	if err != nil {
		t.Fatal(err)
	}
	cycle := func() cloudsync.Result {
		t.Helper()
		res := syncer.Cycle(ctx)
		if res.Err != nil {
			t.Fatalf("cycle: %v", res.Err)
		}
		return res
	}

	if res := cycle(); res.NewConfig == 0 || res.NewGrants == 0 {
		t.Fatalf("first cycle accepted config %d, grants %d", res.NewConfig, res.NewGrants)
	}
	cfg, err := syncer.LoadConfig(ctx)
	if err != nil || len(cfg.GetConfig().GetComponents()) != 3 {
		t.Fatalf("held config %v, %v", cfg, err)
	}
	if res := cycle(); res.NewConfig != 0 || res.NewGrants != 0 {
		t.Errorf("a cycle with nothing changed accepted %d, %d", res.NewConfig, res.NewGrants)
	}

	for i, lvl := range []string{"info", "warn"} {
		payload, _ := proto.Marshal(&syncv1.LogEntry{Level: lvl, Message: "from the daemon"})
		if _, err := st.Append(ctx, []cache.Stream{cache.StreamLogsInfo, cache.StreamLogsWarn}[i], cache.Record{Payload: payload}); err != nil {
			t.Fatal(err)
		}
	}
	capture, _ := proto.Marshal(&syncv1.Capture{Component: "lift", Method: "status", Tags: []string{"t1"}})
	if _, err := st.Append(ctx, cache.StreamCaptures, cache.Record{Payload: capture}); err != nil {
		t.Fatal(err)
	}
	check(admin.Role.RemoveRole(ctx, req(&fleetv1.RemoveRoleRequest{Subject: "user:" + f.user, Scope: "machine/" + f.machine})))(t)
	if res := cycle(); res.NewGrants == 0 || res.Uploaded[cache.StreamCaptures] != 1 {
		t.Errorf("cycle after a revocation: %+v", res)
	}
	gb, err := syncer.LoadGrants(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range gb.GetPrincipals() {
		if p.GetId() == f.user {
			t.Error("the revoked user is still in the held bundle")
		}
	}
	logs := check(admin.Data.ListLogs(ctx, req(&fleetv1.ListLogsRequest{MachineId: f.machine})))(t).GetEntries()
	caps := check(admin.Data.ListCaptures(ctx, req(&fleetv1.ListCapturesRequest{MachineId: f.machine, Tag: "t1"})))(t).GetCaptures()
	if len(logs) != 2 || len(caps) != 1 {
		t.Errorf("the cloud holds %d logs and %d captures, want 2 and 1", len(logs), len(caps))
	}
	status := check(admin.Machine.GetMachineStatus(ctx, req(&fleetv1.GetMachineStatusRequest{MachineId: f.machine})))(t)
	if status.GetLastSeen() == nil || status.GetParts()[0].GetIssuedGrantsVersion() != gb.GetVersion() {
		t.Errorf("status %v", status)
	}
	if !slices.Contains(gb.GetHierarchy().GetPartIds(), b.GetPartId()) {
		t.Errorf("hierarchy %v", gb.GetHierarchy())
	}
}
