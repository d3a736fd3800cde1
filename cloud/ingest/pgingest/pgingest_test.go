package pgingest_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/cloud/ingest"
	"github.com/outpost-robotics/outpost/cloud/ingest/ingesttest"
	"github.com/outpost-robotics/outpost/cloud/ingest/pgingest"
	"github.com/outpost-robotics/outpost/cloud/pgmigrate"
	"github.com/outpost-robotics/outpost/cloud/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// testdata holds rows as each schema version holds them (seed_NNNN.sql,
// applied right after version NNNN in TestMigrations).
//
//go:embed testdata
var testdata embed.FS

func openBlobs(t testing.TB, url string) *pgingest.BlobStore {
	t.Helper()
	b, err := pgingest.OpenBlobStore(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Error(err)
		}
	})
	return b
}

// open returns a store and its blob store on url; the caller closes the
// store (the suites do), the blob store closes with the test.
func open(t testing.TB, url string, opts pgingest.Options) (*pgingest.Store, ingest.BlobStore) {
	t.Helper()
	blobs := openBlobs(t, url)
	opts.URL, opts.Blobs = url, blobs
	s, err := pgingest.Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return s, blobs
}

func TestConformance(t *testing.T) {
	ingesttest.Run(t, func(t *testing.T) (ingest.Store, ingest.BlobStore) {
		return open(t, pgtest.Database(t), pgingest.Options{})
	})
}

func TestPartialBlobs(t *testing.T) {
	ingesttest.RunPartialBlobs(t, func(t *testing.T, quota uint64, maxCount int, ttl time.Duration, clk clock.Clock) (ingest.Store, ingest.BlobStore) {
		return open(t, pgtest.Database(t), pgingest.Options{Clock: clk, PartialBlobQuota: quota, MaxPartialBlobs: maxCount, PartialBlobTTL: ttl})
	})
}

func TestBlobStore(t *testing.T) {
	ingesttest.RunBlobStore(t, func(t *testing.T) ingest.BlobStore { return openBlobs(t, pgtest.Database(t)) })
}

