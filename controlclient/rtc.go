package controlclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"

	"connectrpc.com/connect"
	"github.com/pion/webrtc/v4"
	"google.golang.org/protobuf/proto"

	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/control/v1/controlv1connect"
	"github.com/outpost-robotics/outpost/controlwire"
)

// RTCBaseURL is the base URL for connect clients using an RTCClient's
// HTTPClient; the host is never dialled.
const RTCBaseURL = "http://webrtc"

// RTCClient is a client's end of a WebRTC session with a part: connect
// clients built on its HTTPClient reach the part's handler over the data
// channel.
type RTCClient struct {
	pc *webrtc.PeerConnection
	ch *controlwire.Conn

	mu      sync.Mutex
	next    uint32
	streams map[uint32]*clientStream
	err     error
	done    chan struct{}
	observe func(controlwire.Frame)
}

type clientStream struct {
	j    controlwire.Joiner
	head chan *controlv1.ChannelResponseHead
	body *controlwire.Queue
	fail chan error
	got  bool
}

// DialWebRTC opens a session: it makes an offer, sends it with sig (a
// signaling client that carries the caller's credential: that credential
// is the session's identity) and waits for the data channel to open.
// iceServers are STUN/TURN URLs; none are needed on a LAN.
func DialWebRTC(ctx context.Context, sig controlv1connect.SignalingServiceClient, iceServers []string) (*RTCClient, error) {
	return DialWebRTCWith(ctx, sig, iceServers, nil)
}

// DialWebRTCWith is DialWebRTC with pion's settings adjusted by settings
// (nil for the defaults), such as LoopbackICE.
func DialWebRTCWith(ctx context.Context, sig controlv1connect.SignalingServiceClient, ice []string, settings func(*webrtc.SettingEngine)) (*RTCClient, error) {
	var se webrtc.SettingEngine
	if settings != nil {
		settings(&se)
	}
	pc, err := webrtc.NewAPI(webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{ICEServers: controlwire.ICEServers(ice)})
	if err != nil {
		return nil, fmt.Errorf("create peer connection: %w", err)
	}
	c := &RTCClient{pc: pc, next: 1, streams: map[uint32]*clientStream{}, done: make(chan struct{})}
	fail := func(what string, err error) (*RTCClient, error) {
		_ = pc.Close()
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	dc, err := pc.CreateDataChannel(controlwire.ChannelLabel, nil)
	if err != nil {
		return fail("create data channel", err)
	}
	c.ch = controlwire.NewConn(dc)
	opened := make(chan struct{})
	dc.OnOpen(func() { close(opened) })
	dc.OnClose(func() { c.shutdown(controlwire.ErrChannelClosed) })
	dc.OnMessage(func(m webrtc.DataChannelMessage) { c.onFrame(m.Data) })
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return fail("create offer", err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		return fail("set offer", err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return fail("gather ICE candidates", ctx.Err())
	}
	resp, err := sig.Offer(ctx, connect.NewRequest(&controlv1.OfferRequest{Sdp: pc.LocalDescription().SDP}))
	if err != nil {
		return fail("signal", err)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: resp.Msg.GetSdp()}); err != nil {
		return fail("set answer", err)
	}
	select {
	case <-opened:
	case <-ctx.Done():
		return fail("open data channel", ctx.Err())
	}
	return c, nil
}

// HTTPClient returns an http.Client whose requests go over the channel;
// use it with RTCBaseURL.
func (c *RTCClient) HTTPClient() *http.Client { return &http.Client{Transport: c} }

// Close ends the session.
func (c *RTCClient) Close() error {
	c.shutdown(controlwire.ErrChannelClosed)
	return c.pc.Close()
}

// Conn is the session's frame connection, for tools that exercise a part's
// handling of the protocol itself; frames sent on it interleave with the
// client's own calls, so a stream id must be one RoundTrip never uses
// (RoundTrip uses odd ids counting up from 1).
func (c *RTCClient) Conn() *controlwire.Conn { return c.ch }

// Observe makes f see every well-formed frame the part sends, before the
// client handles it (f runs with the client's lock held and must not call
// back into it). For protocol tools and tests.
func (c *RTCClient) Observe(f func(controlwire.Frame)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.observe = f
}

// Done is closed when the session ended (closed by either side).
func (c *RTCClient) Done() <-chan struct{} { return c.done }

func (c *RTCClient) shutdown(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
		close(c.done)
	}
	streams := c.streams
	c.streams = map[uint32]*clientStream{}
	c.mu.Unlock()
	c.ch.Close()
	for _, st := range streams {
		st.abort(err)
	}
}

