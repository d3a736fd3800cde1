// Package sync is the daemon's only path to the fleet cloud. It
// brings signed configs and grant bundles in, takes logs, captures, audit
// events, gap records and blobs out exactly once, and keeps the offline clock
// that decides when cached grants expire.
package cloudsync

import (
	"cmp"
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	gosync "sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1/syncv1connect"
	"github.com/outpost-robotics/outpost/cache"
	"github.com/outpost-robotics/outpost/clock"
)

// State is where the part stands with the cloud.
type State int

// The states a part reports of its contact with the cloud.
const (
	StateUnknown  State = iota // no cycle has run yet
	StateOnline                // the last cycle succeeded
	StateDegraded              // the cloud answered, but some calls failed; or it did not answer one cycle, within OfflineAfter of the last contact
	StateOffline               // the cloud has not answered for OfflineAfter (or ever, since start)
	StateExpired               // no contact for longer than the grants allow
)

func (s State) String() string {
	return [...]string{"unknown", "online", "degraded", "offline", "expired"}[s]
}

// UploadOrder is the order streams go out in each cycle: what matters most
// for security and for knowing about loss first, bulk data last. Gap records
// go before the streams they describe, so the cloud knows which ranges are
// lost before it is asked to count past them.
var UploadOrder = []cache.Stream{
	cache.StreamAudit,
	cache.StreamGaps,
	cache.StreamProposals,
	cache.StreamLogsWarn,
	cache.StreamLogsInfo,
	cache.StreamLogsDebug,
	cache.StreamCaptures,
}

// DefaultInFlight is Options.InFlight's default: the upload requests of a
// stream on their way to the cloud at once.
const DefaultInFlight = 8

// Options configures a Syncer. Store, Client, Clock, Trust and Offline are
// required.
type Options struct {
	Store   *cache.Store
	Client  syncv1connect.SyncServiceClient
	Clock   clock.Clock
	Logger  *zap.Logger
	Trust   *Trust
	Offline *OfflineClock
	// Interval between cycles; 0 means 15 s. The cloud may change it:
	// the interval it sends wins at the first pull, and the syncer logs
	// which one won and why when they differ.
	Interval time.Duration
	// Jitter spreads cycles by ±Jitter×Interval so a fleet does not pull in
	// step; 0 means 0.1.
	Jitter float64
	// CycleTimeout bounds one cycle; 0 means 4/5 of Interval, so cycles
	// never overlap.
	CycleTimeout time.Duration
	// CycleBytes bounds what one cycle uploads, so a large backlog never
	// delays the next pull; 0 means 8 MiB. Uploads count the bytes they
	// take on the wire (compressed, by the ratio the stream learnt), as
	// what the budget bounds is how long a cycle holds the link.
	CycleBytes int
	// BatchBytes bounds one upload request; 0 means 1 MiB.
	BatchBytes int
	// InFlight bounds the upload requests of a stream on their way to the
	// cloud at once; 0 means DefaultInFlight (see uploadStream). 1 sends one batch at a
	// time and reads the next only after the answer. Uploads in flight
	// share the link and finish together, and the link then waits while
	// the cloud stores them and the part reads and encodes the next: 8 keep
	// a 10 Mbit/s, 50 ms uplink busy on a loaded part, where 2 left it idle
	// a sixth to two fifths of the time (docs/ARCHITECTURE.md, decision 22).
	// It holds up to 8 batches (BatchBytes each) in memory.
	InFlight int
	// OfflineAfter is how long the cloud may go unanswered, since the last
	// cycle it answered, before the part reports itself offline; a cycle
	// that reaches nobody within it reports degraded. 0 means three
	// intervals. One lost cycle — a loaded part missing its own cycle
	// deadline, a cloud slow for a moment, a blip on the link — is not what
	// a technician reading "offline" in status should be told.
	OfflineAfter time.Duration
	// StallCycles is how many consecutive cycles a stream may have records
	// to send and none acknowledged before it is reported as stalled (a
	// warning once, Stalled, the status and the metrics); 0 means 3.
	StallCycles int
	// Seed seeds the jitter; cycles of different parts differ by part id.
	Seed uint64
	// OnConfig is called with each newly verified config, after it is
	// stored, and again with the held one when it comes back into force
	// after an expiry the cloud's time disproved (see restore).
	OnConfig func(context.Context, *syncv1.ConfigDocument)
	// OnGrants is called with each newly verified grant bundle, after it
	// is stored, and again with the held one as OnConfig is.
	OnGrants func(context.Context, *syncv1.GrantBundle)
	// OnExpired is called once when the held grants or config expire by the
	// offline clock, so the daemon stops components safely.
	OnExpired func(context.Context, string)
	// Status returns what ReportStatus sends; nil sends the sync view only.
	Status func() *syncv1.PartStatus
	// OnRestart restarts the robot for a verified restart order from the
	// cloud; the syncer calls it once per order (see restart), after the
	// order is recorded, in the cycle whose pull brought it. An error
	// wrapping ErrRestartDeferred leaves the order for the next start; any
	// other is reported as the restart's failure. nil ignores restart
	// orders: the cloud keeps them pending until they expire.
	OnRestart func(context.Context, *syncv1.RestartOrder) error
	// OnBlobUploaded is called when the cloud confirms it holds a whole
	// blob, before the store's copy is deleted: file sync then deletes the
	// user's file where its folder opted in. A crash in between costs a
	// repeated upload, never a lost confirmation.
	OnBlobUploaded func(ctx context.Context, blobID string)
}

