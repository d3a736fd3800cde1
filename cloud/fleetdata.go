package cloud

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/authz"
	"github.com/outpost-robotics/outpost/cloud/ingest"
	"github.com/outpost-robotics/outpost/cloud/store"
	"github.com/outpost-robotics/outpost/config"
	"github.com/outpost-robotics/outpost/rbac"
)

// maxFleetIDs bounds the machine and part lists of a fleet data query.
const maxFleetIDs = 1000

// fleetParts is what a fleet data query reads: the parts of the machines
// in scope that pass allowed, narrowed to the machines and parts named.
type fleetParts struct {
	// ids are the parts, sorted.
	ids []string
	// machines are their machines.
	machines map[string]bool
}

// selectFleetParts resolves a fleet data query's scope. allowed decides
// each machine (the rule's list action, or a dataset action); a machine or
// part named that is out of scope or not allowed selects nothing, as one
// that does not exist, so the answer says nothing about machines the
// caller may not see.
func selectFleetParts(snap *snapshot, orgID, locationID string, machineIDs, partIDs []string, allowed func(machineID string) bool) (fleetParts, error) {
	if len(machineIDs) > maxFleetIDs || len(partIDs) > maxFleetIDs {
		return fleetParts{}, invalid("machine_ids and part_ids: at most %d each", maxFleetIDs)
	}
	for _, list := range [][]string{machineIDs, partIDs} {
		for _, id := range list {
			if !validID(id) {
				return fleetParts{}, invalid("machine_ids and part_ids: %q is not an ID", id)
			}
		}
	}
	locs, err := fleetScope(snap, orgID, locationID)
	if err != nil {
		return fleetParts{}, err
	}
	out := fleetParts{machines: map[string]bool{}}
	in := snap.fleet().machinesIn
	for _, l := range locs {
		for _, m := range in[l] {
			if len(machineIDs) > 0 && !slices.Contains(machineIDs, m) || !allowed(m) {
				continue
			}
			for _, p := range snap.partsOf[m] {
				if len(partIDs) == 0 || slices.Contains(partIDs, p) {
					out.ids = append(out.ids, p)
					out.machines[m] = true
				}
			}
		}
	}
	slices.Sort(out.ids)
	return out, nil
}

// dataFilter is a fleet data query's filters on the captures themselves.
type dataFilter struct {
	component, method, tag, mime string
}

func (f dataFilter) check() error {
	for _, v := range []struct{ name, v string }{{"component", f.component}, {"method", f.method}, {"tag", f.tag}, {"mime_type", f.mime}} {
		if len(v.v) > maxNameLen || strings.IndexByte(v.v, 0) >= 0 {
			return invalid("%s: at most %d bytes, no NUL", v.name, maxNameLen)
		}
	}
	return nil
}

func (f dataFilter) any() bool {
	return f.component != "" || f.method != "" || f.tag != "" || f.mime != ""
}

// keep says whether a capture passes every filter but the tag (tags are
// edited in the store, read later).
func (f dataFilter) keep(cp *syncv1.Capture) bool {
	if f.component != "" && cp.GetComponent() != f.component || f.method != "" && cp.GetMethod() != f.method {
		return false
	}
	switch {
	case f.mime == "":
		return true
	case strings.HasSuffix(f.mime, "/*"):
		return strings.HasPrefix(cp.GetMimeType(), strings.TrimSuffix(f.mime, "*"))
	default:
		return cp.GetMimeType() == f.mime
	}
}

// timeRange reads from and to, which must be valid and in order.
func timeRange(from, to *timestamppb.Timestamp) (ingest.TimeQuery, error) {
	var q ingest.TimeQuery
	for _, t := range []struct {
		name string
		v    *timestamppb.Timestamp
	}{{"from", from}, {"to", to}} {
		if t.v != nil && t.v.CheckValid() != nil {
			return q, invalid("%s: not a valid time", t.name)
		}
	}
	if from != nil {
		q.From = from.AsTime()
	}
	if to != nil {
		q.To = to.AsTime()
	}
	if from != nil && to != nil && !q.From.Before(q.To) {
		return q, invalid("from must be before to")
	}
	return q, nil
}

