package cloud

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
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

// maxScanPages bounds how many store pages one filtered list reads before
// answering with what it found and a token to continue.
const maxScanPages = 20

type dataService struct{ s *Server }

// logStreams are the streams holding logs at or above a level, and the
// levels shown.
func logStreams(level string) ([]string, map[string]bool, error) {
	order := []string{"debug", "info", "warn", "error"}
	if level == "" {
		level = "info"
	}
	i := slices.Index(order, level)
	if i < 0 {
		return nil, nil, invalid("level: want debug, info, warn or error")
	}
	show := map[string]bool{}
	for _, l := range order[i:] {
		show[l] = true
	}
	streams := []string{"logs.debug", "logs.info", "logs.warn"}[min(i, 2):]
	return streams, show, nil
}

// pageQuery reads the common paging and time fields.
func pageQuery(size int32, from, to *timestamppb.Timestamp) (ingest.Query, error) {
	if size < 0 || size > ingest.MaxLimit {
		return ingest.Query{}, invalid("page_size: 1 to %d, or 0 for %d", ingest.MaxLimit, ingest.DefaultLimit)
	}
	q := ingest.Query{Limit: int(size)}
	if q.Limit == 0 {
		q.Limit = ingest.DefaultLimit
	}
	if from != nil {
		q.From = from.AsTime()
	}
	if to != nil {
		q.To = to.AsTime()
	}
	return q, nil
}

// parsePageToken reads a token scan returned: "INDEX:CURSOR", the stream
// index and the store's cursor within it. It comes from the caller, so it
// is checked, never trusted.
func parsePageToken(token string, streams int) (idx int, cursor string, err error) {
	if token == "" {
		return 0, "", nil
	}
	i, c, ok := strings.Cut(token, ":")
	n, err := strconv.Atoi(i)
	if !ok || err != nil || n < 0 || n >= streams || len(token) > 1024 || strconv.Itoa(n) != i {
		return 0, "", invalid("page_token: not a token this list returned")
	}
	return n, c, nil
}

// scan pages through streams in order from token, handing each record to
// keep, which says whether it counted, until q.Limit counted, maxScanPages
// were read, or the streams ended; it returns the token to continue from,
// empty at the end.
func scan(ctx context.Context, ing ingest.Store, q ingest.Query, streams []string, token string, keep func(ingest.StoredRecord) bool) (string, error) {
	idx, cursor, err := parsePageToken(token, len(streams))
	if err != nil {
		return "", err
	}
	limit, found := q.Limit, 0
	for pages := 0; idx < len(streams) && found < limit && pages < maxScanPages; pages++ {
		q.Stream, q.After, q.Limit = streams[idx], cursor, limit-found
		recs, next, err := ing.Records(ctx, q)
		if err != nil {
			return "", authz.Explain(err, ingest.ErrInvalid, "page_token: not a token this list returned")
		}
		for _, r := range recs {
			if keep(r) {
				found++
			}
		}
		cursor = next
		if next == "" {
			idx++
		}
	}
	if idx >= len(streams) {
		return "", nil
	}
	return strconv.Itoa(idx) + ":" + cursor, nil
}

func partIDs(ps []store.Part) []string {
	ids := make([]string, len(ps))
	for i, p := range ps {
		ids[i] = p.ID
	}
	return ids
}

func (ds dataService) ListLogs(ctx context.Context, req *connect.Request[fleetv1.ListLogsRequest]) (*connect.Response[fleetv1.ListLogsResponse], error) {
	ing, err := ds.s.ingestStore()
	if err != nil {
		return nil, err
	}
	msg := req.Msg
	c := callFrom(ctx)
	streams, show, err := logStreams(msg.GetLevel())
	if err != nil {
		return nil, err
	}
	limit, err := fleetPageSize(msg.GetPageSize())
	if err != nil {
		return nil, err
	}
	q, err := timeRange(msg.GetFrom(), msg.GetTo())
	if err != nil {
		return nil, err
	}
	parts, err := machineParts(c.snap, msg.GetMachineId(), msg.GetPartId())
	if err != nil {
		return nil, err
	}
	key, err := fleetDataKey(c, &fleetv1.ListLogsRequest{MachineId: msg.GetMachineId(), PartId: msg.GetPartId(), Level: msg.GetLevel(),
		From: msg.GetFrom(), To: msg.GetTo(), PageSize: msg.GetPageSize()})
	if err != nil {
		return nil, err
	}
	cursor, _, err := ds.s.decodePageToken(key, msg.GetPageToken())
	if err != nil {
		return nil, err
	}
	out := &fleetv1.ListLogsResponse{}
	if len(parts) == 0 {
		return connect.NewResponse(out), nil
	}
	q.Streams, q.PartIDs, q.After = streams, partIDs(parts), cursor
	next, err := ds.s.pageLogs(ctx, ing, q, limit, show, out)
	if err != nil {
		return nil, err
	}
	if next != "" {
		out.NextPageToken = ds.s.encodePageToken(key, next, "")
	}
	return connect.NewResponse(out), nil
}

