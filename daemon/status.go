package daemon

import (
	"context"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/cloudsync"
)

// updateStatus keeps systemctl status's line current, sending only changes.
func (d *daemon) updateStatus() {
	st, msg := d.syncLoop.current().State()
	s := fmt.Sprintf("control on %s; cloud %s", d.endpoints.Control, st)
	if d.offline.Known() && st != cloudsync.StateOnline {
		s += fmt.Sprintf(" (last contact %s ago)", d.offline.SinceContact().Truncate(time.Second))
	}
	if msg != "" && st != cloudsync.StateOnline {
		s += ": " + firstLineOf(msg)
	}
	if s != d.lastStatus {
		d.lastStatus = s
		_ = d.o.notifier.Status(s)
	}
}

func firstLineOf(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 120 {
		s = s[:120] + "..."
	}
	return s
}

// statusAPI is control's Status over the syncer and the offline clock.
type statusAPI struct{ d *daemon }

func (s statusAPI) SyncStatus(context.Context) (*controlv1.StatusResponse, error) {
	d := s.d
	st, _ := d.syncLoop.current().State()
	version := d.applied.current().Version
	resp := &controlv1.StatusResponse{PartId: d.partID, SyncState: syncStateProto(st), ConfigVersion: version,
		StoreBytes: uint64(max(d.store.Usage().Bytes, 0)), StoreBudgetBytes: uint64(max(d.budget.MaxBytes, 0))}
	if d.offline.Known() {
		resp.LastContact = timestamppb.New(d.offline.LastContact())
		resp.OfflineFor = ttl(d.offline.SinceContact())
	}
	if g := d.grants.cur.Load(); g != nil && g.GetExpiresAt() != nil {
		resp.TimeLeft = ttl(g.GetExpiresAt().AsTime().Sub(offlineTime{Clock: d.clk, offline: d.offline}.Now()))
	}
	return resp, nil
}

// partStatus is what each sync cycle reports to the cloud.
func (d *daemon) partStatus() *syncv1.PartStatus {
	version := d.applied.current().Version
	st := &syncv1.PartStatus{Version: d.o.Version, ConfigVersion: version}
	if d.ctl != nil {
		st.ControlCertSha256 = certSHA256(d.ctl.Fingerprint())
	}
	if g := d.grants.cur.Load(); g != nil {
		st.GrantsVersion = g.GetVersion()
	}
	for _, r := range d.robot.Resources() {
		st.Resources = append(st.Resources, &syncv1.ResourceStatus{
			Name:  r.GetName(),
			State: strings.TrimPrefix(strings.ToLower(r.GetState().String()), "resource_state_"),
			Error: r.GetError(),
		})
	}
	return st
}

func (d *daemon) componentHealth() map[string]bool {
	out := map[string]bool{}
	for _, r := range d.robot.Resources() {
		out[strings.TrimPrefix(strings.ToLower(r.GetKind().String()), "resource_kind_")+"/"+r.GetName()] = r.GetState() == controlv1.ResourceState_RESOURCE_STATE_RUNNING
	}
	return out
}