// TestReplicas: two stores on one database are one store: uploaders
// spread over both store each record once, and either answers the same.
func TestReplicas(t *testing.T) {
	ctx := context.Background()
	url := pgtest.Database(t)
	a, _ := open(t, url, pgingest.Options{})
	defer a.Close()
	b, _ := open(t, url, pgingest.Options{})
	defer b.Close()
	key := ingest.StreamKey{PartID: "p", StoreID: "s", Stream: "logs.info"}
	const n = 300
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for g := range 6 {
		s := a
		if g%2 == 1 {
			s = b
		}
		wg.Go(func() {
			for from := uint64(1 + g%3); from <= n; from += 25 {
				var recs []ingest.Record
				for q := from; q < from+30 && q <= n; q++ {
					recs = append(recs, ingest.Record{Seq: q, Payload: fmt.Appendf(nil, "r%d", q)})
				}
				if _, err := s.PutRecords(ctx, key, recs); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, s := range []*pgingest.Store{a, b} {
		c, err := s.Count(ctx, "p", "logs.info")
		if err != nil || c.Records != n || c.Conflicts != 0 {
			t.Errorf("Count = %+v, %v; want %d records", c, err, n)
		}
		if w, err := s.AckedThrough(ctx, key); err != nil || w != n {
			t.Errorf("watermark %d, %v; want %d", w, err, n)
		}
	}
}

// TestHostileValues: what PostgreSQL text cannot hold never fails an
// upload: a reason or a blob name with NUL or broken UTF-8 is kept with
// those bytes replaced; sequences and sizes past 2^63-1 are ErrInvalid;
// ids with quotes and SQL are ids like any other.
func TestHostileValues(t *testing.T) {
	ctx := context.Background()
	s, b := open(t, pgtest.Database(t), pgingest.Options{})
	defer s.Close()
	key := ingest.StreamKey{PartID: `p'; DROP TABLE ingest_records; --`, StoreID: `"s"`, Stream: `%_\`}
	res, err := s.PutBatch(ctx, key, []ingest.Record{{Seq: 1, Payload: []byte("\x00\xff")}},
		[]ingest.Loss{{Stream: key.Stream, First: 2, Last: 3, Reason: "bad \x00 and \xff and " + strings.Repeat("long ", 1000)}})
	if err != nil || res.AckedThrough != 3 {
		t.Fatalf("PutBatch = %+v, %v", res, err)
	}
	lost, err := s.Lost(ctx, key)
	if err != nil || len(lost) != 1 || !strings.HasPrefix(lost[0].Reason, "bad \uFFFD and \uFFFD and long") || len(lost[0].Reason) > 1100 {
		t.Fatalf("Lost = %.80v, %v", lost, err)
	}
	got, _, err := s.Records(ctx, ingest.Query{PartIDs: []string{key.PartID}})
	if err != nil || len(got) != 1 || !bytes.Equal(got[0].Payload, []byte("\x00\xff")) || got[0].StreamKey != key {
		t.Fatalf("Records = %+v, %v", got, err)
	}
	for _, seq := range []uint64{1 << 63, ^uint64(0)} {
		if _, err := s.PutRecords(ctx, key, []ingest.Record{{Seq: seq}}); !errors.Is(err, ingest.ErrInvalid) {
			t.Errorf("sequence %d: %v, want ErrInvalid", seq, err)
		}
		if _, err := s.DeclareLost(ctx, key, 4, seq, ""); !errors.Is(err, ingest.ErrInvalid) {
			t.Errorf("lost through %d: %v, want ErrInvalid", seq, err)
		}
	}
	if n, err := s.DeleteRecords(ctx, key, []uint64{1 << 63, 0}); err != nil || n != 0 {
		t.Errorf("deleting sequences never held: %d, %v", n, err)
	}
	for _, stream := range []string{"bad\x00", "\xff"} {
		if c, err := s.Count(ctx, key.PartID, stream); err != nil || c != (ingest.Count{}) {
			t.Errorf("Count of %q = %+v, %v; want nothing", stream, c, err)
		}
		if rs, _, err := s.Records(ctx, ingest.Query{Stream: stream}); err != nil || len(rs) != 0 {
			t.Errorf("Records of %q = %v, %v; want nothing", stream, rs, err)
		}
	}
	data := []byte("blob")
	sum := sha256.Sum256(data)
	p, err := s.PutBlobChunk(ctx, ingest.BlobChunk{PartID: key.PartID, BlobID: "b", Data: data, Size: 4, SHA256: sum[:], Name: "cam\x00\xff"})
	if err != nil || !p.Complete {
		t.Fatalf("a blob named with NUL: %+v, %v", p, err)
	}
	if info, err := s.Blob(ctx, key.PartID, "b"); err != nil || info.Name != "cam\uFFFD\uFFFD" {
		t.Errorf("Blob = %+v, %v", info, err)
	}
	if _, err := s.PutBlobChunk(ctx, ingest.BlobChunk{PartID: "p", BlobID: "huge", Size: 1 << 63, SHA256: sum[:]}); !errors.Is(err, ingest.ErrInvalid) {
		t.Errorf("a blob of 2^63 bytes: %v, want ErrInvalid", err)
	}
	_ = b
}

// TestCursor: every cursor Records hands out reads back, and anything else
// is ErrInvalid, never a panic.
func TestCursor(t *testing.T) {
	ctx := context.Background()
	s, _ := open(t, pgtest.Database(t), pgingest.Options{})
	defer s.Close()
	cursors := []string{"!", "YQ"}
	for _, raw := range []string{"p\x00s\x00l", "p\x00s\x00l\x0001", "p\x00s\x00l\x00-1", "p\x00s\x00l\x000",
		"\x01\x00s\x00l\x001", "p\x00s\x00l\x009223372036854775808", "p\x00s\x00l\x001\x00"} {
		cursors = append(cursors, base64.RawURLEncoding.EncodeToString([]byte(raw)))
	}
	for _, c := range cursors {
		if _, _, err := s.Records(ctx, ingest.Query{After: c}); !errors.Is(err, ingest.ErrInvalid) {
			t.Errorf("cursor %q: %v, want ErrInvalid", c, err)
		}
	}
}

// TestMigrations applies every version in order on an empty database and
// opens the stores on it.
func TestMigrations(t *testing.T) {
	ctx := context.Background()
	for _, seeded := range []bool{false, true} {
		t.Run(fmt.Sprint("seeded=", seeded), func(t *testing.T) {
			url := pgtest.Database(t)
			pool, err := pgxpool.New(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			defer pool.Close()
			for _, set := range []pgmigrate.Set{pgingest.Migrations(), pgingest.BlobMigrations()} {
				ms, err := set.Migrations()
				if err != nil {
					t.Fatal(err)
				}
				for _, m := range ms {
					if err := pgmigrate.ApplyThrough(ctx, pool, set, m.Version); err != nil {
						t.Fatal(err)
					}
					if !seeded || set.Component != "ingest" {
						continue
					}
					seed, err := testdata.ReadFile(fmt.Sprintf("testdata/seed_%04d.sql", m.Version))
					if err != nil {
						continue // this version changed nothing a seed shows
					}
					if _, err := pool.Exec(ctx, string(seed)); err != nil {
						t.Fatalf("seed at version %d: %v", m.Version, err)
					}
				}
			}
			// A store with data opens again on its own database unchanged.
			s, _ := open(t, url, pgingest.Options{})
			key := ingest.StreamKey{PartID: "p", StoreID: "s", Stream: "captures"}
			if _, err := s.PutRecords(ctx, key, []ingest.Record{{Seq: 1, Payload: []byte("a")}}); err != nil {
				t.Fatal(err)
			}
			s.Close()
			s, _ = open(t, url, pgingest.Options{})
			defer s.Close()
			if w, err := s.AckedThrough(ctx, key); err != nil || w != 1 {
				t.Fatalf("after reopening: %d, %v", w, err)
			}
			if !seeded {
				return
			}
			// Version 1's rows, as an older cloud wrote them: a record, and
			// a deleted one that must stay a tombstone.
			old := ingest.StreamKey{PartID: "seed-part", StoreID: "s1", Stream: "logs.info"}
			recs, _, err := s.Records(ctx, ingest.Query{PartIDs: []string{"seed-part"}})
			if err != nil || len(recs) != 1 || recs[0].Seq != 1 || string(recs[0].Payload) != "hello" || recs[0].Time.UnixNano() != 1700000000000000000 {
				t.Fatalf("the seeded records: %+v, %v", recs, err)
			}
			if w, err := s.AckedThrough(ctx, old); err != nil || w != 2 {
				t.Fatalf("the seeded watermark: %d, %v", w, err)
			}
			if r, err := s.PutRecords(ctx, old, []ingest.Record{{Seq: 2, Payload: []byte("again")}}); err != nil || r.Stored != 0 {
				t.Fatalf("the seeded deleted record sent again: %+v, %v", r, err)
			}
		})
	}
}

// BenchmarkPutRecords measures storing 1 MiB batches of 1 KiB records,
// each batch committed durably (a server that syncs, as in production)
// before it is acknowledged: badgeringest's benchmark of the same name,
// for comparison.
func BenchmarkPutRecords(b *testing.B) {
	ctx := context.Background()
	srv := pgtest.NewDurableServer(b)
	if err := srv.CreateDatabase(ctx, "bench"); err != nil {
		b.Fatal(err)
	}
	s, _ := open(b, srv.URL("bench"), pgingest.Options{})
	defer s.Close()
	key := ingest.StreamKey{PartID: "p", StoreID: "s", Stream: "captures"}
	const perBatch = 1024
	payload := bytes.Repeat([]byte("x"), 1024)
	seq := uint64(0)
	b.SetBytes(perBatch * 1024)
	start := time.Now()
	for b.Loop() {
		batch := make([]ingest.Record, perBatch)
		for i := range batch {
			seq++
			batch[i] = ingest.Record{Seq: seq, Payload: payload}
		}
		res, err := s.PutRecords(ctx, key, batch)
		if err != nil || res.AckedThrough != seq {
			b.Fatal(fmt.Sprint(res.AckedThrough, err))
		}
	}
	b.ReportMetric(float64(seq)*1024/(1<<20)/time.Since(start).Seconds(), "MB/s")
}
