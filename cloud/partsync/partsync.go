// Package partsync is the fleet cloud's side of the part sync API,
// outpost.sync.v1.SyncService: what every robot part calls each sync cycle.
//
// It authenticates the part from its Authorization header (the part id
// comes from there and nowhere else, so a part reaches only its own data)
// before reading a byte of the request body, so a caller without a part's
// credential costs no decompression or parsing,
// answers pulls with the cloud's time and any newer signed documents, and
// hands uploads to an ingest.Store, which stores each record exactly once
// and answers the watermark the part may delete through, ranges declared
// lost included. With Options.Relay it also carries WebRTC signaling relayed to
// the part (NextOffer, a long poll, and AnswerOffer; see cloud/relay). The
// fleet cloud plugs in through Backend: it knows the parts, their secrets
// and their documents; this package knows the wire.
package partsync

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"connectrpc.com/connect"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/outpost-robotics/outpost/api/codec"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1/syncv1connect"
	"github.com/outpost-robotics/outpost/authz"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/cloud/ingest"
	"github.com/outpost-robotics/outpost/pkgformat"
)

// ErrUnknownPart is what Backend.AuthenticatePart wraps when the part does
// not exist or its secret is wrong; the caller cannot tell which.
var ErrUnknownPart = errors.New("unknown part or wrong part secret")

// Part is an authenticated part.
type Part struct {
	// ID is the part's id, as authenticated.
	ID string
	// MachineID is the part's machine.
	MachineID string
	// OrgID is the organization that owns the machine.
	OrgID string
}

// Backend is what the fleet cloud provides to the sync API.
type Backend interface {
	// AuthenticatePart checks a part's secret in constant time and returns
	// the part. A wrong secret or an unknown part is an error wrapping
	// ErrUnknownPart; any other error means the check could not be made.
	// Errors are logged, so they must never contain the secret.
	AuthenticatePart(ctx context.Context, partID, secret string) (Part, error)
	// Documents returns the part's signed config and grant bundle when they
	// are newer than the versions it holds; each is nil when the part holds
	// the newest (or there is none). Called on every pull, so it must be
	// cheap when nothing changed.
	Documents(ctx context.Context, part Part, haveConfig, haveGrants uint64) (config, grants *syncv1.SignedDocument, err error)
	// HandleProposal receives an offline config edit of the proposals
	// stream, after it is stored. The part sends it again until its upload
	// is acknowledged, so this must be idempotent on (part, storeID, seq).
	HandleProposal(ctx context.Context, part Part, storeID string, seq uint64, p *syncv1.ConfigProposal) error
	// PollInterval is how long the part should wait between cycles; 0
	// means Options.PollInterval.
	PollInterval(part Part) time.Duration
}

// ProposalOutcomer is optionally implemented by a Backend that reports
// what became of a part's proposals in each pull.
type ProposalOutcomer interface {
	// ProposalOutcomes returns the outcomes the part has not yet been told.
	ProposalOutcomes(ctx context.Context, part Part) ([]*syncv1.ProposalOutcome, error)
}

// Restarter is optionally implemented by a Backend that carries restart
// requests to parts: a pending request goes out with every pull as a
// signed RestartOrder until the part reports it handled.
type Restarter interface {
	// PendingRestart returns the signed RestartOrder the part is to act on,
	// or nil when none is pending or it expired by the cloud's time. Called
	// on every pull, so it must be cheap when none is pending.
	PendingRestart(ctx context.Context, part Part) (*syncv1.SignedDocument, error)
	// RestartHandled receives what the part reports it did with an order,
	// validated, after its status is stored; the backend clears the pending
	// request the report names. Every status carries the last report, so
	// this must be idempotent and cheap for one already cleared.
	RestartHandled(ctx context.Context, part Part, r *syncv1.RestartReport) error
}

// PeerNoter is optionally implemented by a Backend whose documents carry
// what parts report of their control plane (the certificate fingerprint and
// addresses, for the other parts of a machine to find and pin): it hears of
// a report that changed either, after the status is stored.
type PeerNoter interface {
	PeerChanged(ctx context.Context, part Part) error
}

