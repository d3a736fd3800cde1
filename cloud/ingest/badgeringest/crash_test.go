package badgeringest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/outpost-robotics/outpost/cloud/ingest"
	"github.com/outpost-robotics/outpost/qemutest"
)

const crashChildEnv = "OUTPOST_INGEST_CRASH_CHILD"

// crashSegSize makes the child's segments roll every few puts, so kills
// land on rolls and removals too.
const crashSegSize = 256 << 10

// crashChild puts batches to four streams from four goroutines, and
// deletes some records it put, until it is killed; it reports each put and
// delete that returned on stdout, one line each, before going on.
func crashChild(dir, run string) {
	ctx := context.Background()
	blobs, err := ingest.NewFileBlobStore(dir + "/blobs")
	if err != nil {
		fmt.Fprintln(os.Stderr, "child blobs:", err)
		os.Exit(3)
	}
	s, err := Open(Options{Dir: dir + "/db", Blobs: blobs, segmentSize: crashSegSize})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(3)
	}
	os.Stdout.WriteString("ready\n")
	var mu sync.Mutex
	say := func(line string) {
		mu.Lock()
		os.Stdout.WriteString(line) // one write(2) of < PIPE_BUF: atomic
		mu.Unlock()
	}
	for g := range 4 {
		go func() {
			key := ingest.StreamKey{PartID: "p", StoreID: "s", Stream: "s" + strconv.Itoa(g)}
			rng := rand.New(rand.NewPCG(uint64(g), uint64(len(run))))
			seq, err := s.AckedThrough(ctx, key)
			if err != nil {
				fmt.Fprintln(os.Stderr, "child watermark:", err)
				os.Exit(4)
			}
			var mine []uint64
			for {
				recs := make([]ingest.Record, 1+rng.IntN(40))
				for i := range recs {
					seq++
					recs[i] = ingest.Record{Seq: seq, Payload: crashPayload(run, g, seq, 100+rng.IntN(3000))}
				}
				if _, err := s.PutRecords(ctx, key, recs); err != nil {
					fmt.Fprintln(os.Stderr, "child put:", err)
					os.Exit(4)
				}
				var b strings.Builder
				for _, r := range recs {
					h := sha256.Sum256(r.Payload)
					fmt.Fprintf(&b, "put %d %d %s\n", g, r.Seq, hex.EncodeToString(h[:8]))
					mine = append(mine, r.Seq)
				}
				say(b.String())
				if rng.IntN(3) == 0 && len(mine) > 0 {
					i := rng.IntN(len(mine))
					victim := mine[i]
					mine = slices.Delete(mine, i, i+1)
					say(fmt.Sprintf("try %d %d\n", g, victim))
					if _, err := s.DeleteRecords(ctx, key, []uint64{victim}); err != nil {
						fmt.Fprintln(os.Stderr, "child delete:", err)
						os.Exit(4)
					}
					say(fmt.Sprintf("del %d %d\n", g, victim))
				}
			}
		}()
	}
	select {}
}

func crashPayload(run string, g int, seq uint64, n int) []byte {
	return markedPayload(crashMarker(run, g, seq), n)
}

func crashMarker(run string, g int, seq uint64) string {
	return fmt.Sprintf("R%sG%dS%d", run, g, seq)
}

