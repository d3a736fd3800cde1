package cloud

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/authz"
	"github.com/outpost-robotics/outpost/cloud/auth"
	"github.com/outpost-robotics/outpost/cloud/ingest"
	"github.com/outpost-robotics/outpost/cloud/store"
	"github.com/outpost-robotics/outpost/rbac"
)

// maxDatasetCaptures bounds one dataset, so opening, deleting and removing
// by query stay one bounded read (and one transaction on Badger).
const maxDatasetCaptures = 10_000

type datasetService struct{ s *Server }

func datasetPB(d store.Dataset, n int) *fleetv1.Dataset {
	return &fleetv1.Dataset{Id: d.ID, OrgId: d.OrgID, Name: d.Name, CreatedBy: d.CreatedBy, CreatedAt: ts(d.CreatedAt), Captures: uint32(n)}
}

// uniqueDatasetName refuses a name another dataset of the org has.
func uniqueDatasetName(ctx context.Context, tx store.Tx, d store.Dataset) error {
	all, err := tx.ListDatasets(ctx, d.OrgID)
	if err != nil {
		return err
	}
	for _, o := range all {
		if o.Name == d.Name && o.ID != d.ID {
			return connect.NewError(connect.CodeAlreadyExists, fmt.Errorf("org/%s already has a dataset named %q", d.OrgID, d.Name))
		}
	}
	return nil
}

func (ds datasetService) CreateDataset(ctx context.Context, req *connect.Request[fleetv1.CreateDatasetRequest]) (*connect.Response[fleetv1.CreateDatasetResponse], error) {
	m := req.Msg
	if err := validName("name", m.GetName()); err != nil {
		return nil, err
	}
	c := callFrom(ctx)
	d := store.Dataset{ID: auth.NewID(), OrgID: m.GetOrgId(), Name: m.GetName(), CreatedBy: c.principal.ref(), CreatedAt: ds.s.clock.Now().UTC()}
	c.setAuditResource("dataset/"+d.ID, d.OrgID)
	return respond(ctx, ds.s.update, func(tx store.Tx) (*fleetv1.CreateDatasetResponse, error) {
		if err := uniqueDatasetName(ctx, tx, d); err != nil {
			return nil, err
		}
		return &fleetv1.CreateDatasetResponse{Dataset: datasetPB(d, 0)}, tx.PutDataset(ctx, d)
	})
}

func (ds datasetService) ListDatasets(ctx context.Context, req *connect.Request[fleetv1.ListDatasetsRequest]) (*connect.Response[fleetv1.ListDatasetsResponse], error) {
	return respond(ctx, ds.s.view, func(tx store.Tx) (*fleetv1.ListDatasetsResponse, error) {
		all, err := tx.ListDatasets(ctx, req.Msg.GetOrgId())
		if err != nil {
			return nil, err
		}
		out := &fleetv1.ListDatasetsResponse{}
		for _, d := range all {
			cs, err := tx.ListDatasetCaptures(ctx, d.ID)
			if err != nil {
				return nil, err
			}
			out.Datasets = append(out.Datasets, datasetPB(d, len(cs)))
		}
		slices.SortFunc(out.Datasets, func(a, b *fleetv1.Dataset) int {
			return strings.Compare(a.GetName()+"\x00"+a.GetId(), b.GetName()+"\x00"+b.GetId())
		})
		return out, nil
	})
}

func (ds datasetService) RenameDataset(ctx context.Context, req *connect.Request[fleetv1.RenameDatasetRequest]) (*connect.Response[fleetv1.RenameDatasetResponse], error) {
	m := req.Msg
	if err := validName("name", m.GetName()); err != nil {
		return nil, err
	}
	return respond(ctx, ds.s.update, func(tx store.Tx) (*fleetv1.RenameDatasetResponse, error) {
		d, err := modify(ctx, tx, m.GetDatasetId(), store.Tx.GetDataset, store.Tx.PutDataset, func(d *store.Dataset) error {
			d.Name = m.GetName()
			return uniqueDatasetName(ctx, tx, *d)
		})
		if err != nil {
			return nil, err
		}
		cs, err := tx.ListDatasetCaptures(ctx, d.ID)
		return &fleetv1.RenameDatasetResponse{Dataset: datasetPB(d, len(cs))}, err
	})
}

func (ds datasetService) DeleteDataset(ctx context.Context, req *connect.Request[fleetv1.DeleteDatasetRequest]) (*connect.Response[fleetv1.DeleteDatasetResponse], error) {
	return respond(ctx, ds.s.update, func(tx store.Tx) (*fleetv1.DeleteDatasetResponse, error) {
		return &fleetv1.DeleteDatasetResponse{}, tx.DeleteDataset(ctx, req.Msg.GetDatasetId())
	})
}