// ErrNoChunk is what PackageChunks.PackageChunk wraps when the chunk is
// not one of a package version issued to the part, or does not exist.
var ErrNoChunk = errors.New("no such chunk issued to the part")

// PackageChunks is optionally implemented by a Backend that serves package
// content to parts (GetPackageChunk).
type PackageChunks interface {
	// PackageChunk returns the chunk with SHA-256 sum when it belongs to a
	// package version in the part's current or previous config document,
	// and an error wrapping ErrNoChunk otherwise.
	PackageChunk(ctx context.Context, part Part, sum []byte) ([]byte, error)
}

// Relay is the part side of WebRTC signaling relayed by the cloud
// (cloud/relay's Broker implements it): NextOffer and AnswerOffer are
// handed to it once the part is authenticated, with the authenticated part
// id, so a part receives and answers only offers addressed to itself.
type Relay interface {
	// NextOffer waits, within the request's bounded wait, for an offer
	// addressed to partID; an empty response means none came.
	NextOffer(ctx context.Context, partID string, req *syncv1.NextOfferRequest) (*syncv1.NextOfferResponse, error)
	// AnswerOffer hands partID's answer or refusal to the waiting client.
	AnswerOffer(ctx context.Context, partID string, req *syncv1.AnswerOfferRequest) (*syncv1.AnswerOfferResponse, error)
}

// Options configures NewHandler; the zero value is usable.
type Options struct {
	// Relay serves NextOffer and AnswerOffer; nil answers them
	// Unimplemented (this cloud relays no signaling).
	Relay Relay
	// Clock gives the server time of pulls and the time of statuses, and
	// paces the authentication limiter; nil means the machine's clock.
	Clock clock.Clock
	// Logger receives one line per refused or failed call; never a secret.
	Logger *zap.Logger
	// Limits bound requests; zero fields take those of DefaultLimits.
	Limits Limits
	// MaxRequestBytes bounds a request's decoded (decompressed) size; 0
	// means MaxBatchBytes plus 1 MiB for framing.
	MaxRequestBytes int
	// PollInterval is the default cycle interval; 0 means 15 s.
	PollInterval time.Duration
	// AuthFailureBurst is how many failed authentications an address may
	// make before it waits (the authz.Limiter's Free); 0 means 10.
	AuthFailureBurst int
	// AuthFailureRefill is the first wait after them, doubling with each
	// further failure to at most a minute (the Limiter's Base); 0 means 6 s.
	AuthFailureRefill time.Duration
	// ChunkServes bounds the package chunks (GetPackageChunk) the cloud
	// serves at once, all parts together; 0 means DefaultChunkServes.
	ChunkServes int
	// ChunkServeWait is how long a chunk fetch over ChunkServes waits for
	// its turn before it is refused as busy, with a Retry-After hint; 0
	// means DefaultChunkServeWait.
	ChunkServeWait time.Duration
	// ClientAddress names the address a call came from, which failed
	// authentications are counted by; nil means the peer's IP. Behind a
	// load balancer, set it to read the balancer's forwarding header, or
	// every part shares the balancer's address and its bucket.
	ClientAddress func(peer connect.Peer, header http.Header) string
}

// DefaultLimits returns the limits of a zero Options: a batch is what the
// daemon sends (1 MiB by default) with ample room, a record is at most a
// large inline capture, and bigger data goes as blobs.
func DefaultLimits() Limits {
	return Limits{
		MaxRecordBytes:  4 << 20,
		MaxBatchRecords: 10_000,
		MaxBatchBytes:   16 << 20,
		MaxChunkBytes:   8 << 20,
		MaxBlobBytes:    64 << 30,
	}
}

// handler implements syncv1connect.SyncServiceHandler.
type handler struct {
	backend Backend
	store   ingest.Store
	clock   clock.Clock
	log     *zap.Logger
	lim     Limits
	poll    time.Duration
	fails   *authz.Limiter
	errs    *authz.Errors
	addrOf  func(connect.Peer, http.Header) string
	relay   Relay
	fetches *inFlight
}

var _ syncv1connect.SyncServiceHandler = (*handler)(nil)

