package reliability

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/cache"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/cloud/ingest"
	"github.com/outpost-robotics/outpost/cloud/ingest/badgeringest"
	"github.com/outpost-robotics/outpost/cloudsync"
)

// storeIDKey is where sync keeps the store's incarnation id (sync.StoreID).
const storeIDKey = "sync.store_id"

// storeView is what a part's store holds, read with the daemon stopped.
type storeView struct {
	id    string
	stats map[cache.Stream]cache.StreamStats
	// present lists, per stream, the sequences still held (not yet
	// acknowledged by the cloud), when asked for.
	present map[cache.Stream]map[uint64]bool
}

// inspectStore opens the store of a stopped (or killed) daemon with the
// cache package, as the next start would, and reads each stream's
// figures: Last is the highest sequence ever durably appended, so every
// record up to it was acknowledged to its writer.
func inspectStore(ctx context.Context, dataDir string, withPresent bool) (storeView, error) {
	v := storeView{stats: map[cache.Stream]cache.StreamStats{}, present: map[cache.Stream]map[uint64]bool{}}
	st, err := cache.Open(ctx, filepath.Join(dataDir, "store"), cache.Options{Clock: clock.NewReal(), GCInterval: -1})
	if err != nil {
		return v, fmt.Errorf("open the part's store: %w", err)
	}
	defer st.Close()
	id, err := st.GetState(ctx, storeIDKey)
	if err != nil && !errors.Is(err, cache.ErrNotFound) {
		return v, fmt.Errorf("read the store id: %w", err)
	}
	v.id = string(id)
	for _, s := range cloudsync.UploadOrder {
		stats, err := st.Stats(ctx, s)
		if err != nil {
			return v, fmt.Errorf("stats of %s: %w", s, err)
		}
		v.stats[s] = stats
		if !withPresent {
			continue
		}
		held := map[uint64]bool{}
		for after := stats.AckedThrough; ; {
			es, err := st.Read(ctx, s, after, 1000, 0)
			if err != nil {
				return v, fmt.Errorf("read %s: %w", s, err)
			}
			if len(es) == 0 {
				break
			}
			for _, e := range es {
				held[e.Seq] = true
			}
			after = es[len(es)-1].Seq
		}
		v.present[s] = held
	}
	return v, nil
}

// cloudRecord is one record the cloud holds.
type cloudRecord struct {
	storeID string
	seq     uint64
	time    time.Time
	payload []byte
}

// cloudView is what the cloud's ingest store holds of one part, read after
// the cloud stopped.
type cloudView struct {
	// records by store id and stream, in sequence order.
	records map[string]map[cache.Stream][]cloudRecord
	// lost are the ranges declared lost, by store id and stream.
	lost map[string]map[cache.Stream][]ingest.LostRange
	// watermark is the cloud's acknowledged-through, by store id and stream.
	watermark map[string]map[cache.Stream]uint64
	// conflicts counts repeats that came with different bytes, over all streams.
	conflicts uint64
}

// readCloud opens the stopped cloud's ingest store and reads everything it
// holds of partID: records, declared losses, watermarks and conflicts.
func readCloud(ctx context.Context, cloudDir, partID string, storeIDs ...string) (*cloudView, error) {
	blobs, err := ingest.NewFileBlobStore(filepath.Join(cloudDir, "blobs"))
	if err != nil {
		return nil, fmt.Errorf("open the cloud's blobs: %w", err)
	}
	ing, err := badgeringest.Open(badgeringest.Options{Dir: filepath.Join(cloudDir, "ingest"), Blobs: blobs})
	if err != nil {
		return nil, fmt.Errorf("open the cloud's ingest store: %w", err)
	}
	defer ing.Close()
	return readIngest(ctx, ing, partID, storeIDs...)
}

