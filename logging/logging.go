// Package logging builds the one zap logger every Outpost binary uses.
//
// Under systemd stderr is journald, which wants one JSON object per line; a
// person at a terminal wants readable lines. New picks by looking at the
// writer, and the level can be changed while the program runs (SIGHUP in
// outpostd, a flag in the CLI) through the returned zap.AtomicLevel.
package logging

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/term"
)

// Format chooses how log lines are written.
type Format string

// The formats New understands.
const (
	FormatAuto    Format = ""        // JSON unless the writer is a terminal
	FormatJSON    Format = "json"    // one JSON object per line (journald)
	FormatConsole Format = "console" // human-readable
)

// Options configures New. The zero value logs at info to stderr, choosing
// the format automatically.
type Options struct {
	Level  zapcore.Level
	Format Format
	// Writer receives the lines; nil means os.Stderr.
	Writer io.Writer
	// Tee receives every entry as well, for example the daemon's log stream
	// in the store, which syncs to the cloud. It gets entries at or above the
	// same run-time level.
	Tee zapcore.Core
	// Now stamps entries; nil means the machine's clock. Tests inject a fake.
	Now func() time.Time
}

// New returns a logger and the handle that changes its level at run time.
func New(opts Options) (*zap.Logger, zap.AtomicLevel) {
	w := opts.Writer
	if w == nil {
		w = os.Stderr
	}
	format := opts.Format
	if format == FormatAuto {
		format = FormatJSON
		if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			format = FormatConsole
		}
	}
	level := zap.NewAtomicLevelAt(opts.Level)

	var enc zapcore.Encoder
	if format == FormatConsole {
		cfg := zap.NewDevelopmentEncoderConfig()
		cfg.EncodeTime = zapcore.TimeEncoderOfLayout("15:04:05.000")
		enc = zapcore.NewConsoleEncoder(cfg)
	} else {
		cfg := zap.NewProductionEncoderConfig()
		cfg.TimeKey = "ts"
		cfg.EncodeTime = zapcore.RFC3339NanoTimeEncoder
		enc = zapcore.NewJSONEncoder(cfg)
	}
	core := zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(w)), level)
	if opts.Tee != nil {
		core = zapcore.NewTee(core, levelFiltered{Core: opts.Tee, level: level})
	}
	zopts := []zap.Option{zap.ErrorOutput(zapcore.Lock(zapcore.AddSync(w)))}
	if opts.Now != nil {
		zopts = append(zopts, zap.WithClock(funcClock(opts.Now)))
	}
	return zap.New(core, zopts...), level
}

// ParseLevel turns "debug", "info", "warn" or "error" into a level, with an
// error that lists the valid names.
func ParseLevel(s string) (zapcore.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug":
		return zapcore.DebugLevel, nil
	case "", "info":
		return zapcore.InfoLevel, nil
	case "warn", "warning":
		return zapcore.WarnLevel, nil
	case "error":
		return zapcore.ErrorLevel, nil
	}
	return zapcore.InfoLevel, fmt.Errorf("log level %q: want one of debug, info, warn, error", s)
}

// levelFiltered makes a teed core obey the run-time level too.
type levelFiltered struct {
	zapcore.Core
	level zap.AtomicLevel
}

func (l levelFiltered) Enabled(lvl zapcore.Level) bool {
	return l.level.Enabled(lvl) && l.Core.Enabled(lvl)
}

func (l levelFiltered) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if !l.level.Enabled(e.Level) {
		return ce
	}
	return l.Core.Check(e, ce)
}

func (l levelFiltered) With(fields []zapcore.Field) zapcore.Core {
	return levelFiltered{Core: l.Core.With(fields), level: l.level}
}

type funcClock func() time.Time

func (f funcClock) Now() time.Time { return f() }

func (f funcClock) NewTicker(d time.Duration) *time.Ticker { return time.NewTicker(d) }
