package partsync_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1/syncv1connect"
	"github.com/outpost-robotics/outpost/cloud/partsync"
)

// BenchmarkPull is the fleet's steady state: 10,000 registered parts, each
// holding the newest config and grants, pulling over loopback (Connect
// protocol, HTTP/1.1 keep-alive). Every pull authenticates its part.
func BenchmarkPull(b *testing.B) {
	const parts = 10_000
	e := newEnv(b, partsync.Options{})
	auth := make([]string, parts)
	for i := range auth {
		id := fmt.Sprintf("part-%05d", i)
		auth[i] = "Part " + id + ":" + e.backend.provision(id)
	}
	// One signed pair shared by every part keeps the setup short; pulls that
	// change nothing never send them.
	e.backend.publish(b, "part-00000", 3, 5)
	for _, p := range e.backend.parts {
		p.config, p.configVersion = e.backend.parts["part-00000"].config, 3
		p.grants, p.grantsVersion = e.backend.parts["part-00000"].grants, 5
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConns: 64, MaxIdleConnsPerHost: 64}}
	c := syncv1connect.NewSyncServiceClient(hc, e.url)
	var next atomic.Int64
	b.SetParallelism(8)
	start := time.Now()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := connect.NewRequest(&syncv1.PullRequest{ConfigVersion: 3, GrantsVersion: 5})
			req.Header().Set("Authorization", auth[next.Add(1)%parts])
			ans, err := c.Pull(context.Background(), req)
			if err != nil {
				b.Error(err)
				return
			}
			if ans.Msg.GetConfig() != nil || ans.Msg.GetGrants() != nil {
				b.Error("a pull with nothing changed returned documents")
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "pulls/s")
}

// BenchmarkUploadCaptures stores captures of 1 KiB (random, so compression
// gains nothing, as with images) in batches of 1,024 (1 MiB, the daemon's
// default batch), through the daemon's own client, each batch durable
// before it is acknowledged.
func BenchmarkUploadCaptures(b *testing.B) {
	for _, comp := range []string{"zstd", "gzip", "identity"} {
		b.Run(comp, func(b *testing.B) {
			e := newEnv(b, partsync.Options{})
			secret := e.backend.provision("part-a")
			c, err := outsyncClient(e.url, "part-a", secret, comp)
			if err != nil {
				b.Fatal(err)
			}
			const perBatch, size = 1024, 1024
			payload := make([]byte, perBatch*size)
			_, _ = rand.Read(payload)
			seq := uint64(0)
			b.SetBytes(perBatch * size)
			start := time.Now()
			for b.Loop() {
				recs := make([]*syncv1.Record, perBatch)
				for i := range recs {
					seq++
					recs[i] = &syncv1.Record{Seq: seq, Payload: payload[i*size : (i+1)*size]}
				}
				if got := upload(b, c, "s", "captures", recs); got != seq {
					b.Fatalf("acked %d, want %d", got, seq)
				}
			}
			b.ReportMetric(float64(seq*size)/(1<<20)/time.Since(start).Seconds(), "MB/s")
		})
	}
}
