package cloud_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/outpost-robotics/outpost/api/codec"
	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1/syncv1connect"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/cloud/cloudtest"
	"github.com/outpost-robotics/outpost/cloud/partsync"
	"github.com/outpost-robotics/outpost/cloud/store"
	"github.com/outpost-robotics/outpost/cloudsync"
	"github.com/outpost-robotics/outpost/pkgformat"
)

// BenchmarkServePackage is the cloud serving one package version to 1,000
// parts at once: 1,000 registered parts (written straight into the store,
// as BenchmarkPull's fleet), each with a config naming a 4 MiB package
// following a tag and a reported platform, each holding its signed config;
// then every part, in its own goroutine, fetches every chunk of the version
// as outpostd does: through a client of its own made by cloudsync.NewClient
// as the daemon makes its package client (uncompressed, retryablehttp
// honouring the cloud's Retry-After hint), checking each chunk's hash, and
// trying a chunk again after a jittered backoff when the cloud stays busy
// past the client's retries, as the part's package manager tries a failed
// download again later. Each fetch is authenticated, checked against the
// chunks issued to the part, takes a turn of the cloud-wide bound on chunks
// served at once (partsync.DefaultChunkServes), and is read from the fleet
// store. The part sync API runs on the machine's clock, so a fetch over the
// bound waits its real time. The clients share the process: CPU-s/GB
// counts both ends; busy/part is how many times a part was told to try
// later after its client's own retries. OUTPOST_PACKAGE_BENCH_PARTS sets
// another number of parts.
func BenchmarkServePackage(b *testing.B) {
	const size = 4 << 20
	parts := 1_000
	if n, err := strconv.Atoi(os.Getenv("OUTPOST_PACKAGE_BENCH_PARTS")); err == nil && n > 0 {
		parts = n
	}
	e, auth := pullFleetWith(b, parts, cloudtest.Options{DiscardLog: true, Sync: partsync.Options{Clock: clock.NewReal()}})
	org := newBenchID(1 << 30)
	dir := b.TempDir()
	content := make([]byte, size)
	rand.NewChaCha8([32]byte{9}).Read(content)
	if err := os.WriteFile(filepath.Join(dir, "model.bin"), content, 0o644); err != nil {
		b.Fatal(err)
	}
	e.UploadPackage(b, org, "model", "1.0.0", "ml_model", "any", dir)
	e.TagPackage(b, org, "model", "1.0.0", "stable")
	var stream bytes.Buffer
	if _, err := pkgformat.WriteTar(context.Background(), &stream, dir); err != nil {
		b.Fatal(err)
	}
	chunks, total, _, err := pkgformat.Split(context.Background(), &stream, nil)
	if err != nil {
		b.Fatal(err)
	}
	cfg, err := proto.Marshal(&configv1.RobotConfig{Packages: []*configv1.PackageRef{{Name: "model", Package: org + "/model", Version: "tag:stable"}}})
	if err != nil {
		b.Fatal(err)
	}
	e.update(func(ctx context.Context, tx store.Tx) error {
		for i := range parts {
			if err := tx.PutConfigRevision(ctx, store.ConfigRevision{MachineID: newBenchID(1<<27 + i), Revision: 1, Config: cfg}); err != nil {
				return err
			}
		}
		return nil
	})
	hc := &http.Client{Transport: &http.Transport{MaxIdleConns: parts, MaxIdleConnsPerHost: parts}}
	c := syncv1connect.NewSyncServiceClient(hc, e.URL, codec.ClientOptions()...)
	clients := make([]syncv1connect.SyncServiceClient, parts)
	for i := range auth {
		if !pullOnce(b, c, auth[i], 0, 0) {
			b.Fatal("no documents on the first pull")
		}
		id, secret, _ := strings.Cut(strings.TrimPrefix(auth[i], "Part "), ":")
		clients[i], err = cloudsync.NewClient(cloudsync.ClientOptions{CloudURL: e.URL, PartID: id, PartSecret: secret, Compression: "none", Logger: zap.NewNop()})
		if err != nil {
			b.Fatal(err)
		}
	}
	var busy atomic.Int64
	// fetch gets one chunk as the part's package manager does, trying again
	// after a jittered, doubling backoff while the cloud says try later.
	fetch := func(c syncv1connect.SyncServiceClient, sum []byte) error {
		wait := time.Second
		for {
			res, err := c.GetPackageChunk(context.Background(), connect.NewRequest(&syncv1.GetPackageChunkRequest{Sha256: sum}))
			if code := connect.CodeOf(err); code == connect.CodeResourceExhausted || code == connect.CodeUnavailable {
				busy.Add(1)
				time.Sleep(wait/2 + rand.N(wait))
				wait = min(2*wait, 16*time.Second)
				continue
			}
			if err != nil {
				return err
			}
			if got := sha256Of(res.Msg.GetData()); !bytes.Equal(got, sum) {
				b.Error("a chunk does not match its hash")
			}
			return nil
		}
	}
	if err := fetch(clients[0], chunks[0].GetSha256()); err != nil {
		b.Fatalf("a part fetches a chunk of its issued version: %v", err)
	}
	busy.Store(0)
	cpu0 := cpuSeconds(b, 0)
	start := time.Now()
	var moved int64
	for b.Loop() {
		var wg sync.WaitGroup
		for i := range parts {
			wg.Go(func() {
				for _, ch := range chunks {
					if err := fetch(clients[i], ch.GetSha256()); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		moved += int64(total) * int64(parts)
	}
	secs := time.Since(start).Seconds()
	gb := float64(moved) / 1e9
	b.ReportMetric(float64(moved)/1e6/secs, "MB/s")
	b.ReportMetric((cpuSeconds(b, 0)-cpu0)/gb, "CPU-s/GB")
	b.ReportMetric(float64(busy.Load())/float64(parts*b.N), "busy/part")
}

func sha256Of(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}
