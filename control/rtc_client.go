package control

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"

	"connectrpc.com/connect"
	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
	"google.golang.org/protobuf/proto"

	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/control/v1/controlv1connect"
)

// RTCBaseURL is the base URL for connect clients using an RTCClient's
// HTTPClient; the host is never dialled.
const RTCBaseURL = "http://webrtc"

// RTCClient is a client's end of a WebRTC session with a part: connect
// clients built on its HTTPClient reach the part's handler over the data
// channel.
type RTCClient struct {
	pc *webrtc.PeerConnection
	ch *chanConn

	mu      sync.Mutex
	next    uint32
	streams map[uint32]*clientStream
	err     error
	done    chan struct{}
}

type clientStream struct {
	j    joiner
	head chan *controlv1.ChannelResponseHead
	body *msgQueue
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
	pc, err := webrtc.NewAPI(webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{ICEServers: iceServers(ice)})
	if err != nil {
		return nil, fmt.Errorf("create peer connection: %w", err)
	}
	c := &RTCClient{pc: pc, next: 1, streams: map[uint32]*clientStream{}, done: make(chan struct{})}
	fail := func(what string, err error) (*RTCClient, error) {
		_ = pc.Close()
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	dc, err := pc.CreateDataChannel(ChannelLabel, nil)
	if err != nil {
		return fail("create data channel", err)
	}
	c.ch = newChanConn(dc)
	opened := make(chan struct{})
	dc.OnOpen(func() { close(opened) })
	dc.OnClose(func() { c.shutdown(errChannelClosed) })
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
	c.shutdown(errChannelClosed)
	return c.pc.Close()
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
	c.ch.close()
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
		st.body.finish(err)
	}
}

// RoundTrip sends req on a new stream and returns the response once its
// head arrived; the body streams as it comes.
func (c *RTCClient) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	head, err := proto.Marshal(&controlv1.ChannelRequestHead{Method: req.Method, Path: req.URL.RequestURI(), Headers: headersOf(req.Header)})
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
	st := &clientStream{head: make(chan *controlv1.ChannelResponseHead, 1), fail: make(chan error, 1), body: newMsgQueue(ctx.Done())}
	c.streams[id] = st
	c.mu.Unlock()
	done := func(err error) (*http.Response, error) {
		c.mu.Lock()
		delete(c.streams, id)
		c.mu.Unlock()
		_ = c.ch.sendError(id, "cancelled")
		return nil, err
	}
	if err := c.ch.sendMessage(id, head, false); err != nil {
		return done(err)
	}
	body := req.Body
	if body == nil {
		body = http.NoBody
	}
	err = copyBody(c.ch, id, body)
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
			Header:        headerOf(h.GetHeaders()),
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
	q    *msgQueue
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
			_ = b.c.ch.sendError(b.id, "cancelled")
		}
		b.q.finish(io.EOF)
	})
	return nil
}

func (c *RTCClient) onFrame(b []byte) {
	f, err := decodeFrame(b)
	if err != nil {
		c.shutdown(fmt.Errorf("part sent a bad frame: %w", err))
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.streams[f.stream]
	if st == nil {
		return // a stream this side already gave up
	}
	if f.flags&flagError != 0 {
		delete(c.streams, f.stream)
		st.abort(fmt.Errorf("part aborted the call: %s", f.payload))
		return
	}
	msg, done, err := st.j.add(f)
	if err != nil {
		delete(c.streams, f.stream)
		st.abort(err)
		return
	}
	if done {
		if !st.got {
			var h controlv1.ChannelResponseHead
			if err := proto.Unmarshal(msg, &h); err != nil {
				delete(c.streams, f.stream)
				st.abort(fmt.Errorf("response head: %w", err))
				return
			}
			st.got = true
			st.head <- &h
		} else if !st.body.push(bytes.Clone(msg)) {
			delete(c.streams, f.stream)
			st.abort(errors.New("response body over the limit"))
			return
		}
	}
	if f.flags&flagEnd != 0 {
		delete(c.streams, f.stream)
		st.body.finish(io.EOF)
	}
}

// LoopbackICE confines ICE to the loopback interface over UDPv4, with no
// mDNS candidates: a session that never leaves this machine, for tests and
// for a client running on the part itself.
func LoopbackICE(se *webrtc.SettingEngine) {
	se.SetIncludeLoopbackCandidate(true)
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
}
