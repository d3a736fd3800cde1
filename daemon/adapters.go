package daemon

import (
	"cmp"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/cache"
	"github.com/outpost-robotics/outpost/capture"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/cloudsync"
	"github.com/outpost-robotics/outpost/config"
	"github.com/outpost-robotics/outpost/control"
	"github.com/outpost-robotics/outpost/controlwire"
	"github.com/outpost-robotics/outpost/credential"
	"github.com/outpost-robotics/outpost/partfile"
)

// This file adapts the store, the syncer and the robot to the small
// interfaces capture and control declare, so those packages depend on
// contracts only.

// CaptureSink is capture.Sink over the store. It also translates: package
// capture writes a capture.Capture as JSON, while a captures record on the
// wire is a syncv1.Capture (the sync.v1 contract, which the cloud decodes);
// the JSON goes whole into its data, so tick, missed ticks and file details
// reach the cloud too.
type CaptureSink struct{ Store *cache.Store }

var _ capture.Sink = CaptureSink{}

// Append appends to the store stream of the same name, captures as
// syncv1.Capture.
func (c CaptureSink) Append(ctx context.Context, st capture.Stream, rec capture.Record) (uint64, error) {
	return capture.Await(c.Queue(ctx, st, rec))
}

// Queue queues what Append appends (cache.Store.Queue).
func (c CaptureSink) Queue(ctx context.Context, st capture.Stream, rec capture.Record) (capture.Queued, error) {
	payload := rec.Payload
	if st == capture.StreamCaptures {
		var err error
		if payload, err = captureRecord(rec); err != nil {
			return nil, err
		}
	}
	p, err := c.Store.Queue(ctx, cache.Stream(st), cache.Record{Payload: payload, Priority: rec.Priority, Time: rec.Time})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// captureRecord wraps capture's JSON in the wire's syncv1.Capture.
func captureRecord(rec capture.Record) ([]byte, error) {
	var c capturePayload
	if err := json.Unmarshal(rec.Payload, &c); err != nil {
		return nil, fmt.Errorf("capture record: not a capture.Capture: %w", err)
	}
	cp := &syncv1.Capture{Component: c.Component, Method: c.Method, Tags: c.Tags, Priority: int32(rec.Priority),
		Data: rec.Payload, MimeType: "application/json", BlobId: c.BlobID}
	if c.MimeType != "" {
		cp.MimeType = c.MimeType // the blob's type
	}
	if c.Kind == "file" && c.File != nil {
		cp.Component, cp.Method = c.File.Folder, "file"
	}
	b, err := proto.Marshal(cp)
	if err != nil {
		return nil, fmt.Errorf("encode capture record: %w", err)
	}
	return b, nil
}

// PutBlobChunk stores a chunk of a blob.
func (c CaptureSink) PutBlobChunk(ctx context.Context, id string, offset int64, data []byte) error {
	return c.Store.PutBlobChunk(ctx, id, offset, data)
}

// SealBlob marks a blob complete.
func (c CaptureSink) SealBlob(ctx context.Context, id string) error { return c.Store.SealBlob(ctx, id) }

// PutState stores a small value.
func (c CaptureSink) PutState(ctx context.Context, key string, value []byte) error {
	return c.Store.PutState(ctx, key, value)
}

// GetState reads a small value; a missing key wraps capture.ErrNotFound.
func (c CaptureSink) GetState(ctx context.Context, key string) ([]byte, error) {
	v, err := c.Store.GetState(ctx, key)
	if errors.Is(err, cache.ErrNotFound) {
		return nil, fmt.Errorf("%w: %w", capture.ErrNotFound, err)
	}
	return v, err
}

// grantSource holds the verified grant bundle in memory: control asks for
// it on every call, so it is verified once (on load or receipt) and swapped
// when sync brings a new one.
type grantSource struct {
	cur atomic.Pointer[syncv1.GrantBundle]
}

func (g *grantSource) CurrentGrants(context.Context) (*syncv1.GrantBundle, error) {
	return g.cur.Load(), nil
}

// auditLog queues control's audit events for sync.
type auditLog struct{ store *cache.Store }

func (a auditLog) Append(ctx context.Context, ev *syncv1.AuditEvent) error {
	b, err := proto.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encode audit event: %w", err)
	}
	if _, err := a.store.Append(ctx, cache.StreamAudit, cache.Record{Payload: b}); err != nil {
		return fmt.Errorf("store audit event: %w", err)
	}
	return nil
}

// certStore keeps the control certificate and key in the store's state.
type certStore struct{ store *cache.Store }

type certState struct {
	Cert []byte `json:"cert"`
	Key  []byte `json:"key"`
}

func (c certStore) LoadCert(ctx context.Context) ([]byte, []byte, error) {
	b, err := c.store.GetState(ctx, cache.StateControlCert)
	if errors.Is(err, cache.ErrNotFound) {
		return nil, nil, control.ErrNoCert
	}
	if err != nil {
		return nil, nil, fmt.Errorf("load control certificate: %w", err)
	}
	var s certState
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, nil, fmt.Errorf("decode stored control certificate: %w", err)
	}
	return s.Cert, s.Key, nil
}