// fleetPageSize reads page_size: 1 to ingest.MaxLimit, 0 for the default.
func fleetPageSize(size int32) (int, error) {
	if size < 0 || size > ingest.MaxLimit {
		return 0, invalid("page_size: 1 to %d, or 0 for %d", ingest.MaxLimit, ingest.DefaultLimit)
	}
	if size == 0 {
		return ingest.DefaultLimit, nil
	}
	return int(size), nil
}

// fleetDataKey binds a page token to the caller, the method and the
// request apart from its token.
func fleetDataKey(c *call, req proto.Message) ([]byte, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("page token key: %w", err)
	}
	var key []byte
	for _, s := range []string{c.subject.String(), c.rule.Procedure, string(b)} {
		key = fmt.Appendf(key, "%d:%s", len(s), s)
	}
	return key, nil
}

// pageByTime pages through records by time from cursor, handing each to
// keep, which says whether it counted, until size counted, maxScanPages
// pages were read, or the records ended. It returns the cursor to go on
// from, empty at the end. chunk is how many records one read asks for.
func pageByTime(ctx context.Context, ing ingest.Store, q ingest.TimeQuery, size, chunk int, keep func(ingest.StoredRecord) (bool, error)) (string, error) {
	found := 0
	for pages := 0; pages < maxScanPages; pages++ {
		q.Limit = chunk
		if chunk == 0 {
			q.Limit = size - found
		}
		recs, next, err := ing.RecordsByTime(ctx, q)
		if err != nil {
			return "", authz.Explain(err, ingest.ErrInvalid, "page_token: not a token this list returned")
		}
		for i, r := range recs {
			ok, err := keep(r)
			if err != nil {
				return "", err
			}
			if ok {
				found++
			}
			if found == size {
				if i == len(recs)-1 && next == "" {
					return "", nil
				}
				return ingest.EncodeTimeCursor(ingest.TimeKeyOf(r)), nil
			}
		}
		if next == "" {
			return "", nil
		}
		q.After = next
	}
	return q.After, nil
}

// listFleetCaptures answers a fleet capture query for the caller, over
// the machines allowed by allowed.
func (s *Server) listFleetCaptures(ctx context.Context, fq *fleetv1.FleetDataQuery, size int32, token string, key []byte, allowed func(machineID string) bool) ([]*fleetv1.CaptureRecord, string, error) {
	ing, err := s.ingestStore()
	if err != nil {
		return nil, "", err
	}
	c := callFrom(ctx)
	limit, err := fleetPageSize(size)
	if err != nil {
		return nil, "", err
	}
	f := dataFilter{component: fq.GetComponent(), method: fq.GetMethod(), tag: fq.GetTag(), mime: fq.GetMimeType()}
	if err := f.check(); err != nil {
		return nil, "", err
	}
	q, err := timeRange(fq.GetFrom(), fq.GetTo())
	if err != nil {
		return nil, "", err
	}
	sel, err := selectFleetParts(c.snap, fq.GetOrgId(), fq.GetLocationId(), fq.GetMachineIds(), fq.GetPartIds(), allowed)
	if err != nil {
		return nil, "", err
	}
	cursor, _, err := s.decodePageToken(key, token)
	if err != nil {
		return nil, "", err
	}
	// Tags are shown only where the caller may see them, and a tag filter
	// reads only those machines, so it cannot probe hidden tags.
	tagsOK := map[string]bool{}
	for m := range sel.machines {
		tagsOK[m] = c.snap.engine.Decide(c.subject, rbac.DataTagsView, rbac.Machine(m)).Allowed
	}
	if f.tag != "" {
		sel.ids = slices.DeleteFunc(sel.ids, func(p string) bool { return !tagsOK[c.snap.parts[p].MachineID] })
		if len(sel.ids) == 0 && len(sel.machines) > 0 {
			return nil, "", connect.NewError(connect.CodePermissionDenied, fmt.Errorf("tag: %s may not see the tags of any machine selected (data.tags.view)", c.principal.ref()))
		}
	}
	if len(sel.ids) == 0 {
		return nil, "", nil
	}
	q.Streams, q.PartIDs, q.After = []string{"captures"}, sel.ids, cursor
	chunk := 0
	if f.any() {
		chunk = ingest.MaxLimit
	}
	if len(sel.ids) == len(c.snap.parts) {
		q.PartIDs = nil // every part there is: no filter to apply
	}
	var out []*fleetv1.CaptureRecord
	var next string
	// One read transaction for the page's tag edits.
	err = s.view(ctx, func(tx store.Tx) error {
		out = nil
		var err error
		next, err = pageByTime(ctx, ing, q, limit, chunk, func(r ingest.StoredRecord) (bool, error) {
			cp := &syncv1.Capture{}
			if proto.Unmarshal(r.Payload, cp) != nil || !f.keep(cp) {
				return false, nil
			}
			if err := editedTags(ctx, tx, r, cp); err != nil {
				return false, err
			}
			part := c.snap.parts[r.PartID]
			if f.tag != "" && !slices.Contains(cp.GetTags(), f.tag) {
				return false, nil
			}
			if !tagsOK[part.MachineID] {
				cp.Tags = nil
			}
			out = append(out, &fleetv1.CaptureRecord{PartId: r.PartID, StoreId: r.StoreID, Time: ts(r.Time), Capture: cp, Seq: r.Seq,
				MachineId: part.MachineID, PartName: part.Name})
			return true, nil
		})
		return err
	})
	if err != nil {
		return nil, "", err
	}
	if next != "" {
		next = s.encodePageToken(key, next, "")
	}
	return out, next, nil
}

