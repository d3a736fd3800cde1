package cloudsync_test

import (
	"testing"
	"time"

	"github.com/outpost-robotics/outpost/cache"
	"github.com/outpost-robotics/outpost/cloudsync"
)

// TestCloudIntervalOverridesTheStartedOneSayingSo: a part started with its
// own interval takes the real cloud's at the first pull and logs once which
// won and why; a part on the default that the cloud agrees with logs
// nothing about it.
func TestCloudIntervalOverridesTheStartedOneSayingSo(t *testing.T) {
	for _, tc := range []struct {
		name    string
		started time.Duration
		warned  int
	}{
		{"started with 5s", 5 * time.Second, 1},
		{"default", 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, cache.Budget{}, func(o *cloudsync.Options) { o.Interval = tc.started })
			for range 2 {
				if res := w.cycle(t); res.Err != nil {
					t.Fatalf("cycle: %v", res.Err)
				}
			}
			won := w.logs.FilterMessage("the cloud's sync interval wins over the one this part was started with").All()
			if len(won) != tc.warned {
				t.Fatalf("logged %d times that the cloud's interval won, want %d: %v", len(won), tc.warned, w.logs.All())
			}
			if tc.warned == 0 {
				if n := w.logs.FilterMessage("the cloud changed the sync interval").Len(); n != 0 {
					t.Fatalf("an unchanged interval was logged as changed %d times", n)
				}
				return
			}
			f := won[0].ContextMap()
			if f["interval"] != 15*time.Second || f["started_with"] != tc.started || f["why"] == "" {
				t.Fatalf("the log does not say which interval won and why: %v", f)
			}
		})
	}
}