// dataset reads a dataset and its entries.
func (s *Server) dataset(ctx context.Context, id string) (store.Dataset, []store.DatasetCapture, error) {
	var d store.Dataset
	var cs []store.DatasetCapture
	err := s.view(ctx, func(tx store.Tx) error {
		var err error
		if d, err = tx.GetDataset(ctx, id); err != nil {
			return err
		}
		cs, err = tx.ListDatasetCaptures(ctx, id)
		return err
	})
	if err != nil {
		return d, nil, s.errs.Answer("read dataset", authz.Explain(err, store.ErrNotFound, "no dataset/%s", id))
	}
	return d, cs, nil
}

// checkRefs validates named captures.
func checkRefs(refs []*fleetv1.CaptureRef) error {
	if len(refs) > maxCapturesPerOp {
		return invalid("captures: at most %d", maxCapturesPerOp)
	}
	for i, r := range refs {
		if ingest.ValidateID("part id", r.GetPartId()) != nil || ingest.ValidateID("store id", r.GetStoreId()) != nil || r.GetSeq() == 0 {
			return invalid("captures[%d]: a part id, a store id and a sequence from 1 are required", i)
		}
	}
	return nil
}

// captureOf reads the capture a reference names; an error wraps
// ingest.ErrNotFound when it is not there.
func captureOf(ctx context.Context, ing ingest.Store, partID, storeID string, seq uint64) (ingest.StoredRecord, *syncv1.Capture, error) {
	r, err := ing.Record(ctx, ingest.StreamKey{PartID: partID, StoreID: storeID, Stream: "captures"}, seq)
	if err != nil {
		return r, nil, authz.Explain(err, ingest.ErrNotFound, "no capture %s:%s:%d", partID, storeID, seq)
	}
	cp := &syncv1.Capture{}
	if err := proto.Unmarshal(r.Payload, cp); err != nil {
		err = fmt.Errorf("decode: %w (%w)", err, ingest.ErrNotFound)
		return r, nil, authz.Explain(err, ingest.ErrNotFound, "no capture %s:%s:%d", partID, storeID, seq)
	}
	return r, cp, nil
}

// changeOf checks an add or a remove names captures or gives a query (not
// both, each ref well formed) and reads the dataset it changes, with the
// ingest store its captures are read from.
func (ds datasetService) changeOf(ctx context.Context, id string, refs []*fleetv1.CaptureRef, q *fleetv1.FleetDataQuery) (ingest.Store, store.Dataset, []store.DatasetCapture, error) {
	ing, err := ds.s.ingestStore()
	if err != nil {
		return nil, store.Dataset{}, nil, err
	}
	if (len(refs) == 0) == (q == nil) {
		return nil, store.Dataset{}, nil, invalid("name captures or give a query, not both")
	}
	if err := checkRefs(refs); err != nil {
		return nil, store.Dataset{}, nil, err
	}
	d, entries, err := ds.s.dataset(ctx, id)
	if err != nil {
		return nil, store.Dataset{}, nil, err
	}
	return ing, d, entries, nil
}

