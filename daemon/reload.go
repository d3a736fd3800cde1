package daemon

import (
	"context"

	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/outpost-robotics/outpost/partfile"
)

// reload is SIGHUP: re-read the bootstrap file and the log level. A bad
// bootstrap file is logged and the running one kept: a reload never stops
// a working robot.
func (d *daemon) reload(ctx context.Context) {
	if err := d.o.notifier.Reloading(d.clk.Uptime()); err != nil {
		d.log.Warn("could not tell systemd about the reload", zap.Error(err))
	}
	defer func() { _ = d.o.notifier.Ready(d.lastStatus) }()
	d.level.reread()
	b, err := partfile.LoadBootstrap(d.o.ConfigPath)
	if err != nil {
		d.log.Error("reload: keeping the running bootstrap file", zap.Error(err))
		return
	}
	if proto.Equal(b.File, d.boot.File) {
		d.log.Info("reloaded: bootstrap file unchanged", zap.Stringer("level", d.level.current()))
		return
	}
	if b.File.GetPartId() != d.boot.File.GetPartId() {
		d.log.Error("reload: the bootstrap file names another part; restart the daemon to become it", zap.String("new_part", b.File.GetPartId()))
		return
	}
	d.syncLoop.stop()
	if err := d.newSyncer(b); err != nil {
		// newSyncer installs nothing when it fails: the loop restarts on
		// the running file's syncer.
		d.log.Error("reload: keeping the running bootstrap file", zap.Error(err))
		d.startSync(ctx, false)
		return
	}
	d.boot = b
	d.log.Info("reloaded the bootstrap file: sync restarts with it", zap.String("cloud", b.File.GetCloudUrl()))
	d.startSync(ctx, false)
}