func (st *clientStream) abort(err error) {
	select {
	case st.fail <- err:
	default:
	}
	if st.body != nil {
		st.body.Finish(err)
	}
}

// RoundTrip sends req on a new stream and returns the response once its
// head arrived; the body streams as it comes.
func (c *RTCClient) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	head, err := proto.Marshal(&controlv1.ChannelRequestHead{Method: req.Method, Path: req.URL.RequestURI(), Headers: controlwire.HeadersOf(req.Header)})
	if err != nil {
		return nil, fmt.Errorf("encode request head: %w", err)
	}
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return nil, c.err
	}
	id := c.next
	c.next += 2
	st := &clientStream{head: make(chan *controlv1.ChannelResponseHead, 1), fail: make(chan error, 1), body: controlwire.NewQueue(ctx.Done())}
	c.streams[id] = st
	c.mu.Unlock()
	done := func(err error) (*http.Response, error) {
		c.mu.Lock()
		delete(c.streams, id)
		c.mu.Unlock()
		_ = c.ch.SendError(id, "cancelled")
		return nil, err
	}
	if err := c.ch.SendMessage(id, head, false); err != nil {
		return done(err)
	}
	body := req.Body
	if body == nil {
		body = http.NoBody
	}
	err = controlwire.CopyBody(c.ch, id, body)
	body.Close()
	if err != nil {
		return done(fmt.Errorf("send request body: %w", err))
	}
	select {
	case h := <-st.head:
		return &http.Response{
			Status:     http.StatusText(int(h.GetStatus())),
			StatusCode: int(h.GetStatus()),
			Proto:      "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header:        controlwire.HeaderOf(h.GetHeaders()),
			Body:          &streamBody{q: st.body, c: c, id: id},
			ContentLength: -1,
			Request:       req,
		}, nil
	case err := <-st.fail:
		return done(err)
	case <-ctx.Done():
		return done(ctx.Err())
	}
}

// streamBody is a response body; closing it early cancels the stream.
type streamBody struct {
	q    *controlwire.Queue
	c    *RTCClient
	id   uint32
	once sync.Once
}

func (b *streamBody) Read(p []byte) (int, error) { return b.q.Read(p) }

func (b *streamBody) Close() error {
	b.once.Do(func() {
		b.c.mu.Lock()
		_, live := b.c.streams[b.id]
		delete(b.c.streams, b.id)
		b.c.mu.Unlock()
		if live {
			_ = b.c.ch.SendError(b.id, "cancelled")
		}
		b.q.Finish(io.EOF)
	})
	return nil
}

func (c *RTCClient) onFrame(b []byte) {
	f, err := controlwire.DecodeFrame(b)
	if err != nil {
		c.shutdown(fmt.Errorf("part sent a bad frame: %w", err))
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.observe != nil {
		c.observe(f)
	}
	st := c.streams[f.Stream]
	if st == nil {
		return // a stream this side already gave up
	}
	if f.Flags&controlwire.FlagError != 0 {
		delete(c.streams, f.Stream)
		st.abort(fmt.Errorf("part aborted the call: %s", f.Payload))
		return
	}
	msg, done, err := st.j.Add(f)
	if err != nil {
		delete(c.streams, f.Stream)
		st.abort(err)
		return
	}
	if done {
		if !st.got {
			var h controlv1.ChannelResponseHead
			if err := proto.Unmarshal(msg, &h); err != nil {
				delete(c.streams, f.Stream)
				st.abort(fmt.Errorf("response head: %w", err))
				return
			}
			st.got = true
			st.head <- &h
		} else if !st.body.Push(msg) {
			delete(c.streams, f.Stream)
			st.abort(errors.New("response body over the limit"))
			return
		}
	}
	if f.Flags&controlwire.FlagEnd != 0 {
		delete(c.streams, f.Stream)
		st.body.Finish(io.EOF)
	}
}