func (c certStore) SaveCert(ctx context.Context, certPEM, keyPEM []byte) error {
	b, err := json.Marshal(certState{Cert: certPEM, Key: keyPEM})
	if err != nil {
		return fmt.Errorf("encode control certificate: %w", err)
	}
	if err := c.store.PutState(ctx, cache.StateControlCert, b); err != nil {
		return fmt.Errorf("save control certificate: %w", err)
	}
	return nil
}

// offlineTime is the clock control judges grant expiry by: once the cloud
// has confirmed the time, "now" is the offline clock's estimate, so setting the part's clock back never extends a bundle.
type offlineTime struct {
	clock.Clock
	offline *cloudsync.OfflineClock
}

func (o offlineTime) Now() time.Time {
	if o.offline.Known() {
		return o.offline.Now()
	}
	return o.Clock.Now()
}

// captureData serves control's Data interface from the captures stream.
type captureData struct{ store *cache.Store }

// readWindow is how many records ListCaptures reads at a time going
// backwards; captureBytes bounds one read.
const (
	readWindow   = 256
	captureBytes = 8 << 20
)

// capturePayload is the part of capture.Capture the record needs.
type capturePayload struct {
	Kind      string            `json:"kind"`
	Component string            `json:"component"`
	Method    string            `json:"method"`
	Tags      []string          `json:"tags"`
	MimeType  string            `json:"mime_type"`
	BlobID    string            `json:"blob_id"`
	File      *capture.FileInfo `json:"file"`
}

// captureInfo describes a captures record, and returns its data.
func captureInfo(e cache.Entry) (*controlv1.CaptureInfo, []byte) {
	info := &controlv1.CaptureInfo{Id: e.Seq, Time: timestamppb.New(e.Time), Size: uint64(len(e.Payload))}
	var cp syncv1.Capture
	if err := proto.Unmarshal(e.Payload, &cp); err != nil {
		info.MimeType = "application/octet-stream"
		return info, e.Payload
	}
	info.Component, info.Method, info.Tags, info.MimeType, info.Size = cp.GetComponent(), cp.GetMethod(), cp.GetTags(), cp.GetMimeType(), uint64(len(cp.GetData()))
	return info, cp.GetData()
}

func (d captureData) ListCaptures(ctx context.Context, component string, limit int) ([]*controlv1.CaptureInfo, error) {
	st, err := d.store.Stats(ctx, cache.StreamCaptures)
	if err != nil {
		return nil, fmt.Errorf("list captures: %w", err)
	}
	var out []*controlv1.CaptureInfo
	// Walk back from the newest in windows; eviction by priority leaves
	// holes, so each window is read forward until it reaches its top.
	for hi := st.Last; hi >= st.First && st.Count > 0 && len(out) < limit; {
		lo := st.First - 1
		if hi-lo > readWindow {
			lo = hi - readWindow
		}
		var window []cache.Entry
		for after := lo; after < hi; {
			es, err := d.store.Read(ctx, cache.StreamCaptures, after, readWindow, captureBytes)
			if err != nil {
				return nil, fmt.Errorf("list captures: %w", err)
			}
			if len(es) == 0 {
				break
			}
			for _, e := range es {
				if e.Seq <= hi {
					window = append(window, e)
				}
			}
			after = es[len(es)-1].Seq
		}
		for i := len(window) - 1; i >= 0 && len(out) < limit; i-- {
			info, _ := captureInfo(window[i])
			if component == "" || info.Component == component {
				out = append(out, info)
			}
		}
		if lo < st.First {
			break
		}
		hi = lo
	}
	return out, nil
}

func (d captureData) ReadCapture(ctx context.Context, id uint64) (*controlv1.CaptureInfo, []byte, error) {
	if id == 0 {
		return nil, nil, connect.NewError(connect.CodeInvalidArgument, errors.New("capture ids start at 1"))
	}
	es, err := d.store.Read(ctx, cache.StreamCaptures, id-1, 1, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("read capture %d: %w", id, err)
	}
	if len(es) == 0 || es[0].Seq != id {
		return nil, nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("capture %d is not on the part: it was uploaded and acknowledged, evicted, deleted, or never existed", id))
	}
	info, data := captureInfo(es[0])
	return info, data, nil
}

// maxCaptureTags bounds the tags one capture carries after edits on the
// part, so repeated edits cannot grow a record without limit.
const maxCaptureTags = 256