// pageLogs fills out with a page of log entries at the levels shown, by
// time, each with its part's name, and returns the cursor to go on from.
func (s *Server) pageLogs(ctx context.Context, ing ingest.Store, q ingest.TimeQuery, limit int, show map[string]bool, out *fleetv1.ListLogsResponse) (string, error) {
	snap := callFrom(ctx).snap
	chunk := 0
	if show["error"] && !show["warn"] {
		chunk = ingest.MaxLimit // errors share logs.warn with warnings
	}
	return pageByTime(ctx, ing, q, limit, chunk, func(r ingest.StoredRecord) (bool, error) {
		e := &syncv1.LogEntry{}
		if proto.Unmarshal(r.Payload, e) != nil || !show[e.GetLevel()] && !(e.GetLevel() == "" && show["info"]) {
			return false, nil
		}
		part := snap.parts[r.PartID]
		out.Entries = append(out.Entries, &fleetv1.LogEntry{PartId: r.PartID, Time: ts(r.Time), Entry: e, Seq: r.Seq, Stream: r.Stream,
			PartName: part.Name, MachineId: part.MachineID})
		return true, nil
	})
}

// captureSelection is what ListCaptures and ExportCaptures select.
type captureSelection struct {
	machine, component, tag, token string
	from, to                       *timestamppb.Timestamp
	size                           int32
}

func captureID(partID, storeID string, seq uint64) string {
	return partID + "|" + storeID + "|" + strconv.FormatUint(seq, 10)
}

func (ds dataService) listCaptures(ctx context.Context, sel captureSelection) ([]*fleetv1.CaptureRecord, string, error) {
	ing, err := ds.s.ingestStore()
	if err != nil {
		return nil, "", err
	}
	q, err := pageQuery(sel.size, sel.from, sel.to)
	if err != nil {
		return nil, "", err
	}
	c := callFrom(ctx)
	parts, err := machineParts(c.snap, sel.machine, "")
	if err != nil {
		return nil, "", err
	}
	if len(parts) == 0 {
		return nil, "", nil
	}
	q.PartIDs = partIDs(parts)
	// Tags are shown only to who may see them (data.tags.view), and a tag
	// filter is refused to others, so it cannot probe hidden tags.
	tagsOK := c.snap.engine.Decide(c.subject, rbac.DataTagsView, rbac.Machine(sel.machine)).Allowed
	if sel.tag != "" && !tagsOK {
		return nil, "", connect.NewError(connect.CodePermissionDenied, fmt.Errorf("tag: %s may not see the tags of machine/%s (data.tags.view)", c.principal.ref(), sel.machine))
	}
	var out []*fleetv1.CaptureRecord
	var serr error
	next, err := scan(ctx, ing, q, []string{"captures"}, sel.token, func(r ingest.StoredRecord) bool {
		if serr != nil {
			return false
		}
		cp := &syncv1.Capture{}
		if proto.Unmarshal(r.Payload, cp) != nil || sel.component != "" && cp.GetComponent() != sel.component {
			return false
		}
		serr = ds.s.st.View(ctx, func(tx store.Tx) error {
			t, err := tx.GetCaptureTags(ctx, captureID(r.PartID, r.StoreID, r.Seq))
			if errors.Is(err, store.ErrNotFound) {
				return nil
			}
			cp.Tags = config.EditTags(cp.GetTags(), t.Added, t.Removed)
			return err
		})
		if serr != nil || sel.tag != "" && !slices.Contains(cp.GetTags(), sel.tag) {
			return false
		}
		if !tagsOK {
			cp.Tags = nil
		}
		out = append(out, &fleetv1.CaptureRecord{PartId: r.PartID, StoreId: r.StoreID, Time: ts(r.Time), Capture: cp, Seq: r.Seq})
		return true
	})
	if err == nil {
		err = serr
	}
	return out, next, err
}

