package cloud_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
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

	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1/syncv1connect"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/cloud"
	authpkg "github.com/outpost-robotics/outpost/cloud/auth"
	"github.com/outpost-robotics/outpost/cloud/cloudtest"
	"github.com/outpost-robotics/outpost/cloud/ingest"
	"github.com/outpost-robotics/outpost/cloud/ingest/badgeringest"
	"github.com/outpost-robotics/outpost/cloud/pgshared"
	"github.com/outpost-robotics/outpost/cloud/pgtest"
	"github.com/outpost-robotics/outpost/cloud/relay"
	"github.com/outpost-robotics/outpost/cloud/store"
	"github.com/outpost-robotics/outpost/cloud/store/badgerstore"
	"github.com/outpost-robotics/outpost/cloudsync"
	"github.com/outpost-robotics/outpost/cputime"
)

// backend is one way to run the cloud for the side-by-side benchmarks:
// its replicas' URLs (one for Badger) and what to read the database's CPU
// time from (0 for none).
type backend struct {
	urls  []string
	pgPid int
}

// benchBackend starts the cloud on Badger (one process) and on a
// durable PostgreSQL with one and with two replicas (each replica its own
// Server, stores and connection pools, as separate processes would have;
// here in the benchmark's process), each holding fill's fleet.
func benchBackend(b *testing.B, kind string, replicas int, fill func(ctx context.Context, st store.Store) error) backend {
	b.Helper()
	ctx := context.Background()
	log := zap.NewNop()
	clk := clock.NewReal()
	serve := func(cfg cloud.Config) string {
		srv, err := cloud.New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		sctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); _ = cloud.Serve(sctx, ln, srv.Handler(), "", "", log) }()
		b.Cleanup(func() { cancel(); <-done })
		return "http://" + ln.Addr().String()
	}
	if kind == "badger" {
		dir := b.TempDir()
		st, err := badgerstore.Open(filepath.Join(dir, "store"), log)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = st.Close() })
		blobs, err := ingest.NewFileBlobStore(filepath.Join(dir, "blobs"))
		if err != nil {
			b.Fatal(err)
		}
		ing, err := badgeringest.Open(badgeringest.Options{Dir: filepath.Join(dir, "ingest"), Blobs: blobs})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = ing.Close() })
		if err := fill(ctx, st); err != nil {
			b.Fatal(err)
		}
		signer, _, err := cloud.Bootstrap(ctx, st, dir, clk, log)
		if err != nil {
			b.Fatal(err)
		}
		return backend{urls: []string{serve(cloud.Config{Store: st, Signer: signer, Clock: clk, Log: log, Ingest: ing, Blobs: blobs})}}
	}
	srv := pgtest.NewDurableServer(b)
	if err := srv.CreateDatabase(ctx, "bench"); err != nil {
		b.Fatal(err)
	}
	url := srv.URL("bench")
	be := backend{pgPid: srv.Pid()}
	for i := range replicas {
		st, ing, blobs := cloudtest.OpenPostgres(b, url)
		sh, err := pgshared.Open(ctx, pgshared.Options{URL: url})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = sh.Close() })
		if i == 0 {
			if err := fill(ctx, st); err != nil {
				b.Fatal(err)
			}
		}
		signer, _, err := cloud.BootstrapShared(ctx, st, b.TempDir(), clk, log)
		if err != nil {
			b.Fatal(err)
		}
		hub := relay.NewShared(relay.SharedOptions{Board: sh})
		be.urls = append(be.urls, serve(cloud.Config{Store: st, Signer: signer, Clock: clk, Log: log, Ingest: ing, Blobs: blobs, Relay: hub}))
	}
	return be
}