// NewHandler returns the sync API's path and HTTP handler, to mount on the
// cloud's mux. It accepts gzip-compressed requests and bounds their
// decoded size. It panics if backend or store is nil, like http.Handle
// with a nil handler: that is a wiring mistake, not a run-time condition.
func NewHandler(backend Backend, store ingest.Store, opts Options) (string, http.Handler) {
	if backend == nil || store == nil {
		panic("partsync.NewHandler: backend and store are required")
	}
	h := &handler{backend: backend, store: store, clock: opts.Clock, log: opts.Logger, lim: opts.Limits, poll: opts.PollInterval, relay: opts.Relay,
		fetches: &inFlight{limit: MaxChunkFetches, n: map[string]int{}}}
	if h.clock == nil {
		h.clock = clock.NewReal()
	}
	if h.log == nil {
		h.log = zap.NewNop()
	}
	h.log = h.log.Named("partsync")
	// The sync API's error policy: a record the store finds invalid is the
	// part's to fix; anything else is Internal with an error id, and the
	// part keeps what it sent and tries again.
	h.errs = &authz.Errors{Log: h.log, Where: "the cloud's log", Table: []authz.Sentinel{
		{Err: ingest.ErrInvalid, Code: connect.CodeInvalidArgument},
	}}
	def := DefaultLimits()
	h.lim.MaxRecordBytes = cmp.Or(h.lim.MaxRecordBytes, def.MaxRecordBytes)
	h.lim.MaxBatchRecords = cmp.Or(h.lim.MaxBatchRecords, def.MaxBatchRecords)
	h.lim.MaxBatchBytes = cmp.Or(h.lim.MaxBatchBytes, def.MaxBatchBytes)
	h.lim.MaxChunkBytes = cmp.Or(h.lim.MaxChunkBytes, def.MaxChunkBytes)
	h.lim.MaxBlobBytes = cmp.Or(h.lim.MaxBlobBytes, def.MaxBlobBytes)
	h.poll = cmp.Or(h.poll, 15*time.Second)
	h.addrOf = opts.ClientAddress
	if h.addrOf == nil {
		h.addrOf = peerIP
	}
	h.fails = authz.Credentials()
	h.fails.Free, h.fails.Base = cmp.Or(opts.AuthFailureBurst, h.fails.Free), cmp.Or(opts.AuthFailureRefill, h.fails.Base)
	maxReq := cmp.Or(opts.MaxRequestBytes, max(h.lim.MaxBatchBytes, h.lim.MaxChunkBytes)+1<<20)
	// connect-go's handlers accept gzip by default; the read limit applies
	// to the decompressed message, so a small bomb cannot inflate past it.
	// zstd is what parts send (api/codec); gzip stays accepted for other clients.
	// An answer under 1 KiB (an upload's ack, a status's) goes as it is:
	// compressing it cost a compressor's setup per call for a few bytes.
	hopts := []connect.HandlerOption{connect.WithReadMaxBytes(maxReq), codec.HandlerOption(), connect.WithCompressMinBytes(1 << 10)}
	path, rpc := syncv1connect.NewSyncServiceHandler(h, hopts...)
	errw := connect.NewErrorWriter(hopts...)
	// Authenticated first: only parts take turns serving chunks.
	return path, h.authenticated(newServing(opts.ChunkServes, opts.ChunkServeWait, h.clock).wrap(rpc, errw), errw)
}

// partKey carries the authenticated Part in a request's context.
type partKey struct{}

// authenticated checks the caller's credentials from the headers before
// next reads a byte of the body: an unauthenticated caller costs the
// cloud no decompression and no parsing, whatever it sends. A refusal is
// written in the caller's protocol; the body is left unread.
func (h *handler) authenticated(next http.Handler, errw *connect.ErrorWriter) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		part, err := h.authenticate(r.Context(), r.Header, connect.Peer{Addr: r.RemoteAddr})
		if err != nil {
			// Nothing more will be read: tell an HTTP/1.1 client to stop
			// sending rather than have the server drain the body. (On
			// HTTP/2 the stream alone ends; the connection may carry others.)
			if r.ProtoMajor == 1 {
				w.Header().Set("Connection", "close")
			}
			_ = errw.Write(w, r, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), partKey{}, part)))
	})
}