// readIngest reads everything an ingest store holds of partID: records,
// declared losses, watermarks and conflicts.
func readIngest(ctx context.Context, ing ingest.Store, partID string, storeIDs ...string) (*cloudView, error) {
	var err error
	cv := &cloudView{records: map[string]map[cache.Stream][]cloudRecord{}, lost: map[string]map[cache.Stream][]ingest.LostRange{},
		watermark: map[string]map[cache.Stream]uint64{}}
	ids := map[string]bool{}
	for _, id := range storeIDs {
		if id != "" {
			ids[id] = true
		}
	}
	for after := ""; ; {
		recs, next, err := ing.Records(ctx, ingest.Query{PartIDs: []string{partID}, After: after, Limit: ingest.MaxLimit})
		if err != nil {
			return nil, fmt.Errorf("read the cloud's records: %w", err)
		}
		for _, r := range recs {
			byStream := cv.records[r.StoreID]
			if byStream == nil {
				byStream = map[cache.Stream][]cloudRecord{}
				cv.records[r.StoreID] = byStream
			}
			st := cache.Stream(r.Stream)
			byStream[st] = append(byStream[st], cloudRecord{storeID: r.StoreID, seq: r.Seq, time: r.Time, payload: r.Payload})
			ids[r.StoreID] = true
		}
		if next == "" {
			break
		}
		after = next
	}
	for id := range ids {
		cv.lost[id], cv.watermark[id] = map[cache.Stream][]ingest.LostRange{}, map[cache.Stream]uint64{}
		for _, st := range cloudsync.UploadOrder {
			key := ingest.StreamKey{PartID: partID, StoreID: id, Stream: string(st)}
			if cv.lost[id][st], err = ing.Lost(ctx, key); err != nil {
				return nil, fmt.Errorf("read the ranges declared lost of %s: %w", key, err)
			}
			if cv.watermark[id][st], err = ing.AckedThrough(ctx, key); err != nil {
				return nil, fmt.Errorf("read the watermark of %s: %w", key, err)
			}
		}
	}
	for _, st := range cloudsync.UploadOrder {
		c, err := ing.Count(ctx, partID, string(st))
		if err != nil {
			return nil, fmt.Errorf("count %s: %w", st, err)
		}
		cv.conflicts += c.Conflicts
	}
	return cv, nil
}

// inLost reports whether seq is in one of the ranges.
func inLost(ranges []ingest.LostRange, seq uint64) bool {
	for _, r := range ranges {
		if seq >= r.First && seq <= r.Last {
			return true
		}
	}
	return false
}

// tally is the exactly-once accounting of one store incarnation.
type tally struct {
	acked    uint64 // records the part's store acknowledged (sum of Last)
	inCloud  uint64 // of those, held by the cloud
	onPart   uint64 // of those, not in the cloud but still held by the part
	lost     uint64 // of those, in neither but declared lost by a gap record
	missing  uint64 // of those, in none of the above: silently lost
	dup      uint64 // extra copies: a sequence held twice, a conflict, or one capture stored under two sequences
	regress  uint64 // sequences seen earlier than the store now admits, or held by the cloud past it
	problems []string
}

func (t *tally) problem(format string, args ...any) {
	if len(t.problems) < 8 {
		t.problems = append(t.problems, fmt.Sprintf(format, args...))
	}
}

