package daemon

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/protobuf/proto"

	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/cache"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/logging"
)

func openStore(t *testing.T, clk clock.Clock) *cache.Store {
	t.Helper()
	st, err := cache.Open(context.Background(), t.TempDir(), cache.Options{Clock: clk, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func readLogs(t *testing.T, st *cache.Store, stream cache.Stream) []*syncv1.LogEntry {
	t.Helper()
	entries, err := st.Read(context.Background(), stream, 0, 1000, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var out []*syncv1.LogEntry
	for _, e := range entries {
		var le syncv1.LogEntry
		if err := proto.Unmarshal(e.Payload, &le); err != nil {
			t.Fatal(err)
		}
		out = append(out, &le)
	}
	return out
}

func TestLogSinkWritesEachLevelToItsStream(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC))
	st := openStore(t, clk)
	sink := newLogSink(st, clk, 64)
	log, _ := logging.New(logging.Options{Level: zapcore.DebugLevel, Format: logging.FormatJSON, Writer: discard{}, Tee: sink})
	log = log.Named("robot").With(zap.String("component", "motor1"))

	log.Debug("polling")
	log.Info("started", zap.Int("pid", 42))
	log.Warn("slow read")
	log.Error("crashed")
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // Run drains what is queued, then returns
	if err := sink.Run(ctx); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		stream cache.Stream
		want   []string
	}{
		{cache.StreamLogsDebug, []string{"polling"}},
		{cache.StreamLogsInfo, []string{"started"}},
		{cache.StreamLogsWarn, []string{"slow read", "crashed"}},
	}
	for _, tc := range tests {
		got := readLogs(t, st, tc.stream)
		if len(got) != len(tc.want) {
			t.Fatalf("%s: %d entries, want %d", tc.stream, len(got), len(tc.want))
		}
		for i, le := range got {
			if le.GetMessage() != tc.want[i] || le.GetLogger() != "robot" {
				t.Errorf("%s[%d] = %v", tc.stream, i, le)
			}
		}
	}
	info := readLogs(t, st, cache.StreamLogsInfo)[0]
	if info.GetFieldsJson() != `{"component":"motor1","pid":42}` {
		t.Errorf("fields %s", info.GetFieldsJson())
	}
}

func TestLogSinkReportsDropsAsAGap(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC))
	st := openStore(t, clk)
	sink := newLogSink(st, clk, 2)
	log := zap.New(sink)
	for range 5 {
		log.Info("burst")
	}
	if got := sink.Dropped(); got != 3 {
		t.Fatalf("dropped %d, want 3", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := sink.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(readLogs(t, st, cache.StreamLogsInfo)); n != 2 {
		t.Fatalf("%d entries stored, want 2", n)
	}
	gaps, err := st.Read(context.Background(), cache.StreamGaps, 0, 10, 1<<20)
	if err != nil || len(gaps) != 1 {
		t.Fatalf("gaps %v, %v; want one", gaps, err)
	}
	g, err := cache.DecodeGap(gaps[0].Payload)
	if err != nil || g.Count != 3 {
		t.Fatalf("gap %+v, %v", g, err)
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