// caller returns the part authenticated before the call was decoded.
func (h *handler) caller(ctx context.Context) (Part, error) {
	part, ok := ctx.Value(partKey{}).(Part)
	if !ok {
		// Only NewHandler's wrapper reaches the methods; anything else is
		// a wiring mistake, refused rather than served unauthenticated.
		return Part{}, connect.NewError(connect.CodeInternal, errors.New("authentication failed"))
	}
	return part, nil
}

// authenticate returns the calling part. Failed attempts count against the
// remote address (authz.Limiter); an address that must wait is refused
// before any credential is looked at, so guessing costs time whether the
// guess is right or not.
func (h *handler) authenticate(ctx context.Context, header http.Header, peer connect.Peer) (Part, error) {
	addr := h.addrOf(peer, header)
	// The limiter runs on the clock's uptime, which never jumps.
	now := time.Unix(0, 0).Add(h.clock.Uptime())
	key := []authz.Key{{Name: addr}}
	if h.fails.Wait(key, now) > 0 {
		h.log.Warn("refused a part sync call: too many failed authentications from its address", zap.String("remote", addr))
		return Part{}, connect.NewError(connect.CodeResourceExhausted, errors.New("too many failed authentications from this address; try again later"))
	}
	values := header.Values("Authorization")
	var partID, secret string
	err := errBadHeader
	if len(values) == 1 {
		partID, secret, err = ParseAuthorization(values[0])
	}
	if err != nil {
		h.fails.Fail(key, now)
		h.log.Warn("refused a part sync call: malformed credentials", zap.String("remote", addr), zap.Int("authorization_headers", len(values)))
		return Part{}, connect.NewError(connect.CodeUnauthenticated, err)
	}
	part, err := h.backend.AuthenticatePart(ctx, partID, secret)
	switch {
	case errors.Is(err, ErrUnknownPart):
		h.fails.Fail(key, now)
		h.log.Warn("refused a part sync call: unknown part or wrong secret", zap.String("remote", addr), zap.String("part", partID))
		return Part{}, connect.NewError(connect.CodeUnauthenticated, errors.New("unknown part or wrong part secret"))
	case err != nil:
		h.log.Error("could not authenticate a part", zap.String("remote", addr), zap.String("part", partID), zap.Error(err))
		return Part{}, connect.NewError(connect.CodeUnavailable, errors.New("could not check the part's credentials; try again"))
	case part.ID != partID:
		// The backend must answer for the part asked about; anything else
		// would let one part act as another.
		h.log.Error("the backend authenticated a different part than asked", zap.String("part", partID), zap.String("got", part.ID))
		return Part{}, connect.NewError(connect.CodeInternal, errors.New("authentication failed"))
	}
	return part, nil
}

// peerIP is the default Options.ClientAddress: the TCP peer's IP.
func peerIP(peer connect.Peer, _ http.Header) string {
	if host, _, err := net.SplitHostPort(peer.Addr); err == nil {
		return host
	}
	return peer.Addr
}

// storeErr answers a storage error by the sync API's error policy, with the
// part it came from in the log.
func (h *handler) storeErr(what string, part Part, err error) error {
	return h.errs.Answer(what+" for part "+part.ID, err)
}

// Pull answers the cloud's time, the poll interval and newer documents.
func (h *handler) Pull(ctx context.Context, req *connect.Request[syncv1.PullRequest]) (*connect.Response[syncv1.PullResponse], error) {
	part, err := h.caller(ctx)
	if err != nil {
		return nil, err
	}
	cfg, grants, err := h.backend.Documents(ctx, part, req.Msg.GetConfigVersion(), req.Msg.GetGrantsVersion())
	if err != nil {
		h.log.Error("could not read a part's documents", zap.String("part", part.ID), zap.Error(err))
		return nil, connect.NewError(connect.CodeUnavailable, errors.New("pull: could not read the part's documents; try again"))
	}
	poll := h.backend.PollInterval(part)
	if poll <= 0 {
		poll = h.poll
	}
	resp := &syncv1.PullResponse{
		ServerTime:   timestamppb.New(h.clock.Now()),
		PollInterval: durationpb.New(poll),
		Config:       cfg,
		Grants:       grants,
	}
	if rs, ok := h.backend.(Restarter); ok {
		if resp.Restart, err = rs.PendingRestart(ctx, part); err != nil {
			h.log.Error("could not read a part's pending restart", zap.String("part", part.ID), zap.Error(err))
			return nil, connect.NewError(connect.CodeUnavailable, errors.New("pull: could not read the part's pending restart; try again"))
		}
	}
	if po, ok := h.backend.(ProposalOutcomer); ok {
		if resp.Proposals, err = po.ProposalOutcomes(ctx, part); err != nil {
			h.log.Error("could not read a part's proposal outcomes", zap.String("part", part.ID), zap.Error(err))
			return nil, connect.NewError(connect.CodeUnavailable, errors.New("pull: could not read the part's proposal outcomes; try again"))
		}
	}
	return connect.NewResponse(resp), nil
}

