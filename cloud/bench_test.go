package cloud_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1/syncv1connect"
	authpkg "github.com/outpost-robotics/outpost/cloud/auth"
	"github.com/outpost-robotics/outpost/cloud/cloudtest"
	"github.com/outpost-robotics/outpost/cloud/store"
	"github.com/outpost-robotics/outpost/cloudsync"
)

// BenchmarkAccessCheck measures CheckAccess end to end over loopback: HTTP
// (Connect protocol, keep-alive), token verification, the subject's grants
// from the store, the hierarchy snapshot check, the interceptor's decision
// and the simulated one. The fleet is one side of the permission matrix
// plus 200 machines; the caller is a location operator asking about itself.
func BenchmarkAccessCheck(b *testing.B) {
	e := newEnvWith(b, cloudtest.Options{DiscardLog: true})
	s := newSide()
	user := s.t2 // operator of location L2
	e.update(func(ctx context.Context, tx store.Tx) error {
		if err := s.write(ctx, tx); err != nil {
			return err
		}
		for i := range 200 {
			m := store.Machine{ID: newBenchID(i), LocationID: s.l2, Name: "m"}
			if err := tx.PutMachine(ctx, m); err != nil {
				return err
			}
		}
		return nil
	})
	c := e.client(e.token(user))
	ctx := context.Background()
	r := &fleetv1.CheckAccessRequest{Subject: "user:" + user, Action: "machine.control", Resource: "machine/" + s.m}
	res, err := c.Access.CheckAccess(ctx, req(r))
	if err != nil || !res.Msg.GetAllowed() {
		b.Fatalf("check: %v %v", res, err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Access.CheckAccess(ctx, req(r)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
}

func newBenchID(i int) string {
	const hex = "0123456789abcdef"
	id := []byte("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb")
	for j := 0; j < 8; j++ {
		id[31-j] = hex[(i>>(4*j))&0xf]
	}
	return string(id)
}

// BenchmarkPull is the fleet's steady state through the real Backend: 10,000
// registered parts (one org, 100 locations of 100 machines of one part, an
// operator per location and an API key per machine), each holding its
// newest signed config and grants, pulling over loopback (Connect protocol,
// HTTP/1.1 keep-alive). Each pull authenticates its part from the hierarchy
// snapshot, reads the documents token and answers from the per-part cache.
// Every part's documents are built and signed once before the timer starts;
// BenchmarkPullAfterChange measures that cost.
func BenchmarkPull(b *testing.B) {
	e, auth := pullFleet(b, 10_000)
	c := pullClient(e)
	for i := range auth {
		pullOnce(b, c, auth[i], 0, 0)
	}
	var next atomic.Int64
	b.SetParallelism(8)
	b.ReportAllocs()
	start := time.Now()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if pullOnce(b, c, auth[next.Add(1)%int64(len(auth))], 1, 1) {
				b.Error("a pull with nothing changed returned documents")
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "pulls/s")
}

// BenchmarkPullAfterChange is the first pull of each part after a change
// somewhere in the cloud (here: a new organization, which changes no
// part's documents): the part's config and grant bundle are built again
// and their digests compared with what was signed, in one transaction.
func BenchmarkPullAfterChange(b *testing.B) {
	e, auth := pullFleet(b, 1_000)
	c := pullClient(e)
	for i := range auth {
		pullOnce(b, c, auth[i], 0, 0)
	}
	ctx := context.Background()
	admin := e.client(e.adminToken)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if i%len(auth) == 0 {
			b.StopTimer()
			if _, err := admin.Org.CreateOrg(ctx, req(&fleetv1.CreateOrgRequest{Name: fmt.Sprintf("org %d", i)})); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		if pullOnce(b, c, auth[i%len(auth)], 1, 1) {
			b.Fatal("an unrelated change re-sent documents")
		}
	}
}

func pullClient(e *env) syncv1connect.SyncServiceClient {
	hc := &http.Client{Transport: &http.Transport{MaxIdleConns: 64, MaxIdleConnsPerHost: 64}}
	return syncv1connect.NewSyncServiceClient(hc, e.URL)
}

// pullOnce pulls as the part with the header auth and reports whether
// documents came.
func pullOnce(b *testing.B, c syncv1connect.SyncServiceClient, auth string, cfg, grants uint64) bool {
	r := connect.NewRequest(&syncv1.PullRequest{ConfigVersion: cfg, GrantsVersion: grants})
	r.Header().Set("Authorization", auth)
	ans, err := c.Pull(context.Background(), r)
	if err != nil {
		b.Error(err)
		return false
	}
	return ans.Msg.GetConfig() != nil || ans.Msg.GetGrants() != nil
}

// pullFleet writes n parts straight into the store and returns their
// Authorization headers.
func pullFleet(b *testing.B, n int) (*env, []string) {
	return pullFleetWith(b, n, cloudtest.Options{DiscardLog: true})
}

// pullFleetWith is pullFleet on a cloud started with opts.
func pullFleetWith(b *testing.B, n int, opts cloudtest.Options) (*env, []string) {
	e := newEnvWith(b, opts)
	org := newBenchID(1 << 30)
	auth := make([]string, n)
	const perLocation = 100
	for start := 0; start < n; start += perLocation {
		e.update(func(ctx context.Context, tx store.Tx) error {
			if start == 0 {
				if err := tx.PutOrg(ctx, store.Org{ID: org, Name: "bench"}); err != nil {
					return err
				}
			}
			loc := newBenchID(1<<29 + start)
			if err := tx.PutLocation(ctx, store.Location{ID: loc, OrgID: org, Name: "l"}); err != nil {
				return err
			}
			user := newBenchID(1<<28 + start)
			if err := tx.PutUser(ctx, store.User{ID: user, Email: user + "@x.org"}); err != nil {
				return err
			}
			if err := tx.PutGrant(ctx, store.Grant{Subject: "user:" + user, Role: "operator", Scope: "location/" + loc, OrgID: org}); err != nil {
				return err
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
	}
	return e, auth
}

// BenchmarkUploadCaptures stores captures of 1 KiB (random, as images are
// incompressible) in batches of 1,024 (1 MiB, the daemon's default batch)
// through the real cloud: the daemon's own client, the part's credentials
// checked by the real Backend, the badger ingest store on disk, each batch
// durable before it is acknowledged.
func BenchmarkUploadCaptures(b *testing.B) {
	e, auth := pullFleet(b, 1)
	id, secret, _ := strings.Cut(strings.TrimPrefix(auth[0], "Part "), ":")
	c, err := cloudsync.NewClient(cloudsync.ClientOptions{CloudURL: e.URL, PartID: id, PartSecret: secret, Compression: "identity", RetryMax: 1})
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
		res, err := c.Upload(context.Background(), connect.NewRequest(&syncv1.UploadRequest{StoreId: "s", Stream: "captures", Records: recs}))
		if err != nil || res.Msg.GetAckedThrough() != seq {
			b.Fatalf("upload: %v, acked %d of %d", err, res.Msg.GetAckedThrough(), seq)
		}
	}
	b.ReportMetric(float64(seq*size)/(1<<20)/time.Since(start).Seconds(), "MB/s")
}
