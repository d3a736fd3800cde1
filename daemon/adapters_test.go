package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/controlwire"

	"github.com/outpost-robotics/outpost/cache"
	"github.com/outpost-robotics/outpost/capture"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/control"
)

func TestCaptureSinkMapsNotFound(t *testing.T) {
	st := openStore(t, clock.NewFake(epoch))
	s := CaptureSink{Store: st}
	ctx := context.Background()
	if _, err := s.GetState(ctx, "files/x"); !errors.Is(err, capture.ErrNotFound) {
		t.Fatalf("GetState of a missing key: %v, want capture.ErrNotFound", err)
	}
	if err := s.PutState(ctx, "files/x", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if v, err := s.GetState(ctx, "files/x"); err != nil || string(v) != "1" {
		t.Fatalf("GetState = %q, %v", v, err)
	}
	if _, err := s.Append(ctx, capture.StreamCaptures, capture.Record{Payload: []byte(`not json`)}); err == nil {
		t.Fatal("Append of a payload that is no capture.Capture succeeded")
	}
}

// TestCaptureRecordsAreTheWireFormat checks the translation into the
// sync.v1 contract's syncv1.Capture, which the cloud decodes.
func TestCaptureRecordsAreTheWireFormat(t *testing.T) {
	st := openStore(t, clock.NewFake(epoch))
	ctx := context.Background()
	tests := []struct {
		name string
		c    capture.Capture
		prio uint8
		want *syncv1.Capture
	}{
		{"reading", capture.Capture{Kind: "method", Component: "imu", Method: "readings", Tick: 7, Missed: 2, Tags: []string{"a"}, Data: map[string]any{"x": 1.5}}, 3,
			&syncv1.Capture{Component: "imu", Method: "readings", Tags: []string{"a"}, Priority: 3, MimeType: "application/json"}},
		{"image", capture.Capture{Kind: "method", Component: "cam", Method: "image", BlobID: "b1", MimeType: "image/jpeg"}, 9,
			&syncv1.Capture{Component: "cam", Method: "image", Priority: 9, MimeType: "image/jpeg", BlobId: "b1"}},
		{"file", capture.Capture{Kind: "file", BlobID: "b2", File: &capture.FileInfo{Folder: "/data/img", Path: "a/b.png", Size: 10}}, 0,
			&syncv1.Capture{Component: "/data/img", Method: "file", MimeType: "application/json", BlobId: "b2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			js, _ := json.Marshal(tc.c)
			seq, err := CaptureSink{st}.Append(ctx, capture.StreamCaptures, capture.Record{Payload: js, Priority: tc.prio})
			if err != nil {
				t.Fatal(err)
			}
			es, err := st.Read(ctx, cache.StreamCaptures, seq-1, 1, 0)
			if err != nil || len(es) != 1 || es[0].Priority != tc.prio {
				t.Fatalf("read back %v, %v", es, err)
			}
			var got syncv1.Capture
			if err := proto.Unmarshal(es[0].Payload, &got); err != nil {
				t.Fatal(err)
			}
			if string(got.GetData()) != string(js) {
				t.Errorf("data %s, want the capture's JSON %s", got.GetData(), js)
			}
			got.Data = nil
			if !proto.Equal(&got, tc.want) {
				t.Errorf("record %v, want %v", &got, tc.want)
			}
		})
	}
}

func TestCertStore(t *testing.T) {
	c := certStore{openStore(t, clock.NewFake(epoch))}
	ctx := context.Background()
	if _, _, err := c.LoadCert(ctx); !errors.Is(err, control.ErrNoCert) {
		t.Fatalf("LoadCert of a new store: %v, want ErrNoCert", err)
	}
	if err := c.SaveCert(ctx, []byte("CERT"), []byte("KEY")); err != nil {
		t.Fatal(err)
	}
	if cert, key, err := c.LoadCert(ctx); err != nil || string(cert) != "CERT" || string(key) != "KEY" {
		t.Fatalf("LoadCert = %q, %q, %v", cert, key, err)
	}
}

func TestCaptureData(t *testing.T) {
	st := openStore(t, clock.NewFake(epoch))
	ctx := context.Background()
	// 600 captures, more than two read windows, alternating components;
	// the first 100 acknowledged (gone), as after an upload.
	sink := CaptureSink{st}
	for i := 1; i <= 600; i++ {
		comp := []string{"cam", "imu"}[i%2]
		b, _ := json.Marshal(capture.Capture{Kind: "method", Component: comp, Method: "readings", Tick: uint64(i), Tags: []string{"t"}})
		if _, err := sink.Append(ctx, capture.StreamCaptures, capture.Record{Payload: b}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Ack(ctx, cache.StreamCaptures, 100); err != nil {
		t.Fatal(err)
	}
	d := captureData{st}
	tests := []struct {
		component     string
		limit         int
		n             int
		first, last   uint64
		wantComponent string
	}{
		{"", 5, 5, 600, 596, ""},
		{"imu", 3, 3, 599, 595, "imu"},
		{"cam", 1000, 250, 600, 102, "cam"},
		{"", 1000, 500, 600, 101, ""},
		{"none", 10, 0, 0, 0, ""},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s/%d", tc.component, tc.limit), func(t *testing.T) {
			got, err := d.ListCaptures(ctx, tc.component, tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tc.n {
				t.Fatalf("%d captures, want %d", len(got), tc.n)
			}
			if tc.n == 0 {
				return
			}
			if got[0].GetId() != tc.first || got[len(got)-1].GetId() != tc.last {
				t.Fatalf("ids %d..%d, want %d..%d (newest first)", got[0].GetId(), got[len(got)-1].GetId(), tc.first, tc.last)
			}
			for _, c := range got {
				if tc.wantComponent != "" && c.GetComponent() != tc.wantComponent {
					t.Fatalf("capture %d of %q in a listing of %q", c.GetId(), c.GetComponent(), tc.wantComponent)
				}
			}
		})
	}
	info, data, err := d.ReadCapture(ctx, 300)
	var c capture.Capture
	if err != nil || info.GetId() != 300 || info.GetComponent() != "cam" || info.GetMimeType() != "application/json" ||
		json.Unmarshal(data, &c) != nil || c.Tick != 300 {
		t.Fatalf("ReadCapture(300) = %v, %s, %v", info, data, err)
	}
	for _, id := range []uint64{50, 601} {
		if _, _, err := d.ReadCapture(ctx, id); connect.CodeOf(err) != connect.CodeNotFound {
			t.Errorf("ReadCapture(%d): %v, want not_found", id, err)
		}
	}
}

// TestCaptureDataTagsAndDeletes edits captures in a real store: tags
// travel in the record (what the upload reads), list and export show them,
// deleted captures and their blobs are gone and a gap record declares
// them, and ids no longer on the part are said to be so.
func TestCaptureDataTagsAndDeletes(t *testing.T) {
	st := openStore(t, clock.NewFake(epoch))
	ctx := context.Background()
	sink := CaptureSink{st}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(sink.PutBlobChunk(ctx, "image/cam/1", 0, []byte("jpeg bytes")))
	must(sink.SealBlob(ctx, "image/cam/1"))
	for i := 1; i <= 6; i++ {
		c := capture.Capture{Kind: "method", Component: "imu", Method: "readings", Tick: uint64(i), Tags: []string{"field"}, Data: map[string]any{"x": i}}
		if i == 3 {
			c = capture.Capture{Kind: "method", Component: "cam", Method: "image", Tick: 3, BlobID: "image/cam/1", MimeType: "image/jpeg"}
		}
		b, _ := json.Marshal(c)
		_, err := sink.Append(ctx, capture.StreamCaptures, capture.Record{Payload: b, Priority: 2})
		must(err)
	}
	must(st.Ack(ctx, cache.StreamCaptures, 1)) // capture 1 is in the cloud
	d := captureData{st}

	n, err := d.TagCaptures(ctx, []uint64{1, 2, 3, 4}, []string{"reviewed", "field", "bad"}, []string{"bad", "field"})
	if err != nil || n != 3 {
		t.Fatalf("TagCaptures = %d, %v; want 3 changed", n, err)
	}
	if n, err := d.TagCaptures(ctx, []uint64{2, 3}, []string{"reviewed"}, nil); err != nil || n != 0 {
		t.Fatalf("tagging again = %d, %v; want 0 changed", n, err)
	}
	if _, err := d.TagCaptures(ctx, []uint64{1, 1, 99}, []string{"x"}, nil); connect.CodeOf(err) != connect.CodeNotFound ||
		!strings.Contains(err.Error(), "1 99 are not on the part") {
		t.Fatalf("tagging captures not on the part: %v", err)
	}
	n, err = d.DeleteCaptures(ctx, []uint64{3, 4, 50})
	if err != nil || n != 2 {
		t.Fatalf("DeleteCaptures = %d, %v; want 2", n, err)
	}
	if _, err := d.DeleteCaptures(ctx, []uint64{3, 4}); connect.CodeOf(err) != connect.CodeNotFound {
		t.Fatalf("deleting again: %v, want not_found", err)
	}

	list, err := d.ListCaptures(ctx, "", 100)
	must(err)
	var got []string
	for _, c := range list {
		got = append(got, fmt.Sprintf("%d %s %v", c.GetId(), c.GetComponent(), c.GetTags()))
	}
	if want := []string{"6 imu [field]", "5 imu [field]", "2 imu [reviewed]"}; !slices.Equal(got, want) {
		t.Fatalf("list %q, want %q", got, want)
	}
	info, data, err := d.ReadCapture(ctx, 2)
	var c capture.Capture
	if err != nil || !slices.Equal(info.GetTags(), []string{"reviewed"}) || json.Unmarshal(data, &c) != nil || c.Tick != 2 {
		t.Fatalf("ReadCapture(2) = %v, %s, %v", info, data, err)
	}
	if _, _, err := d.ReadCapture(ctx, 3); connect.CodeOf(err) != connect.CodeNotFound || !strings.Contains(err.Error(), "deleted") {
		t.Fatalf("ReadCapture of a deleted capture: %v", err)
	}
	// The upload reads the tagged record: the wire's syncv1.Capture.
	es, err := st.Read(ctx, cache.StreamCaptures, 1, 1, 0)
	must(err)
	var cp syncv1.Capture
	must(proto.Unmarshal(es[0].Payload, &cp))
	if es[0].Seq != 2 || !slices.Equal(cp.GetTags(), []string{"reviewed"}) || cp.GetComponent() != "imu" || cp.GetPriority() != 2 {
		t.Fatalf("the record uploaded for capture 2 is %v", &cp)
	}
	// The cloud is told, and the blob of the image will never be sent.
	gs, err := st.Read(ctx, cache.StreamGaps, 0, 10, 0)
	must(err)
	if len(gs) != 1 {
		t.Fatalf("%d gap records, want 1", len(gs))
	}
	g, err := cache.DecodeGap(gs[0].Payload)
	if err != nil || g.Stream != cache.StreamCaptures || g.From != 3 || g.Through != 4 || g.Count != 2 ||
		g.Reason != "deleted on the part by an unknown caller" {
		t.Fatalf("gap record %+v, %v", g, err)
	}
	if blobs, _ := st.Blobs(ctx); len(blobs) != 0 {
		t.Fatalf("blobs %v left after deleting the capture naming them", blobs)
	}
}

// TestTagLimitPerCapture: edits cannot grow a capture's tags without end.
func TestTagLimitPerCapture(t *testing.T) {
	st := openStore(t, clock.NewFake(epoch))
	ctx := context.Background()
	b, _ := json.Marshal(capture.Capture{Kind: "method", Component: "imu", Method: "readings"})
	if _, err := (CaptureSink{st}).Append(ctx, capture.StreamCaptures, capture.Record{Payload: b}); err != nil {
		t.Fatal(err)
	}
	d := captureData{st}
	for i := 0; i < maxCaptureTags; i += 32 {
		var add []string
		for j := range 32 {
			add = append(add, fmt.Sprint("t", i+j))
		}
		if _, err := d.TagCaptures(ctx, []uint64{1}, add, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.TagCaptures(ctx, []uint64{1}, []string{"one-more"}, nil); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("tag %d on one capture: %v, want invalid_argument", maxCaptureTags+1, err)
	}
}

func TestLogSinkTailAndFollow(t *testing.T) {
	clk := clock.NewFake(epoch)
	sink := newLogSink(openStore(t, clk), clk, 16)
	log := zap.New(sink)
	ctx, cancel := context.WithCancel(context.Background())
	follow, err := sink.Follow(ctx, "warn")
	if err != nil {
		t.Fatal(err)
	}
	for i := range recentLogs + 10 {
		log.Info(fmt.Sprintf("info %d", i))
	}
	log.Warn("careful", zap.Int("n", 1))
	log.Debug("detail")

	got, err := sink.Tail(ctx, 3, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].GetMessage() != fmt.Sprintf("info %d", recentLogs+9) || got[1].GetMessage() != "careful" || got[2].GetMessage() != "detail" {
		t.Fatalf("Tail(3) = %v", got)
	}
	warn, _ := sink.Tail(ctx, 100, "warn")
	if len(warn) != 1 || warn[0].GetFieldsJson() != `{"n":1}` || warn[0].GetLevel() != "warn" {
		t.Fatalf("Tail(warn) = %v", warn)
	}
	all, _ := sink.Tail(ctx, 5000, "")
	if len(all) != recentLogs {
		t.Fatalf("Tail keeps %d entries, want %d", len(all), recentLogs)
	}
	if _, err := sink.Tail(ctx, 1, "loud"); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("Tail with a bad level: %v", err)
	}
	if e := <-follow; e.GetMessage() != "careful" {
		t.Fatalf("Follow(warn) delivered %v first", e)
	}
	cancel()
	for range follow {
	}
}

func TestQuietRelayBacksOff(t *testing.T) {
	clk := clock.NewFake(epoch)
	q := &quietRelay{clk: clk}
	ctx := context.Background()
	fail := func(context.Context) (*controlwire.RelayedOffer, error) { return nil, errors.New("cloud unreachable") }
	offer := func(context.Context) (*controlwire.RelayedOffer, error) {
		return &controlwire.RelayedOffer{ID: "o1"}, nil
	}
	for _, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		done := make(chan error, 1)
		go func() { _, err := q.next(ctx, fail); done <- err }()
		if err := clk.BlockUntil(ctx, 1); err != nil {
			t.Fatal(err)
		}
		if d, ok := clk.NextDeadline(); !ok || d != want {
			t.Fatalf("pause %v, want %v", d, want)
		}
		clk.Advance(want)
		if err := <-done; err == nil || err.Error() != "cloud unreachable" {
			t.Fatalf("NextOffer after the pause: %v", err)
		}
	}
	if off, err := q.next(ctx, offer); err != nil || off.ID != "o1" || q.backoff != 0 {
		t.Fatalf("an offer: %v, %v, backoff %v (want reset)", off, err, q.backoff)
	}
	q.backoff = relayBackoffMax
	go func() { _, _ = q.next(ctx, fail) }()
	if err := clk.BlockUntil(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if d, _ := clk.NextDeadline(); d != relayBackoffMax {
		t.Fatalf("pause %v, want at most %v", d, relayBackoffMax)
	}
	clk.Advance(relayBackoffMax)
}