// Upload stores a batch of one stream and answers the watermark.
func (h *handler) Upload(ctx context.Context, req *connect.Request[syncv1.UploadRequest]) (*connect.Response[syncv1.UploadResponse], error) {
	part, err := h.caller(ctx)
	if err != nil {
		return nil, err
	}
	u, err := validateUpload(req.Msg, h.lim)
	if err != nil {
		h.log.Warn("refused an upload", zap.String("part", part.ID), zap.Error(err))
		return nil, err
	}
	storeID, stream := req.Msg.GetStoreId(), req.Msg.GetStream()
	// The gap records' losses go with the records, in one durable commit,
	// and take effect no later than the records are stored and acked.
	var losses []ingest.Loss
	for _, g := range u.gaps {
		if g.GetStream() == "" {
			continue // the whole store was lost; its successor has a new store id
		}
		losses = append(losses, ingest.Loss{Stream: g.GetStream(), First: g.GetFirstSeq(), Last: g.GetLastSeq(), Reason: g.GetReason()})
	}
	// What the cloud stores, it finishes storing even when the part gave
	// up waiting: the part's next attempt is then a repeat, answered with
	// the watermark at once, so a slow commit is paid once and never
	// livelocks a part that keeps resending the same batch.
	key := ingest.StreamKey{PartID: part.ID, StoreID: storeID, Stream: stream}
	res, err := h.store.PutBatch(context.WithoutCancel(ctx), key, u.records, losses)
	if err != nil {
		return nil, h.storeErr(fmt.Sprintf("store %d records of %s", len(u.records), stream), part, err)
	}
	if len(res.Conflicts) > 0 {
		// The first copy stays; a part that reuses a sequence has a bug
		// or a rolled-back store, and someone should know.
		h.log.Warn("a part sent records again with different contents; kept the first copies",
			zap.String("part", part.ID), zap.String("store_id", storeID), zap.String("stream", stream),
			zap.Int("records", len(res.Conflicts)), zap.Uint64("first_seq", res.Conflicts[0]))
	}
	for i, p := range u.proposals {
		if err := h.backend.HandleProposal(ctx, part, storeID, u.records[i].Seq, p); err != nil {
			h.log.Error("could not hand a config proposal to the fleet", zap.String("part", part.ID), zap.Uint64("seq", u.records[i].Seq), zap.Error(err))
			return nil, connect.NewError(connect.CodeUnavailable, fmt.Errorf("upload of proposals: proposal %d could not be handled; try again", u.records[i].Seq))
		}
	}
	return connect.NewResponse(&syncv1.UploadResponse{AckedThrough: res.AckedThrough}), nil
}

