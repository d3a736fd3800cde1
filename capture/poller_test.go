package capture_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	"github.com/outpost-robotics/outpost/capture"
	"github.com/outpost-robotics/outpost/capture/capturetest"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/robot/builtin"
	"github.com/outpost-robotics/outpost/robot/component"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// finder is a fixed set of components.
type finder map[string]component.Component

func (f finder) Component(name string) (component.Component, component.Type, error) {
	c, ok := f[name]
	if !ok {
		return nil, 0, fmt.Errorf("%w %q", component.ErrNotFound, name)
	}
	return c, 0, nil
}

func fakes(t *testing.T, clk clock.Clock) finder {
	t.Helper()
	reg := component.NewRegistry()
	if err := builtin.Register(reg, builtin.Options{Clock: clk}); err != nil {
		t.Fatal(err)
	}
	f := finder{}
	for name, typ := range map[string]component.Type{"sensor": component.TypeSensor, "camera": component.TypeCamera, "motor": component.TypeMotor} {
		c, err := reg.Build(context.Background(), &configv1.Component{Name: name, Type: typ, Model: "fake"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		f[name] = c
	}
	return f
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// armed waits until the one polled method has taken its tick and armed the
// timer of its next.
func armed(ctx context.Context, t *testing.T, clk *clock.Fake) {
	t.Helper()
	if err := clk.BlockUntil(ctx, 1); err != nil {
		t.Fatal(err)
	}
}

// step moves the clock d on once the one polled method waits for its next
// tick.
func step(ctx context.Context, t *testing.T, clk *clock.Fake, d time.Duration) {
	t.Helper()
	armed(ctx, t, clk)
	clk.Advance(d)
}

// TestPoll100HzForAMinute runs a simulated minute at 100 Hz. The clock moves
// in 7 ms steps, out of phase with the 10 ms period: a scheduler that waits
// "a period after the last read" would drift and lose ticks; absolute ticks
// hit every one.
func TestPoll100HzForAMinute(t *testing.T) {
	ctx := testCtx(t)
	clk := clock.NewFake(time.Unix(1_700_000_000, 0))
	sink := capturetest.New()
	p := capture.NewPoller(capture.PollerOptions{Clock: clk, Sink: sink, Finder: fakes(t, clk)})
	defer p.Close()
	p.Apply(ctx, []*configv1.CaptureMethod{{Component: "sensor", Method: "readings", FrequencyHz: 100, Tags: []string{"bench"}, Priority: 7}})
	for elapsed := time.Duration(0); elapsed < time.Minute; elapsed += 7 * time.Millisecond {
		// The collector has armed its next tick (or is still waiting on it).
		step(ctx, t, clk, 7*time.Millisecond)
	}
	armed(ctx, t, clk)
	const want = 6000
	st := p.Stats()[0]
	if diff := int(st.Captured) - want; diff < -want/100 || diff > want/100 {
		t.Fatalf("captured %d in a simulated minute at 100 Hz, want %d ± 1%%", st.Captured, want)
	}
	if st.Missed != 0 || st.Errors != 0 {
		t.Fatalf("stats %+v", st)
	}
	caps, err := sink.Captures(capture.StreamCaptures)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range caps {
		if c.Tick != uint64(i+1) || c.Data.(map[string]any)["count"] != float64(i+1) {
			t.Fatalf("capture %d: tick %d data %v", i, c.Tick, c.Data)
		}
	}
	if c := caps[0]; c.Component != "sensor" || c.Method != "readings" || c.Tags[0] != "bench" || sink.Records(capture.StreamCaptures)[0].Priority != 7 {
		t.Fatalf("first capture %+v", c)
	}
}

// slowSensor blocks its third read until released.
type slowSensor struct {
	component.Sensor
	calls   int
	entered chan struct{}
	release chan struct{}
}

func (s *slowSensor) Readings(ctx context.Context) (map[string]any, error) {
	s.calls++
	if s.calls == 3 {
		close(s.entered)
		<-s.release
	}
	return map[string]any{"call": float64(s.calls)}, nil
}

func TestSlowReadSkipsTicksWithoutBunching(t *testing.T) {
	ctx := testCtx(t)
	clk := clock.NewFake(time.Unix(1_700_000_000, 0))
	sink := capturetest.New()
	slow := &slowSensor{entered: make(chan struct{}), release: make(chan struct{})}
	p := capture.NewPoller(capture.PollerOptions{Clock: clk, Sink: sink, Finder: finder{"slow": slow}})
	defer p.Close()
	p.Apply(ctx, []*configv1.CaptureMethod{{Component: "slow", Method: "readings", FrequencyHz: 10}})
	step(ctx, t, clk, 100*time.Millisecond) // tick 1
	step(ctx, t, clk, 100*time.Millisecond) // tick 2
	step(ctx, t, clk, 100*time.Millisecond) // tick 3: the read blocks
	<-slow.entered
	clk.Advance(350 * time.Millisecond) // ticks 4, 5, 6 pass during the read
	close(slow.release)
	armed(ctx, t, clk)
	// One timer, for tick 7 at 700 ms: not a burst of the missed ticks.
	if d, _ := clk.NextDeadline(); d != 50*time.Millisecond || clk.Waiters() != 1 {
		t.Fatalf("next tick in %v with %d timers, want one in 50ms", d, clk.Waiters())
	}
	if n := len(sink.Records(capture.StreamCaptures)); n != 3 {
		t.Fatalf("%d captures before tick 7, want 3", n)
	}
	step(ctx, t, clk, 50*time.Millisecond) // tick 7
	armed(ctx, t, clk)
	caps, _ := sink.Captures(capture.StreamCaptures)
	if last := caps[len(caps)-1]; len(caps) != 4 || last.Tick != 7 || last.Missed != 3 {
		t.Fatalf("captures %+v, want the 4th at tick 7 reporting 3 missed", caps)
	}
	if st := p.Stats()[0]; st.Missed != 3 || st.Captured != 4 {
		t.Fatalf("stats %+v", st)
	}
}

func TestPollImagesErrorsAndApply(t *testing.T) {
	ctx := testCtx(t)
	clk := clock.NewFake(time.Unix(1_700_000_000, 0))
	sink := capturetest.New()
	p := capture.NewPoller(capture.PollerOptions{Clock: clk, Sink: sink, Finder: fakes(t, clk)})
	defer p.Close()
	methods := []*configv1.CaptureMethod{
		{Component: "camera", Method: "image", FrequencyHz: 1},
		{Component: "ghost", Method: "status", FrequencyHz: 1},
		{Component: "motor", Method: "is_moving", FrequencyHz: 1},
	}
	p.Apply(ctx, methods)
	for range 2 {
		if err := clk.BlockUntil(ctx, 3); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Second)
	}
	if err := clk.BlockUntil(ctx, 3); err != nil {
		t.Fatal(err)
	}
	st := p.Stats()
	if st[0].Component != "camera" || st[0].Captured != 2 {
		t.Fatalf("camera stats %+v", st[0])
	}
	if st[1].Component != "ghost" || st[1].Errors != 2 || !strings.Contains(st[1].LastError, `no such component "ghost"`) {
		t.Fatalf("ghost stats %+v", st[1])
	}
	caps, _ := sink.Captures(capture.StreamCaptures)
	images := 0
	for _, c := range caps {
		if c.Method == "image" {
			images++
			img, sealed := sink.Blob(c.BlobID)
			if !sealed || c.MimeType != "image/png" || len(img) == 0 {
				t.Fatalf("image capture %+v: blob %d bytes sealed %v", c, len(img), sealed)
			}
		}
		if c.Method == "is_moving" && c.Data.(map[string]any)["moving"] != false {
			t.Fatalf("is_moving %+v", c)
		}
	}
	if images != 2 {
		t.Fatalf("%d images", images)
	}
	// Re-applying keeps unchanged methods (their counters too) and drops
	// removed ones.
	p.Apply(ctx, methods[:1])
	if st := p.Stats(); len(st) != 1 || st[0].Captured != 2 {
		t.Fatalf("after re-apply %+v", st)
	}
}

// gatedSink keeps every record it is given in order, but holds each append's
// answer until open is closed: a sync that takes long (an SD card's flush).
// failFrom, when not zero, is the first sequence whose append fails.
type gatedSink struct {
	*capturetest.Sink
	open     chan struct{}
	waiting  chan struct{} // gets a value when a Wait blocks
	failFrom uint64
	waits    atomic.Int64
}

func newGatedSink() *gatedSink {
	return &gatedSink{Sink: capturetest.New(), open: make(chan struct{}), waiting: make(chan struct{}, 1)}
}

func (g *gatedSink) Queue(ctx context.Context, st capture.Stream, rec capture.Record) (capture.Queued, error) {
	seq, err := g.Append(ctx, st, rec)
	if err != nil {
		return nil, err
	}
	return gated{g: g, seq: seq}, nil
}

type gated struct {
	g   *gatedSink
	seq uint64
}

// answered counts the Waits that returned.
func (g *gatedSink) answered() int64 { return g.waits.Load() }

var errSyncFailed = errors.New("sync failed: input/output error")

func (q gated) Done() <-chan struct{} { return q.g.open }

func (q gated) Wait() (uint64, error) {
	select {
	case <-q.g.open:
	default:
		select {
		case q.g.waiting <- struct{}{}:
		default:
		}
		<-q.g.open
	}
	q.g.waits.Add(1)
	if q.g.failFrom != 0 && q.seq >= q.g.failFrom {
		return 0, errSyncFailed
	}
	return q.seq, nil
}

// TestSlowSyncsCostNoTicks holds every append's sync: the collector goes on
// reading at its rate with InFlight records waiting, counts none of them
// captured before they are durable, and only then does the schedule miss
// ticks.
func TestSlowSyncsCostNoTicks(t *testing.T) {
	ctx := testCtx(t)
	clk := clock.NewFake(time.Unix(1_700_000_000, 0))
	sink := newGatedSink()
	p := capture.NewPoller(capture.PollerOptions{Clock: clk, Sink: sink, Finder: fakes(t, clk)})
	defer p.Close()
	p.Apply(ctx, []*configv1.CaptureMethod{{Component: "sensor", Method: "readings", FrequencyHz: 10}})
	for range capture.InFlight {
		step(ctx, t, clk, 100*time.Millisecond)
	}
	armed(ctx, t, clk)
	caps, err := sink.Captures(capture.StreamCaptures)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range caps {
		if c.Tick != uint64(i+1) || c.Missed != 0 {
			t.Fatalf("capture %d: tick %d, missed %d, want tick %d in order, none missed", i, c.Tick, c.Missed, i+1)
		}
	}
	if st := p.Stats()[0]; len(caps) != capture.InFlight || st.Captured != 0 || st.Missed != 0 || st.Errors != 0 {
		t.Fatalf("with %d syncs held: %d records, stats %+v; want all read on time and none counted captured", capture.InFlight, len(caps), st)
	}
	// The next tick waits for room; three more pass while it does.
	const n = capture.InFlight
	clk.Advance(100 * time.Millisecond)
	<-sink.waiting
	clk.Advance(350 * time.Millisecond)
	close(sink.open)
	armed(ctx, t, clk)
	if st := p.Stats()[0]; st.Captured != n+1 || st.Missed != 3 || st.Errors != 0 {
		t.Fatalf("after the syncs: stats %+v, want %d captured and the 3 ticks after it missed", st, n+1)
	}
	step(ctx, t, clk, 50*time.Millisecond)
	armed(ctx, t, clk)
	caps, _ = sink.Captures(capture.StreamCaptures)
	if last := caps[len(caps)-1]; len(caps) != n+2 || last.Tick != n+5 || last.Missed != 3 {
		t.Fatalf("last capture %+v of %d, want record %d at tick %d reporting 3 missed", last, len(caps), n+2, n+5)
	}
}

// TestFailedSyncsAreCountedInOrder fails the appends from the third on: a
// record counts as captured only once durable, and each failure is an
// error, said once in the log.
func TestFailedSyncsAreCountedInOrder(t *testing.T) {
	ctx := testCtx(t)
	clk := clock.NewFake(time.Unix(1_700_000_000, 0))
	sink := newGatedSink()
	sink.failFrom = 3
	core, logs := observer.New(zap.InfoLevel)
	p := capture.NewPoller(capture.PollerOptions{Clock: clk, Sink: sink, Finder: fakes(t, clk), Log: zap.New(core)})
	defer p.Close()
	p.Apply(ctx, []*configv1.CaptureMethod{{Component: "sensor", Method: "readings", FrequencyHz: 10}})
	for range 4 {
		step(ctx, t, clk, 100*time.Millisecond)
	}
	armed(ctx, t, clk)
	if st := p.Stats()[0]; st.Captured != 0 || st.Errors != 0 {
		t.Fatalf("before the syncs: stats %+v", st)
	}
	close(sink.open)
	clk.Advance(100 * time.Millisecond) // tick 5 answers what is known first
	armed(ctx, t, clk)
	if st := p.Stats()[0]; st.Captured != 2 || st.Errors != 3 || !strings.Contains(st.LastError, errSyncFailed.Error()) {
		t.Fatalf("after the syncs: stats %+v, want 2 captured and appends 3-5 failed", st)
	}
	p.Close()
	if n := len(sink.Records(capture.StreamCaptures)); n != 5 {
		t.Fatalf("%d records queued, want 5", n)
	}
	var msgs []string
	for _, e := range logs.All() {
		msgs = append(msgs, e.Message)
		if e.Message == "capture failing" && !strings.Contains(e.ContextMap()["error"].(string), "capture sensor.readings: "+errSyncFailed.Error()) {
			t.Errorf("failure logged as %v", e.ContextMap())
		}
	}
	if strings.Join(msgs, "; ") != "capture failing" {
		t.Fatalf("logged %q, want one capture failing", msgs)
	}
}

// TestStopAnswersWhatItQueued stops a method whose records wait on their
// syncs: the stop waits for every one of them to be answered, so none is
// left uncounted, and none is lost to the stop.
func TestStopAnswersWhatItQueued(t *testing.T) {
	ctx := testCtx(t)
	clk := clock.NewFake(time.Unix(1_700_000_000, 0))
	sink := newGatedSink()
	p := capture.NewPoller(capture.PollerOptions{Clock: clk, Sink: sink, Finder: fakes(t, clk)})
	p.Apply(ctx, []*configv1.CaptureMethod{{Component: "sensor", Method: "readings", FrequencyHz: 10}})
	for range 5 {
		step(ctx, t, clk, 100*time.Millisecond)
	}
	armed(ctx, t, clk)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		p.Close()
	}()
	<-sink.waiting // the stop waits on the first held sync
	select {
	case <-stopped:
		t.Fatal("Close returned with syncs held")
	default:
	}
	close(sink.open)
	<-stopped
	if n, got := len(sink.Records(capture.StreamCaptures)), sink.answered(); n != 5 || got != 5 {
		t.Fatalf("%d records queued, %d answered; want 5 and 5", n, got)
	}
}
