package cloud_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/cloud/cloudtest"
	"github.com/outpost-robotics/outpost/cloud/ingest"
	"github.com/outpost-robotics/outpost/cloud/ingest/pgingest"
	"github.com/outpost-robotics/outpost/cloud/pgtest"
	"github.com/outpost-robotics/outpost/cloud/store/pgstore"
)

// backends runs fn on a cloud with Badger stores and on one with
// PostgreSQL stores (cloud/pgtest).
func backends(t *testing.T, fn func(t *testing.T, opts cloudtest.Options)) {
	t.Run("badger", func(t *testing.T) { fn(t, cloudtest.Options{}) })
	t.Run("postgres", func(t *testing.T) {
		ctx := context.Background()
		url := pgtest.Database(t)
		st, err := pgstore.Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		blobs, err := ingest.NewFileBlobStore(filepath.Join(t.TempDir(), "blobs"))
		if err != nil {
			t.Fatal(err)
		}
		ing, err := pgingest.Open(ctx, pgingest.Options{URL: url, Blobs: blobs})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ing.Close() })
		fn(t, cloudtest.Options{Store: st, Ingest: ing})
	})
}

// fleetCapture is a capture a test puts straight into the ingest store.
type fleetCapture struct {
	machine         string
	at              int // seconds after epoch
	component, mime string
	tags            []string
}

