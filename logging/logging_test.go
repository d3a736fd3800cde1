package logging

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestNewWritesJSONToANonTerminal(t *testing.T) {
	var buf bytes.Buffer
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	log, _ := New(Options{Writer: &buf, Now: func() time.Time { return at }})
	log.Info("store opened", zapcore.Field{Key: "dir", Type: zapcore.StringType, String: "/var/lib/outpost"})
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("not one JSON line: %q: %v", buf.String(), err)
	}
	if line["msg"] != "store opened" || line["dir"] != "/var/lib/outpost" || line["level"] != "info" {
		t.Fatalf("unexpected fields: %v", line)
	}
	if line["ts"] != "2026-03-04T05:06:07Z" {
		t.Fatalf("ts = %v, want the injected time", line["ts"])
	}
}

func TestLevelChangesAtRunTimeForEveryCore(t *testing.T) {
	var buf bytes.Buffer
	obs, logs := observer.New(zapcore.DebugLevel)
	log, level := New(Options{Writer: &buf, Format: FormatConsole, Tee: obs})
	log.Debug("hidden")
	level.SetLevel(zapcore.DebugLevel)
	log.Debug("shown")
	if strings.Contains(buf.String(), "hidden") || !strings.Contains(buf.String(), "shown") {
		t.Fatalf("console output %q", buf.String())
	}
	if n := logs.Len(); n != 1 {
		t.Fatalf("tee got %d entries, want 1", n)
	}
}

func TestParseLevel(t *testing.T) {
	tests := []struct {
		in      string
		want    zapcore.Level
		wantErr bool
	}{
		{"debug", zapcore.DebugLevel, false},
		{"INFO", zapcore.InfoLevel, false},
		{"", zapcore.InfoLevel, false},
		{"warning", zapcore.WarnLevel, false},
		{"error", zapcore.ErrorLevel, false},
		{"loud", zapcore.InfoLevel, true},
	}
	for _, tc := range tests {
		got, err := ParseLevel(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("ParseLevel(%q) = %v, %v", tc.in, got, err)
		}
	}
}
