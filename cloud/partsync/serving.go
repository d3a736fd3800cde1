package partsync

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/sync/semaphore"

	"github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1/syncv1connect"
	"github.com/outpost-robotics/outpost/clock"
)

// Defaults of the cloud-wide bound on package chunks served at once.
const (
	// DefaultChunkServes is how many chunks the cloud serves at once when
	// Options.ChunkServes is 0. A chunk of up to 512 KiB is held about twice
	// while it is served (read from the store, then encoded), so this
	// bounds what serving takes to some 32 MiB however many parts
	// download, and leaves the store's reads to the rest of the API.
	DefaultChunkServes = 32
	// DefaultChunkServeWait is how long a fetch over the bound waits for
	// its turn when Options.ChunkServeWait is 0: well under the 30 s a
	// part waits for an answer's headers.
	DefaultChunkServeWait = 5 * time.Second
	// maxRetryAfter caps the retry hint a refused fetch carries.
	maxRetryAfter = 30
)

// serving bounds the package chunks served at once across the cloud,
// from the authenticated call to the answer's last byte: a chunk's bytes
// are held until they are written, so the bound is on the whole call, not
// on the store read alone. Fetches over it queue in arrival order for a
// short wait, then are refused ResourceExhausted with a Retry-After
// header, which the part's client (cloudsync, through retryablehttp)
// honours before it tries again.
type serving struct {
	sem    *semaphore.Weighted
	limit  int
	wait   time.Duration
	clock  clock.Clock
	queued atomic.Int64
}

func newServing(limit int, wait time.Duration, clk clock.Clock) *serving {
	if limit <= 0 {
		limit = DefaultChunkServes
	}
	if wait <= 0 {
		wait = DefaultChunkServeWait
	}
	return &serving{sem: semaphore.NewWeighted(int64(limit)), limit: limit, wait: wait, clock: clk}
}

// wrap bounds next's GetPackageChunk calls; other calls pass untouched.
func (s *serving) wrap(next http.Handler, errw *connect.ErrorWriter) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != syncv1connect.SyncServiceGetPackageChunkProcedure {
			next.ServeHTTP(w, r)
			return
		}
		if err := s.acquire(r.Context()); err != nil {
			_ = errw.Write(w, r, err)
			return
		}
		defer s.sem.Release(1)
		next.ServeHTTP(w, r)
	})
}

// acquire takes a turn, waiting at most s.wait (on the injected clock)
// behind the fetches that came first.
func (s *serving) acquire(ctx context.Context) error {
	if s.sem.TryAcquire(1) {
		return nil
	}
	queued := s.queued.Add(1)
	defer s.queued.Add(-1)
	wait, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	t := s.clock.NewTimer(s.wait)
	defer t.Stop()
	go func() {
		select {
		case <-t.C():
			cancel(errBusy)
		case <-wait.Done():
		}
	}()
	err := s.sem.Acquire(wait, 1)
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return connect.NewError(connect.CodeCanceled, fmt.Errorf("get package chunk: %w", ctx.Err()))
	}
	// The queue ahead drains about limit fetches per round; a hint that
	// grows with it spreads the parts' next attempts out.
	secs := min(1+int(queued)/s.limit, maxRetryAfter)
	e := connect.NewError(connect.CodeResourceExhausted, fmt.Errorf("get package chunk: the cloud is serving %d chunks at once and %d more wait; try again in %d s", s.limit, queued, secs))
	e.Meta().Set("Retry-After", strconv.Itoa(secs))
	return e
}

// errBusy ends a wait for a turn that took too long.
var errBusy = errors.New("no turn to serve a chunk")