// TestCrashKill kills (SIGKILL) a child process putting and deleting
// records at seeded random moments, and checks after each kill, on the
// reopened store, that every put that returned reads back with its bytes
// (checksums verified), every delete that returned holds, and the payload
// of every deleted record is nowhere in the folder.
func TestCrashKill(t *testing.T) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir, os.Getenv(crashChildEnv+"_RUN"))
		return
	}
	if testing.Short() {
		t.Skip("spawns 20 processes")
	}
	const kills = 20
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(20261202, 48))
	type rec struct {
		hash   string
		marker string
	}
	held := map[int]map[uint64]rec{}
	gone := map[int]map[uint64]string{}
	// trying holds the records a delete was started for: the kill may
	// have come before or after it committed.
	trying := map[int]map[uint64]bool{}
	for g := range 4 {
		held[g], gone[g], trying[g] = map[uint64]rec{}, map[uint64]string{}, map[uint64]bool{}
	}
	total := 0
	for k := range kills {
		run := strconv.Itoa(k)
		child := qemutest.StartChild(t, "TestCrashKill", crashChildEnv+"="+dir, crashChildEnv+"_RUN="+run)
		// Most kills land while puts run; one in eight during Open.
		if rng.IntN(8) == 0 {
			time.Sleep(time.Duration(rng.IntN(40)) * time.Millisecond)
		} else {
			child.Ready(t)
			time.Sleep(time.Duration(20+rng.IntN(200)) * time.Millisecond)
		}
		lines := child.Kill(t)
		for _, l := range lines {
			if l == "ready" {
				continue
			}
			f := strings.Fields(l)
			if len(f) < 3 {
				t.Fatalf("bad child line %q", l)
			}
			g, err1 := strconv.Atoi(f[1])
			seq, err2 := strconv.ParseUint(f[2], 10, 64)
			if err1 != nil || err2 != nil || g < 0 || g >= 4 {
				t.Fatalf("bad child line %q", l)
			}
			switch {
			case f[0] == "put" && len(f) == 4:
				if _, dup := held[g][seq]; dup {
					t.Fatalf("kill %d: stream %d seq %d put twice", k, g, seq)
				}
				held[g][seq] = rec{hash: f[3], marker: crashMarker(run, g, seq)}
				total++
			case f[0] == "try":
				if _, ok := held[g][seq]; !ok {
					t.Fatalf("kill %d: stream %d seq %d deleted before it was put", k, g, seq)
				}
				trying[g][seq] = true
			case f[0] == "del":
				r, ok := held[g][seq]
				if !ok || !trying[g][seq] {
					t.Fatalf("kill %d: stream %d seq %d deleted before it was put", k, g, seq)
				}
				delete(held[g], seq)
				delete(trying[g], seq)
				gone[g][seq] = r.marker
			default:
				t.Fatalf("bad child line %q", l)
			}
		}

		s := openSmall(t, dir, crashSegSize)
		ctx := context.Background()
		var markers []string
		for g := range 4 {
			key := ingest.StreamKey{PartID: "p", StoreID: "s", Stream: "s" + strconv.Itoa(g)}
			for seq, r := range held[g] {
				got, err := s.Record(ctx, key, seq)
				if trying[g][seq] {
					delete(trying[g], seq)
					if errors.Is(err, ingest.ErrNotFound) {
						// The delete committed: its bytes must be gone too.
						delete(held[g], seq)
						gone[g][seq] = r.marker
						continue
					}
				}
				if err != nil {
					var held []heldRec
					var heldErr error
					_ = s.db.View(func(txn *badger.Txn) error {
						c := newHeldCursor(txn, streamPrefix('r', key))
						defer c.close()
						_, _, heldErr = c.find(seq)
						held = c.rec
						return nil
					})
					w, _ := s.AckedThrough(ctx, key)
					t.Fatalf("kill %d: stream %d seq %d (%s) acknowledged, then: %v (the key at or before it holds %+v, %v; watermark %d)", k, g, seq, r.marker, err, held, heldErr, w)
				}
				h := sha256.Sum256(got.Payload)
				if hex.EncodeToString(h[:8]) != r.hash || !bytes.HasPrefix(got.Payload, []byte(r.marker+"/")) {
					t.Fatalf("kill %d: stream %d seq %d read back other bytes", k, g, seq)
				}
			}
			for seq, m := range gone[g] {
				if _, err := s.Record(ctx, key, seq); !errors.Is(err, ingest.ErrNotFound) {
					t.Fatalf("kill %d: stream %d seq %d deleted, then: %v", k, g, seq, err)
				}
				markers = append(markers, m)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		for m, files := range filesHolding(t, dir, markers...) {
			t.Fatalf("kill %d: deleted record %s still in %v", k, m, files)
		}
	}
	if total == 0 {
		t.Fatal("no put returned before any kill")
	}
	t.Logf("%d kills, %d records acknowledged", kills, total)
}
