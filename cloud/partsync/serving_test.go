package partsync_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"connectrpc.com/connect"

	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1/syncv1connect"
	"github.com/outpost-robotics/outpost/cloud/partsync"
)

// chunkBackend serves one chunk to any part; while gate is open (not
// closed), each fetch announces itself on entered and waits for gate.
type chunkBackend struct {
	*backend
	entered chan struct{}
	gate    chan struct{}
}

func (b *chunkBackend) PackageChunk(ctx context.Context, _ partsync.Part, _ []byte) ([]byte, error) {
	b.entered <- struct{}{}
	select {
	case <-b.gate:
		return []byte("chunk"), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// TestChunkServesAreBounded: with one chunk served at a time cloud-wide,
// a second part's fetch waits for its turn and is served when the first
// ends; one that waits past ChunkServeWait is refused ResourceExhausted
// with a Retry-After hint, which the part's client honours.
func TestChunkServesAreBounded(t *testing.T) {
	ctx := context.Background()
	b := &chunkBackend{entered: make(chan struct{}, 4), gate: make(chan struct{})}
	e := newEnvOn(t, partsync.Options{ChunkServes: 1, ChunkServeWait: 5 * time.Second}, func(bk *backend) partsync.Backend {
		b.backend = bk
		return b
	})
	// A plain Connect client, without the part's retries, sees each answer.
	plain := func(id string) func() error {
		secret := e.backend.provision(id)
		c := syncv1connect.NewSyncServiceClient(http.DefaultClient, e.url)
		return func() error {
			r := connect.NewRequest(&syncv1.GetPackageChunkRequest{Sha256: make([]byte, 32)})
			r.Header().Set("Authorization", "Part "+id+":"+secret)
			_, err := c.GetPackageChunk(ctx, r)
			return err
		}
	}
	first, second, third := plain("p1"), plain("p2"), plain("p3")
	done1 := make(chan error, 1)
	go func() { done1 <- first() }()
	<-b.entered
	armed := e.clock.Waiters()

	// The second waits; the first ends; the second is served.
	done2 := make(chan error, 1)
	go func() { done2 <- second() }()
	if err := e.clock.BlockUntil(ctx, armed+1); err != nil {
		t.Fatal(err)
	}
	b.gate <- struct{}{}
	if err := <-done1; err != nil {
		t.Fatalf("the first fetch: %v", err)
	}
	<-b.entered

	// The third waits past its wait while the second is served: refused,
	// with a hint; nothing of it reached the backend.
	done3 := make(chan error, 1)
	go func() { done3 <- third() }()
	if err := e.clock.BlockUntil(ctx, armed+1); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(5 * time.Second)
	err := <-done3
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != connect.CodeResourceExhausted || ce.Meta().Get("Retry-After") != "2" {
		t.Fatalf("a fetch over the bound: %v (Retry-After %q), want ResourceExhausted with Retry-After 2", err, ce.Meta().Get("Retry-After"))
	}
	b.gate <- struct{}{}
	if err := <-done2; err != nil {
		t.Fatalf("the second fetch, after its wait: %v", err)
	}

	// The part's own client takes the hint and tries again: refused once
	// while the gate holds the turn, then served.
	busy := plain("p4")
	done4 := make(chan error, 1)
	go func() { done4 <- busy() }()
	<-b.entered
	c := e.part("p5")
	done5 := make(chan error, 1)
	go func() {
		_, err := c.GetPackageChunk(ctx, connect.NewRequest(&syncv1.GetPackageChunkRequest{Sha256: make([]byte, 32)}))
		done5 <- err
	}()
	if err := e.clock.BlockUntil(ctx, armed+1); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(5 * time.Second)
	// Its retry queues again; the turn frees; it is served.
	if err := e.clock.BlockUntil(ctx, armed+1); err != nil {
		t.Fatal(err)
	}
	b.gate <- struct{}{}
	<-b.entered
	b.gate <- struct{}{}
	if err := <-done4; err != nil {
		t.Fatal(err)
	}
	if err := <-done5; err != nil {
		t.Fatalf("the part's client, after a busy answer: %v", err)
	}
}
