package cloudsync_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"connectrpc.com/connect"

	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1/syncv1connect"
	"github.com/outpost-robotics/outpost/cache"
	"github.com/outpost-robotics/outpost/cloud/cloudtest"
	"github.com/outpost-robotics/outpost/cloud/ingest"
	"github.com/outpost-robotics/outpost/cloudsync"
)

// appendGaps writes n gap records to the part's store, the i-th declaring
// debug log lines 2i-1 and 2i lost.
func appendGaps(t *testing.T, w *world, n int) {
	t.Helper()
	for i := 1; i <= n; i++ {
		payload, err := json.Marshal(cache.Gap{Stream: cache.StreamLogsDebug, From: uint64(2*i - 1), Through: uint64(2 * i), Count: 2, Bytes: 200,
			Reason: "over byte budget", At: epoch})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.store.Append(context.Background(), cache.StreamGaps, cache.Record{Payload: payload}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestGapBacklogFitsOneCycleOnSlowDisk is the catch-up livelock: a part
// back from a long outage holds thousands of gap records, and the cloud
// stores them on a disk whose every flush takes 20 ms. Stored one commit
// per record, the upload took longer than the cycle's deadline, the part
// never saw the answer and sent the same batch again forever. One commit
// per batch answers within the deadline.
func TestGapBacklogFitsOneCycleOnSlowDisk(t *testing.T) {
	const n = 3300
	w := newWorldWith(t, worldOptions{slowDisk: 20 * time.Millisecond, extra: []func(*cloudsync.Options){func(o *cloudsync.Options) {
		o.CycleTimeout = 800 * time.Millisecond
		o.BatchBytes, o.CycleBytes = 1<<20, 8<<20
	}}})
	appendGaps(t, w, n)
	res := w.cycle(t)
	if res.Err != nil {
		t.Fatalf("cycle: %v", res.Err)
	}
	if res.Uploaded[cache.StreamGaps] != n {
		t.Fatalf("one cycle acknowledged %d of %d gap records", res.Uploaded[cache.StreamGaps], n)
	}
	key := ingest.StreamKey{PartID: w.part.ID, StoreID: storeID(t, w), Stream: string(cache.StreamLogsDebug)}
	if got, err := w.cloud.Ingest().AckedThrough(context.Background(), key); err != nil || got != 2*n {
		t.Errorf("the cloud counts logs.debug through %d (%v), want %d: every declared loss took effect", got, err, 2*n)
	}
	if st, _ := w.store.Stats(context.Background(), cache.StreamGaps); st.Count != 0 {
		t.Errorf("the part still holds %d gap records", st.Count)
	}
}

func storeID(t *testing.T, w *world) string {
	t.Helper()
	id, err := w.syncer.StoreID(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// slowGaps is a sync client whose uploads of the gaps stream never finish
// while they carry more than fit records (a cloud or link that cannot take
// the batch the part first tries in time): each such upload says so on
// hung and waits for its deadline.
type slowGaps struct {
	syncv1connect.SyncServiceClient
	fit   int
	hung  chan struct{}
	tried []int // records per gaps upload, in order
}

func (c *slowGaps) Upload(ctx context.Context, req *connect.Request[syncv1.UploadRequest]) (*connect.Response[syncv1.UploadResponse], error) {
	if req.Msg.GetStream() == string(cache.StreamGaps) {
		c.tried = append(c.tried, len(req.Msg.GetRecords()))
		if len(req.Msg.GetRecords()) > c.fit {
			c.hung <- struct{}{}
			<-ctx.Done()
			return nil, connect.NewError(connect.CodeDeadlineExceeded, context.Cause(ctx))
		}
	}
	return c.SyncServiceClient.Upload(ctx, req)
}

// TestStuckStreamShrinksAndOthersMove checks that no batch is retried
// unchanged: a gaps upload that misses its deadline halves the next until
// one fits, the backlog then drains and the size grows back; meanwhile the
// streams after gaps keep their turn, and a stream that makes no progress
// for StallCycles cycles is reported once, in Stalled and the log.
func TestStuckStreamShrinksAndOthersMove(t *testing.T) {
	const cycleTimeout = 10 * time.Second
	slow := &slowGaps{fit: 100, hung: make(chan struct{}, 1)}
	w := newWorld(t, cache.Budget{}, func(o *cloudsync.Options) {
		slow.SyncServiceClient = o.Client
		o.Client = slow
		o.StallCycles = 2
		o.InFlight = 1
		o.CycleTimeout = cycleTimeout
		o.BatchBytes, o.CycleBytes = 1<<20, 8<<20
	})
	// A hung gaps upload ends at the cycle's deadline until the stream is
	// reported stalled, and then at its own, half of the cycle (none of
	// which has passed on the fake clock when gaps take their turn): the
	// streams after it have the other half.
	cycle := func() cloudsync.Result {
		_, stalled := w.syncer.Stalled()[cache.StreamGaps]
		done := make(chan cloudsync.Result, 1)
		go func() { done <- w.syncer.Cycle(context.Background()) }()
		for {
			select {
			case res := <-done:
				return res
			case <-slow.hung:
				if stalled {
					w.advance(cycleTimeout / 2)
				} else {
					w.advance(cycleTimeout)
				}
			}
		}
	}
	appendGaps(t, w, 1000)
	for i := range 2 {
		if res := cycle(); res.Err == nil {
			t.Fatalf("cycle %d: no error, want the gaps upload's missed deadline", i)
		}
	}
	if _, ok := w.syncer.Stalled()[cache.StreamGaps]; !ok {
		t.Fatalf("gaps moved nothing for 2 cycles and are not reported stalled (tries %v)", slow.tried)
	}
	// Behind the stalled stream, the others move.
	w.fill(t, []cache.Stream{cache.StreamLogsWarn}, 50)
	if res := cycle(); res.Uploaded[cache.StreamLogsWarn] != 50 || connect.CodeOf(res.Err) != connect.CodeDeadlineExceeded {
		t.Fatalf("third cycle: %d warn logs acknowledged behind the stalled gaps, want 50; err %v", res.Uploaded[cache.StreamLogsWarn], res.Err)
	}
	for i := 0; i < 20; i++ {
		if st, _ := w.store.Stats(context.Background(), cache.StreamGaps); st.Count == 0 {
			break
		}
		cycle()
	}
	if st, _ := w.store.Stats(context.Background(), cache.StreamGaps); st.Count != 0 {
		t.Fatalf("gaps never drained; sizes tried: %v", slow.tried)
	}
	for i := 1; i < len(slow.tried); i++ {
		if prev, cur := slow.tried[i-1], slow.tried[i]; prev > slow.fit && cur >= prev {
			t.Errorf("after a missed deadline with %d records the next try had %d: retried without shrinking (tries %v)", prev, cur, slow.tried)
		}
	}
	if n := w.logs.FilterMessage("stream has made no progress; the other streams keep going").Len(); n != 1 {
		t.Errorf("%d stall warnings, want 1", n)
	}
	if n := w.logs.FilterMessage("stream is moving again").Len(); n != 1 {
		t.Errorf("%d recovery lines, want 1", n)
	}
	if len(w.syncer.Stalled()) != 0 {
		t.Errorf("still reported stalled after draining: %v", w.syncer.Stalled())
	}
	// Once one fits, it grows back: the next backlog is tried larger.
	slow.tried = nil
	appendGaps(t, w, 1000)
	for range 3 {
		cycle()
	}
	if slices.Max(slow.tried) <= slow.fit {
		t.Errorf("the batch never grew back past %d after succeeding: tries %v", slow.fit, slow.tried)
	}
}

// TestCloudFinishesWhatThePartStoppedWaitingFor checks the acks a part can
// use: a batch the cloud is still storing when the part's deadline passes
// is stored whole all the same, and the part's next attempt, a repeat,
// writes nothing and is acknowledged at once. Each synced commit of the
// cloud's ingest costs the part 1 s of its 800 ms cycle, and the batch
// takes two: had the cloud given up with the part, it would have stored
// half, and the repeat would have paid another commit and missed its
// deadline again, forever.
func TestCloudFinishesWhatThePartStoppedWaitingFor(t *testing.T) {
	w := newWorldWith(t, worldOptions{slowDisk: time.Second, extra: []func(*cloudsync.Options){func(o *cloudsync.Options) {
		o.CycleTimeout = 800 * time.Millisecond
		o.BatchBytes, o.CycleBytes = 16<<20, 32<<20
	}}})
	ctx := context.Background()
	const n = 100
	for i := range n {
		if _, err := w.store.Append(ctx, cache.StreamCaptures, cache.Record{Payload: bytes.Repeat([]byte{byte(i)}, 64<<10), Priority: 5}); err != nil {
			t.Fatal(err)
		}
	}
	key := ingest.StreamKey{PartID: w.part.ID, StoreID: storeID(t, w), Stream: string(cache.StreamCaptures)}
	res := w.cycle(t)
	if res.Err == nil || res.Uploaded[cache.StreamCaptures] != 0 {
		t.Fatalf("first cycle: %+v; want its deadline to pass while the cloud stores the batch", res)
	}
	// The cloud goes on storing after the part's cycle ended.
	cloudtest.Eventually(t, "the cloud holds the whole batch", func() error {
		if got, err := w.cloud.Ingest().AckedThrough(ctx, key); err != nil || got != n {
			return fmt.Errorf("it holds captures through %d (%v), want %d", got, err, n)
		}
		return nil
	})
	res = w.cycle(t)
	if res.Err != nil || res.Uploaded[cache.StreamCaptures] != n {
		t.Fatalf("second cycle: %+v; want the repeat acknowledged at once", res)
	}
	if st, _ := w.store.Stats(ctx, cache.StreamCaptures); st.Count != 0 {
		t.Errorf("the part still holds %d captures", st.Count)
	}
}
