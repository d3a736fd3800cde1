package daemon

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/cache"
	"github.com/outpost-robotics/outpost/capture"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/cloud/cloudtest"
)

// TestRefusalFloodKeepsCaptures: on a part whose uploads cannot reach the
// cloud, holding captures that fill most of a 1 MiB store budget, an
// operator key makes 8,000 calls it may not make. They are refused (and
// soon throttled), no capture is evicted, and the audit log holds a few
// records whose counts add up to the 8,000 refusals.
func TestRefusalFloodKeepsCaptures(t *testing.T) {
	ctx := context.Background()
	cl := cloudtest.New(t, cloudtest.Options{})
	proxyURL, _ := cl.HoldUploads(t)
	cp := cl.Provision(t, cloudtest.PartOptions{CloudURL: proxyURL, Config: &configv1.RobotConfig{LogLevel: "info",
		StoreBudget: &configv1.StoreBudget{MaxBytes: 1 << 20}}})
	operator := cl.CreateAPIKey(t, "operator", "machine/"+cp.MachineID)

	p := &part{Dir: t.TempDir()}
	p.DataDir, p.RunDir = filepath.Join(p.Dir, "data"), filepath.Join(p.Dir, "run")
	p.BootPath = cp.WriteBootstrap(t, p.Dir)
	const captures = 435
	st, err := cache.Open(ctx, filepath.Join(p.DataDir, "store"), cache.Options{Clock: clock.NewReal(), GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= captures; i++ {
		c := capture.Capture{Kind: "method", Component: "imu", Method: "readings", Tick: uint64(i), Data: map[string]any{"pad": strings.Repeat("x", 1500)}}
		b, _ := json.Marshal(c)
		if _, err := (CaptureSink{st}).Append(ctx, capture.StreamCaptures, capture.Record{Payload: b, Priority: 5}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	// The budget the config sets, as a start before this one saved it.
	if err := os.WriteFile(filepath.Join(p.DataDir, "budget.json"), []byte(`{"MaxBytes": 1048576}`), 0o640); err != nil {
		t.Fatal(err)
	}

	r := run(t, p, clock.NewReal(), func(o *Options) { o.SyncInterval = time.Hour; o.finalSync = time.Millisecond })
	ep := <-r.ready
	waitForGrants(t, ep.Socket)
	op := controlClient(t, ep.Control, operator.Token)
	const calls = 8000
	var denied, throttled int
	for range calls {
		_, err := op.TagCaptures(ctx, connect.NewRequest(&controlv1.TagCapturesRequest{Ids: []uint64{1}, Add: []string{"mine"}}))
		switch connect.CodeOf(err) {
		case connect.CodePermissionDenied:
			denied++
		case connect.CodeResourceExhausted:
			throttled++
		default:
			t.Fatalf("an operator tagging: %v", err)
		}
	}
	if throttled < calls/2 {
		t.Errorf("%d of %d refusals throttled: refusals per credential and peer are not slowed", throttled, calls)
	}
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}

	st, err = cache.Open(ctx, filepath.Join(p.DataDir, "store"), cache.Options{Clock: clock.NewReal(), GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if s, err := st.Stats(ctx, cache.StreamCaptures); err != nil || s.Count != captures {
		t.Errorf("captures after the flood: %d (%v), want all %d", s.Count, err, captures)
	}
	gaps, err := st.Read(ctx, cache.StreamGaps, 0, 1000, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range gaps {
		if g, _ := cache.DecodeGap(e.Payload); g.Stream == cache.StreamCaptures {
			t.Errorf("captures were evicted: %+v", g)
		}
	}
	recs, err := st.Read(ctx, cache.StreamAudit, 0, 100000, 0)
	if err != nil {
		t.Fatal(err)
	}
	var counted uint64
	for _, e := range recs {
		var ev syncv1.AuditEvent
		if err := proto.Unmarshal(e.Payload, &ev); err != nil {
			t.Fatal(err)
		}
		if !ev.GetAllowed() && ev.GetSubject() == "apikey/"+operator.ID {
			counted += max(ev.GetCount(), 1)
		}
	}
	if len(recs) > 20 || counted != calls {
		t.Errorf("%d audit records count %d of the operator's %d refusals, want a few records counting all", len(recs), counted, calls)
	}
}