func (ds datasetService) AddToDataset(ctx context.Context, req *connect.Request[fleetv1.AddToDatasetRequest]) (*connect.Response[fleetv1.AddToDatasetResponse], error) {
	m := req.Msg
	ing, d, entries, err := ds.changeOf(ctx, m.GetDatasetId(), m.GetCaptures(), m.GetQuery())
	if err != nil {
		return nil, err
	}
	c := callFrom(ctx)
	allowed := c.may(rbac.DatasetImagesAdd)
	inOrg := func(machineID string) bool { return c.snap.orgOf(rbac.Machine(machineID)) == d.OrgID }
	held := map[string]bool{}
	for _, e := range entries {
		held[e.CaptureID] = true
	}
	var add []store.DatasetCapture
	now := ds.s.clock.Now().UTC()
	more := false
	if q := m.GetQuery(); q != nil {
		q = proto.CloneOf(q)
		switch {
		case q.GetOrgId() == "" && q.GetLocationId() == "":
			q.OrgId = d.OrgID
		case q.GetOrgId() != "" && q.GetOrgId() != d.OrgID:
			return nil, invalid("query.org_id: a dataset holds captures of its own organization, org/%s", d.OrgID)
		}
		key, err := fleetDataKey(c, m)
		if err != nil {
			return nil, err
		}
		token := ""
		for {
			caps, next, err := ds.s.listFleetCaptures(ctx, q, ingest.MaxLimit, token, key, func(id string) bool { return inOrg(id) && allowed(id) })
			if err != nil {
				return nil, err
			}
			for _, cr := range caps {
				id := captureID(cr.GetPartId(), cr.GetStoreId(), cr.GetSeq())
				if held[id] {
					continue
				}
				if len(add) == maxCapturesPerOp {
					more = true
					break
				}
				held[id] = true
				add = append(add, store.DatasetCapture{DatasetID: d.ID, CaptureID: id, MachineID: cr.GetMachineId(), AddedBy: c.principal.ref(), AddedAt: now})
			}
			if more || next == "" {
				break
			}
			token = next
		}
	}
	for i, r := range m.GetCaptures() {
		p, ok := c.snap.parts[r.GetPartId()]
		if !ok || !inOrg(p.MachineID) {
			return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("captures[%d]: no part %q in org/%s", i, r.GetPartId(), d.OrgID))
		}
		if !allowed(p.MachineID) {
			return nil, connect.NewError(connect.CodePermissionDenied, fmt.Errorf("captures[%d]: %s may not add captures of machine/%s (dataset.images.add)", i, c.principal.ref(), p.MachineID))
		}
		if _, _, err := captureOf(ctx, ing, r.GetPartId(), r.GetStoreId(), r.GetSeq()); err != nil {
			return nil, err
		}
		id := captureID(r.GetPartId(), r.GetStoreId(), r.GetSeq())
		if !held[id] {
			held[id] = true
			add = append(add, store.DatasetCapture{DatasetID: d.ID, CaptureID: id, MachineID: p.MachineID, AddedBy: c.principal.ref(), AddedAt: now})
		}
	}
	return respond(ctx, ds.s.update, func(tx store.Tx) (*fleetv1.AddToDatasetResponse, error) {
		cur, err := tx.ListDatasetCaptures(ctx, d.ID)
		if err != nil {
			return nil, err
		}
		if len(cur)+len(add) > maxDatasetCaptures {
			return nil, connect.NewError(connect.CodeResourceExhausted, fmt.Errorf("dataset/%s holds %d captures; adding %d would pass the limit of %d", d.ID, len(cur), len(add), maxDatasetCaptures))
		}
		if _, err := tx.GetDataset(ctx, d.ID); err != nil {
			return nil, err // deleted meanwhile
		}
		for _, e := range add {
			if err := tx.PutDatasetCapture(ctx, e); err != nil {
				return nil, err
			}
		}
		return &fleetv1.AddToDatasetResponse{Changed: uint32(len(add)), Captures: uint32(len(cur) + len(add)), More: more}, nil
	})
}

// splitCaptureID splits "PART|STORE|SEQ".
func splitCaptureID(id string) (part, storeID string, seq uint64, ok bool) {
	f := strings.Split(id, "|")
	if len(f) != 3 {
		return "", "", 0, false
	}
	_, err := fmt.Sscan(f[2], &seq)
	return f[0], f[1], seq, err == nil && seq > 0
}

func (ds datasetService) RemoveFromDataset(ctx context.Context, req *connect.Request[fleetv1.RemoveFromDatasetRequest]) (*connect.Response[fleetv1.RemoveFromDatasetResponse], error) {
	m := req.Msg
	ing, d, entries, err := ds.changeOf(ctx, m.GetDatasetId(), m.GetCaptures(), m.GetQuery())
	if err != nil {
		return nil, err
	}
	c := callFrom(ctx)
	allowed := c.may(rbac.DatasetImagesRemove)
	byID := map[string]store.DatasetCapture{}
	for _, e := range entries {
		byID[e.CaptureID] = e
	}
	var remove []string
	for i, r := range m.GetCaptures() {
		id := captureID(r.GetPartId(), r.GetStoreId(), r.GetSeq())
		e, ok := byID[id]
		// A capture the caller may not see is not there, for it.
		if !ok || !allowed(e.MachineID) {
			return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("captures[%d]: dataset/%s has no capture %s:%s:%d", i, d.ID, r.GetPartId(), r.GetStoreId(), r.GetSeq()))
		}
		remove = append(remove, id)
	}
	if q := m.GetQuery(); q != nil {
		f := dataFilter{component: q.GetComponent(), method: q.GetMethod(), mime: q.GetMimeType()}
		if err := f.check(); err != nil {
			return nil, err
		}
		tr, err := timeRange(q.GetFrom(), q.GetTo())
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			part, storeID, seq, ok := splitCaptureID(e.CaptureID)
			if !ok || !allowed(e.MachineID) || len(q.GetMachineIds()) > 0 && !slices.Contains(q.GetMachineIds(), e.MachineID) ||
				len(q.GetPartIds()) > 0 && !slices.Contains(q.GetPartIds(), part) {
				continue
			}
			if f.any() || !tr.From.IsZero() || !tr.To.IsZero() {
				r, cp, err := captureOf(ctx, ing, part, storeID, seq)
				if err != nil {
					if errors.Is(err, ingest.ErrNotFound) {
						remove = append(remove, e.CaptureID) // deleted from the fleet: nothing left to keep
						continue
					}
					return nil, err
				}
				if !f.keep(cp) || !tr.From.IsZero() && r.Time.Before(tr.From) || !tr.To.IsZero() && !r.Time.Before(tr.To) {
					continue
				}
			}
			remove = append(remove, e.CaptureID)
		}
	}
	return respond(ctx, ds.s.update, func(tx store.Tx) (*fleetv1.RemoveFromDatasetResponse, error) {
		n := 0
		for _, id := range remove {
			err := tx.DeleteDatasetCapture(ctx, d.ID, id)
			switch {
			case err == nil:
				n++
			case !errors.Is(err, store.ErrNotFound):
				return nil, err
			}
		}
		cur, err := tx.ListDatasetCaptures(ctx, d.ID)
		return &fleetv1.RemoveFromDatasetResponse{Changed: uint32(n), Captures: uint32(len(cur))}, err
	})
}

