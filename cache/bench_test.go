package cache

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func benchStore(b *testing.B) *Store {
	b.Helper()
	return openTest(b, b.TempDir(), testOptions(b))
}

// BenchmarkAppend measures durable 256-byte appends from 1, 8 and 64
// concurrent producers: records/s, MB/s and fsyncs/s (group commits; each
// syncs the value log and the write-ahead log once).
func BenchmarkAppend(b *testing.B) {
	for _, producers := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("producers=%d", producers), func(b *testing.B) {
			ctx := context.Background()
			s := benchStore(b)
			rec := Record{Payload: make([]byte, 256)}
			var next atomic.Int64
			syncs0 := s.Usage().Syncs
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for p := 0; p < producers; p++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= int64(b.N) {
						if _, err := s.Append(ctx, StreamLogsInfo, rec); err != nil {
							b.Error(err)
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
			b.ReportMetric(float64(s.Usage().Syncs-syncs0)/el, "fsyncs/s")
		})
	}
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
