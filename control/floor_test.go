package control

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"connectrpc.com/connect"
	"github.com/pion/webrtc/v4"
	"google.golang.org/protobuf/types/known/structpb"

	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/control/v1/controlv1connect"
	"github.com/outpost-robotics/outpost/controlwire"
)

// BenchmarkTransportFloor is what the libraries under a control call cost
// with none of the part's code: the same clients and loads as
// BenchmarkControlRPC, against
//
//   - h2: net/http's HTTP/2 server over TLS, a handler that reads the
//     request body and answers a gRPC-shaped reply (headers, a 45-byte
//     message, a trailer), as a unary gRPC call's frames are;
//   - connect: connect-go's gRPC protocol on the same server, a
//     DoCommand handler that answers the command it is given, with the
//     part's handler options (no compression of small replies) and no
//     authentication, authorization or audit;
//   - datachannel: pion, 20 peer connections on loopback with one data
//     channel each, 100 callers sharing them (5 each), the part's side
//     answering each 60-byte message with 45 bytes.
//
// So the figures are a floor for BenchmarkControlRPC on this machine: a
// goal below the floor's latency cannot be met by any change in the part's
// code on these libraries.
func BenchmarkTransportFloor(b *testing.B) {
	cmd, _ := structpb.NewStruct(map[string]any{"move": 1})
	loads := []struct {
		name string
		load
	}{
		{"100clients", load{clients: 100}},
		{"100clients-50hz", load{clients: 100, hz: 50}},
		{"100clients-10hz", load{clients: 100, hz: 10}},
	}
	for _, l := range loads {
		b.Run("h2-"+l.name, func(b *testing.B) {
			srv := floorServer(b, http.HandlerFunc(grpcShapedReply))
			cs := floorClients(srv, l.clients)
			call := func(i int) error { return h2Call(cs[i], srv.URL) }
			warm(b, l.clients, call)
			drive(b, l.load, call)
		})
		b.Run("connect-"+l.name, func(b *testing.B) {
			_, h := controlv1connect.NewComponentServiceHandler(echoCommand{}, connect.WithCompressMinBytes(compressMinBytes))
			srv := floorServer(b, h)
			cs := make([]controlv1connect.ComponentServiceClient, l.clients)
			for i, hc := range floorClients(srv, l.clients) {
				cs[i] = controlv1connect.NewComponentServiceClient(hc, srv.URL, connect.WithGRPC())
			}
			call := func(i int) error {
				_, err := cs[i].DoCommand(context.Background(), connect.NewRequest(&controlv1.DoCommandRequest{Name: "arm", Command: cmd}))
				return err
			}
			warm(b, l.clients, call)
			drive(b, l.load, call)
		})
		b.Run("datachannel-"+l.name, func(b *testing.B) {
			sessions := make([]*echoSession, 20)
			for i := range sessions {
				sessions[i] = newEchoSession(b)
			}
			call := func(i int) error { return sessions[i%len(sessions)].call(i) }
			warm(b, l.clients, call)
			drive(b, l.load, call)
		})
	}
}

// floorServer serves h over TLS with HTTP/2 on loopback until b ends.
func floorServer(b *testing.B, h http.Handler) *httptest.Server {
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	b.Cleanup(srv.Close)
	return srv
}

// floorClients is n HTTP/2 clients of srv, each with its own connection, as
// separate laptops would have.
func floorClients(srv *httptest.Server, n int) []*http.Client {
	cs := make([]*http.Client, n)
	for i := range cs {
		tr := srv.Client().Transport.(*http.Transport).Clone()
		tr.ForceAttemptHTTP2 = true
		cs[i] = &http.Client{Transport: tr}
	}
	return cs
}