func (ds dataService) ListCaptures(ctx context.Context, req *connect.Request[fleetv1.ListCapturesRequest]) (*connect.Response[fleetv1.ListCapturesResponse], error) {
	m := req.Msg
	caps, next, err := ds.listCaptures(ctx, captureSelection{machine: m.GetMachineId(), component: m.GetComponent(), tag: m.GetTag(),
		token: m.GetPageToken(), from: m.GetFrom(), to: m.GetTo(), size: m.GetPageSize()})
	return reply(&fleetv1.ListCapturesResponse{Captures: caps, NextPageToken: next}, err)
}

func (ds dataService) ExportCaptures(ctx context.Context, req *connect.Request[fleetv1.ExportCapturesRequest]) (*connect.Response[fleetv1.ExportCapturesResponse], error) {
	m := req.Msg
	caps, next, err := ds.listCaptures(ctx, captureSelection{machine: m.GetMachineId(), component: m.GetComponent(), tag: m.GetTag(),
		token: m.GetPageToken(), from: m.GetFrom(), to: m.GetTo(), size: m.GetPageSize()})
	return reply(&fleetv1.ExportCapturesResponse{Captures: caps, NextPageToken: next}, err)
}

// Bounds of tag edits.
const (
	maxCapturesPerOp = 1000
	maxReadBlob      = 4 << 20
)

func validTags(field string, tags []string) error {
	if err := config.CheckEditTags(field, tags); err != nil {
		return connect.NewError(connect.CodeInvalidArgument, err)
	}
	return nil
}

func (ds dataService) TagCaptures(ctx context.Context, req *connect.Request[fleetv1.TagCapturesRequest]) (*connect.Response[fleetv1.TagCapturesResponse], error) {
	m := req.Msg
	if err := validTags("add", m.GetAdd()); err != nil {
		return nil, err
	}
	if err := validTags("remove", m.GetRemove()); err != nil {
		return nil, err
	}
	if len(m.GetAdd())+len(m.GetRemove()) == 0 {
		return nil, invalid("add or remove at least one tag")
	}
	if n := len(m.GetCaptures()); n == 0 || n > maxCapturesPerOp {
		return nil, invalid("captures: 1 to %d", maxCapturesPerOp)
	}
	c := callFrom(ctx)
	for i, ref := range m.GetCaptures() {
		p, ok := c.snap.parts[ref.GetPartId()]
		if !ok || p.MachineID != m.GetMachineId() {
			return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("captures[%d]: machine/%s has no part %q", i, m.GetMachineId(), ref.GetPartId()))
		}
		if ingest.ValidateID("store id", ref.GetStoreId()) != nil || ref.GetSeq() == 0 {
			return nil, invalid("captures[%d]: a store id and a sequence from 1 are required", i)
		}
	}
	now := ds.s.clock.Now().UTC()
	return respond(ctx, ds.s.update, func(tx store.Tx) (*fleetv1.TagCapturesResponse, error) {
		changed := 0
		for _, ref := range m.GetCaptures() {
			id := captureID(ref.GetPartId(), ref.GetStoreId(), ref.GetSeq())
			t, err := tx.GetCaptureTags(ctx, id)
			if errors.Is(err, store.ErrNotFound) {
				t = store.CaptureTags{ID: id}
			} else if err != nil {
				return nil, err
			}
			before := fmt.Sprint(t.Added, t.Removed)
			for _, tag := range m.GetAdd() {
				t.Removed = slices.DeleteFunc(t.Removed, func(x string) bool { return x == tag })
				if !slices.Contains(t.Added, tag) {
					t.Added = append(t.Added, tag)
				}
			}
			for _, tag := range m.GetRemove() {
				t.Added = slices.DeleteFunc(t.Added, func(x string) bool { return x == tag })
				if !slices.Contains(t.Removed, tag) {
					t.Removed = append(t.Removed, tag)
				}
			}
			if fmt.Sprint(t.Added, t.Removed) == before {
				continue
			}
			changed++
			t.UpdatedBy, t.UpdatedAt = c.principal.ref(), now
			if err := tx.PutCaptureTags(ctx, t); err != nil {
				return nil, err
			}
		}
		return &fleetv1.TagCapturesResponse{Changed: int32(changed)}, nil
	})
}