// TagCaptures rewrites the captures' syncv1.Capture with the new tags, in
// the store, so the upload carries them (the tags field of the sync
// contract; the captured data itself is left as it was). Tags are added in
// order, and a tag both added and removed is removed, as the cloud does.
func (d captureData) TagCaptures(ctx context.Context, ids []uint64, add, remove []string) (int, error) {
	res, err := d.store.EditCaptures(ctx, ids, func(seq uint64, payload []byte) ([]byte, error) {
		var cp syncv1.Capture
		if err := proto.Unmarshal(payload, &cp); err != nil {
			return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("capture %d is not a readable capture record, so it cannot be tagged: %w", seq, err))
		}
		tags := config.EditTags(cp.GetTags(), add, remove)
		if slices.Equal(tags, cp.GetTags()) {
			return payload, nil
		}
		if len(tags) > maxCaptureTags {
			return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("capture %d would carry %d tags; at most %d", seq, len(tags), maxCaptureTags))
		}
		cp.Tags = tags
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(&cp)
		if err != nil {
			return nil, fmt.Errorf("encode capture %d: %w", seq, err)
		}
		return b, nil
	})
	if err != nil {
		return len(res.Changed), fmt.Errorf("tag captures (%d changed before the failure): %w", len(res.Changed), err)
	}
	if noneOnPart(res, ids) {
		return 0, notOnPart(res.Missing)
	}
	return len(res.Changed), nil
}

// DeleteCaptures deletes captures and their blobs from the store; its gap
// record tells the cloud they were deleted on the part, and by whom.
func (d captureData) DeleteCaptures(ctx context.Context, ids []uint64) (int, error) {
	by := cmp.Or(control.CallerRef(ctx), "an unknown caller")
	res, err := d.store.DeleteCaptures(ctx, ids, "deleted on the part by "+by, func(payload []byte) string {
		var cp syncv1.Capture
		if proto.Unmarshal(payload, &cp) != nil {
			return ""
		}
		return cp.GetBlobId()
	})
	if err != nil {
		return len(res.Changed), fmt.Errorf("delete captures (%d deleted before the failure): %w", len(res.Changed), err)
	}
	if noneOnPart(res, ids) {
		return 0, notOnPart(res.Missing)
	}
	return len(res.Changed), nil
}

// noneOnPart says none of ids is on the part.
func noneOnPart(res cache.EditResult, ids []uint64) bool {
	u := slices.Clone(ids)
	slices.Sort(u)
	return len(res.Changed) == 0 && len(res.Missing) == len(slices.Compact(u))
}

// notOnPart is the answer when none of the captures named is on the part.
func notOnPart(ids []uint64) error {
	shown := ids[:min(len(ids), 10)]
	more := ""
	if len(ids) > len(shown) {
		more = fmt.Sprintf(" and %d more", len(ids)-len(shown))
	}
	what := "captures %s%s are"
	if len(ids) == 1 {
		what = "capture %s%s is"
	}
	return connect.NewError(connect.CodeNotFound, fmt.Errorf(what+" not on the part: uploaded and acknowledged, evicted, deleted, or never made",
		strings.Trim(fmt.Sprint(shown), "[]"), more))
}

// syncStateProto maps sync's states to the control API's.
func syncStateProto(s cloudsync.State) controlv1.SyncState {
	switch s {
	case cloudsync.StateOnline:
		return controlv1.SyncState_SYNC_STATE_ONLINE
	case cloudsync.StateDegraded:
		return controlv1.SyncState_SYNC_STATE_DEGRADED
	case cloudsync.StateOffline:
		return controlv1.SyncState_SYNC_STATE_OFFLINE
	case cloudsync.StateExpired:
		return controlv1.SyncState_SYNC_STATE_EXPIRED
	}
	return controlv1.SyncState_SYNC_STATE_UNSPECIFIED
}

// certSHA256 turns control's hex fingerprint into bytes for PartStatus.
func certSHA256(fp string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(fp, ":", ""))
	if err != nil {
		return nil
	}
	return b
}

// ttl is a non-negative duration for the API.
func ttl(d time.Duration) *durationpb.Duration { return durationpb.New(max(d, 0)) }

// quietRelay slows the retries of a relay whose cloud does not answer.
// Control logs every failed wait for an offer and retries after 5 s; a
// part offline for weeks would fill its never-evicted warn log with that.
// Failing polls back off from 1 s to 10 minutes; an offer resets it.
type quietRelay struct {
	*cloudsync.Relay
	clk     clock.Clock
	backoff time.Duration // only NextOffer's caller, one goroutine, uses it
}

const (
	relayBackoffMin = time.Second
	relayBackoffMax = 10 * time.Minute
)

func (q *quietRelay) NextOffer(ctx context.Context) (*controlwire.RelayedOffer, error) {
	return q.next(ctx, q.Relay.NextOffer)
}

func (q *quietRelay) next(ctx context.Context, inner func(context.Context) (*controlwire.RelayedOffer, error)) (*controlwire.RelayedOffer, error) {
	off, err := inner(ctx)
	if err == nil || ctx.Err() != nil {
		q.backoff = 0
		return off, err
	}
	q.backoff = min(max(2*q.backoff, relayBackoffMin), relayBackoffMax)
	if serr := q.clk.Sleep(ctx, q.backoff); serr != nil {
		return nil, serr
	}
	return nil, err
}

// remoteKeys reads the keys the main part calls remotes with, next to the
// bootstrap file (partfile.ReadRemoteKey).
type remoteKeys struct{ bootstrap string }

func (k remoteKeys) RemoteKey(_ context.Context, keyID string) (*credential.Key, error) {
	return partfile.ReadRemoteKey(k.bootstrap, keyID)
}
