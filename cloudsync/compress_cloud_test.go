package cloudsync_test

import (
	"fmt"
	gosync "sync"
	"testing"
	"time"

	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/cache"
	"github.com/outpost-robotics/outpost/cloudsync"
)

// simLink is a link simulated on the part's fake clock: each upload
// advances it by a round trip, its wire bytes at the link's rate and, when
// compressed, its payload at the encoder's rate. The Syncer measures
// nothing else, so what it learns is what the link would teach it.
type simLink struct {
	w *world

	mu       gosync.Mutex
	linkRate float64 // wire bytes per second
	cpuRate  float64 // payload bytes the encoder takes per second
	sent     map[bool]int
}

func (l *simLink) before(plain bool, req *syncv1.UploadRequest) {
	l.mu.Lock()
	defer l.mu.Unlock()
	raw := 0
	for _, r := range req.GetRecords() {
		raw += len(r.GetPayload())
	}
	secs := float64(raw) / l.linkRate
	if !plain {
		secs = float64(raw)/4/l.linkRate + float64(raw)/l.cpuRate
	}
	l.w.advance(time.Millisecond + time.Duration(secs*float64(time.Second)))
	l.sent[plain]++
}

func (l *simLink) set(linkRate float64) map[bool]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	was := l.sent
	l.linkRate, l.sent = linkRate, map[bool]int{}
	return was
}

// TestCompressionFollowsTheLink drains backlogs through the real Syncer
// and the real cloud over a slow link and then a fast one: on the slow
// link the captures go compressed (with a few probes uncompressed), on the
// fast one the part learns that compressing does not pay and sends them as
// they are; the cloud, which accepts both, holds every record once.
func TestCompressionFollowsTheLink(t *testing.T) {
	link := &simLink{cpuRate: 50e6}
	w := newWorld(t, cache.Budget{}, func(o *cloudsync.Options) {
		o.InFlight = 1
		o.Client = cloudsync.OnUpload(o.Client, link.before)
	})
	link.w = w

	link.set(100e3) // 800 kbit/s
	want := w.fill(t, []cache.Stream{cache.StreamCaptures}, 20000)
	w.drain(t, 100)
	slow := link.set(1e9)
	more := w.fill(t, []cache.Stream{cache.StreamCaptures}, 40000)
	want[cache.StreamCaptures] += more[cache.StreamCaptures]
	w.drain(t, 200)
	fast := link.set(1e9)
	w.checkExactlyOnce(t, want)

	t.Logf("slow link: %d compressed, %d uncompressed; fast: %d, %d", slow[false], slow[true], fast[false], fast[true])
	if slow[false] < 4*slow[true] || slow[true] == 0 {
		t.Errorf("slow link: %d uploads compressed, %d not; want compressed, with a probe or two uncompressed", slow[false], slow[true])
	}
	if fast[true] < 2*fast[false] {
		t.Errorf("fast link: %d uploads uncompressed, %d compressed; want most uncompressed", fast[true], fast[false])
	}
	logged := false
	for _, e := range w.logs.FilterMessage("a stream's uploads change compression").All() {
		c := e.ContextMap()
		logged = logged || c["stream"] == string(cache.StreamCaptures) && fmt.Sprint(c["compression"]) == "identity"
	}
	if !logged {
		t.Errorf("the switch to identity was not logged: %v", w.logs.All())
	}
}