// Syncer runs the sync loop.
type Syncer struct {
	o   Options
	log *zap.Logger
	rng *rand.Rand

	// cycleMu makes cycles mutually exclusive: the loop's and a final one at
	// shutdown never overlap.
	cycleMu gosync.Mutex

	mu         gosync.Mutex
	state      State
	lastErr    string
	refused    map[string]string // document kind -> last refusal logged
	expiredFor string            // non-empty once OnExpired was called
	interval   time.Duration
	// given says Options.Interval was set (outpostd's --sync-interval),
	// so the cloud overriding it is worth saying once.
	given   bool
	storeID string
	// stalled counts, per stream, the cycles in a row that it had records
	// to send and got none acknowledged (guarded by mu).
	stalled map[cache.Stream]int

	// batch is each stream's current upload request size; only cycles
	// touch it, and they hold cycleMu.
	batch map[cache.Stream]batchSize
	// links is what each stream's uploads taught about compressing them,
	// and sample the encoder's sample; only cycles touch them.
	links  map[cache.Stream]*linkModel
	sample sampler
	// lastContact is the uptime of the last cycle whose pull the cloud
	// answered, and contacted whether there was one; cycles hold cycleMu.
	lastContact time.Duration
	contacted   bool
}

// batchSize bounds one upload request of a stream. A turn that fails (a
// missed deadline, usually: a slow link, or a cloud slow to commit) halves
// the next request from the largest it sent, down to a single record, and
// each answered request doubles it again up to the full size, so no batch
// is retried unchanged forever: every attempt either makes progress or
// makes itself smaller, and a stream back on a fast link is back to full
// batches within a few requests.
type batchSize struct {
	records, bytes int
}

func (b batchSize) shrink() batchSize {
	return batchSize{records: max(b.records/2, 1), bytes: max(b.bytes/2, 1)}
}

// min2 is the smaller of two sizes, field by field, ignoring a zero one
// (no request was made).
func min2(a, b batchSize) batchSize {
	if b.records == 0 {
		return a
	}
	return batchSize{records: min(a.records, b.records), bytes: min(a.bytes, b.bytes)}
}

func (b batchSize) grow(full batchSize) batchSize {
	return batchSize{records: min(b.records*2, full.records), bytes: min(b.bytes*2, full.bytes)}
}

// New checks the options and returns a Syncer.
func New(o Options) (*Syncer, error) {
	if o.Store == nil || o.Client == nil || o.Clock == nil || o.Trust == nil || o.Offline == nil {
		return nil, errors.New("sync: Store, Client, Clock, Trust and Offline are required")
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	given := o.Interval != 0
	o.Interval = cmp.Or(o.Interval, 15*time.Second)
	o.Jitter = cmp.Or(o.Jitter, 0.1)
	o.CycleTimeout = cmp.Or(o.CycleTimeout, o.Interval*4/5)
	o.CycleBytes = cmp.Or(o.CycleBytes, 8<<20)
	o.BatchBytes = cmp.Or(o.BatchBytes, 1<<20)
	o.InFlight = cmp.Or(o.InFlight, DefaultInFlight)
	o.StallCycles = cmp.Or(o.StallCycles, 3)
	return &Syncer{
		o:        o,
		log:      o.Logger.Named("sync"),
		rng:      rand.New(rand.NewPCG(o.Seed, 0x5bd1e995)),
		refused:  map[string]string{},
		interval: o.Interval,
		given:    given,
		stalled:  map[cache.Stream]int{},
		batch:    map[cache.Stream]batchSize{},
		links:    map[cache.Stream]*linkModel{},
	}, nil
}

// Stalled returns, for each stream reported as stalled, the cycles in a
// row it had records to send and got none acknowledged.
func (s *Syncer) Stalled() map[cache.Stream]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[cache.Stream]int{}
	for st, n := range s.stalled {
		if n >= s.o.StallCycles {
			out[st] = n
		}
	}
	return out
}

// noteProgress counts a stream's turn: a turn with records to send and
// none acknowledged extends its stall, which is logged once when it
// reaches StallCycles (with the error, when there was one); any progress
// ends it, logged too when it had been reported.
func (s *Syncer) noteProgress(st cache.Stream, acked int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if acked > 0 {
		if s.stalled[st] >= s.o.StallCycles {
			s.log.Info("stream is moving again", zap.String("stream", string(st)), zap.Int("stalled_cycles", s.stalled[st]))
		}
		delete(s.stalled, st)
		return
	}
	s.stalled[st]++
	if s.stalled[st] == s.o.StallCycles {
		fields := []zap.Field{zap.String("stream", string(st)), zap.Int("cycles", s.stalled[st]), zap.Int("batch_records", s.batch[st].records)}
		if err != nil {
			fields = append(fields, zap.Error(err))
		}
		s.log.Warn("stream has made no progress; the other streams keep going", fields...)
	}
}

// State returns the current state and the last error, for status.
func (s *Syncer) State() (State, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state, s.lastErr
}

// Run pulls at once, then cycles until ctx ends.
func (s *Syncer) Run(ctx context.Context) error {
	persist := s.o.Clock.NewTicker(time.Minute)
	defer persist.Stop()
	next := s.o.Clock.NewTimer(0)
	defer next.Stop()
	for {
		select {
		case <-ctx.Done():
			s.persistClock(context.WithoutCancel(ctx))
			return nil
		case <-persist.C():
			s.persistClock(ctx)
			s.checkExpiry(ctx)
		case <-next.C():
			if res := s.Cycle(ctx); res.More && res.Err == nil {
				next.Reset(0)
			} else {
				next.Reset(s.nextDelay())
			}
		}
	}
}

func (s *Syncer) nextDelay() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	j := (s.rng.Float64()*2 - 1) * s.o.Jitter
	return time.Duration(float64(s.interval) * (1 + j))
}

