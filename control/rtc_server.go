package control

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/control/v1/controlv1connect"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/controlwire"
	"github.com/outpost-robotics/outpost/credential"
)

// maxSDP bounds an offer; real ones are a few KiB.
const maxSDP = 64 << 10

// connectTimeout is how long a session may take to open its channel.
const connectTimeout = 30 * time.Second

// maxBadFrames is how many undecodable frames a session survives.
const maxBadFrames = 16

// rtcServer answers WebRTC offers and serves the data channels.
type rtcServer struct {
	controlv1connect.UnimplementedSignalingServiceHandler
	s *Server
	// settings adjusts pion (tests keep ICE on loopback).
	settings func(*webrtc.SettingEngine)

	mu       sync.Mutex
	sessions map[string]*session
}

func newRTCServer(s *Server) *rtcServer {
	return &rtcServer{s: s, sessions: map[string]*session{}}
}

// validateOffer checks signaling input before pion sees it: size, SDP
// syntax, and an application (data channel) section.
func validateOffer(s string) error {
	if len(s) == 0 || len(s) > maxSDP {
		return fmt.Errorf("offer of %d bytes: want 1 to %d", len(s), maxSDP)
	}
	var d sdp.SessionDescription
	if err := d.UnmarshalString(s); err != nil {
		return fmt.Errorf("offer is not SDP: %w", err)
	}
	for _, m := range d.MediaDescriptions {
		if m.MediaName.Media == "application" {
			return nil
		}
	}
	return errors.New("offer has no data channel (application) section")
}

func (r *rtcServer) newAPI() *webrtc.API {
	var se webrtc.SettingEngine
	if r.settings != nil {
		r.settings(&se)
	}
	return webrtc.NewAPI(webrtc.WithSettingEngine(se))
}

// Offer answers an authenticated offer. The session's identity is the
// credential that authenticated this call; every call on its channel is
// authorized again, against the bundle current at that call.
func (r *rtcServer) Offer(ctx context.Context, req *connect.Request[controlv1.OfferRequest]) (*connect.Response[controlv1.OfferResponse], error) {
	resp, err := r.answer(ctx, callerOf(ctx), req.Msg.GetSdp())
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(resp), nil
}

// answer opens a session for an authorized caller's offer, whether it came
// on the TLS port or through the cloud's relay.
func (r *rtcServer) answer(ctx context.Context, c *caller, offer string) (*controlv1.OfferResponse, error) {
	if c.credential == "socket" {
		return nil, connect.NewError(connect.CodeFailedPrecondition, errors.New("WebRTC is for network clients; on the break-glass socket call the API directly"))
	}
	if err := validateOffer(offer); err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	r.mu.Lock()
	full := len(r.sessions) >= r.s.opts.MaxSessions
	r.mu.Unlock()
	if full {
		return nil, connect.NewError(connect.CodeResourceExhausted, fmt.Errorf("the part serves %d WebRTC sessions already; close one or use gRPC", r.s.opts.MaxSessions))
	}
	pc, err := r.newAPI().NewPeerConnection(webrtc.Configuration{ICEServers: controlwire.ICEServers(r.s.opts.ICEServers)})
	if err != nil {
		return nil, r.s.errs.Answer("create peer connection", err)
	}
	var idb [8]byte
	_, _ = rand.Read(idb[:])
	sess := &session{id: hex.EncodeToString(idb[:]), r: r, pc: pc, log: r.s.log.With(zap.String("session", hex.EncodeToString(idb[:]))),
		conn: &conn{transport: TransportWebRTC, peer: c.peer, fixed: new(c.id)}, streams: map[uint32]*serverStream{}, aborted: map[uint32]struct{}{}, opened: make(chan struct{})}
	// The session outlives the signaling call and carries none of its values.
	sess.ctx, sess.cancel = context.WithCancel(context.Background())
	fail := func(what string, err error) (*controlv1.OfferResponse, error) {
		sess.close()
		return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("%s: %w", what, err))
	}
	r.mu.Lock()
	r.sessions[sess.id] = sess
	r.mu.Unlock()
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		switch st {
		case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed, webrtc.PeerConnectionStateDisconnected:
			sess.close()
		}
	})
	pc.OnDataChannel(func(dc *webrtc.DataChannel) {
		if dc.Label() != controlwire.ChannelLabel {
			_ = dc.Close()
			return
		}
		sess.attach(dc)
	})
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return fail("set offer", err)
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return fail("create answer", err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(answer); err != nil {
		return fail("set answer", err)
	}
	t := r.s.opts.Clock.NewTimer(connectTimeout)
	defer t.Stop()
	select {
	case <-gathered:
	case <-ctx.Done():
		sess.close()
		return nil, ctx.Err()
	case <-t.C():
		sess.close()
		return nil, connect.NewError(connect.CodeDeadlineExceeded, errors.New("ICE gathering did not finish"))
	}
	go sess.expireUnopened(r.s.opts.Clock.NewTimer(connectTimeout))
	return &controlv1.OfferResponse{Sdp: pc.LocalDescription().SDP, SessionId: sess.id}, nil
}

