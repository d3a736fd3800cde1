package daemon

import (
	"os"

	"go.uber.org/zap"

	"github.com/outpost-robotics/outpost/logging"
)

// applyLevel sets the log level: the override file if there is one, else
// the running config's, else the start level.
func (d *daemon) applyLevel() {
	d.levelMu.Lock()
	defer d.levelMu.Unlock()
	level, source := d.o.LogLevel, "default"
	if d.cfgLevel != "" {
		if l, err := logging.ParseLevel(d.cfgLevel); err == nil {
			level, source = l, "config"
		}
	}
	if b, err := os.ReadFile(d.o.LevelFile); err == nil {
		if l, err := logging.ParseLevel(string(b)); err == nil {
			level, source = l, d.o.LevelFile
		} else {
			d.log.Warn("ignoring the log level override file", zap.String("file", d.o.LevelFile), zap.Error(err))
		}
	}
	if d.teeLevel.Level() != level {
		d.log.Info("log level changed", zap.Stringer("from", d.teeLevel.Level()), zap.Stringer("to", level), zap.String("source", source))
	}
	d.baseLevel.SetLevel(level)
	d.teeLevel.SetLevel(level)
}