func (ds dataService) ReadBlob(ctx context.Context, req *connect.Request[fleetv1.ReadBlobRequest]) (*connect.Response[fleetv1.ReadBlobResponse], error) {
	m := req.Msg
	ing, err := ds.s.ingestStore()
	if err != nil {
		return nil, err
	}
	if ds.s.blobs == nil {
		return nil, connect.NewError(connect.CodeUnimplemented, errors.New("this cloud keeps no blobs"))
	}
	if p, ok := callFrom(ctx).snap.parts[m.GetPartId()]; !ok || p.MachineID != m.GetMachineId() {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("machine/%s has no part %q", m.GetMachineId(), m.GetPartId()))
	}
	if ingest.ValidateID("blob id", m.GetBlobId()) != nil {
		return nil, invalid("blob_id: not a blob id")
	}
	info, err := ing.Blob(ctx, m.GetPartId(), m.GetBlobId())
	if err == nil && !info.Complete {
		err = ingest.ErrNotFound // a blob still arriving is not there to read
	}
	if err != nil {
		return nil, authz.Explain(err, ingest.ErrNotFound, "part/%s has no complete blob %q", m.GetPartId(), m.GetBlobId())
	}
	if m.GetOffset() > info.Size {
		return nil, invalid("offset: the blob has %d bytes", info.Size)
	}
	length := uint64(m.GetLength())
	if length == 0 || length > maxReadBlob {
		length = maxReadBlob
	}
	length = min(length, info.Size-m.GetOffset())
	rc, err := ds.s.blobs.Open(ctx, ingest.BlobKey{PartID: m.GetPartId(), BlobID: m.GetBlobId()})
	if err != nil {
		return nil, fmt.Errorf("open blob %s of part/%s: %w", m.GetBlobId(), m.GetPartId(), err)
	}
	defer rc.Close()
	if sk, ok := rc.(io.Seeker); ok {
		_, err = sk.Seek(int64(m.GetOffset()), io.SeekStart)
	} else {
		_, err = io.CopyN(io.Discard, rc, int64(m.GetOffset()))
	}
	data := make([]byte, length)
	if err == nil {
		_, err = io.ReadFull(rc, data)
	}
	if err != nil {
		return nil, fmt.Errorf("read blob %s of part/%s: %w", m.GetBlobId(), m.GetPartId(), err)
	}
	return connect.NewResponse(&fleetv1.ReadBlobResponse{Data: data, Size: info.Size, Sha256: info.SHA256, Name: info.Name}), nil
}

// maxDeletePerCall bounds one DeleteCaptures call; the caller repeats it.
const maxDeletePerCall = 10_000

func (ds dataService) DeleteCaptures(ctx context.Context, req *connect.Request[fleetv1.DeleteCapturesRequest]) (*connect.Response[fleetv1.DeleteCapturesResponse], error) {
	m := req.Msg
	ing, err := ds.s.ingestStore()
	if err != nil {
		return nil, err
	}
	sel := captureSelection{machine: m.GetMachineId(), component: m.GetComponent(), tag: m.GetTag(), from: m.GetFrom(), to: m.GetTo(), size: ingest.MaxLimit}
	picked, more, err := pickForDelete(m.GetCaptures(), func(token string) ([]*fleetv1.CaptureRecord, string, error) {
		sel.token = token
		return ds.listCaptures(ctx, sel)
	})
	if err != nil {
		return nil, err
	}
	return deleteCaptureRecords(ctx, ing, picked, more)
}

// pickForDelete pages through a selection (list, from the empty token)
// and picks what one delete call removes: the captures named in refs, or
// every capture when refs is empty, at most maxDeletePerCall; more says
// the selection holds others.
func pickForDelete(refs []*fleetv1.CaptureRef, list func(token string) ([]*fleetv1.CaptureRecord, string, error)) (picked []*fleetv1.CaptureRecord, more bool, err error) {
	if len(refs) > maxCapturesPerOp {
		return nil, false, invalid("captures: at most %d", maxCapturesPerOp)
	}
	only := map[string]bool{}
	for _, r := range refs {
		only[captureID(r.GetPartId(), r.GetStoreId(), r.GetSeq())] = true
	}
	for token := ""; ; {
		caps, next, err := list(token)
		if err != nil {
			return nil, false, err
		}
		for _, c := range caps {
			if len(only) > 0 && !only[captureID(c.GetPartId(), c.GetStoreId(), c.GetSeq())] {
				continue
			}
			if len(picked) == maxDeletePerCall {
				return picked, true, nil
			}
			picked = append(picked, c)
		}
		if next == "" {
			return picked, false, nil
		}
		token = next
	}
}