// count returns how many sessions are open.
func (r *rtcServer) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.sessions)
}

func (r *rtcServer) closeAll() {
	r.mu.Lock()
	ss := make([]*session, 0, len(r.sessions))
	for _, s := range r.sessions {
		ss = append(ss, s)
	}
	r.mu.Unlock()
	for _, s := range ss {
		s.close()
	}
}

// session is one WebRTC peer.
type session struct {
	id     string
	r      *rtcServer
	pc     *webrtc.PeerConnection
	log    *zap.Logger
	conn   *conn
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	ch      *controlwire.Conn
	streams map[uint32]*serverStream
	// aborted holds streams this side ended with an error. Frames the client
	// had already sent for them are dropped quietly: answering each one would
	// be one more error frame per frame in flight (a 3 MiB message is ~190),
	// and client stream ids are never reused.
	aborted map[uint32]struct{}
	bad     int
	closed  bool
	opened  chan struct{}
}

// Limits on what one session may make the daemon hold.
const (
	// maxStreams bounds concurrent calls on one channel.
	maxStreams = 32
	// sessionBudget bounds what one session holds received but not yet
	// handled, across its streams (partial messages and unread bodies), so
	// a peer cannot make the daemon hold streams × controlwire.MaxJoined.
	sessionBudget = 16 << 20
)

// maxAborted bounds the aborted set; past it the set starts over, and a late
// frame of a forgotten stream costs one more error frame, nothing worse.
const maxAborted = 4 * maxStreams

// serverStream is one call in progress.
type serverStream struct {
	j      controlwire.Joiner
	body   *controlwire.Queue // nil until the head arrived
	cancel context.CancelFunc
}

// expireUnopened closes a session whose channel does not open in time, so
// an offer without a peer behind it holds nothing for long.
func (s *session) expireUnopened(t clock.Timer) {
	defer t.Stop()
	select {
	case <-s.opened:
	case <-s.ctx.Done():
	case <-t.C():
		s.log.Info("WebRTC session never opened its channel; closing")
		s.close()
	}
}

func (s *session) attach(dc *webrtc.DataChannel) {
	s.mu.Lock()
	if s.ch != nil || s.closed {
		s.mu.Unlock()
		_ = dc.Close()
		return
	}
	s.ch = controlwire.NewConn(dc)
	close(s.opened)
	s.mu.Unlock()
	dc.OnClose(s.close)
	dc.OnMessage(func(m webrtc.DataChannelMessage) { s.onFrame(m.Data) })
}

func (s *session) close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	ch := s.ch
	s.mu.Unlock()
	s.cancel()
	if ch != nil {
		ch.Close()
	}
	go func() { _ = s.pc.Close() }() // Close waits for callbacks, which may be running this
	s.r.mu.Lock()
	delete(s.r.sessions, s.id)
	s.r.mu.Unlock()
}

// onFrame handles one channel message. It never blocks on a handler: bodies
// are queued, handlers run on their own goroutines.
func (s *session) onFrame(b []byte) {
	f, err := controlwire.DecodeFrame(b)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.bad++
		s.log.Warn("bad frame", zap.Error(err), zap.Int("count", s.bad))
		if s.bad >= maxBadFrames {
			go s.close()
		}
		return
	}
	if _, dead := s.aborted[f.Stream]; dead {
		return
	}
	st := s.streams[f.Stream]
	if f.Flags&controlwire.FlagError != 0 {
		if st != nil {
			s.endStream(f.Stream, st, context.Canceled)
		}
		return
	}
	if st == nil {
		if f.Stream%2 == 0 {
			s.abort(f.Stream, "client streams are odd")
			return
		}
		if len(s.streams) >= maxStreams {
			s.abort(f.Stream, fmt.Sprintf("more than %d concurrent calls on one channel", maxStreams))
			return
		}
		st = &serverStream{}
		s.streams[f.Stream] = st
	}
	if s.pendingLocked()+len(f.Payload) > sessionBudget {
		s.endStream(f.Stream, st, errors.New("session buffer full"))
		s.abort(f.Stream, fmt.Sprintf("the session holds over %d bytes not yet handled", sessionBudget))
		return
	}
	msg, done, err := st.j.Add(f)
	if err != nil {
		s.endStream(f.Stream, st, err)
		s.abort(f.Stream, err.Error())
		return
	}
	if done {
		if st.body == nil {
			if err := s.start(f.Stream, st, msg); err != nil {
				delete(s.streams, f.Stream)
				s.abort(f.Stream, err.Error())
				return
			}
		} else if !st.body.Push(msg) {
			s.endStream(f.Stream, st, errors.New("request body over the limit"))
			s.abort(f.Stream, "request body over the limit")
			return
		}
	}
	if f.Flags&controlwire.FlagEnd != 0 && st.body != nil {
		st.body.Finish(io.EOF)
	}
}