// UploadBlob stores one blob chunk.
func (h *handler) UploadBlob(ctx context.Context, req *connect.Request[syncv1.UploadBlobRequest]) (*connect.Response[syncv1.UploadBlobResponse], error) {
	part, err := h.caller(ctx)
	if err != nil {
		return nil, err
	}
	m := req.Msg
	if err := validateChunk(m, h.lim); err != nil {
		h.log.Warn("refused a blob chunk", zap.String("part", part.ID), zap.Error(err))
		return nil, err
	}
	var meta []byte
	if m.GetMeta() != nil {
		if meta, err = proto.Marshal(m.GetMeta()); err != nil {
			return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("upload blob %s: meta: %w", m.GetBlobId(), err))
		}
	}
	p, err := h.store.PutBlobChunk(ctx, ingest.BlobChunk{
		PartID: part.ID, BlobID: m.GetBlobId(), Offset: m.GetOffset(), Data: m.GetData(),
		Size: m.GetSize(), SHA256: m.GetSha256(), Name: m.GetName(), Meta: meta,
	})
	switch {
	case errors.Is(err, ingest.ErrBlobMismatch):
		h.log.Warn("a blob did not match its SHA-256; discarded it", zap.String("part", part.ID), zap.String("blob", m.GetBlobId()))
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("upload blob %s: the bytes received do not match the SHA-256; the cloud discarded them: send the blob again from offset 0", m.GetBlobId()))
	case errors.Is(err, ingest.ErrBlobConflict):
		return nil, connect.NewError(connect.CodeAlreadyExists, fmt.Errorf("upload blob %s: the id is in use for a blob of another size or SHA-256", m.GetBlobId()))
	case errors.Is(err, ingest.ErrBlobQuota):
		h.log.Warn("refused a blob past the part's quota of incomplete blobs", zap.String("part", part.ID), zap.String("blob", m.GetBlobId()), zap.Uint64("size", m.GetSize()))
		return nil, connect.NewError(connect.CodeResourceExhausted, err)
	case err != nil:
		return nil, h.storeErr(fmt.Sprintf("upload blob %s at %d", m.GetBlobId(), m.GetOffset()), part, err)
	}
	return connect.NewResponse(&syncv1.UploadBlobResponse{Received: p.Received, Complete: p.Complete}), nil
}

// ReportStatus keeps the part's status, stamped with the cloud's time.
func (h *handler) ReportStatus(ctx context.Context, req *connect.Request[syncv1.ReportStatusRequest]) (*connect.Response[syncv1.ReportStatusResponse], error) {
	part, err := h.caller(ctx)
	if err != nil {
		return nil, err
	}
	if req.Msg.GetStatus() == nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("report status: status is required"))
	}
	restart := req.Msg.GetStatus().GetRestart()
	if restart != nil {
		if err := validateRestartReport(restart); err != nil {
			h.log.Warn("refused a status report", zap.String("part", part.ID), zap.Error(err))
			return nil, err
		}
	}
	pn, notes := h.backend.(PeerNoter)
	var before *syncv1.PartStatus
	if notes {
		if old, err := h.store.Status(ctx, part.ID); err == nil {
			before = old.Status
		}
	}
	if err := h.store.PutStatus(ctx, part.ID, req.Msg.GetStatus(), h.clock.Now()); err != nil {
		return nil, h.storeErr("report status", part, err)
	}
	if notes && peerChanged(before, req.Msg.GetStatus()) {
		// The status is stored: a report cancelled now (a part stopping,
		// a cut link) would leave its next report finding nothing changed
		// and the machine's documents never re-issued, so the note is not
		// cancelled with the request.
		if err := pn.PeerChanged(context.WithoutCancel(ctx), part); err != nil {
			h.log.Error("could not note a part's new control address", zap.String("part", part.ID), zap.Error(err))
			return nil, connect.NewError(connect.CodeUnavailable, errors.New("report status: try again"))
		}
	}
	if rs, ok := h.backend.(Restarter); ok && restart != nil {
		if err := rs.RestartHandled(ctx, part, restart); err != nil {
			h.log.Error("could not clear a part's handled restart", zap.String("part", part.ID), zap.String("restart", restart.GetId()), zap.Error(err))
			return nil, connect.NewError(connect.CodeUnavailable, errors.New("report status: the restart it reports could not be recorded; try again"))
		}
	}
	return connect.NewResponse(&syncv1.ReportStatusResponse{}), nil
}

// errNoRelay answers the relay calls of a cloud that relays no signaling.
var errNoRelay = errors.New("this cloud does not relay WebRTC signaling")

