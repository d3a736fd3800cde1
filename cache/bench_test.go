package cache

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outpost-robotics/outpost/capture"
	"github.com/outpost-robotics/outpost/capture/capturetest"
	"github.com/outpost-robotics/outpost/cputime"
)

func benchStore(b *testing.B) *Store {
	b.Helper()
	return openTest(b, b.TempDir(), testOptions(b))
}

// BenchmarkAppend measures durable 256-byte appends from 1, 8 and 64
// concurrent producers: records/s, MB/s, fsyncs/s (group commits: one
// fdatasync of the intake each, and the settles' synced Badger commits) and
// records/sync, the mean group: with n producers each waiting for its own
// append, at most n; and written-B/record, the bytes the process caused to
// be written back per record (the intake, Badger's log, tables and
// compactions, as far as they ran within the benchmark).
func BenchmarkAppend(b *testing.B) {
	for _, producers := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("producers=%d", producers), func(b *testing.B) {
			benchAppend(b, producers, 1)
		})
	}
}

// BenchmarkQueue measures durable 256-byte appends from 64 producers that
// each keep up to capture.InFlight appends queued (Queue, then Wait on the
// oldest once that many are out), as capture's collectors do: a record
// counts when its Wait returns, so every one is durable before it is
// counted, as in BenchmarkAppend.
func BenchmarkQueue(b *testing.B) {
	b.Run("producers=64", func(b *testing.B) { benchAppend(b, 64, capture.InFlight) })
}

func benchAppend(b *testing.B, producers, inflight int) {
	ctx := context.Background()
	s := benchStore(b)
	rec := Record{Payload: make([]byte, 256)}
	var next atomic.Int64
	syncs0 := s.Usage().Syncs
	io0 := procWriteBytes(b)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for p := 0; p < producers; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			queued := make([]Pending, inflight)
			n := 0 // appends queued by this producer
			wait := func(p Pending) bool {
				if _, err := p.Wait(); err != nil {
					b.Error(err)
					return false
				}
				return true
			}
			for next.Add(1) <= int64(b.N) {
				if n >= inflight && !wait(queued[n%inflight]) {
					return
				}
				p, err := s.Queue(ctx, StreamLogsInfo, rec)
				if err != nil {
					b.Error(err)
					return
				}
				queued[n%inflight] = p
				n++
			}
			for i := max(n-inflight, 0); i < n; i++ {
				if !wait(queued[i%inflight]) {
					return
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start).Seconds()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el, "records/s")
	b.ReportMetric(float64(b.N)*256/el/1e6, "MB/s")
	syncs := s.Usage().Syncs - syncs0
	b.ReportMetric(float64(syncs)/el, "fsyncs/s")
	b.ReportMetric(float64(b.N)/float64(max(syncs, 1)), "records/sync")
	b.ReportMetric(float64(procWriteBytes(b)-io0)/float64(b.N), "written-B/record")
}

// BenchmarkAppendBlob measures durable 1 MB blob chunks.
func BenchmarkAppendBlob(b *testing.B) {
	ctx := context.Background()
	s := benchStore(b)
	chunk := make([]byte, 1<<20)
	for i := range chunk {
		chunk[i] = byte(i * 7)
	}
	b.SetBytes(int64(len(chunk)))
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		id := fmt.Sprintf("blob-%d", i/64)
		if err := s.PutBlobChunk(ctx, id, int64(i%64)<<20, chunk); err != nil {
			b.Fatal(err)
		}
	}
	el := time.Since(start).Seconds()
	b.StopTimer()
	b.ReportMetric(float64(b.N)*float64(len(chunk))/el/1e6, "MB/s")
}