// fillFleet writes BenchmarkPull's fleet of n parts (pullFleet's) into st
// and returns each part's Authorization header.
func fillFleet(n int, auth []string) func(ctx context.Context, st store.Store) error {
	return func(ctx context.Context, st store.Store) error {
		org := newBenchID(1 << 30)
		const perLocation = 100
		for start := 0; start < n; start += perLocation {
			err := st.Update(ctx, func(tx store.Tx) error {
				if start == 0 {
					if err := tx.PutOrg(ctx, store.Org{ID: org, Name: "bench"}); err != nil {
						return err
					}
				}
				loc := newBenchID(1<<29 + start)
				user := newBenchID(1<<28 + start)
				for _, err := range []error{
					tx.PutLocation(ctx, store.Location{ID: loc, OrgID: org, Name: "l"}),
					tx.PutUser(ctx, store.User{ID: user, Email: user + "@x.org"}),
					tx.PutGrant(ctx, store.Grant{Subject: "user:" + user, Role: "operator", Scope: "location/" + loc, OrgID: org}),
				} {
					if err != nil {
						return err
					}
				}
				for i := start; i < min(n, start+perLocation); i++ {
					m, p, k := newBenchID(1<<27+i), newBenchID(i), newBenchID(1<<26+i)
					secret := "bench-secret-" + p
					auth[i] = "Part " + p + ":" + secret
					for _, err := range []error{
						tx.PutMachine(ctx, store.Machine{ID: m, LocationID: loc, Name: "m"}),
						tx.PutPart(ctx, store.Part{ID: p, MachineID: m, Name: "main", Main: true, SecretHash: authpkg.HashSecret(secret)}),
						tx.PutAPIKey(ctx, store.APIKey{ID: k, Name: "k", OrgID: org, Scope: "machine/" + m, SecretHash: authpkg.HashSecret(k)}),
						tx.PutGrant(ctx, store.Grant{Subject: "apikey:" + k, Role: "operator", Scope: "machine/" + m, OrgID: org}),
					} {
						if err != nil {
							return err
						}
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	}
}

// BenchmarkReplicaPulls is BenchmarkPull's steady state (nothing changed,
// 16 parallel clients over loopback) for fleets of 10,000 and 100,000
// registered parts, side by side: the embedded cloud, and PostgreSQL behind
// one and two replicas, pulls spread evenly over the replicas as a load
// balancer would. Every part's documents are built once before the timer
// starts; -short runs only the smaller fleet.
func BenchmarkReplicaPulls(b *testing.B) {
	for _, parts := range []int{10_000, 100_000} {
		if parts > 10_000 && testing.Short() {
			continue
		}
		for _, tc := range []struct {
			name     string
			kind     string
			replicas int
		}{{"badger", "badger", 1}, {"postgresql/replicas=1", "pg", 1}, {"postgresql/replicas=2", "pg", 2}} {
			b.Run(fmt.Sprintf("parts=%d/%s", parts, tc.name), func(b *testing.B) {
				benchReplicaPulls(b, parts, tc.kind, tc.replicas)
			})
		}
	}
}

func benchReplicaPulls(b *testing.B, parts int, kind string, replicas int) {
	auth := make([]string, parts)
	be := benchBackend(b, kind, replicas, fillFleet(parts, auth))
	var clients []syncv1connect.SyncServiceClient
	for _, u := range be.urls {
		hc := &http.Client{Transport: &http.Transport{MaxIdleConns: 64, MaxIdleConnsPerHost: 64}}
		clients = append(clients, syncv1connect.NewSyncServiceClient(hc, u))
	}
	// Every part's first pull builds and stores its documents, one synced
	// commit each: 16 at a time share the commits (100,000 one after the
	// other took over an hour on this machine's disk).
	var warm sync.WaitGroup
	var first atomic.Int64
	for range 16 {
		warm.Go(func() {
			for i := first.Add(1) - 1; i < int64(len(auth)); i = first.Add(1) - 1 {
				pullOnce(b, clients[i%int64(len(clients))], auth[i], 0, 0)
			}
		})
	}
	warm.Wait()
	var next atomic.Int64
	b.SetParallelism(8)
	b.ReportAllocs()
	start := time.Now()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1)
			if pullOnce(b, clients[i%int64(len(clients))], auth[i%int64(len(auth))], 1, 1) {
				b.Error("a pull with nothing changed returned documents")
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "pulls/s")
}

// BenchmarkIngest stores captures of 1 KiB (random) in batches of 1,024
// (1 MiB, the daemon's default batch) through the real cloud with the
// daemon's own client, each batch durable before it is acknowledged, side
// by side on Badger and on a durable PostgreSQL: MB/s, and CPU seconds per
// GB stored, the cloud's process and the database server's together.
func BenchmarkIngest(b *testing.B) {
	for _, kind := range []string{"badger", "postgresql"} {
		b.Run(kind, func(b *testing.B) {
			auth := make([]string, 1)
			be := benchBackend(b, map[string]string{"badger": "badger", "postgresql": "pg"}[kind], 1, fillFleet(1, auth))
			id, secret, _ := strings.Cut(strings.TrimPrefix(auth[0], "Part "), ":")
			c, err := cloudsync.NewClient(cloudsync.ClientOptions{CloudURL: be.urls[0], PartID: id, PartSecret: secret, Compression: "identity", RetryMax: 1})
			if err != nil {
				b.Fatal(err)
			}
			const perBatch, size = 1024, 1024
			payload := make([]byte, perBatch*size)
			_, _ = rand.Read(payload)
			seq := uint64(0)
			b.SetBytes(perBatch * size)
			cpu0 := cpuSeconds(b, be.pgPid)
			start := time.Now()
			for b.Loop() {
				recs := make([]*syncv1.Record, perBatch)
				for i := range recs {
					seq++
					recs[i] = &syncv1.Record{Seq: seq, Payload: payload[i*size : (i+1)*size]}
				}
				res, err := c.Upload(context.Background(), connect.NewRequest(&syncv1.UploadRequest{StoreId: "s", Stream: "captures", Records: recs}))
				if err != nil || res.Msg.GetAckedThrough() != seq {
					b.Fatalf("upload: %v, acked %d of %d", err, res.Msg.GetAckedThrough(), seq)
				}
			}
			elapsed := time.Since(start).Seconds()
			gb := float64(seq*size) / (1 << 30)
			b.ReportMetric(float64(seq*size)/(1<<20)/elapsed, "MB/s")
			b.ReportMetric((cpuSeconds(b, be.pgPid)-cpu0)/gb, "CPU-s/GB")
		})
	}
}

// cpuSeconds is this process's CPU time (user and system) plus, with
// pgPid, the PostgreSQL server's and its backends' (read from /proc: the
// ones running now, so a backend that exited is not counted).
func cpuSeconds(tb testing.TB, pgPid int) float64 {
	total := cputime.Self(tb)
	if pgPid != 0 {
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			// A process that ended since the folder was read is skipped.
			if p, err := cputime.Read(pid); err == nil && (pid == pgPid || p.PPID == pgPid) {
				total += p.CPU
			}
		}
	}
	return total.Seconds()
}