func (ds datasetService) ListDatasetCaptures(ctx context.Context, req *connect.Request[fleetv1.ListDatasetCapturesRequest]) (*connect.Response[fleetv1.ListDatasetCapturesResponse], error) {
	caps, next, err := ds.s.datasetPage(ctx, req.Msg, rbac.DataView)
	return reply(&fleetv1.ListDatasetCapturesResponse{Captures: caps, NextPageToken: next}, err)
}

func (ds datasetService) ExportDataset(ctx context.Context, req *connect.Request[fleetv1.ExportDatasetRequest]) (*connect.Response[fleetv1.ExportDatasetResponse], error) {
	m := req.Msg
	caps, next, err := ds.s.datasetPage(ctx, &fleetv1.ListDatasetCapturesRequest{DatasetId: m.GetDatasetId(), PageSize: m.GetPageSize(), PageToken: m.GetPageToken()}, rbac.DataExport)
	return reply(&fleetv1.ExportDatasetResponse{Captures: caps, NextPageToken: next}, err)
}

// datasetPage is one page of a dataset's captures, by capture ID, holding
// only captures of machines where the caller may do a: the portion of the
// dataset it has access to. Tags are shown where it holds data.tags.view.
func (s *Server) datasetPage(ctx context.Context, m *fleetv1.ListDatasetCapturesRequest, a rbac.Action) ([]*fleetv1.CaptureRecord, string, error) {
	ing, err := s.ingestStore()
	if err != nil {
		return nil, "", err
	}
	size, err := fleetPageSize(m.GetPageSize())
	if err != nil {
		return nil, "", err
	}
	c := callFrom(ctx)
	key, err := fleetDataKey(c, &fleetv1.ListDatasetCapturesRequest{DatasetId: m.GetDatasetId(), PageSize: m.GetPageSize()})
	if err != nil {
		return nil, "", err
	}
	after, _, err := s.decodePageToken(key, m.GetPageToken())
	if err != nil {
		return nil, "", err
	}
	_, entries, err := s.dataset(ctx, m.GetDatasetId())
	if err != nil {
		return nil, "", err
	}
	allowed, tagsOK := c.may(a), c.may(rbac.DataTagsView)
	out := &fleetv1.ListFleetCapturesResponse{}
	i, _ := slices.BinarySearchFunc(entries, after, func(e store.DatasetCapture, id string) int { return strings.Compare(e.CaptureID, id) })
	if i < len(entries) && after != "" && entries[i].CaptureID == after {
		i++
	}
	for ; i < len(entries); i++ {
		e := entries[i]
		if len(out.Captures) == size {
			out.NextPageToken = s.encodePageToken(key, entries[i-1].CaptureID, "")
			break
		}
		part, storeID, seq, ok := splitCaptureID(e.CaptureID)
		p, known := c.snap.parts[part]
		if !ok || !known || p.MachineID != e.MachineID || !allowed(e.MachineID) {
			continue
		}
		r, cp, err := captureOf(ctx, ing, part, storeID, seq)
		if errors.Is(err, ingest.ErrNotFound) {
			continue // deleted from the fleet since it was added
		}
		if err != nil {
			return nil, "", err
		}
		if err := s.view(ctx, func(tx store.Tx) error { return editedTags(ctx, tx, r, cp) }); err != nil {
			return nil, "", err
		}
		if !tagsOK(e.MachineID) {
			cp.Tags = nil
		}
		out.Captures = append(out.Captures, &fleetv1.CaptureRecord{PartId: part, StoreId: storeID, Seq: seq, Time: ts(r.Time), Capture: cp,
			MachineId: e.MachineID, PartName: p.Name})
	}
	return out.GetCaptures(), out.GetNextPageToken(), nil
}
