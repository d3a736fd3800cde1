package daemon

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/cloudsync"
	"github.com/outpost-robotics/outpost/config"
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
	st := &syncv1.PartStatus{Version: d.o.Version, ConfigVersion: version, Platform: d.pkgs.Platform(), Packages: d.pkgs.Status()}
	if d.ctl != nil {
		st.ControlCertSha256 = certSHA256(d.ctl.Fingerprint())
		st.ControlAddresses = controlAddresses(d.endpoints.Control)
		st.Peers = d.ctl.PeerStatus(context.Background())
	}
	for _, p := range d.applied.current().Parts {
		if p.GetId() == d.partID {
			st.Main = p.GetMain()
		}
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

// controlAddresses lists where the control plane listening on addr can be
// reached, for the other parts of the machine: addr itself, or, when it
// listens on every interface, each up interface's addresses with its port.
func controlAddresses(addr string) []string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsUnspecified() {
		return []string{addr}
	}
	ifaddrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []string
	for _, a := range ifaddrs {
		n, ok := a.(*net.IPNet)
		if !ok || n.IP.IsLoopback() || n.IP.IsLinkLocalUnicast() || (ip.To4() != nil && n.IP.To4() == nil) {
			continue
		}
		if len(out) < config.MaxAddresses {
			out = append(out, net.JoinHostPort(n.IP.String(), port))
		}
	}
	return out
}
