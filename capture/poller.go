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
	// Captured counts records appended.
	Captured uint64
	// Missed counts ticks skipped because a read outlasted them.
	Missed uint64
	// Errors counts failed reads and appends; LastError says the latest.
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

// run polls one method on absolute ticks: tick n is due at start+n*period,
// whatever the reads before it cost, so the schedule never drifts. A read
// that outlasts ticks skips them (counted, and reported in the next record)
// rather than firing them late in a burst.
func (p *Poller) run(ctx context.Context, c *collector) {
	defer close(c.done)
	clk := p.opts.Clock
	log := p.opts.Log.With(zap.String("component", c.cfg.GetComponent()), zap.String("method", c.cfg.GetMethod()))
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
	failing := ""
	for n := uint64(1); ; {
		if wait := start + time.Duration(n)*period - clk.Uptime(); wait > 0 {
			if timer == nil {
				timer = clk.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			select {
			case <-ctx.Done():
				return
			case <-timer.C():
			}
		} else if ctx.Err() != nil {
			return
		}
		err := p.capture(ctx, c, n, missed, startWall)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			c.errors.Add(1)
			msg := err.Error()
			c.lastErr.Store(&msg)
			// Log when the failure starts or changes, not at every tick.
			if msg != failing {
				log.Warn("capture failing", zap.Error(err))
				failing = msg
			}
		} else {
			missed = 0
			if failing != "" {
				log.Info("capture recovered")
				failing = ""
			}
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

// errWrongType is returned when a component no longer has the method (its
// type changed under the capture config).
var errWrongType = errors.New("component does not have this method")

func (p *Poller) capture(ctx context.Context, c *collector, tick, missed uint64, startWall time.Time) error {
	name, method := c.cfg.GetComponent(), c.cfg.GetMethod()
	comp, _, err := p.opts.Finder.Component(name)
	if err != nil {
		return err
	}
	now := p.opts.Clock.Now()
	rec := Capture{Kind: "method", Component: name, Method: method, Time: now, Tick: tick, Missed: missed, Tags: c.cfg.GetTags()}
	switch method {
	case config.MethodReadings:
		s, ok := comp.(component.Sensor)
		if !ok {
			return fmt.Errorf("%s: %w", method, errWrongType)
		}
		rec.Data, err = s.Readings(ctx)
	case config.MethodStatus:
		rec.Data, err = comp.Status(ctx)
	case config.MethodIsMoving:
		m, ok := comp.(component.Motor)
		if !ok {
			return fmt.Errorf("%s: %w", method, errWrongType)
		}
		var moving bool
		moving, err = m.IsMoving(ctx)
		rec.Data = map[string]any{"moving": moving}
	case config.MethodImage:
		cam, ok := comp.(component.Camera)
		if !ok {
			return fmt.Errorf("%s: %w", method, errWrongType)
		}
		var img []byte
		img, rec.MimeType, err = cam.Image(ctx, "")
		if err == nil {
			rec.BlobID = fmt.Sprintf("image/%s/%d/%d", name, startWall.UnixNano(), tick)
			err = putBlob(ctx, p.opts.Sink, rec.BlobID, img)
		}
	default:
		return fmt.Errorf("unknown capture method %q", method)
	}
	if err != nil {
		return fmt.Errorf("capture %s.%s: %w", name, method, err)
	}
	payload, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("capture %s.%s: encode: %w", name, method, err)
	}
	if _, err := p.opts.Sink.Append(ctx, StreamCaptures, Record{Payload: payload, Priority: uint8(c.cfg.GetPriority()), Time: now}); err != nil {
		return fmt.Errorf("capture %s.%s: %w", name, method, err)
	}
	c.captured.Add(1)
	return nil
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