// account checks every sequence the part's store ever acknowledged: each is
// in the cloud exactly once, still waiting on the part, or declared lost;
// and no capture reached the cloud twice under different sequences.
// maxSeen are the highest sequences seen in earlier inspections.
func account(cv *cloudView, sv storeView, maxSeen map[cache.Stream]uint64) tally {
	var t tally
	for _, st := range cloudsync.UploadOrder {
		last := sv.stats[st].Last
		t.acked += last
		if maxSeen[st] > last {
			t.regress++
			t.problem("%s: the store acknowledged sequence %d earlier, now its last is %d", st, maxSeen[st], last)
		}
		held := map[uint64]int{}
		for _, r := range cv.records[sv.id][st] {
			held[r.seq]++
			if r.seq > last {
				t.regress++
				t.problem("%s: the cloud holds sequence %d, past the part's last %d", st, r.seq, last)
			}
		}
		lost := cv.lost[sv.id][st]
		for seq := uint64(1); seq <= last; seq++ {
			switch n := held[seq]; {
			case n > 1:
				t.dup += uint64(n - 1)
				t.problem("%s: sequence %d held %d times", st, seq, n)
				t.inCloud++
			case n == 1:
				t.inCloud++
			case sv.present[st][seq]:
				t.onPart++
			case inLost(lost, seq):
				t.lost++
			default:
				t.missing++
				t.problem("%s: sequence %d is in neither the cloud nor the part, and no gap record declares it", st, seq)
			}
		}
	}
	t.dup += cv.conflicts
	if cv.conflicts > 0 {
		t.problem("the cloud counted %d repeats with different contents", cv.conflicts)
	}
	// One reading stored twice under two sequences would pass the checks
	// above: captures are told apart by component, method and read time.
	seen := map[string]uint64{}
	for _, byStream := range cv.records {
		for _, r := range byStream[cache.StreamCaptures] {
			var c syncv1.Capture
			if err := proto.Unmarshal(r.payload, &c); err != nil {
				t.problem("capture %d does not decode: %v", r.seq, err)
				continue
			}
			k := c.GetComponent() + "/" + c.GetMethod() + "@" + r.time.UTC().Format(time.RFC3339Nano)
			if prev, ok := seen[k]; ok {
				t.dup++
				t.problem("capture %s stored as sequence %d and %d", k, prev, r.seq)
			}
			seen[k] = r.seq
		}
	}
	return t
}

// ok reports whether nothing was lost silently, duplicated or reordered.
func (t tally) ok() bool { return t.missing == 0 && t.dup == 0 && t.regress == 0 }

// gapsIn decodes the gap records the cloud holds for a store incarnation.
func gapsIn(cv *cloudView, storeID string) ([]gapInCloud, error) {
	var out []gapInCloud
	for _, r := range cv.records[storeID][cache.StreamGaps] {
		var g syncv1.GapRecord
		if err := proto.Unmarshal(r.payload, &g); err != nil {
			return nil, fmt.Errorf("gap record %d does not decode: %w", r.seq, err)
		}
		out = append(out, gapInCloud{seq: r.seq, at: r.time, rec: &g})
	}
	slices.SortFunc(out, func(a, b gapInCloud) int { return cmp.Compare(a.seq, b.seq) })
	return out, nil
}

// gapInCloud is a gap record as the cloud holds it: at is when the part
// wrote it (the eviction's time).
type gapInCloud struct {
	seq uint64
	at  time.Time
	rec *syncv1.GapRecord
}

// explainStuck is for a part that does not drain: it kills the part and
// the cloud and logs, per stream, where the part's acknowledgements stopped
// and what the cloud holds and declares lost around that point.
func explainStuck(ctx context.Context, t interface{ Logf(string, ...any) }, p *partProc, cl *cloudProc, partID string) {
	if p.c.running() {
		p.kill()
	}
	if cl.c.running() {
		cl.kill()
	}
	sv, err := inspectStore(ctx, p.data, true)
	if err != nil {
		t.Logf("stuck: %v", err)
		return
	}
	cv, err := readCloud(ctx, cl.dir, partID, sv.id)
	if err != nil {
		t.Logf("stuck: %v", err)
		return
	}
	for _, st := range cloudsync.UploadOrder {
		s := sv.stats[st]
		if s.Count == 0 {
			continue
		}
		var present []uint64
		for seq := range sv.present[st] {
			present = append(present, seq)
		}
		slices.Sort(present)
		held := map[uint64]bool{}
		for _, r := range cv.records[sv.id][st] {
			held[r.seq] = true
		}
		w := cv.watermark[sv.id][st]
		var near []string
		for seq := w; seq <= w+5 && seq <= s.Last; seq++ {
			near = append(near, fmt.Sprintf("%d:held=%v,lost=%v,on_part=%v", seq, held[seq], inLost(cv.lost[sv.id][st], seq), sv.present[st][seq]))
		}
		t.Logf("stuck %s: part acked through %d, last %d, holds %d (first %v); cloud watermark %d, %d lost ranges; around it: %s",
			st, s.AckedThrough, s.Last, s.Count, present[:min(len(present), 5)], w, len(cv.lost[sv.id][st]), strings.Join(near, " "))
	}
}
