package capture

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/config"
	"github.com/outpost-robotics/outpost/robot/component"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
)

// Finder looks a running component up by name (robot.Robot is one).
type Finder interface {
	Component(name string) (component.Component, component.Type, error)
}

// PollerOptions are a Poller's collaborators.
type PollerOptions struct {
	Clock  clock.Clock
	Log    *zap.Logger
	Sink   Sink
	Finder Finder
}

// Poller polls the configured component methods, each on its own schedule.
type Poller struct {
	opts PollerOptions

	mu      sync.Mutex
	running map[string]*collector
}

// Stats describe one polled method since it started.
type Stats struct {
	Component, Method string
	// Captured counts records appended and durable.
	Captured uint64
	// Missed counts ticks skipped because a read outlasted them.
	Missed uint64
	// Errors counts failed reads and appends (an append when its failure
	// is known); LastError says the latest.
	Errors    uint64
	LastError string
}

type collector struct {
	cfg    *configv1.CaptureMethod
	cancel context.CancelFunc
	done   chan struct{}

	captured, missed, errors atomic.Uint64
	lastErr                  atomic.Pointer[string]
}

// NewPoller returns a poller polling nothing.
func NewPoller(opts PollerOptions) *Poller {
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	return &Poller{opts: opts, running: map[string]*collector{}}
}

func key(c *configv1.CaptureMethod) string { return c.GetComponent() + "\x00" + c.GetMethod() }

// Apply polls exactly methods from now on: methods whose config is unchanged
// keep their schedule and counters; removed and changed ones stop; new and
// changed ones start. The methods are assumed validated (config.Validate).
func (p *Poller) Apply(ctx context.Context, methods []*configv1.CaptureMethod) {
	want := map[string]*configv1.CaptureMethod{}
	for _, m := range methods {
		want[key(m)] = m
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, c := range p.running {
		if m, ok := want[k]; !ok || !proto.Equal(m, c.cfg) {
			c.cancel()
			<-c.done
			delete(p.running, k)
		}
	}
	for k, m := range want {
		if _, ok := p.running[k]; ok {
			continue
		}
		cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		c := &collector{cfg: proto.Clone(m).(*configv1.CaptureMethod), cancel: cancel, done: make(chan struct{})}
		p.running[k] = c
		go p.run(cctx, c)
	}
}

// Close stops every method.
func (p *Poller) Close() { p.Apply(context.Background(), nil) }

// Stats reports every polled method, sorted.
func (p *Poller) Stats() []Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Stats, 0, len(p.running))
	for _, c := range p.running {
		s := Stats{Component: c.cfg.GetComponent(), Method: c.cfg.GetMethod(), Captured: c.captured.Load(), Missed: c.missed.Load(), Errors: c.errors.Load()}
		if e := c.lastErr.Load(); e != nil {
			s.LastError = *e
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Component != out[j].Component {
			return out[i].Component < out[j].Component
		}
		return out[i].Method < out[j].Method
	})
	return out
}

// Period turns a frequency into the poll period.
func Period(hz float64) time.Duration {
	return time.Duration(float64(time.Second) / hz)
}

// InFlight is how many of one method's records may be queued in the store
// and not yet durable: the collector goes on reading while they share
// syncs, so a slow sync costs no ticks until this many are waiting. At
// 250 Hz, 64 is 256 ms: an SD card's flush of 20 ms, and the settle behind
// it when the store moves its intake into Badger (a synced commit of up to
// 4 MiB), cost none (BenchmarkDaemon with OUTPOSTD_BENCH_FSYNC_DELAY).
// Each waiting record holds its payload.
const InFlight = 64

// run polls one method on absolute ticks: tick n is due at start+n*period,
// whatever the reads before it cost, so the schedule never drifts. A read
// that outlasts ticks skips them (counted, and reported in the next record)
// rather than firing them late in a burst. Each record is queued in the
// store (Sink.Queue) and counted once it is durable, so the reads go on
// while earlier records sync.
func (p *Poller) run(ctx context.Context, c *collector) {
	defer close(c.done)
	clk := p.opts.Clock
	ans := &answers{c: c, log: p.opts.Log.With(zap.String("component", c.cfg.GetComponent()), zap.String("method", c.cfg.GetMethod()))}
	// What is queued is written whatever ctx does, so it is answered
	// even when the method is stopping.
	defer ans.all()
	period := Period(c.cfg.GetFrequencyHz())
	if period <= 0 {
		period = time.Nanosecond
	}
	start := clk.Uptime()
	startWall := clk.Now()
	var timer clock.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	var missed uint64
	for n := uint64(1); ; {
		if wait := start + time.Duration(n)*period - clk.Uptime(); wait > 0 {
			if timer == nil {
				timer = clk.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
		waiting:
			for {
				select {
				case <-ctx.Done():
					return
				case <-timer.C():
					break waiting
				case <-ans.next():
					ans.ready()
				}
			}
		} else if ctx.Err() != nil {
			return
		}
		// At most InFlight records wait on the store: past that, the
		// reads wait too, and the schedule counts the ticks they miss.
		ans.room()
		q, err := p.capture(ctx, c, n, missed, startWall)
		if q != nil {
			ans.add(outcome{queued: q})
			missed = 0
		}
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			ans.add(outcome{err: err})
		}
		// The next tick is the first one still in the future; the ones in
		// between were missed.
		next := uint64((clk.Uptime()-start)/period) + 1
		if next <= n {
			next = n + 1
		}
		if skipped := next - n - 1; skipped > 0 {
			c.missed.Add(skipped)
			missed += skipped
		}
		n = next
	}
}