// putFleetData gives the fleet world its captures (seq from 1 per part,
// in the order given) and logs.
func putFleetData(t *testing.T, w *fleetWorld, caps []fleetCapture) {
	ctx := context.Background()
	seqs := map[string]uint64{}
	for _, c := range caps {
		part := w.partOf[c.machine]
		seqs[part]++
		method := "image"
		if c.mime == "application/json" {
			method = "readings"
		}
		b, err := proto.Marshal(&syncv1.Capture{Component: c.component, Method: method, MimeType: c.mime, Tags: c.tags, Data: []byte(`{"v":1}`)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.e.Ingest().PutRecords(ctx, ingest.StreamKey{PartID: part, StoreID: "s1", Stream: "captures"},
			[]ingest.Record{{Seq: seqs[part], Time: epoch.Add(time.Duration(c.at) * time.Second), Payload: b}}); err != nil {
			t.Fatal(err)
		}
	}
}

// fleetCaps is the world's captures: Acme's rover (Plant/Line 1/Cell A)
// and Arm (Plant), Forklift (Office), crane in Other's Depot shared with
// Acme, and Other's own plotter.
func fleetCaps(w *fleetWorld) []fleetCapture {
	return []fleetCapture{
		{w.plots, 0, "cam", "image/jpeg", nil},
		{w.rover, 1, "cam", "image/jpeg", []string{"cone"}},
		{w.arm, 2, "cam", "image/png", []string{"cone"}},
		{w.crane, 3, "cam", "image/jpeg", nil},
		{w.rover, 4, "imu", "application/json", []string{"bump"}},
		{w.forklift, 5, "lidar", "application/json", nil},
	}
}

// captureNames names captures "MACHINE@SECONDS" (with their tags).
func captureNames(w *fleetWorld, cs []*fleetv1.CaptureRecord) []string {
	byID := map[string]string{w.rover: "rover", w.arm: "arm", w.crane: "crane", w.forklift: "forklift", w.plots: "plotter"}
	out := []string{}
	for _, c := range cs {
		n := fmt.Sprintf("%s@%d", byID[c.GetMachineId()], c.GetTime().AsTime().Sub(epoch)/time.Second)
		if tags := c.GetCapture().GetTags(); len(tags) > 0 {
			n += "[" + strings.Join(tags, ",") + "]"
		}
		out = append(out, n)
	}
	return out
}

// allFleetCaptures pages through a fleet capture query.
func allFleetCaptures(t *testing.T, c *cloudtest.Clients, r *fleetv1.ListFleetCapturesRequest) []*fleetv1.CaptureRecord {
	t.Helper()
	var out []*fleetv1.CaptureRecord
	r = proto.CloneOf(r)
	for range 100 {
		res := check(c.Data.ListFleetCaptures(context.Background(), req(r)))(t)
		out = append(out, res.GetCaptures()...)
		if r.PageToken = res.GetNextPageToken(); r.PageToken == "" {
			return out
		}
	}
	t.Fatal("no end to the pages")
	return nil
}

// TestFleetData: captures and logs of an organization or a location
// subtree (nested and shared), merged by time, every filter, pages, the
// seed's data rules per role, hostile input, and deletion, on both
// backends.
func TestFleetData(t *testing.T) {
	backends(t, func(t *testing.T, opts cloudtest.Options) {
		w := newFleetWorldWith(t, opts)
		e, ctx := w.e, context.Background()
		putFleetData(t, w, fleetCaps(w))
		admin := e.client(e.adminToken)
		list := func(c *cloudtest.Clients, q *fleetv1.FleetDataQuery, size int32) []string {
			t.Helper()
			return captureNames(w, allFleetCaptures(t, c, &fleetv1.ListFleetCapturesRequest{Query: q, PageSize: size}))
		}
		at := func(s int) *timestamppb.Timestamp { return timestamppb.New(epoch.Add(time.Duration(s) * time.Second)) }
		acmeAll := []string{"rover@1[cone]", "arm@2[cone]", "crane@3", "rover@4[bump]", "forklift@5"}
		for _, tc := range []struct {
			name string
			q    *fleetv1.FleetDataQuery
			want []string
		}{
			{"org: nested and shared, by time", &fleetv1.FleetDataQuery{OrgId: w.acme}, acmeAll},
			{"location subtree", &fleetv1.FleetDataQuery{LocationId: w.plant}, []string{"rover@1[cone]", "arm@2[cone]", "rover@4[bump]"}},
			{"machine", &fleetv1.FleetDataQuery{OrgId: w.acme, MachineIds: []string{w.arm, w.forklift}}, []string{"arm@2[cone]", "forklift@5"}},
			{"part", &fleetv1.FleetDataQuery{OrgId: w.acme, PartIds: []string{w.partOf[w.rover]}}, []string{"rover@1[cone]", "rover@4[bump]"}},
			{"component", &fleetv1.FleetDataQuery{OrgId: w.acme, Component: "cam"}, []string{"rover@1[cone]", "arm@2[cone]", "crane@3"}},
			{"method", &fleetv1.FleetDataQuery{OrgId: w.acme, Method: "readings"}, []string{"rover@4[bump]", "forklift@5"}},
			{"tag", &fleetv1.FleetDataQuery{OrgId: w.acme, Tag: "cone"}, []string{"rover@1[cone]", "arm@2[cone]"}},
			{"mime type", &fleetv1.FleetDataQuery{OrgId: w.acme, MimeType: "image/jpeg"}, []string{"rover@1[cone]", "crane@3"}},
			{"mime family", &fleetv1.FleetDataQuery{OrgId: w.acme, MimeType: "image/*"}, []string{"rover@1[cone]", "arm@2[cone]", "crane@3"}},
			{"time range", &fleetv1.FleetDataQuery{OrgId: w.acme, From: at(2), To: at(5)}, []string{"arm@2[cone]", "crane@3", "rover@4[bump]"}},
			{"a machine out of scope selects nothing", &fleetv1.FleetDataQuery{LocationId: w.office, MachineIds: []string{w.rover}}, []string{}},
			{"the other org's own", &fleetv1.FleetDataQuery{OrgId: w.other}, []string{"plotter@0", "crane@3"}},
		} {
			for _, size := range []int32{0, 1, 2} {
				if got := list(admin, tc.q, size); !slices.Equal(got, tc.want) {
					t.Errorf("%s, page size %d: %v, want %v", tc.name, size, got, tc.want)
				}
			}
		}

		// The seed's rules, machine by machine: a location owner sees its
		// subtree's data and tags, an operator the data without tags (and
		// may not filter by them), the owner of the sharing organization
		// only its shared machine.
		lineOwner := e.client(e.token(e.CreateUser(t, "lineowner@example.com", "line owner's long password", "owner", "location/"+w.line)))
		lineOp := e.client(e.token(e.CreateUser(t, "line@example.com", "line operator's long password", "operator", "location/"+w.line)))
		otherOwner := e.client(e.token(e.CreateUser(t, "other@example.com", "other owner's long password", "owner", "org/"+w.other)))
		for _, tc := range []struct {
			who  string
			as   *cloudtest.Clients
			q    *fleetv1.FleetDataQuery
			want []string
		}{
			{"Line 1's owner, Acme", lineOwner, &fleetv1.FleetDataQuery{OrgId: w.acme}, []string{"rover@1[cone]", "rover@4[bump]"}},
			{"Line 1's owner, Plant", lineOwner, &fleetv1.FleetDataQuery{LocationId: w.plant}, []string{"rover@1[cone]", "rover@4[bump]"}},
			{"Line 1's owner, Arm by name", lineOwner, &fleetv1.FleetDataQuery{OrgId: w.acme, MachineIds: []string{w.arm}}, []string{}},
			{"Line 1's operator, Acme", lineOp, &fleetv1.FleetDataQuery{OrgId: w.acme}, []string{"rover@1", "rover@4"}},
			{"Line 1's operator, Other", lineOp, &fleetv1.FleetDataQuery{OrgId: w.other}, []string{}},
			{"Other's owner, Acme", otherOwner, &fleetv1.FleetDataQuery{OrgId: w.acme}, []string{"crane@3"}},
		} {
			if got := list(tc.as, tc.q, 1); !slices.Equal(got, tc.want) {
				t.Errorf("%s: %v, want %v", tc.who, got, tc.want)
			}
		}
		_, err := lineOp.Data.ListFleetCaptures(ctx, req(&fleetv1.ListFleetCapturesRequest{Query: &fleetv1.FleetDataQuery{OrgId: w.acme, Tag: "cone"}}))
		wantCode(t, err, connect.CodePermissionDenied, "data.tags.view")

		// Hostile input.
		first := check(admin.Data.ListFleetCaptures(ctx, req(&fleetv1.ListFleetCapturesRequest{Query: &fleetv1.FleetDataQuery{OrgId: w.acme}, PageSize: 1})))(t)
		for _, tc := range []struct {
			name string
			as   *cloudtest.Clients
			r    *fleetv1.ListFleetCapturesRequest
			code connect.Code
			says string
		}{
			{"huge page", admin, &fleetv1.ListFleetCapturesRequest{Query: &fleetv1.FleetDataQuery{OrgId: w.acme}, PageSize: 100_000}, connect.CodeInvalidArgument, "page_size"},
			{"negative page", admin, &fleetv1.ListFleetCapturesRequest{Query: &fleetv1.FleetDataQuery{OrgId: w.acme}, PageSize: -1}, connect.CodeInvalidArgument, "page_size"},
			{"backwards times", admin, &fleetv1.ListFleetCapturesRequest{Query: &fleetv1.FleetDataQuery{OrgId: w.acme, From: at(5), To: at(5)}}, connect.CodeInvalidArgument, "from must be before to"},
			{"invalid time", admin, &fleetv1.ListFleetCapturesRequest{Query: &fleetv1.FleetDataQuery{OrgId: w.acme, From: &timestamppb.Timestamp{Nanos: -1}}}, connect.CodeInvalidArgument, "from"},
			{"no scope", admin, &fleetv1.ListFleetCapturesRequest{Query: &fleetv1.FleetDataQuery{}}, connect.CodeInvalidArgument, "org_id"},
			{"both scopes", admin, &fleetv1.ListFleetCapturesRequest{Query: &fleetv1.FleetDataQuery{OrgId: w.acme, LocationId: w.plant}}, connect.CodeInvalidArgument, "org_id"},
			{"not an ID", admin, &fleetv1.ListFleetCapturesRequest{Query: &fleetv1.FleetDataQuery{OrgId: w.acme, MachineIds: []string{"../x"}}}, connect.CodeInvalidArgument, "not an ID"},
			{"long component", admin, &fleetv1.ListFleetCapturesRequest{Query: &fleetv1.FleetDataQuery{OrgId: w.acme, Component: strings.Repeat("c", 1000)}}, connect.CodeInvalidArgument, "component"},
			{"forged token", admin, &fleetv1.ListFleetCapturesRequest{Query: &fleetv1.FleetDataQuery{OrgId: w.acme}, PageSize: 1, PageToken: "AAAA" + first.GetNextPageToken()[4:]}, connect.CodeInvalidArgument, "page_token"},
			{"token of another query", admin, &fleetv1.ListFleetCapturesRequest{Query: &fleetv1.FleetDataQuery{OrgId: w.acme, Component: "cam"}, PageSize: 1, PageToken: first.GetNextPageToken()}, connect.CodeInvalidArgument, "page_token"},
			{"token of another caller", lineOwner, &fleetv1.ListFleetCapturesRequest{Query: &fleetv1.FleetDataQuery{OrgId: w.acme}, PageSize: 1, PageToken: first.GetNextPageToken()}, connect.CodeInvalidArgument, "page_token"},
			{"unknown org", admin, &fleetv1.ListFleetCapturesRequest{Query: &fleetv1.FleetDataQuery{OrgId: strings.Repeat("a", 32)}}, connect.CodeNotFound, "org"},
		} {
			_, err := tc.as.Data.ListFleetCaptures(ctx, req(tc.r))
			if err == nil || connect.CodeOf(err) != tc.code || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("%s: %v, want %v saying %q", tc.name, err, tc.code, tc.says)
			}
		}

		// Logs of the fleet, merged by time, with part names.
		putLog := func(machine, stream string, seq uint64, at int, level, msg string) {
			b, _ := proto.Marshal(&syncv1.LogEntry{Level: level, Message: msg})
			if _, err := e.Ingest().PutRecords(ctx, ingest.StreamKey{PartID: w.partOf[machine], StoreID: "s1", Stream: stream},
				[]ingest.Record{{Seq: seq, Time: epoch.Add(time.Duration(at) * time.Second), Payload: b}}); err != nil {
				t.Fatal(err)
			}
		}
		putLog(w.rover, "logs.info", 1, 1, "info", "rover up")
		putLog(w.arm, "logs.warn", 1, 2, "warn", "arm hot")
		putLog(w.rover, "logs.info", 2, 3, "info", "rover moving")
		putLog(w.arm, "logs.warn", 2, 4, "error", "arm stopped")
		putLog(w.plots, "logs.info", 1, 2, "info", "not Acme's")
		logs := func(c *cloudtest.Clients, r *fleetv1.ListFleetLogsRequest) []string {
			t.Helper()
			var out []string
			for range 20 {
				res := check(c.Data.ListFleetLogs(ctx, req(r)))(t)
				for _, l := range res.GetEntries() {
					out = append(out, l.GetPartName()+": "+l.GetEntry().GetMessage())
				}
				if r.PageToken = res.GetNextPageToken(); r.PageToken == "" {
					break
				}
			}
			return out
		}
		if got, want := logs(admin, &fleetv1.ListFleetLogsRequest{OrgId: w.acme, PageSize: 1}), []string{"main: rover up", "main: arm hot", "main: rover moving", "main: arm stopped"}; !slices.Equal(got, want) {
			t.Errorf("Acme's logs: %v, want %v", got, want)
		}
		if got, want := logs(admin, &fleetv1.ListFleetLogsRequest{LocationId: w.plant, Level: "error"}), []string{"main: arm stopped"}; !slices.Equal(got, want) {
			t.Errorf("Plant's errors: %v, want %v", got, want)
		}
		if got, want := logs(lineOp, &fleetv1.ListFleetLogsRequest{OrgId: w.acme}), []string(nil); !slices.Equal(got, want) {
			t.Errorf("an operator reads logs (machine.view): %v", got)
		}
		if got, want := logs(lineOwner, &fleetv1.ListFleetLogsRequest{OrgId: w.acme}), []string{"main: rover up", "main: rover moving"}; !slices.Equal(got, want) {
			t.Errorf("Line 1's owner's logs: %v, want %v", got, want)
		}

		// Deleting across the fleet deletes only where the caller may edit.
		res := check(lineOwner.Data.DeleteFleetCaptures(ctx, req(&fleetv1.DeleteFleetCapturesRequest{Query: &fleetv1.FleetDataQuery{OrgId: w.acme, Component: "cam"}})))(t)
		if res.GetDeleted() != 1 {
			t.Errorf("Line 1's owner deleted %d cameras' captures, want rover's 1", res.GetDeleted())
		}
		res = check(lineOp.Data.DeleteFleetCaptures(ctx, req(&fleetv1.DeleteFleetCapturesRequest{Query: &fleetv1.FleetDataQuery{OrgId: w.acme}})))(t)
		if res.GetDeleted() != 0 {
			t.Errorf("an operator deleted %d captures", res.GetDeleted())
		}
		if got, want := list(admin, &fleetv1.FleetDataQuery{OrgId: w.acme}, 0), []string{"arm@2[cone]", "crane@3", "rover@4[bump]", "forklift@5"}; !slices.Equal(got, want) {
			t.Errorf("after the deletion: %v, want %v", got, want)
		}
	})
}
