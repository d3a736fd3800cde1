package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"go.uber.org/zap/zapcore"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/cache"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/logging"
)

// logSink is a zapcore.Core that queues every log entry into the store's
// log streams, from which sync takes them to the cloud.
//
// Logging must never wait for a disk: an entry is handed to a bounded queue
// and written by Run in batches (the store's group commit then syncs them
// together). When the queue is full the entry is dropped and counted, and the
// count is written as a gap record, so the loss is visible in the cloud.
type logSink struct {
	q      *sinkQueue
	fields []zapcore.Field
}

type sinkQueue struct {
	store   *cache.Store
	clk     clock.Clock
	entries chan queued
	dropped atomic.Uint64

	// recent and followers serve the control plane's TailLogs and
	// FollowLogs from memory: the store's log streams lose what the cloud
	// acknowledged, and a field tech wants the last lines whatever sync did.
	mu        sync.Mutex
	recent    []recentEntry // ring of the last len(recent) entries
	next      int           // where the next entry goes in recent
	full      bool          // recent has wrapped
	followers map[*follower]struct{}
}

type recentEntry struct {
	time        time.Time
	level       zapcore.Level
	logger, msg string
	fields      string
}

type follower struct {
	min zapcore.Level
	ch  chan *controlv1.LogEntry
}

type queued struct {
	stream cache.Stream
	rec    cache.Record
}

// recentLogs is how many recent entries a logSink keeps in memory for
// TailLogs.
const recentLogs = 1000

// newLogSink returns a sink writing into store, holding at most depth
// entries not yet written.
func newLogSink(store *cache.Store, clk clock.Clock, depth int) *logSink {
	return &logSink{q: &sinkQueue{store: store, clk: clk, entries: make(chan queued, depth),
		recent: make([]recentEntry, recentLogs), followers: map[*follower]struct{}{}}}
}

// Enabled accepts every level; the logger's run-time level filters first.
func (s *logSink) Enabled(zapcore.Level) bool { return true }

// With returns a sink whose entries carry fields too.
func (s *logSink) With(fields []zapcore.Field) zapcore.Core {
	return &logSink{q: s.q, fields: append(append([]zapcore.Field(nil), s.fields...), fields...)}
}

// Check adds the sink to the entry's cores.
func (s *logSink) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	return ce.AddCore(e, s)
}

// Write queues the entry, or counts it as dropped when the queue is full.
func (s *logSink) Write(e zapcore.Entry, fields []zapcore.Field) error {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range s.fields {
		f.AddTo(enc)
	}
	for _, f := range fields {
		f.AddTo(enc)
	}
	fj := ""
	if len(enc.Fields) > 0 {
		b, err := json.Marshal(enc.Fields)
		if err != nil {
			b, _ = json.Marshal(map[string]string{"fields_error": err.Error()})
		}
		fj = string(b)
	}
	// A process's output is logged as it comes, and protobuf strings must
	// be UTF-8: without this, a line with one bad byte would be lost.
	e.Message = strings.ToValidUTF8(e.Message, "\uFFFD")
	e.LoggerName = strings.ToValidUTF8(e.LoggerName, "\uFFFD")
	payload, err := proto.Marshal(&syncv1.LogEntry{Level: e.Level.String(), Logger: e.LoggerName, Message: e.Message, FieldsJson: fj})
	if err != nil {
		return fmt.Errorf("encode log entry: %w", err)
	}
	select {
	case s.q.entries <- queued{stream: logStream(e.Level), rec: cache.Record{Payload: payload, Time: e.Time}}:
	default:
		s.q.dropped.Add(1)
	}
	s.q.remember(recentEntry{time: e.Time, level: e.Level, logger: e.LoggerName, msg: e.Message, fields: fj})
	return nil
}

// remember keeps r for Tail and hands it to every follower that keeps up; a
// follower that does not is skipped rather than slowing every log call.
func (q *sinkQueue) remember(r recentEntry) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.recent[q.next] = r
	q.next = (q.next + 1) % len(q.recent)
	if q.next == 0 {
		q.full = true
	}
	if len(q.followers) == 0 {
		return
	}
	pb := r.proto()
	for f := range q.followers {
		if r.level < f.min {
			continue
		}
		select {
		case f.ch <- pb:
		default:
		}
	}
}

func (r recentEntry) proto() *controlv1.LogEntry {
	return &controlv1.LogEntry{Time: timestamppb.New(r.time), Level: r.level.String(), Logger: r.logger, Message: r.msg, FieldsJson: r.fields}
}