// grpcShapedReply reads the request and answers with what a unary gRPC
// reply is on the wire: headers, one length-prefixed message, trailers.
func grpcShapedReply(w http.ResponseWriter, r *http.Request) {
	if _, err := io.Copy(io.Discard, r.Body); err != nil {
		return
	}
	w.Header().Set("Content-Type", "application/grpc")
	_, _ = w.Write(make([]byte, 5+40))
	w.Header().Set(http.TrailerPrefix+"Grpc-Status", "0")
}

// h2Call posts a gRPC-shaped request to url and reads the whole reply.
func h2Call(c *http.Client, url string) error {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, url+"/floor", strings.NewReader(strings.Repeat("x", 5+60)))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/grpc")
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.Trailer.Get("Grpc-Status") != "0" {
		return errors.New("h2 floor: no grpc-status trailer")
	}
	return nil
}

// echoCommand answers DoCommand with the command it is given.
type echoCommand struct {
	controlv1connect.UnimplementedComponentServiceHandler
}

func (echoCommand) DoCommand(_ context.Context, req *connect.Request[controlv1.DoCommandRequest]) (*connect.Response[controlv1.DoCommandResponse], error) {
	return connect.NewResponse(&controlv1.DoCommandResponse{Result: req.Msg.GetCommand()}), nil
}

// echoSession is a pair of pion peers on loopback with one data channel,
// whose answering side replies to each message with 45 bytes carrying the
// caller's number from the message's first 4.
type echoSession struct {
	dc *webrtc.DataChannel
	mu sync.Mutex
	// replies holds each caller's channel for its answer.
	replies map[uint32]chan struct{}
}

func newEchoSession(b *testing.B) *echoSession {
	var se webrtc.SettingEngine
	controlwire.LoopbackICE(&se)
	api := webrtc.NewAPI(webrtc.WithSettingEngine(se))
	offerer, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		b.Fatal(err)
	}
	answerer, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = offerer.Close(); _ = answerer.Close() })
	s := &echoSession{replies: map[uint32]chan struct{}{}}
	answerer.OnDataChannel(func(dc *webrtc.DataChannel) {
		dc.OnMessage(func(m webrtc.DataChannelMessage) {
			reply := make([]byte, 45)
			copy(reply, m.Data[:4])
			_ = dc.Send(reply)
		})
	})
	s.dc, err = offerer.CreateDataChannel("floor", nil)
	if err != nil {
		b.Fatal(err)
	}
	opened := make(chan struct{})
	s.dc.OnOpen(func() { close(opened) })
	s.dc.OnMessage(func(m webrtc.DataChannelMessage) {
		s.mu.Lock()
		ch := s.replies[binary.BigEndian.Uint32(m.Data)]
		s.mu.Unlock()
		ch <- struct{}{}
	})
	signal := func(from, to *webrtc.PeerConnection, desc webrtc.SessionDescription) {
		gathered := webrtc.GatheringCompletePromise(from)
		if err := from.SetLocalDescription(desc); err != nil {
			b.Fatal(err)
		}
		<-gathered
		if err := to.SetRemoteDescription(*from.LocalDescription()); err != nil {
			b.Fatal(err)
		}
	}
	offer, err := offerer.CreateOffer(nil)
	if err != nil {
		b.Fatal(err)
	}
	signal(offerer, answerer, offer)
	answer, err := answerer.CreateAnswer(nil)
	if err != nil {
		b.Fatal(err)
	}
	signal(answerer, offerer, answer)
	<-opened
	return s
}

// call sends caller i's 60-byte message and waits for its answer.
func (s *echoSession) call(i int) error {
	s.mu.Lock()
	ch, ok := s.replies[uint32(i)]
	if !ok {
		ch = make(chan struct{}, 1)
		s.replies[uint32(i)] = ch
	}
	s.mu.Unlock()
	msg := make([]byte, 60)
	binary.BigEndian.PutUint32(msg, uint32(i))
	if err := s.dc.Send(msg); err != nil {
		return fmt.Errorf("data channel floor: send: %w", err)
	}
	<-ch
	return nil
}
