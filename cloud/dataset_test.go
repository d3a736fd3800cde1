package cloud_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"connectrpc.com/connect"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	"github.com/outpost-robotics/outpost/cloud/cloudtest"
)

// TestDatasets: datasets against the seed's dataset rows on both
// backends: who may create, rename, delete, add, remove, open and export;
// a location owner opens and exports only the portion of a dataset it may
// read; hostile input and another organization's dataset.
func TestDatasets(t *testing.T) {
	backends(t, func(t *testing.T, opts cloudtest.Options) {
		w := newFleetWorldWith(t, opts)
		e, ctx := w.e, context.Background()
		putFleetData(t, w, fleetCaps(w))
		acmeOwner := e.client(e.token(e.CreateUser(t, "acme@example.com", "acme owner's long password", "owner", "org/"+w.acme)))
		acmeOp := e.client(e.token(e.CreateUser(t, "acmeop@example.com", "acme operator's long password", "operator", "org/"+w.acme)))
		lineOwner := e.client(e.token(e.CreateUser(t, "lineowner@example.com", "line owner's long password", "owner", "location/"+w.line)))
		otherOwner := e.client(e.token(e.CreateUser(t, "other@example.com", "other owner's long password", "owner", "org/"+w.other)))

		ds := check(acmeOwner.Dataset.CreateDataset(ctx, req(&fleetv1.CreateDatasetRequest{OrgId: w.acme, Name: "cones"})))(t).GetDataset()
		_, err := acmeOwner.Dataset.CreateDataset(ctx, req(&fleetv1.CreateDatasetRequest{OrgId: w.acme, Name: "cones"}))
		wantCode(t, err, connect.CodeAlreadyExists, "cones")
		_, err = acmeOp.Dataset.CreateDataset(ctx, req(&fleetv1.CreateDatasetRequest{OrgId: w.acme, Name: "mine"}))
		wantCode(t, err, connect.CodePermissionDenied, "dataset.create")
		_, err = acmeOwner.Dataset.CreateDataset(ctx, req(&fleetv1.CreateDatasetRequest{OrgId: w.acme, Name: " bad\x00"}))
		wantCode(t, err, connect.CodeInvalidArgument, "name")

		// Add by query (images of the organization's own machines: crane
		// is in a location another organization shares) and by id.
		add := check(acmeOwner.Dataset.AddToDataset(ctx, req(&fleetv1.AddToDatasetRequest{DatasetId: ds.GetId(), Query: &fleetv1.FleetDataQuery{MimeType: "image/*"}})))(t)
		if add.GetChanged() != 2 || add.GetCaptures() != 2 {
			t.Errorf("add by query: %v, want rover's and arm's images", add)
		}
		acme := allFleetCaptures(t, acmeOwner, &fleetv1.ListFleetCapturesRequest{Query: &fleetv1.FleetDataQuery{OrgId: w.acme, Method: "readings"}})
		ref := func(c *fleetv1.CaptureRecord) *fleetv1.CaptureRef {
			return &fleetv1.CaptureRef{PartId: c.GetPartId(), StoreId: c.GetStoreId(), Seq: c.GetSeq()}
		}
		roverImu := ref(acme[0])
		add = check(acmeOwner.Dataset.AddToDataset(ctx, req(&fleetv1.AddToDatasetRequest{DatasetId: ds.GetId(), Captures: []*fleetv1.CaptureRef{roverImu}})))(t)
		if add.GetChanged() != 1 || add.GetCaptures() != 3 {
			t.Errorf("add by id: %v", add)
		}
		open := func(c *cloudtest.Clients, export bool) ([]string, error) {
			var out []*fleetv1.CaptureRecord
			for token, n := "", 0; n < 20; n++ {
				var caps []*fleetv1.CaptureRecord
				if export {
					res, err := c.Dataset.ExportDataset(ctx, req(&fleetv1.ExportDatasetRequest{DatasetId: ds.GetId(), PageSize: 1, PageToken: token}))
					if err != nil {
						return nil, err
					}
					caps, token = res.Msg.GetCaptures(), res.Msg.GetNextPageToken()
				} else {
					res, err := c.Dataset.ListDatasetCaptures(ctx, req(&fleetv1.ListDatasetCapturesRequest{DatasetId: ds.GetId(), PageSize: 1, PageToken: token}))
					if err != nil {
						return nil, err
					}
					caps, token = res.Msg.GetCaptures(), res.Msg.GetNextPageToken()
				}
				out = append(out, caps...)
				if token == "" {
					break
				}
			}
			got := captureNames(w, out)
			slices.Sort(got)
			return got, nil
		}
		for _, tc := range []struct {
			who    string
			as     *cloudtest.Clients
			export bool
			want   []string
			code   connect.Code
		}{
			{"Acme's owner opens", acmeOwner, false, []string{"arm@2[cone]", "rover@1[cone]", "rover@4[bump]"}, 0},
			{"Acme's owner exports", acmeOwner, true, []string{"arm@2[cone]", "rover@1[cone]", "rover@4[bump]"}, 0},
			{"Line 1's owner opens its portion", lineOwner, false, []string{"rover@1[cone]", "rover@4[bump]"}, 0},
			{"Line 1's owner trains on its portion", lineOwner, true, []string{"rover@1[cone]", "rover@4[bump]"}, 0},
			{"Acme's operator may not open", acmeOp, false, nil, connect.CodePermissionDenied},
			{"Other's owner may not open", otherOwner, false, nil, connect.CodePermissionDenied},
		} {
			got, err := open(tc.as, tc.export)
			if connect.CodeOf(err) != tc.code && (err != nil || tc.code != 0) || !slices.Equal(got, tc.want) {
				t.Errorf("%s: %v %v, want %v %v", tc.who, got, err, tc.want, tc.code)
			}
		}

		// Names, renames and deletes.
		if l := check(lineOwner.Dataset.ListDatasets(ctx, req(&fleetv1.ListDatasetsRequest{OrgId: w.acme})))(t).GetDatasets(); len(l) != 1 || l[0].GetName() != "cones" || l[0].GetCaptures() != 3 {
			t.Errorf("Line 1's owner lists %v", l)
		}
		_, err = acmeOp.Dataset.ListDatasets(ctx, req(&fleetv1.ListDatasetsRequest{OrgId: w.acme}))
		wantCode(t, err, connect.CodePermissionDenied, "dataset.names.view")
		_, err = lineOwner.Dataset.RenameDataset(ctx, req(&fleetv1.RenameDatasetRequest{DatasetId: ds.GetId(), Name: "mine"}))
		wantCode(t, err, connect.CodePermissionDenied, "dataset.rename")
		_, err = lineOwner.Dataset.DeleteDataset(ctx, req(&fleetv1.DeleteDatasetRequest{DatasetId: ds.GetId()}))
		wantCode(t, err, connect.CodePermissionDenied, "dataset.delete")
		_, err = otherOwner.Dataset.RenameDataset(ctx, req(&fleetv1.RenameDatasetRequest{DatasetId: ds.GetId(), Name: "mine"}))
		wantCode(t, err, connect.CodePermissionDenied, "dataset.rename")
		if got := check(acmeOwner.Dataset.RenameDataset(ctx, req(&fleetv1.RenameDatasetRequest{DatasetId: ds.GetId(), Name: "traffic cones"})))(t).GetDataset(); got.GetName() != "traffic cones" {
			t.Errorf("renamed: %v", got)
		}

		// Line 1's owner adds only what it may, removes only what it sees.
		armCam := allFleetCaptures(t, acmeOwner, &fleetv1.ListFleetCapturesRequest{Query: &fleetv1.FleetDataQuery{OrgId: w.acme, MachineIds: []string{w.arm}}})
		_, err = lineOwner.Dataset.AddToDataset(ctx, req(&fleetv1.AddToDatasetRequest{DatasetId: ds.GetId(), Captures: []*fleetv1.CaptureRef{ref(armCam[0])}}))
		wantCode(t, err, connect.CodePermissionDenied, "dataset.images.add")
		_, err = lineOwner.Dataset.RemoveFromDataset(ctx, req(&fleetv1.RemoveFromDatasetRequest{DatasetId: ds.GetId(), Captures: []*fleetv1.CaptureRef{ref(armCam[0])}}))
		wantCode(t, err, connect.CodeNotFound, "no capture")
		rm := check(lineOwner.Dataset.RemoveFromDataset(ctx, req(&fleetv1.RemoveFromDatasetRequest{DatasetId: ds.GetId(), Query: &fleetv1.FleetDataQuery{Component: "imu"}})))(t)
		if rm.GetChanged() != 1 || rm.GetCaptures() != 2 {
			t.Errorf("remove by query: %v", rm)
		}
		rm = check(lineOwner.Dataset.RemoveFromDataset(ctx, req(&fleetv1.RemoveFromDatasetRequest{DatasetId: ds.GetId(), Query: &fleetv1.FleetDataQuery{}})))(t)
		if rm.GetChanged() != 1 || rm.GetCaptures() != 1 {
			t.Errorf("Line 1's owner removes everything it sees: %v, want rover's one left arm's", rm)
		}

		// Hostile input and another organization's dataset.
		otherDS := check(otherOwner.Dataset.CreateDataset(ctx, req(&fleetv1.CreateDatasetRequest{OrgId: w.other, Name: "cones"})))(t).GetDataset()
		for _, tc := range []struct {
			name string
			err  error
			code connect.Code
			says string
		}{
			{"not an ID", func() error {
				_, err := acmeOwner.Dataset.ListDatasetCaptures(ctx, req(&fleetv1.ListDatasetCapturesRequest{DatasetId: "../../etc"}))
				return err
			}(), connect.CodeInvalidArgument, "dataset"},
			{"unknown dataset", func() error {
				_, err := acmeOwner.Dataset.ListDatasetCaptures(ctx, req(&fleetv1.ListDatasetCapturesRequest{DatasetId: strings.Repeat("b", 32)}))
				return err
			}(), connect.CodeNotFound, "dataset"},
			{"another org's dataset", func() error {
				_, err := acmeOwner.Dataset.ListDatasetCaptures(ctx, req(&fleetv1.ListDatasetCapturesRequest{DatasetId: otherDS.GetId()}))
				return err
			}(), connect.CodePermissionDenied, "dataset.open"},
			{"a capture of this org into another org's dataset", func() error {
				_, err := acmeOwner.Dataset.AddToDataset(ctx, req(&fleetv1.AddToDatasetRequest{DatasetId: otherDS.GetId(), Captures: []*fleetv1.CaptureRef{roverImu}}))
				return err
			}(), connect.CodeNotFound, "no part"},
			{"a capture of another org", func() error {
				_, err := otherOwner.Dataset.AddToDataset(ctx, req(&fleetv1.AddToDatasetRequest{DatasetId: otherDS.GetId(), Captures: []*fleetv1.CaptureRef{roverImu}}))
				return err
			}(), connect.CodeNotFound, "no part"},
			{"a query over another org", func() error {
				_, err := acmeOwner.Dataset.AddToDataset(ctx, req(&fleetv1.AddToDatasetRequest{DatasetId: ds.GetId(), Query: &fleetv1.FleetDataQuery{OrgId: w.other}}))
				return err
			}(), connect.CodeInvalidArgument, "query.org_id"},
			{"both ids and a query", func() error {
				_, err := acmeOwner.Dataset.AddToDataset(ctx, req(&fleetv1.AddToDatasetRequest{DatasetId: ds.GetId(), Query: &fleetv1.FleetDataQuery{}, Captures: []*fleetv1.CaptureRef{roverImu}}))
				return err
			}(), connect.CodeInvalidArgument, "not both"},
			{"a capture that is not there", func() error {
				_, err := acmeOwner.Dataset.AddToDataset(ctx, req(&fleetv1.AddToDatasetRequest{DatasetId: ds.GetId(), Captures: []*fleetv1.CaptureRef{{PartId: roverImu.GetPartId(), StoreId: "s1", Seq: 99}}}))
				return err
			}(), connect.CodeNotFound, "no capture"},
			{"a forged page token", func() error {
				_, err := acmeOwner.Dataset.ListDatasetCaptures(ctx, req(&fleetv1.ListDatasetCapturesRequest{DatasetId: ds.GetId(), PageToken: "bm90IGEgdG9rZW4"}))
				return err
			}(), connect.CodeInvalidArgument, "page_token"},
			{"a huge page", func() error {
				_, err := acmeOwner.Dataset.ListDatasetCaptures(ctx, req(&fleetv1.ListDatasetCapturesRequest{DatasetId: ds.GetId(), PageSize: 1 << 30}))
				return err
			}(), connect.CodeInvalidArgument, "page_size"},
		} {
			if tc.err == nil || connect.CodeOf(tc.err) != tc.code || !strings.Contains(tc.err.Error(), tc.says) {
				t.Errorf("%s: %v, want %v saying %q", tc.name, tc.err, tc.code, tc.says)
			}
		}

		check(acmeOwner.Dataset.DeleteDataset(ctx, req(&fleetv1.DeleteDatasetRequest{DatasetId: ds.GetId()})))(t)
		_, err = acmeOwner.Dataset.ListDatasetCaptures(ctx, req(&fleetv1.ListDatasetCapturesRequest{DatasetId: ds.GetId()}))
		wantCode(t, err, connect.CodeNotFound, "dataset")
		if n := len(allFleetCaptures(t, acmeOwner, &fleetv1.ListFleetCapturesRequest{Query: &fleetv1.FleetDataQuery{OrgId: w.acme}})); n != 5 {
			t.Errorf("deleting a dataset left %d of the 5 captures", n)
		}
	})
}