// pendingLocked returns the bytes received and not yet handled, across
// streams. Callers hold s.mu.
func (s *session) pendingLocked() int {
	n := 0
	for _, st := range s.streams {
		n += st.j.Pending()
		if st.body != nil {
			n += st.body.Queued()
		}
	}
	return n
}

// endStream forgets a stream, cancelling its handler. Callers hold s.mu.
func (s *session) endStream(id uint32, st *serverStream, err error) {
	if st.body != nil {
		st.body.Finish(err)
	}
	if st.cancel != nil {
		st.cancel()
	}
	delete(s.streams, id)
}

// abort ends stream id with an error frame, without blocking the receive
// path, and drops the stream's later frames. Callers hold s.mu.
func (s *session) abort(id uint32, msg string) {
	if len(s.aborted) >= maxAborted {
		clear(s.aborted)
	}
	s.aborted[id] = struct{}{}
	ch := s.ch
	go func() { _ = ch.SendError(id, msg) }()
}

// start decodes a request head and runs the call through the server's
// handler, the same one TLS clients reach. Callers hold s.mu.
func (s *session) start(id uint32, st *serverStream, head []byte) error {
	var h controlv1.ChannelRequestHead
	if err := proto.Unmarshal(head, &h); err != nil {
		return fmt.Errorf("request head: %w", err)
	}
	req, err := requestOf(&h)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(withConn(s.ctx, s.conn))
	st.cancel = cancel
	st.body = controlwire.NewQueue(ctx.Done())
	req = req.WithContext(ctx)
	req.Body = st.body
	req.RemoteAddr = s.conn.peer
	ch := s.ch
	go func() {
		defer cancel()
		w := &chanResponseWriter{ch: ch, stream: id, header: http.Header{}}
		s.r.s.handler.ServeHTTP(w, req)
		if err := w.finish(); err != nil && !errors.Is(err, controlwire.ErrChannelClosed) {
			s.log.Debug("send response", zap.Error(err))
		}
		s.mu.Lock()
		if s.streams[id] == st {
			delete(s.streams, id)
		}
		s.mu.Unlock()
	}()
	return nil
}

// requestOf builds the HTTP request of a head; it refuses what a Connect
// client never sends.
func requestOf(h *controlv1.ChannelRequestHead) (*http.Request, error) {
	if h.GetMethod() != http.MethodPost && h.GetMethod() != http.MethodGet {
		return nil, fmt.Errorf("request head: method %q: want POST or GET", h.GetMethod())
	}
	if !strings.HasPrefix(h.GetPath(), "/") || len(h.GetPath()) > 8<<10 {
		return nil, fmt.Errorf("request head: bad path")
	}
	if len(h.GetHeaders()) > 64 {
		return nil, fmt.Errorf("request head: %d headers, want at most 64", len(h.GetHeaders()))
	}
	req, err := http.NewRequest(h.GetMethod(), "http://webrtc"+h.GetPath(), http.NoBody)
	if err != nil {
		return nil, fmt.Errorf("request head: %w", err)
	}
	req.Header = controlwire.HeaderOf(h.GetHeaders())
	req.Header.Del("Authorization") // the session's identity is fixed at signaling
	req.Header.Del(credential.ProofHeader)
	return req, nil
}

// chanResponseWriter writes a handler's response as channel messages: the
// head before the first body byte, then one message per flush.
type chanResponseWriter struct {
	ch       *controlwire.Conn
	stream   uint32
	header   http.Header
	status   int
	headSent bool
	buf      []byte
	err      error
}

func (w *chanResponseWriter) Header() http.Header { return w.header }

func (w *chanResponseWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *chanResponseWriter) sendHead() {
	if w.headSent || w.err != nil {
		return
	}
	w.headSent = true
	if w.status == 0 {
		w.status = http.StatusOK
	}
	b, err := proto.Marshal(&controlv1.ChannelResponseHead{Status: int32(w.status), Headers: controlwire.HeadersOf(w.header)})
	if err == nil {
		err = w.ch.SendMessage(w.stream, b, false)
	}
	w.err = err
}

func (w *chanResponseWriter) Write(p []byte) (int, error) {
	w.sendHead()
	if w.err != nil {
		return 0, w.err
	}
	w.buf = append(w.buf, p...)
	if len(w.buf) >= controlwire.MaxJoined/2 {
		w.Flush()
	}
	return len(p), w.err
}

// Flush sends what was written since the last flush as one message.
func (w *chanResponseWriter) Flush() {
	w.sendHead()
	if w.err != nil || len(w.buf) == 0 {
		return
	}
	w.err = w.ch.SendMessage(w.stream, w.buf, false)
	w.buf = w.buf[:0]
}

func (w *chanResponseWriter) finish() error {
	w.sendHead()
	if w.err != nil {
		return w.err
	}
	return w.ch.SendMessage(w.stream, w.buf, true)
}