// visibleMachine is visible for a machine ID.
func (c *call) visibleMachine(id string) bool { return c.visible(rbac.Machine(id)) }

// may returns whether the caller may do a on each machine.
func (c *call) may(a rbac.Action) func(machineID string) bool {
	return func(id string) bool { return c.snap.engine.Decide(c.subject, a, rbac.Machine(id)).Allowed }
}

// editedTags applies the tag edits people made to a capture.
func editedTags(ctx context.Context, tx store.Tx, r ingest.StoredRecord, cp *syncv1.Capture) error {
	t, err := tx.GetCaptureTags(ctx, captureID(r.PartID, r.StoreID, r.Seq))
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	cp.Tags = config.EditTags(cp.GetTags(), t.Added, t.Removed)
	return err
}

func (ds dataService) ListFleetCaptures(ctx context.Context, req *connect.Request[fleetv1.ListFleetCapturesRequest]) (*connect.Response[fleetv1.ListFleetCapturesResponse], error) {
	m := req.Msg
	caps, next, err := ds.fleetCaptures(ctx, m.GetQuery(), m.GetPageSize(), m.GetPageToken())
	return reply(&fleetv1.ListFleetCapturesResponse{Captures: caps, NextPageToken: next}, err)
}

func (ds dataService) ExportFleetCaptures(ctx context.Context, req *connect.Request[fleetv1.ExportFleetCapturesRequest]) (*connect.Response[fleetv1.ExportFleetCapturesResponse], error) {
	m := req.Msg
	caps, next, err := ds.fleetCaptures(ctx, m.GetQuery(), m.GetPageSize(), m.GetPageToken())
	return reply(&fleetv1.ExportFleetCapturesResponse{Captures: caps, NextPageToken: next}, err)
}

// fleetCaptures is one page of a fleet query, its token bound to the
// caller, the method and the query.
func (ds dataService) fleetCaptures(ctx context.Context, q *fleetv1.FleetDataQuery, size int32, token string) ([]*fleetv1.CaptureRecord, string, error) {
	key, err := fleetDataKey(callFrom(ctx), &fleetv1.ListFleetCapturesRequest{Query: q, PageSize: size})
	if err != nil {
		return nil, "", err
	}
	return ds.s.listFleetCaptures(ctx, q, size, token, key, callFrom(ctx).visibleMachine)
}

func (ds dataService) DeleteFleetCaptures(ctx context.Context, req *connect.Request[fleetv1.DeleteFleetCapturesRequest]) (*connect.Response[fleetv1.DeleteFleetCapturesResponse], error) {
	m := req.Msg
	ing, err := ds.s.ingestStore()
	if err != nil {
		return nil, err
	}
	var key []byte
	picked, more, err := pickForDelete(m.GetCaptures(), func(token string) ([]*fleetv1.CaptureRecord, string, error) {
		if key == nil {
			k, err := fleetDataKey(callFrom(ctx), m)
			if err != nil {
				return nil, "", err
			}
			key = k
		}
		return ds.s.listFleetCaptures(ctx, m.GetQuery(), ingest.MaxLimit, token, key, callFrom(ctx).visibleMachine)
	})
	if err != nil {
		return nil, err
	}
	res, err := deleteCaptureRecords(ctx, ing, picked, more)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&fleetv1.DeleteFleetCapturesResponse{Deleted: res.Msg.GetDeleted(), Blobs: res.Msg.GetBlobs(), More: res.Msg.GetMore()}), nil
}

