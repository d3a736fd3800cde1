package faultproxy

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// upstream answers every request with a body of 1 KiB, counts what it saw,
// and signals each request on hit.
func upstream(t *testing.T) (*httptest.Server, *atomic.Int64, chan struct{}) {
	t.Helper()
	var seen atomic.Int64
	hit := make(chan struct{}, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = w.Write(bytes.Repeat([]byte("x"), 1024))
		hit <- struct{}{}
	}))
	t.Cleanup(srv.Close)
	return srv, &seen, hit
}

// links are the networks every fault is tried on: loopback, and a shaped
// link fast enough that no fault's outcome depends on its pace.
var links = []struct {
	name string
	link Link
}{
	{"loopback", Link{}},
	{"shaped", Link{Up: 1e9, Down: 1e9, Delay: time.Millisecond}},
}

func TestFaults(t *testing.T) {
	for _, l := range links {
		t.Run(l.name, func(t *testing.T) { testFaults(t, l.link) })
	}
}

func testFaults(t *testing.T, link Link) {
	tests := []struct {
		fault        Fault
		wantErr      bool // the client gets no complete answer
		wantStatus   int
		wantUpstream int64
	}{
		{Pass, false, 200, 1},
		{Status503, false, 503, 0},
		{Status429, false, 429, 0},
		{ResetBefore, true, 0, 0},
		{ResetAfter, true, 0, 1},
		{HangAfter, true, 0, 1},
		{TruncateAfter, true, 0, 1},
		{SlowAfter, false, 200, 1},
		{Duplicate, false, 200, 2},
	}
	for _, tc := range tests {
		t.Run(tc.fault.String(), func(t *testing.T) {
			up, seen, hit := upstream(t)
			p, err := New(up.URL, Script(tc.fault))
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			if err := p.SetLink(link); err != nil {
				t.Fatal(err)
			}
			// A hang is ended by the client's own deadline, as in the field.
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.fault == HangAfter {
				go func() {
					<-hit // the upstream acted; now the client gives up
					cancel()
				}()
			}
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, p.URL()+"/outpost.sync.v1.SyncService/Pull", bytes.NewReader([]byte("hello")))
			client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
			res, err := client.Do(req)
			var body []byte
			if err == nil {
				body, err = io.ReadAll(res.Body)
				res.Body.Close()
			}
			if gotErr := err != nil; gotErr != tc.wantErr {
				t.Fatalf("error = %v, want error: %v", err, tc.wantErr)
			}
			if !tc.wantErr && res.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d", res.StatusCode, tc.wantStatus)
			}
			if !tc.wantErr && tc.wantStatus == 200 && len(body) != 1024 {
				t.Fatalf("body %d bytes, want 1024", len(body))
			}
			if got := seen.Load(); got != tc.wantUpstream {
				t.Fatalf("upstream saw %d requests, want %d", got, tc.wantUpstream)
			}
			if p.Count(tc.fault) != 1 {
				t.Fatalf("count of %v = %d, want 1", tc.fault, p.Count(tc.fault))
			}
		})
	}
}

func TestDownCutsEverythingUntilHealed(t *testing.T) {
	for _, l := range links {
		t.Run(l.name, func(t *testing.T) { testDownCutsEverythingUntilHealed(t, l.link) })
	}
}

func testDownCutsEverythingUntilHealed(t *testing.T, link Link) {
	up, seen, _ := upstream(t)
	p, err := New(up.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.SetLink(link); err != nil {
		t.Fatal(err)
	}
	post := func() error {
		res, err := http.Post(p.URL()+"/x", "application/proto", bytes.NewReader(nil))
		if err == nil {
			_, err = io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
		return err
	}
	if err := post(); err != nil {
		t.Fatal(err)
	}
	p.SetDown(true)
	for i := 0; i < 3; i++ {
		if err := post(); err == nil {
			t.Fatal("request through a partition succeeded")
		}
	}
	p.SetDown(false)
	if err := post(); err != nil {
		t.Fatalf("after healing: %v", err)
	}
	if got := seen.Load(); got != 2 {
		t.Fatalf("upstream saw %d, want 2", got)
	}
}

func TestRandomIsReproducibleAndHonoursProbabilities(t *testing.T) {
	probs := map[Fault]float64{Status503: 0.2, ResetAfter: 0.1}
	a, b := Random(7, probs), Random(7, probs)
	counts := map[Fault]int{}
	for i := int64(1); i <= 10000; i++ {
		fa, fb := a(i, nil), b(i, nil)
		if fa != fb {
			t.Fatalf("request %d: %v vs %v from the same seed", i, fa, fb)
		}
		counts[fa]++
	}
	if c := counts[Status503]; c < 1800 || c > 2200 {
		t.Errorf("503 chosen %d of 10000 times, want about 2000", c)
	}
	if c := counts[ResetAfter]; c < 850 || c > 1150 {
		t.Errorf("reset-after chosen %d of 10000 times, want about 1000", c)
	}
}