// parseMinLevel reads a TailLogs or FollowLogs level; empty means all.
func parseMinLevel(s string) (zapcore.Level, error) {
	if s == "" {
		return zapcore.DebugLevel, nil
	}
	l, err := logging.ParseLevel(s)
	if err != nil {
		return 0, connect.NewError(connect.CodeInvalidArgument, err)
	}
	return l, nil
}

// Tail returns up to limit recent entries at minLevel or above, oldest
// first (control.Logs).
func (s *logSink) Tail(_ context.Context, limit int, minLevel string) ([]*controlv1.LogEntry, error) {
	min, err := parseMinLevel(minLevel)
	if err != nil {
		return nil, err
	}
	q := s.q
	q.mu.Lock()
	defer q.mu.Unlock()
	n := q.next
	if q.full {
		n = len(q.recent)
	}
	var out []*controlv1.LogEntry
	for i := 1; i <= n && len(out) < limit; i++ {
		r := q.recent[(q.next-i+len(q.recent))%len(q.recent)]
		if r.level >= min {
			out = append(out, r.proto())
		}
	}
	slices.Reverse(out)
	return out, nil
}

// Follow delivers new entries at minLevel or above until ctx ends, then
// closes the channel (control.Logs). A reader that falls more than a few
// hundred entries behind misses entries rather than slowing the daemon.
func (s *logSink) Follow(ctx context.Context, minLevel string) (<-chan *controlv1.LogEntry, error) {
	min, err := parseMinLevel(minLevel)
	if err != nil {
		return nil, err
	}
	f := &follower{min: min, ch: make(chan *controlv1.LogEntry, 256)}
	q := s.q
	q.mu.Lock()
	q.followers[f] = struct{}{}
	q.mu.Unlock()
	context.AfterFunc(ctx, func() {
		q.mu.Lock()
		defer q.mu.Unlock()
		delete(q.followers, f)
		close(f.ch)
	})
	return f.ch, nil
}

// Sync does nothing: entries reach the disk through Run.
func (s *logSink) Sync() error { return nil }

// logStream is the store stream for a level: debug and info logs are evicted
// first when the store is over budget, warnings and errors never.
func logStream(l zapcore.Level) cache.Stream {
	switch {
	case l <= zapcore.DebugLevel:
		return cache.StreamLogsDebug
	case l == zapcore.InfoLevel:
		return cache.StreamLogsInfo
	default:
		return cache.StreamLogsWarn
	}
}

// Run writes queued entries until ctx ends, then writes what is left.
func (s *logSink) Run(ctx context.Context) error {
	// Writes outlive ctx: an entry taken off the queue is written even when
	// shutdown begins at that moment.
	wctx := context.WithoutCancel(ctx)
	for {
		select {
		case <-ctx.Done():
			return s.flush(wctx)
		case q := <-s.q.entries:
			if err := s.write(wctx, q); err != nil {
				return err
			}
		}
	}
}

// flush writes everything queued now; the daemon calls it at shutdown.
func (s *logSink) flush(ctx context.Context) error {
	for {
		select {
		case q := <-s.q.entries:
			if err := s.write(ctx, q); err != nil {
				return err
			}
		default:
			return s.writeDropped(ctx)
		}
	}
}

// write appends q and whatever else is queued, one batch per stream.
func (s *logSink) write(ctx context.Context, first queued) error {
	batches := map[cache.Stream][]cache.Record{first.stream: {first.rec}}
	for n := 1; n < 512; n++ {
		select {
		case q := <-s.q.entries:
			batches[q.stream] = append(batches[q.stream], q.rec)
			continue
		default:
		}
		break
	}
	for st, recs := range batches {
		if _, err := s.q.store.AppendBatch(ctx, st, recs); err != nil {
			// Nowhere to log this but stderr, which the logger already
			// writes to; count it as dropped so the gap record tells.
			s.q.dropped.Add(uint64(len(recs)))
		}
	}
	return s.writeDropped(ctx)
}

func (s *logSink) writeDropped(ctx context.Context) error {
	n := s.q.dropped.Swap(0)
	if n == 0 {
		return nil
	}
	payload, err := json.Marshal(cache.Gap{Count: n, At: s.q.clk.Now(), Reason: fmt.Sprintf("%d log lines dropped: the log queue was full or the store refused them", n)})
	if err != nil {
		return fmt.Errorf("encode log gap: %w", err)
	}
	if _, err := s.q.store.Append(ctx, cache.StreamGaps, cache.Record{Payload: payload}); err != nil {
		s.q.dropped.Add(n)
		return nil
	}
	return nil
}

// Dropped returns how many entries are counted as dropped and not yet
// reported in a gap record.
func (s *logSink) Dropped() uint64 { return s.q.dropped.Load() }
