package daemon

import (
	"context"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/outpost-robotics/outpost/cache"
	"github.com/outpost-robotics/outpost/clock"
)

func TestMetricsScrape(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC))
	st := openStore(t, clk)
	for range 3 {
		if _, err := st.Append(context.Background(), cache.StreamCaptures, cache.Record{Payload: []byte("reading")}); err != nil {
			t.Fatal(err)
		}
	}
	m := newMetrics(clk, metricSources{
		Store:        st,
		SyncState:    func() string { return "offline" },
		SinceContact: func() (time.Duration, bool) { return 90 * time.Second, true },
		Components:   func() map[string]bool { return map[string]bool{"motor1": true, "cam": false} },
		LogsDropped:  func() uint64 { return 7 },
	})
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	res, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, want := range []string{
		`outpost_sync_state{state="offline"} 1`,
		`outpost_sync_state{state="online"} 0`,
		`outpost_cloud_contact_age_seconds 90`,
		`outpost_backlog_records{stream="captures"} 3`,
		`outpost_component_up{component="motor1"} 1`,
		`outpost_component_up{component="cam"} 0`,
		`outpost_store_syncs_total`,
		`outpost_store_evicted_records_total 0`,
		`outpost_store_gaps_total 0`,
		`outpost_log_lines_dropped 7`,
		`process_resident_memory_bytes`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
}

func TestNoContactAgeBeforeTheFirstContact(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC))
	m := newMetrics(clk, metricSources{SinceContact: func() (time.Duration, bool) { return 1 << 62, false }})
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	res, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if strings.Contains(string(body), "outpost_cloud_contact_age_seconds ") {
		t.Fatalf("a part that never reached the cloud reports a contact age:\n%s", body)
	}
}