func (s *Syncer) persistClock(ctx context.Context) {
	if err := s.o.Store.PutOfflineClock(ctx, s.o.Offline.Snapshot()); err != nil {
		s.log.Warn("could not persist the offline clock", zap.Error(err))
	}
}

// Result says what one cycle did.
type Result struct {
	// Pulled is true when the cloud answered the pull.
	Pulled bool
	// NewConfig and NewGrants are the versions newly accepted, or 0.
	NewConfig, NewGrants uint64
	// Uploaded counts records acknowledged per stream.
	Uploaded map[cache.Stream]int
	// BlobBytes counts blob bytes the cloud confirmed.
	BlobBytes int64
	// Restart is what the part did with a restart order in this cycle;
	// nil when it acted on none.
	Restart *syncv1.RestartReport
	// More is true when the cycle's byte budget ran out with uploads still
	// waiting: Run starts the next cycle at once rather than after the
	// interval, so a backlog drains at the link's speed while every cycle
	// still pulls config and grants first.
	More bool
	// Err joins every error of the cycle.
	Err error

	// restartOrder is the signed restart order the pull carried.
	restartOrder *syncv1.SignedDocument
}

// Cycle runs one cycle: pull, then uploads in priority order within the
// byte budget, then a status report. It never runs concurrently with another.
func (s *Syncer) Cycle(ctx context.Context) Result {
	s.cycleMu.Lock()
	defer s.cycleMu.Unlock()
	ctx, cancel := s.deadline(ctx, "sync cycle", s.o.CycleTimeout)
	defer cancel()

	res := Result{Uploaded: map[cache.Stream]int{}}
	var errs []error
	if err := s.pull(ctx, &res); err != nil {
		errs = append(errs, err)
	}
	if res.Pulled {
		s.restore(ctx, res)
		// After restore, so a restart starts the config in force, and
		// before uploads, so this cycle's status reports it.
		var err error
		if res.Restart, err = s.restart(ctx, res.restartOrder); err != nil {
			errs = append(errs, err)
		}
		if err := s.upload(ctx, &res); err != nil {
			errs = append(errs, err)
		}
		if err := s.report(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	res.Err = errors.Join(errs...)
	now := s.o.Clock.Uptime()
	if res.Pulled {
		s.lastContact, s.contacted = now, true
	}
	switch since := now - s.lastContact; {
	case !res.Pulled && s.contacted && since < s.offlineAfter():
		s.setState(StateDegraded, fmt.Errorf("the cloud did not answer this cycle (last answer %v ago): %w", since.Round(time.Millisecond), res.Err))
	case !res.Pulled:
		s.setState(StateOffline, res.Err)
	case res.Err != nil:
		s.setState(StateDegraded, res.Err)
	default:
		s.setState(StateOnline, nil)
	}
	s.checkExpiry(ctx)
	return res
}

// Interval is the time between cycles now: Options.Interval until the
// cloud sets one.
func (s *Syncer) Interval() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.interval
}

// setInterval takes the interval the cloud sent. A change is logged with
// what it replaced: the first time the cloud overrides the interval the
// part was started with, saying that the cloud's wins and why, since an
// operator who passed --sync-interval otherwise sees it ignored silently.
func (s *Syncer) setInterval(d time.Duration) {
	s.mu.Lock()
	was, given := s.interval, s.given
	s.interval, s.given = d, false
	s.mu.Unlock()
	switch {
	case d == was:
	case given:
		s.log.Warn("the cloud's sync interval wins over the one this part was started with",
			zap.Duration("interval", d), zap.Duration("started_with", was),
			zap.String("why", "the cloud sets every part's sync interval (outpost-cloud --poll-interval); a part's own (outpostd --sync-interval) holds only until its first pull"))
	default:
		s.log.Info("the cloud changed the sync interval", zap.Duration("interval", d), zap.Duration("was", was))
	}
}

// offlineAfter is Options.OfflineAfter, or three of the current intervals.
func (s *Syncer) offlineAfter() time.Duration {
	if s.o.OfflineAfter > 0 {
		return s.o.OfflineAfter
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return 3 * s.interval
}

// deadline is context.WithTimeout on the injected clock, so a test can run a
// hung cloud into its deadline without waiting for it. The deadline itself
// is kept as the context's (by the injected clock), for requestTimeout.
func (s *Syncer) deadline(ctx context.Context, what string, d time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	ctx = context.WithValue(ctx, deadlineKey{}, s.o.Clock.Uptime()+d)
	t := s.o.Clock.NewTimer(d)
	done := make(chan struct{})
	go func() {
		select {
		case <-t.C():
			cancel(fmt.Errorf("%s deadline of %v passed", what, d))
		case <-done:
		}
	}()
	return ctx, func() {
		t.Stop()
		close(done)
		cancel(context.Canceled)
	}
}

// deadlineKey keys the injected clock's uptime at which a context made by
// deadline ends.
type deadlineKey struct{}

// fits reports whether a batch of raw payload bytes sent in mode, after
// the window's, is expected to be answered within half of what is left of
// the cycle (the other half is for the rest of the cycle), at the rates
// the stream's uploads were measured at. Unmeasured, it fits.
func (s *Syncer) fits(ctx context.Context, m *linkModel, window []*inflight, mode sendMode, raw int) bool {
	end, ok := ctx.Value(deadlineKey{}).(time.Duration)
	rate := m.rates[mode].perSecond()
	if !ok || rate <= 0 {
		return true
	}
	need := float64(raw) / rate
	for _, f := range window {
		if r := m.rates[f.mode].perSecond(); r > 0 {
			need += float64(f.raw) / r
		}
	}
	return time.Duration(need*float64(time.Second)) <= (end-s.o.Clock.Uptime())/2
}

// requestTimeout is half of what is left of ctx's deadline (the cycle's),
// at least 1 ms.
func (s *Syncer) requestTimeout(ctx context.Context) time.Duration {
	end, ok := ctx.Value(deadlineKey{}).(time.Duration)
	if !ok {
		return s.o.CycleTimeout / 2
	}
	return max((end-s.o.Clock.Uptime())/2, time.Millisecond)
}

func (s *Syncer) setState(st State, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.expiredFor != "" && st != StateOnline {
		st = StateExpired
	}
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	if st != s.state {
		// Logged on change only: a part offline for weeks must not fill its
		// own store with one line per cycle.
		fields := []zap.Field{zap.Stringer("from", s.state), zap.Stringer("to", st)}
		if err != nil {
			fields = append(fields, zap.Error(err))
		}
		if st == StateOnline {
			s.log.Info("cloud sync state changed", fields...)
		} else {
			s.log.Warn("cloud sync state changed", fields...)
		}
	}
	s.state, s.lastErr = st, msg
}

func (s *Syncer) pull(ctx context.Context, res *Result) error {
	cfg, err := s.o.Store.GetDocument(ctx, cache.KindConfig)
	if err != nil && !errors.Is(err, cache.ErrNotFound) {
		return fmt.Errorf("read held config version: %w", err)
	}
	grants, err := s.o.Store.GetDocument(ctx, cache.KindGrants)
	if err != nil && !errors.Is(err, cache.ErrNotFound) {
		return fmt.Errorf("read held grants version: %w", err)
	}
	ans, err := s.o.Client.Pull(ctx, connect.NewRequest(&syncv1.PullRequest{ConfigVersion: cfg.Version, GrantsVersion: grants.Version}))
	if err != nil {
		return fmt.Errorf("pull: %w", err)
	}
	res.Pulled = true
	msg := ans.Msg
	if st := msg.GetServerTime(); st.IsValid() {
		s.o.Offline.Contact(st.AsTime())
		s.persistClock(ctx)
	}
	if d := msg.GetPollInterval().AsDuration(); d >= time.Second && d <= time.Hour {
		s.setInterval(d)
	}
	res.restartOrder = msg.GetRestart()
	var errs []error
	if doc := msg.GetGrants(); doc != nil {
		g, err := s.o.Trust.Grants(doc, grants.Version, false)
		if err = s.accept(ctx, cache.KindGrants, doc, g, err); err != nil {
			errs = append(errs, err)
		} else {
			res.NewGrants = g.GetVersion()
			if s.o.OnGrants != nil {
				s.o.OnGrants(ctx, g)
			}
		}
	}
	if doc := msg.GetConfig(); doc != nil {
		c, err := s.o.Trust.Config(doc, cfg.Version, false)
		if err = s.accept(ctx, cache.KindConfig, doc, c, err); err != nil {
			errs = append(errs, err)
		} else {
			res.NewConfig = c.GetVersion()
			if s.o.OnConfig != nil {
				s.o.OnConfig(ctx, c)
			}
		}
	}
	for _, p := range msg.GetProposals() {
		if p.GetAccepted() {
			s.log.Info("the cloud accepted an offline config edit", zap.Uint64("proposal", p.GetSeq()), zap.Uint64("revision", p.GetRevision()))
		} else {
			s.log.Warn("the cloud kept an offline config edit as a conflict for an owner to resolve", zap.Uint64("proposal", p.GetSeq()), zap.Uint64("current_revision", p.GetRevision()), zap.String("message", p.GetMessage()))
		}
	}
	return errors.Join(errs...)
}

// accept stores a verified document, or logs its refusal once. The document
// already held stays in force either way.
func (s *Syncer) accept(ctx context.Context, kind cache.Kind, doc *syncv1.SignedDocument, m interface {
	proto.Message
	GetVersion() uint64
}, verr error) error {
	if verr != nil {
		s.mu.Lock()
		first := s.refused[string(kind)] != verr.Error()
		s.refused[string(kind)] = verr.Error()
		s.mu.Unlock()
		if first {
			s.log.Error("refused a document from the cloud; keeping the one held", zap.String("kind", string(kind)), zap.Error(verr))
		}
		return fmt.Errorf("refuse %s: %w", kind, verr)
	}
	raw, err := proto.Marshal(doc)
	if err != nil {
		return fmt.Errorf("encode %s for the store: %w", kind, err)
	}
	if err := s.o.Store.PutDocument(ctx, kind, cache.Document{Raw: raw, Version: m.GetVersion(), FetchedAt: s.o.Clock.Now()}); err != nil {
		return fmt.Errorf("store %s version %d: %w", kind, m.GetVersion(), err)
	}
	s.mu.Lock()
	delete(s.refused, string(kind))
	if kind == cache.KindGrants {
		s.expiredFor = ""
	}
	s.mu.Unlock()
	s.log.Info("accepted a document from the cloud", zap.String("kind", string(kind)), zap.Uint64("version", m.GetVersion()))
	return nil
}

// LoadGrants returns the held grant bundle, verified again (on load as well
// as on receipt, so a store edited on disk grants nothing), or nil when none
// is held.
func (s *Syncer) LoadGrants(ctx context.Context) (*syncv1.GrantBundle, error) {
	doc, version, err := s.loadDoc(ctx, cache.KindGrants)
	if doc == nil || err != nil {
		return nil, err
	}
	return s.o.Trust.Grants(doc, version, true)
}

// LoadConfig returns the held config, verified again, or nil when none is held.
func (s *Syncer) LoadConfig(ctx context.Context) (*syncv1.ConfigDocument, error) {
	doc, version, err := s.loadDoc(ctx, cache.KindConfig)
	if doc == nil || err != nil {
		return nil, err
	}
	return s.o.Trust.Config(doc, version, true)
}

func (s *Syncer) loadDoc(ctx context.Context, kind cache.Kind) (*syncv1.SignedDocument, uint64, error) {
	held, err := s.o.Store.GetDocument(ctx, kind)
	if errors.Is(err, cache.ErrNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("load %s: %w", kind, err)
	}
	var doc syncv1.SignedDocument
	if err := proto.Unmarshal(held.Raw, &doc); err != nil {
		return nil, 0, fmt.Errorf("load %s: decode: %w", kind, err)
	}
	return &doc, held.Version, nil
}

// checkExpiry tells the daemon, once, that the held grants or config are past
// their expiry by the offline clock.
func (s *Syncer) checkExpiry(ctx context.Context) {
	s.mu.Lock()
	already := s.expiredFor != ""
	s.mu.Unlock()
	if already {
		return
	}
	var why string
	held := []struct {
		kind cache.Kind
		into expiring
	}{{cache.KindGrants, &syncv1.GrantBundle{}}, {cache.KindConfig, &syncv1.ConfigDocument{}}}
	for _, h := range held {
		exp, err := s.heldExpiry(ctx, h.kind, h.into)
		if err != nil || exp.IsZero() || !s.o.Trust.Expired(exp) {
			continue
		}
		why = fmt.Sprintf("the cached grants and config expired at %s: the part has not reached the cloud since %s; reconnect it to the network, or use the break-glass socket on the part",
			exp.UTC().Format(time.RFC3339), s.o.Offline.LastContact().UTC().Format(time.RFC3339))
		break
	}
	if why == "" {
		return
	}
	s.mu.Lock()
	s.expiredFor = why
	prev := s.state
	s.state = StateExpired
	s.mu.Unlock()
	s.log.Error("cached grants and config expired", zap.Stringer("from", prev), zap.String("why", why))
	if s.o.OnExpired != nil {
		s.o.OnExpired(ctx, why)
	}
}

// expiring is a signed document with an expiry: a grant bundle or a config.
type expiring interface {
	proto.Message
	GetExpiresAt() *timestamppb.Timestamp
}

// heldExpiry returns when the held document of kind expires, decoding it
// into into; the zero time when none is held.
func (s *Syncer) heldExpiry(ctx context.Context, kind cache.Kind, into expiring) (time.Time, error) {
	doc, _, err := s.loadDoc(ctx, kind)
	if doc == nil || err != nil {
		return time.Time{}, err
	}
	if err := proto.Unmarshal(doc.GetPayload(), into); err != nil {
		return time.Time{}, fmt.Errorf("decode held %s: %w", kind, err)
	}
	return into.GetExpiresAt().AsTime(), nil
}

// restore takes the held grants and config back into force after an
// expiry that contact disproved. A wall clock that jumps ahead counts as
// time offline (the part cannot tell a bad NTP step from a long absence),
// so it can expire documents that the cloud's time, once it answers, shows
// are still valid. The cloud then has nothing newer to
// send, and without this the part would stay expired, components stopped,
// until the cloud renews its documents at half their lifetime, weeks later.
// Both are verified again on the corrected offline clock; if either is
// really expired, nothing changes.
func (s *Syncer) restore(ctx context.Context, res Result) {
	s.mu.Lock()
	expired := s.expiredFor != ""
	s.mu.Unlock()
	if !expired {
		return
	}
	g, err := s.LoadGrants(ctx)
	if err != nil || g == nil {
		return
	}
	c, err := s.LoadConfig(ctx)
	if err != nil {
		return
	}
	s.mu.Lock()
	s.expiredFor = ""
	s.mu.Unlock()
	s.log.Info("the cloud's time shows the held grants and config are still valid: they are in force again",
		zap.Uint64("grants_version", g.GetVersion()), zap.Uint64("config_version", c.GetVersion()))
	if res.NewGrants == 0 && s.o.OnGrants != nil {
		s.o.OnGrants(ctx, g)
	}
	if c != nil && res.NewConfig == 0 && s.o.OnConfig != nil {
		s.o.OnConfig(ctx, c)
	}
}

// ExpiredReason returns why remote access is refused, or "" while in force.
func (s *Syncer) ExpiredReason() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.expiredFor
}

// StoreID returns the store's incarnation id, making it on first use.
func (s *Syncer) StoreID(ctx context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.storeID != "" {
		return s.storeID, nil
	}
	const key = "sync.store_id"
	b, err := s.o.Store.GetState(ctx, key)
	if err != nil && !errors.Is(err, cache.ErrNotFound) {
		return "", fmt.Errorf("read store id: %w", err)
	}
	if len(b) == 0 {
		raw := make([]byte, 16)
		if _, err := crand.Read(raw); err != nil {
			return "", fmt.Errorf("make store id: %w", err)
		}
		b = []byte(hex.EncodeToString(raw))
		if err := s.o.Store.PutState(ctx, key, b); err != nil {
			return "", fmt.Errorf("save store id: %w", err)
		}
	}
	s.storeID = string(b)
	return s.storeID, nil
}

// maxBatchRecords bounds the records of one upload request: well within
// the cloud's limit (partsync.DefaultLimits allows 10,000), and large enough
// that a batch of short log lines still fills most of BatchBytes.
const maxBatchRecords = 4000

// upload sends each stream's backlog in UploadOrder, then blobs, within the
// cycle's byte budget. A stream whose upload fails gives up its turn (its
// next request is smaller) and the streams after it still have theirs; once
// it is reported stalled its requests have half of what is left of the
// cycle, so one stuck stream never holds the others back for long. The
// cycle reports every failure.
func (s *Syncer) upload(ctx context.Context, res *Result) error {
	storeID, err := s.StoreID(ctx)
	if err != nil {
		return err
	}
	budget := s.o.CycleBytes
	var errs []error
	for _, st := range UploadOrder {
		if ctx.Err() != nil {
			break
		}
		if budget, err = s.uploadStream(ctx, res, storeID, st, budget); err != nil {
			errs = append(errs, err)
		}
	}
	switch {
	case budget <= 0:
		res.More = true
	case ctx.Err() == nil:
		if err := s.uploadBlobs(ctx, res, budget); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// inflight is one upload request on its way to the cloud.
type inflight struct {
	seqs  []uint64 // the batch's sequence numbers, ascending
	done  chan uploadAnswer
	mode  sendMode
	probe bool
	raw   int  // payload bytes
	full  bool // of the stream's full batch size
}

type uploadAnswer struct {
	ackedThrough uint64
	err          error
	// took is the time from the request's send to its answer, and shared
	// the uploads of the stream on their way meanwhile (on average of the
	// two ends, itself included).
	took   time.Duration
	shared float64
}

// learnsCompression reports whether the client sends an upload compressed
// or not as the Syncer chooses (NewClient's zstd client does); any other
// client compresses as it was made to, and the Syncer does not learn.
func (s *Syncer) learnsCompression() bool {
	_, ok := s.o.Client.(interface{ choosesCompression() })
	return ok
}

// linkModel returns what stream st learnt about compressing.
func (s *Syncer) linkModel(st cache.Stream) *linkModel {
	m, ok := s.links[st]
	if !ok {
		m = newLinkModel()
		s.links[st] = m
	}
	return m
}

// sampleEncoder compresses a sample of entries to learn the stream's
// ratio and the encoder's speed on this part.
func (s *Syncer) sampleEncoder(st cache.Stream, m *linkModel, entries []cache.Entry) {
	s.sample.buf = sampleOf(s.sample.buf, entries)
	t0 := s.o.Clock.Uptime()
	n := s.sample.CompressedSize(s.sample.buf)
	was := m.mode
	m.sampled(len(s.sample.buf), n, s.o.Clock.Uptime()-t0)
	if m.mode != was {
		s.logMode(m, st)
	}
}

// logMode says that a stream's uploads changed mode, and why.
func (s *Syncer) logMode(m *linkModel, st cache.Stream) {
	in := m.inputs()
	s.log.Info("a stream's uploads change compression",
		zap.String("stream", string(st)), zap.Stringer("compression", m.mode),
		zap.Float64("ratio", in.ratio), zap.Float64("compressor_mb_s", in.compressRate/1e6),
		zap.Float64("zstd_payload_mb_s", in.zstdRate/1e6), zap.Float64("identity_payload_mb_s", in.plainRate/1e6))
}

// uploadStream sends the backlog of one stream within budget and returns
// what is left of it.
//
// Up to InFlight batches are on their way at once: while the cloud stores
// one, the next is read from the store and encoded, and the part deletes
// what the previous answer acknowledged. Answers are handled strictly in
// the order the batches were sent, and the part deletes only through the
// cloud's watermark (the highest sequence it holds with nothing missing
// before it), so exactly-once does not depend on the order in which the
// cloud stores concurrent batches: whichever of batches 1..i it stores
// last answers with a watermark covering all of them, and that answer is
// handled no later than batch i's. The window is empty before the next
// stream starts, so streams still reach the cloud in UploadOrder (gap
// records before the ranges they declare lost).
func (s *Syncer) uploadStream(ctx context.Context, res *Result, storeID string, st cache.Stream, budget int) (left int, err error) {
	stats, err := s.o.Store.Stats(ctx, st)
	if err != nil {
		return budget, fmt.Errorf("upload %s: %w", st, err)
	}
	if stats.Last <= stats.AckedThrough || budget <= 0 {
		return budget, nil // nothing to send, or no turn this cycle
	}
	full := batchSize{records: maxBatchRecords, bytes: s.o.BatchBytes}
	size, ok := s.batch[st]
	if !ok {
		size = full
	}
	before := res.Uploaded[st]
	var sentMax batchSize // the largest request of this turn
	_, probation := s.Stalled()[st]
	defer func() {
		if err != nil {
			s.batch[st] = min2(size, sentMax).shrink()
		} else {
			s.batch[st] = size
		}
		s.noteProgress(st, res.Uploaded[st]-before, err)
	}()
	acked := stats.AckedThrough // the cloud's watermark, as far as the part knows
	next := acked               // the last sequence read
	// A cycle sends what the stream held when its turn came. Records
	// appended meanwhile wait for the next cycle: each upload request
	// logs a debug line, and at debug level chasing those lines kept the
	// cycle on logs.debug until its deadline, starving the captures after
	// it (found by the reliability suite's byte-budget scenario).
	end := stats.Last
	var sent uint64 // the highest sequence sent
	learn := s.learnsCompression()
	model := s.linkModel(st)
	var active atomic.Int32 // uploads of this turn on their way
	ctx, cancel := context.WithCancel(ctx)
	var window []*inflight
	defer func() {
		// A failure leaves the rest of the window unanswered: end those
		// calls, and wait, so none outlives the cycle.
		cancel()
		for _, f := range window {
			<-f.done
		}
	}()
	// apply acts on an answer: the part deletes through the cloud's
	// watermark and counts what that confirmed among the batches sent.
	apply := func(a uploadAnswer, batches ...*inflight) error {
		// The cloud cannot hold what was never sent; the clamp keeps a
		// confused cloud from making the part delete unsent records.
		through := min(a.ackedThrough, sent)
		if a.err != nil || through <= acked {
			return nil
		}
		if err := s.o.Store.Ack(ctx, st, through); err != nil {
			return fmt.Errorf("upload %s: ack through %d: %w", st, through, err)
		}
		for _, b := range batches {
			for _, seq := range b.seqs {
				if seq > acked && seq <= through {
					res.Uploaded[st]++
				}
			}
		}
		acked = through
		return nil
	}
	for {
		for len(window) < s.o.InFlight && budget > 0 {
			// The mode of the next batch is chosen before it is read, as
			// the budget it may spend depends on it.
			mode, probe := sendZstd, false
			if learn {
				mode, probe = model.next()
				if len(window) > 0 && !s.fits(ctx, model, window, mode, size.bytes) {
					// The budget counts wire bytes, which on a slow link
					// can be more than the cycle has time to send: the
					// rest waits for the next cycle, which starts at once.
					// An empty window always sends, so a stream whose one
					// batch takes long still moves (and shrinks its batch
					// if it misses the deadline).
					model.unsent(probe)
					budget = 0
					break
				}
			}
			entries, err := s.o.Store.Read(ctx, st, next, size.records, min(model.rawBytes(mode, budget), size.bytes))
			if err != nil {
				return budget, fmt.Errorf("upload %s: read backlog: %w", st, err)
			}
			if i := slices.IndexFunc(entries, func(e cache.Entry) bool { return e.Seq > end }); i >= 0 {
				entries = entries[:i]
			}
			if len(entries) == 0 {
				if learn {
					model.unsent(probe)
				}
				break
			}
			req, n, err := uploadRequest(storeID, st, entries)
			if err != nil {
				return budget, err
			}
			sentMax = batchSize{records: max(sentMax.records, len(entries)), bytes: max(sentMax.bytes, n)}
			f := &inflight{seqs: make([]uint64, len(entries)), done: make(chan uploadAnswer, 1), raw: n, mode: mode, probe: probe,
				// A batch cut short by the end of the backlog or of the
				// budget is mostly round trip: it teaches nothing about
				// the link's rate.
				full: 2*n >= size.bytes || len(entries) == size.records}
			for i, e := range entries {
				f.seqs[i] = e.Seq
			}
			if learn && model.needsSample() {
				s.sampleEncoder(st, model, entries)
			}
			sharedAtSend := active.Add(1)
			sentAt := s.o.Clock.Uptime()
			go func() {
				defer active.Add(-1)
				// A stalled stream is on probation: each of its requests
				// gets half of what is left of the cycle, so one that hangs
				// again leaves the other streams their turn. Any other
				// stream's requests have the whole cycle, as a slow but
				// working link (or a loaded machine) needs: one failure is
				// no reason to cut what the next attempt may take.
				rctx := ctx
				if probation {
					var cancel context.CancelFunc
					rctx, cancel = s.deadline(ctx, "upload request", s.requestTimeout(ctx))
					defer cancel()
				}
				if f.mode == sendPlain {
					rctx = withPlain(rctx)
				}
				ans, err := s.o.Client.Upload(rctx, connect.NewRequest(req))
				if err != nil {
					f.done <- uploadAnswer{err: err}
					return
				}
				f.done <- uploadAnswer{
					ackedThrough: ans.Msg.GetAckedThrough(),
					took:         s.o.Clock.Uptime() - sentAt,
					shared:       float64(sharedAtSend+active.Load()) / 2,
				}
			}()
			window = append(window, f)
			next = f.seqs[len(f.seqs)-1]
			sent = max(sent, next)
			// The budget bounds the time a cycle holds the link, so it
			// counts what the batch takes on the wire.
			budget -= model.wireBytes(f.mode, n)
		}
		if len(window) == 0 {
			return budget, nil
		}
		f := window[0]
		ans := <-f.done
		window = window[1:]
		if ans.err != nil {
			return budget, fmt.Errorf("upload %d records of %s: %w", len(f.seqs), st, ans.err)
		}
		if err := apply(ans, append([]*inflight{f}, window...)...); err != nil {
			return budget, err
		}
		if learn && f.full && model.answered(f.mode, f.probe, f.raw, ans.took, ans.shared) {
			s.logMode(model, st)
		}
		size = size.grow(full)
		first, last := f.seqs[0], f.seqs[len(f.seqs)-1]
		switch {
		case acked >= last:
		case acked < first:
			// The cloud holds none of it contiguously: something before
			// this batch is missing there. Stop rather than loop.
			return budget, fmt.Errorf("upload %s: the cloud acknowledged through %d, nothing of %d..%d", st, ans.ackedThrough, first, last)
		default:
			// It holds the batch in part: wait for what else is on its
			// way (it may cover the rest), then send again from the
			// watermark. Repeats are no-ops in the cloud.
			for len(window) > 0 {
				g := window[0]
				a := <-g.done
				window = window[1:]
				if err := apply(a, append([]*inflight{g}, window...)...); err != nil {
					return budget, err
				}
			}
			next = acked
		}
	}
}

// uploadRequest turns entries of st into an upload request and returns it
// with the payload bytes it carries.
func uploadRequest(storeID string, st cache.Stream, entries []cache.Entry) (*syncv1.UploadRequest, int, error) {
	req := &syncv1.UploadRequest{StoreId: storeID, Stream: string(st), Records: make([]*syncv1.Record, 0, len(entries))}
	size := 0
	for _, e := range entries {
		payload := e.Payload
		if st == cache.StreamGaps {
			var err error
			if payload, err = gapRecord(e.Payload); err != nil {
				return nil, 0, fmt.Errorf("upload gaps: record %d: %w", e.Seq, err)
			}
		}
		size += len(payload)
		req.Records = append(req.Records, &syncv1.Record{Seq: e.Seq, Time: timestamppb.New(e.Time), Payload: payload})
	}
	return req, size, nil
}

// gapRecord turns the store's gap payload into the wire's GapRecord.
func gapRecord(payload []byte) ([]byte, error) {
	g, err := cache.DecodeGap(payload)
	if err != nil {
		return nil, err
	}
	return proto.Marshal(&syncv1.GapRecord{
		Stream: string(g.Stream), FirstSeq: g.From, LastSeq: g.Through,
		Count: g.Count, Bytes: g.Bytes, Reason: g.Reason,
	})
}

func (s *Syncer) uploadBlobs(ctx context.Context, res *Result, budget int) error {
	blobs, err := s.o.Store.Blobs(ctx)
	if err != nil {
		return fmt.Errorf("list blobs: %w", err)
	}
	for _, b := range blobs {
		if !b.Sealed {
			continue
		}
		if budget <= 0 {
			res.More = true
			break
		}
		sum, err := s.blobSum(ctx, b)
		if err != nil {
			return err
		}
		off, complete := b.Uploaded, false
		for budget > 0 && !complete {
			chunk, err := s.o.Store.ReadBlob(ctx, b.ID, off, min(budget, s.o.BatchBytes))
			if err != nil {
				return fmt.Errorf("read blob %s at %d: %w", b.ID, off, err)
			}
			ans, err := s.o.Client.UploadBlob(ctx, connect.NewRequest(&syncv1.UploadBlobRequest{
				BlobId: b.ID, Offset: uint64(off), Data: chunk, Size: uint64(b.Size), Sha256: sum, Name: b.ID,
			}))
			if err != nil {
				return fmt.Errorf("upload blob %s at %d: %w", b.ID, off, err)
			}
			got := int64(ans.Msg.GetReceived())
			if got > b.Size {
				return fmt.Errorf("upload blob %s: the cloud says it holds %d of %d bytes", b.ID, got, b.Size)
			}
			// Less than was sent means "resume from here": the cloud lost or
			// discarded part of the blob (a SHA-256 mismatch discards it all).
			if err := s.o.Store.SetBlobUploaded(ctx, b.ID, got); err != nil {
				return fmt.Errorf("record blob %s progress: %w", b.ID, err)
			}
			if got > off {
				res.BlobBytes += got - off
			}
			budget -= len(chunk)
			if got <= off && len(chunk) == 0 {
				return fmt.Errorf("upload blob %s: the cloud did not complete it at %d of %d bytes", b.ID, got, b.Size)
			}
			off = got
			if ans.Msg.GetComplete() {
				if s.o.OnBlobUploaded != nil {
					s.o.OnBlobUploaded(ctx, b.ID)
				}
				if err := s.o.Store.DeleteBlob(ctx, b.ID); err != nil {
					return fmt.Errorf("delete uploaded blob %s: %w", b.ID, err)
				}
				complete = true
			}
		}
		if !complete {
			res.More = true // the budget ran out inside this blob
		}
	}
	return nil
}

func (s *Syncer) blobSum(ctx context.Context, b cache.BlobInfo) ([]byte, error) {
	h := sha256.New()
	for off := int64(0); off < b.Size; {
		chunk, err := s.o.Store.ReadBlob(ctx, b.ID, off, 1<<20)
		if err != nil {
			return nil, fmt.Errorf("hash blob %s: %w", b.ID, err)
		}
		if len(chunk) == 0 {
			return nil, fmt.Errorf("hash blob %s: short at %d of %d bytes", b.ID, off, b.Size)
		}
		h.Write(chunk)
		off += int64(len(chunk))
	}
	return h.Sum(nil), nil
}

func (s *Syncer) report(ctx context.Context) error {
	st := &syncv1.PartStatus{}
	if s.o.Status != nil {
		st = s.o.Status()
	}
	st.LastContact = timestamppb.New(s.o.Offline.LastContact())
	stalled := s.Stalled()
	for _, name := range UploadOrder {
		stats, err := s.o.Store.Stats(ctx, name)
		if err != nil {
			return fmt.Errorf("status: %w", err)
		}
		st.Backlog = append(st.Backlog, &syncv1.StreamBacklog{Stream: string(name), Records: stats.Count, Bytes: stats.Bytes, StalledCycles: uint32(stalled[name])})
	}
	st.StoreBytes = uint64(s.o.Store.Usage().Bytes)
	// An unreadable restart record leaves the field out rather than the
	// whole status: the rest still tells the cloud how the part is doing.
	// An unreadable restart record leaves the field out rather than the
	// whole status, logged once per distinct error, not once per cycle.
	last, err := s.LastRestart(ctx)
	s.mu.Lock()
	first := err != nil && s.refused["restart record"] != err.Error()
	if err != nil {
		s.refused["restart record"] = err.Error()
	}
	s.mu.Unlock()
	if first {
		s.log.Warn("the status goes without the last restart handled", zap.Error(err))
	}
	st.Restart = last
	if _, err := s.o.Client.ReportStatus(ctx, connect.NewRequest(&syncv1.ReportStatusRequest{Status: st})); err != nil {
		return fmt.Errorf("report status: %w", err)
	}
	return nil
}