// BenchmarkDrain measures what the sync package does: read a batch of 1000
// records from the cursor, then ack it.
func BenchmarkDrain(b *testing.B) {
	ctx := context.Background()
	s := benchStore(b)
	batch := make([]Record, 1000)
	for i := range batch {
		batch[i] = Record{Payload: make([]byte, 256)}
	}
	for n := 0; n < b.N; n += len(batch) {
		if _, err := s.AppendBatch(ctx, StreamLogsInfo, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	start := time.Now()
	var after uint64
	drained := 0
	for drained < b.N {
		es, err := s.Read(ctx, StreamLogsInfo, after, len(batch), 0)
		if err != nil || len(es) == 0 {
			b.Fatalf("read after %d: %d entries, %v", after, len(es), err)
		}
		after = es[len(es)-1].Seq
		if err := s.Ack(ctx, StreamLogsInfo, after); err != nil {
			b.Fatal(err)
		}
		drained += len(es)
	}
	el := time.Since(start).Seconds()
	b.StopTimer()
	b.ReportMetric(float64(drained)/el, "records/s")
	b.ReportMetric(float64(drained)*256/el/1e6, "MB/s")
}

// BenchmarkDrainCPU measures the part's process CPU per gigabyte for the
// store's side of a drain of ~1 KiB JSON readings: filling it (durable
// appends) and then reading 1 MiB batches from the cursor and acking each,
// as the syncer does. Two fill shapes: AppendBatch of 256 records (what
// cloudsync's drain benchmark does) and 8 producers appending one record
// each and waiting (what the daemon's capture collectors do).
// OUTPOST_CACHE_DRAIN_MB sets the backlog (default 32).
func BenchmarkDrainCPU(b *testing.B) {
	mb := 32
	if v, err := strconv.Atoi(os.Getenv("OUTPOST_CACHE_DRAIN_MB")); err == nil && v > 0 {
		mb = v
	}
	for _, shape := range []string{"batch256", "producers8"} {
		b.Run(shape, func(b *testing.B) {
			for range b.N {
				drainCPU(b, shape, mb)
			}
		})
	}
}

func drainCPU(b *testing.B, shape string, mb int) {
	b.StopTimer()
	ctx := context.Background()
	s := benchStore(b)
	rng := rand.New(rand.NewPCG(1, 2))
	n := mb << 20 / 1024
	recs := make([]Record, n)
	raw := 0
	for i := range recs {
		recs[i] = Record{Payload: capturetest.Readings(rng, i), Priority: 5}
		raw += len(recs[i].Payload)
	}
	cpu0 := cputime.Self(b).Seconds()
	switch shape {
	case "batch256":
		for i := 0; i < n; i += 256 {
			if _, err := s.AppendBatch(ctx, StreamCaptures, recs[i:min(i+256, n)]); err != nil {
				b.Fatal(err)
			}
		}
	default:
		var next atomic.Int64
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
					if _, err := s.Append(ctx, StreamCaptures, recs[i]); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
	}
	cpu1 := cputime.Self(b).Seconds()
	b.StartTimer()
	var after uint64
	drained := 0
	for drained < n {
		es, err := s.Read(ctx, StreamCaptures, after, 4096, 1<<20)
		if err != nil || len(es) == 0 {
			b.Fatalf("read after %d: %d entries, %v", after, len(es), err)
		}
		after = es[len(es)-1].Seq
		if err := s.Ack(ctx, StreamCaptures, after); err != nil {
			b.Fatal(err)
		}
		drained += len(es)
	}
	b.StopTimer()
	cpu2 := cputime.Self(b).Seconds()
	gb := float64(raw) / 1e9
	b.ReportMetric((cpu1-cpu0)/gb, "fill-cpu-s/GB")
	b.ReportMetric((cpu2-cpu1)/gb, "drain-cpu-s/GB")
	b.ReportMetric(float64(s.Usage().Syncs), "syncs")
}

// procWriteBytes is this process's write_bytes from /proc/self/io: what it
// caused to be written back, counted when a page-cache folio is dirtied, so
// a large folio counts whole however little of it changed.
func procWriteBytes(tb testing.TB) int64 {
	tb.Helper()
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "write_bytes: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				tb.Fatal(err)
			}
			return n
		}
	}
	tb.Fatal("no write_bytes in /proc/self/io")
	return 0
}