// deleteCaptureRecords deletes captures and their blobs. The records go
// first: a capture is never listed without its blob having been readable,
// and a blob deleted after its record is just bytes no capture names.
func deleteCaptureRecords(ctx context.Context, ing ingest.Store, caps []*fleetv1.CaptureRecord, more bool) (*connect.Response[fleetv1.DeleteCapturesResponse], error) {
	type target struct {
		key  ingest.StreamKey
		seqs []uint64
	}
	var targets []*target
	byKey := map[ingest.StreamKey]*target{}
	var blobs []ingest.BlobKey
	for _, c := range caps {
		k := ingest.StreamKey{PartID: c.GetPartId(), StoreID: c.GetStoreId(), Stream: "captures"}
		if byKey[k] == nil {
			byKey[k] = &target{key: k}
			targets = append(targets, byKey[k])
		}
		byKey[k].seqs = append(byKey[k].seqs, c.GetSeq())
		if id := c.GetCapture().GetBlobId(); id != "" {
			blobs = append(blobs, ingest.BlobKey{PartID: c.GetPartId(), BlobID: id})
		}
	}
	out := &fleetv1.DeleteCapturesResponse{More: more}
	for _, t := range targets {
		d, err := ing.DeleteRecords(ctx, t.key, t.seqs)
		out.Deleted += int32(d)
		if err != nil {
			return nil, fmt.Errorf("delete captures of %v: %w", t.key, err)
		}
	}
	for _, b := range blobs {
		if err := ing.DeleteBlob(ctx, b.PartID, b.BlobID); err != nil {
			return nil, fmt.Errorf("delete blob %s of part/%s: %w", b.BlobID, b.PartID, err)
		}
		out.Blobs++
	}
	// The deletion is in the ingest store, so the interceptor writes the
	// call's audit event after it, with its outcome.
	return connect.NewResponse(out), nil
}

func (ds dataService) ListFleetLogs(ctx context.Context, req *connect.Request[fleetv1.ListFleetLogsRequest]) (*connect.Response[fleetv1.ListFleetLogsResponse], error) {
	m := req.Msg
	ing, err := ds.s.ingestStore()
	if err != nil {
		return nil, err
	}
	c := callFrom(ctx)
	streams, show, err := logStreams(m.GetLevel())
	if err != nil {
		return nil, err
	}
	limit, err := fleetPageSize(m.GetPageSize())
	if err != nil {
		return nil, err
	}
	q, err := timeRange(m.GetFrom(), m.GetTo())
	if err != nil {
		return nil, err
	}
	sel, err := selectFleetParts(c.snap, m.GetOrgId(), m.GetLocationId(), m.GetMachineIds(), m.GetPartIds(), c.visibleMachine)
	if err != nil {
		return nil, err
	}
	key, err := fleetDataKey(c, &fleetv1.ListFleetLogsRequest{OrgId: m.GetOrgId(), LocationId: m.GetLocationId(), MachineIds: m.GetMachineIds(),
		PartIds: m.GetPartIds(), Level: m.GetLevel(), From: m.GetFrom(), To: m.GetTo(), PageSize: m.GetPageSize()})
	if err != nil {
		return nil, err
	}
	cursor, _, err := ds.s.decodePageToken(key, m.GetPageToken())
	if err != nil {
		return nil, err
	}
	out := &fleetv1.ListLogsResponse{}
	if len(sel.ids) == 0 {
		return connect.NewResponse(&fleetv1.ListFleetLogsResponse{}), nil
	}
	q.Streams, q.PartIDs, q.After = streams, sel.ids, cursor
	next, err := ds.s.pageLogs(ctx, ing, q, limit, show, out)
	if err != nil {
		return nil, err
	}
	if next != "" {
		out.NextPageToken = ds.s.encodePageToken(key, next, "")
	}
	return connect.NewResponse(&fleetv1.ListFleetLogsResponse{Entries: out.GetEntries(), NextPageToken: out.GetNextPageToken()}), nil
}
