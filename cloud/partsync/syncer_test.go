package partsync_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"path/filepath"
	"testing"

	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/cache"
	"github.com/outpost-robotics/outpost/cloud/ingest"
	"github.com/outpost-robotics/outpost/cloud/partsync"
	"github.com/outpost-robotics/outpost/cloudsync"
	"github.com/outpost-robotics/outpost/signed"
)

// TestDaemonSyncer runs the daemon's own Syncer, with its cache over a
// byte budget, against this handler: the cache evicts debug logs and
// writes gap records, the cycles upload everything in the daemon's order,
// and at the end the part holds nothing unacknowledged while the cloud
// holds each surviving record once, with a watermark past the evicted
// ranges, and the blob whole.
func TestDaemonSyncer(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, partsync.Options{})
	secret := e.backend.provision("part-a")
	e.backend.publish(t, "part-a", 1, 1)

	st, err := cache.Open(ctx, filepath.Join(t.TempDir(), "cache"), cache.Options{Clock: e.clock, Budget: cache.Budget{MaxBytes: 256 << 10}, GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// 600 debug logs of 1 KiB in a 256 KiB budget: the oldest are evicted.
	for i := range 600 {
		if _, err := st.Append(ctx, cache.StreamLogsDebug, cache.Record{Payload: fmt.Appendf(bytes.Repeat([]byte{'.'}, 1000), "debug %d", i+1)}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 20 {
		for _, s := range []cache.Stream{cache.StreamAudit, cache.StreamCaptures, cache.StreamLogsWarn} {
			if _, err := st.Append(ctx, s, cache.Record{Payload: fmt.Appendf(nil, "%s %d", s, i+1)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	blob := bytes.Repeat([]byte("blob bytes "), 3000)
	if err := st.PutBlobChunk(ctx, "img-1", 0, blob); err != nil {
		t.Fatal(err)
	}
	if err := st.SealBlob(ctx, "img-1"); err != nil {
		t.Fatal(err)
	}
	gaps, err := st.Stats(ctx, cache.StreamGaps)
	if err != nil || gaps.Count == 0 {
		t.Fatalf("the cache evicted nothing (%+v, %v); the test needs a gap", gaps, err)
	}
	debug, _ := st.Stats(ctx, cache.StreamLogsDebug)

	client, err := outsyncClient(e.url, "part-a", secret, "gzip")
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := signed.KeysFromProto([]*syncv1.PublicKey{e.backend.signer.PublicKey()})
	offline := cloudsync.NewOfflineClock(e.clock, cache.OfflineClock{})
	syncer, err := cloudsync.New(cloudsync.Options{
		Store: st, Client: client, Clock: e.clock, Trust: cloudsync.NewTrust("part-a", keys, offline), Offline: offline,
		CycleBytes: 64 << 10, BatchBytes: 16 << 10, // many small batches
	})
	if err != nil {
		t.Fatal(err)
	}
	for cycle := 0; ; cycle++ {
		res := syncer.Cycle(ctx)
		if res.Err != nil {
			t.Fatalf("cycle %d: %v", cycle, res.Err)
		}
		done := true
		for _, s := range cloudsync.UploadOrder {
			stats, _ := st.Stats(ctx, s)
			done = done && stats.Count == 0
		}
		blobs, _ := st.Blobs(ctx)
		if done && len(blobs) == 0 {
			break
		}
		if cycle > 200 {
			t.Fatal("the part never finished uploading")
		}
	}

	storeID, err := syncer.StoreID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	key := ingest.StreamKey{PartID: "part-a", StoreID: storeID, Stream: "logs.debug"}
	if w, _ := e.store.AckedThrough(ctx, key); w != debug.Last {
		t.Errorf("logs.debug watermark %d, want the last sequence %d", w, debug.Last)
	}
	n, _ := e.store.Count(ctx, "part-a", "logs.debug")
	if n.Records != debug.Count || n.Conflicts != 0 {
		t.Errorf("cloud holds %+v of logs.debug; the part held %d after eviction", n, debug.Count)
	}
	if lost, _ := e.store.Lost(ctx, key); len(lost) == 0 {
		t.Error("no lost range was declared")
	}
	for _, s := range []string{"audit", "captures", "logs.warn"} {
		if n, _ := e.store.Count(ctx, "part-a", s); n.Records != 20 {
			t.Errorf("%s: cloud holds %d records, want 20", s, n.Records)
		}
	}
	if n, _ := e.store.Count(ctx, "part-a", "gaps"); n.Records != gaps.Count {
		t.Errorf("gaps: cloud holds %d records, want %d", n.Records, gaps.Count)
	}
	rc, err := e.blobs.Open(ctx, ingest.BlobKey{PartID: "part-a", BlobID: "img-1"})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if sha256.Sum256(got) != sha256.Sum256(blob) {
		t.Error("the blob differs")
	}
	if s, err := e.store.Status(ctx, "part-a"); err != nil || len(s.Status.GetBacklog()) == 0 {
		t.Errorf("status: %+v, %v", s, err)
	}
	if cfg, err := syncer.LoadConfig(ctx); err != nil || cfg.GetVersion() != 1 {
		t.Errorf("the part's config: %v, %v", cfg, err)
	}
}