// NextOffer hands the long poll for relayed offers to the relay, for the
// authenticated part only.
func (h *handler) NextOffer(ctx context.Context, req *connect.Request[syncv1.NextOfferRequest]) (*connect.Response[syncv1.NextOfferResponse], error) {
	part, err := h.caller(ctx)
	if err != nil {
		return nil, err
	}
	if h.relay == nil {
		return nil, connect.NewError(connect.CodeUnimplemented, errNoRelay)
	}
	resp, err := h.relay.NextOffer(ctx, part.ID, req.Msg)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(resp), nil
}

// AnswerOffer hands the part's answer to the relay, for the authenticated
// part only.
func (h *handler) AnswerOffer(ctx context.Context, req *connect.Request[syncv1.AnswerOfferRequest]) (*connect.Response[syncv1.AnswerOfferResponse], error) {
	part, err := h.caller(ctx)
	if err != nil {
		return nil, err
	}
	if h.relay == nil {
		return nil, connect.NewError(connect.CodeUnimplemented, errNoRelay)
	}
	resp, err := h.relay.AnswerOffer(ctx, part.ID, req.Msg)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(resp), nil
}

// peerChanged says a status report changed what the part's documents are
// built from: what the other parts of the machine are told of it (its
// certificate, its addresses), or its platform, which chooses the builds
// of the packages it is issued.
func peerChanged(before, after *syncv1.PartStatus) bool {
	return before == nil || !bytes.Equal(before.GetControlCertSha256(), after.GetControlCertSha256()) ||
		!slices.Equal(before.GetControlAddresses(), after.GetControlAddresses()) ||
		before.GetPlatform() != after.GetPlatform()
}

// MaxChunkFetches bounds the chunk fetches one part has in flight: a part
// downloads three chunks at a time (docs/ARCHITECTURE.md, decision 44), so
// one more leaves room for a retry and a part cannot tie up the cloud's
// reads with many at once.
const MaxChunkFetches = 4

// GetPackageChunk hands a chunk of a package version issued to the calling
// part to the backend's PackageChunks. Any chunk the part was not issued is
// NotFound, exactly like one that does not exist, so the call is no oracle
// for what other parts or organizations hold.
func (h *handler) GetPackageChunk(ctx context.Context, req *connect.Request[syncv1.GetPackageChunkRequest]) (*connect.Response[syncv1.GetPackageChunkResponse], error) {
	part, err := h.caller(ctx)
	if err != nil {
		return nil, err
	}
	pc, ok := h.backend.(PackageChunks)
	if !ok {
		return nil, connect.NewError(connect.CodeUnimplemented, errors.New("this cloud has no package registry"))
	}
	sum := req.Msg.GetSha256()
	if len(sum) != sha256.Size {
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("get package chunk: sha256 of %d bytes, want %d", len(sum), sha256.Size))
	}
	if !h.fetches.acquire(part.ID) {
		return nil, connect.NewError(connect.CodeResourceExhausted, fmt.Errorf("get package chunk: %d fetches of this part are in flight; try again when one ends", MaxChunkFetches))
	}
	defer h.fetches.release(part.ID)
	data, err := pc.PackageChunk(ctx, part, sum)
	switch {
	case errors.Is(err, ErrNoChunk):
		return nil, connect.NewError(connect.CodeNotFound, errors.New("get package chunk: no such chunk in a package version issued to this part"))
	case err != nil:
		h.log.Error("could not read a package chunk", zap.String("part", part.ID), zap.Error(err))
		return nil, connect.NewError(connect.CodeUnavailable, errors.New("get package chunk: could not read it; try again"))
	case len(data) > pkgformat.MaxChunk:
		h.log.Error("a stored package chunk is larger than any chunk may be", zap.String("part", part.ID), zap.Int("bytes", len(data)))
		return nil, connect.NewError(connect.CodeInternal, errors.New("get package chunk: the stored chunk is damaged"))
	}
	return connect.NewResponse(&syncv1.GetPackageChunkResponse{Data: data}), nil
}

// inFlight counts calls in flight per part.
type inFlight struct {
	mu    sync.Mutex
	limit int
	n     map[string]int
}

func (f *inFlight) acquire(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n[id] >= f.limit {
		return false
	}
	f.n[id]++
	return true
}

func (f *inFlight) release(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n[id]--; f.n[id] <= 0 {
		delete(f.n, id)
	}
}