// outcome is one tick's result: a record queued in the store, or the error
// that kept the tick from one.
type outcome struct {
	queued Queued
	err    error
}

// answers holds one method's outcomes until they are known, and answers
// them in tick order: it counts a record once the store has it durable, and
// counts and logs errors, when a failure starts or changes rather than at
// every tick.
type answers struct {
	c       *collector
	log     *zap.Logger
	ring    [InFlight]outcome
	head, n int
	failing string
}

// room waits until fewer than InFlight outcomes are held.
func (a *answers) room() {
	for a.n >= InFlight {
		a.answer()
	}
}

// add holds o, after room, and answers what is known.
func (a *answers) add(o outcome) {
	a.room()
	a.ring[(a.head+a.n)%InFlight] = o
	a.n++
	a.ready()
}

// next is closed when the oldest held outcome is known; nil (never ready)
// when none is held. add and ready answer every known outcome at the head,
// so the oldest held one is always a record waiting on the store.
func (a *answers) next() <-chan struct{} {
	if a.n == 0 {
		return nil
	}
	return a.ring[a.head].queued.Done()
}

// ready answers the outcomes known, oldest first, up to the first that is
// not.
func (a *answers) ready() {
	for a.n > 0 {
		if o := a.ring[a.head]; o.err == nil {
			select {
			case <-o.queued.Done():
			default:
				return
			}
		}
		a.answer()
	}
}

// all waits for and answers every held outcome.
func (a *answers) all() {
	for a.n > 0 {
		a.answer()
	}
}

// answer waits for the oldest held outcome and answers it.
func (a *answers) answer() {
	o := a.ring[a.head]
	a.ring[a.head] = outcome{}
	a.head = (a.head + 1) % InFlight
	a.n--
	c := a.c
	err := o.err
	if err == nil {
		if _, err = o.queued.Wait(); err != nil {
			err = fmt.Errorf("capture %s.%s: %w", c.cfg.GetComponent(), c.cfg.GetMethod(), err)
		}
	}
	if err != nil {
		c.errors.Add(1)
		msg := err.Error()
		c.lastErr.Store(&msg)
		if msg != a.failing {
			a.log.Warn("capture failing", zap.Error(err))
			a.failing = msg
		}
		return
	}
	c.captured.Add(1)
	if a.failing != "" {
		a.log.Info("capture recovered")
		a.failing = ""
	}
}

// errWrongType is returned when a component no longer has the method (its
// type changed under the capture config).
var errWrongType = errors.New("component does not have this method")

// capture reads one tick and queues its record.
func (p *Poller) capture(ctx context.Context, c *collector, tick, missed uint64, startWall time.Time) (Queued, error) {
	name, method := c.cfg.GetComponent(), c.cfg.GetMethod()
	comp, _, err := p.opts.Finder.Component(name)
	if err != nil {
		return nil, err
	}
	now := p.opts.Clock.Now()
	rec := Capture{Kind: "method", Component: name, Method: method, Time: now, Tick: tick, Missed: missed, Tags: c.cfg.GetTags()}
	switch method {
	case config.MethodReadings:
		s, ok := comp.(component.Sensor)
		if !ok {
			return nil, fmt.Errorf("%s: %w", method, errWrongType)
		}
		rec.Data, err = s.Readings(ctx)
	case config.MethodStatus:
		rec.Data, err = comp.Status(ctx)
	case config.MethodIsMoving:
		m, ok := comp.(component.Motor)
		if !ok {
			return nil, fmt.Errorf("%s: %w", method, errWrongType)
		}
		var moving bool
		moving, err = m.IsMoving(ctx)
		rec.Data = map[string]any{"moving": moving}
	case config.MethodImage:
		cam, ok := comp.(component.Camera)
		if !ok {
			return nil, fmt.Errorf("%s: %w", method, errWrongType)
		}
		var img []byte
		img, rec.MimeType, err = cam.Image(ctx, "")
		if err == nil {
			rec.BlobID = fmt.Sprintf("image/%s/%d/%d", name, startWall.UnixNano(), tick)
			err = putBlob(ctx, p.opts.Sink, rec.BlobID, img)
		}
	default:
		return nil, fmt.Errorf("unknown capture method %q", method)
	}
	if err != nil {
		return nil, fmt.Errorf("capture %s.%s: %w", name, method, err)
	}
	payload, err := json.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("capture %s.%s: encode: %w", name, method, err)
	}
	q, err := p.opts.Sink.Queue(ctx, StreamCaptures, Record{Payload: payload, Priority: uint8(c.cfg.GetPriority()), Time: now})
	if err != nil {
		return nil, fmt.Errorf("capture %s.%s: %w", name, method, err)
	}
	return q, nil
}

// blobChunk is the size of the chunks blobs are written in.
const blobChunk = 1 << 20

func putBlob(ctx context.Context, sink Sink, id string, data []byte) error {
	for off := 0; off < len(data); off += blobChunk {
		end := min(off+blobChunk, len(data))
		if err := sink.PutBlobChunk(ctx, id, int64(off), data[off:end]); err != nil {
			return err
		}
	}
	return sink.SealBlob(ctx, id)
}
