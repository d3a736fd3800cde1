package daemon

import (
	"os"
	"sync"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/outpost-robotics/outpost/logging"
)

// logLevel decides the level of both loggers: the override file if there is
// one, else the running config's, else the start level. Changes come from
// config applies (a sync goroutine or a control call) and from SIGHUP (the
// main loop).
type logLevel struct {
	// Set by start before anything logs through them; read-only after.
	start     zapcore.Level
	file      string          // the override file
	base, tee zap.AtomicLevel // the stderr-only logger's and the teed one's
	log       *zap.Logger

	mu  sync.Mutex // guards cfg and serialises changes, so the last one wins whole
	cfg string     // the running config's log_level
}

// reread applies the level again, reading the override file anew.
func (l *logLevel) reread() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.set()
}

// setConfig makes cfg the running config's level and applies the result.
func (l *logLevel) setConfig(cfg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cfg = cfg
	l.set()
}

// current is the level in force.
func (l *logLevel) current() zapcore.Level { return l.tee.Level() }

// set decides the level and sets it; l.mu is held.
func (l *logLevel) set() {
	level, source := l.start, "default"
	if l.cfg != "" {
		if lv, err := logging.ParseLevel(l.cfg); err == nil {
			level, source = lv, "config"
		}
	}
	if b, err := os.ReadFile(l.file); err == nil {
		if lv, err := logging.ParseLevel(string(b)); err == nil {
			level, source = lv, l.file
		} else {
			l.log.Warn("ignoring the log level override file", zap.String("file", l.file), zap.Error(err))
		}
	}
	if l.tee.Level() != level {
		l.log.Info("log level changed", zap.Stringer("from", l.tee.Level()), zap.Stringer("to", level), zap.String("source", source))
	}
	l.base.SetLevel(level)
	l.tee.SetLevel(level)
}
