package control

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"

	"github.com/pion/webrtc/v4"

	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
)

// ChannelLabel is the label of the control data channel.
const ChannelLabel = "outpost-control"

// Send-side flow control: above sendHigh bytes queued in the channel a
// sender waits until it drains to sendLow, so one log stream cannot make the
// daemon buffer without bound.
const (
	sendHigh = 1 << 20
	sendLow  = 256 << 10
	// maxQueued bounds what one stream's receiver holds unread; a peer that
	// sends more is aborted (it ignored the protocol's one-message-at-a-time use).
	maxQueued = maxJoined
	// maxStreams bounds concurrent calls on one channel.
	maxStreams = 32
	// sessionBudget bounds what one session holds received but not yet
	// handled, across its streams (partial messages and unread bodies), so
	// a peer cannot make the daemon hold streams × maxJoined.
	sessionBudget = 16 << 20
)

var errChannelClosed = errors.New("data channel closed")

// chanConn sends frames on a data channel with flow control.
type chanConn struct {
	dc     *webrtc.DataChannel
	mu     sync.Mutex // one frame at a time
	low    chan struct{}
	closed chan struct{}
	once   sync.Once
}

func newChanConn(dc *webrtc.DataChannel) *chanConn {
	c := &chanConn{dc: dc, low: make(chan struct{}, 1), closed: make(chan struct{})}
	dc.SetBufferedAmountLowThreshold(sendLow)
	dc.OnBufferedAmountLow(func() {
		select {
		case c.low <- struct{}{}:
		default:
		}
	})
	return c
}

func (c *chanConn) close() {
	c.once.Do(func() { close(c.closed) })
}

// sendFrame sends one encoded frame, waiting while the channel is full.
func (c *chanConn) sendFrame(b []byte) error {
	for c.dc.BufferedAmount() > sendHigh {
		select {
		case <-c.low:
		case <-c.closed:
			return errChannelClosed
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.closed:
		return errChannelClosed
	default:
	}
	if err := c.dc.Send(b); err != nil {
		return errors.Join(errChannelClosed, err)
	}
	return nil
}

func (c *chanConn) sendMessage(stream uint32, msg []byte, end bool) error {
	return splitMessage(stream, msg, end, c.sendFrame)
}

func (c *chanConn) sendError(stream uint32, msg string) error {
	p := []byte(msg)
	if len(p) > maxPayload {
		p = p[:maxPayload]
	}
	return c.sendFrame(appendFrame(nil, frame{stream: stream, flags: flagFirst | flagLast | flagEnd | flagError, payload: p}))
}

// msgQueue is one stream's received body: messages are queued as they
// arrive and read as a byte stream.
type msgQueue struct {
	mu     sync.Mutex
	bufs   [][]byte
	size   int
	err    error // io.EOF once the stream ended
	notify chan struct{}
	done   <-chan struct{} // the reader's context
}

func newMsgQueue(done <-chan struct{}) *msgQueue {
	return &msgQueue{notify: make(chan struct{}, 1), done: done}
}

func (q *msgQueue) signal() {
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

// push queues a message; false when the stream's unread bytes are over maxQueued.
func (q *msgQueue) push(b []byte) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err != nil {
		return true
	}
	if q.size+len(b) > maxQueued {
		return false
	}
	if len(b) > 0 {
		q.bufs = append(q.bufs, b)
		q.size += len(b)
	}
	q.signal()
	return true
}

// finish ends the stream with err (io.EOF for a clean end).
func (q *msgQueue) finish(err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err == nil {
		q.err = err
	}
	q.signal()
}

func (q *msgQueue) Read(p []byte) (int, error) {
	for {
		q.mu.Lock()
		if len(q.bufs) > 0 {
			n := copy(p, q.bufs[0])
			q.bufs[0] = q.bufs[0][n:]
			if len(q.bufs[0]) == 0 {
				q.bufs[0] = nil
				q.bufs = q.bufs[1:]
			}
			q.size -= n
			q.mu.Unlock()
			return n, nil
		}
		err := q.err
		q.mu.Unlock()
		if err != nil {
			return 0, err
		}
		select {
		case <-q.notify:
		case <-q.done:
			return 0, context.Canceled
		}
	}
}

// queued returns the unread bytes.
func (q *msgQueue) queued() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.size
}

func (q *msgQueue) Close() error {
	q.finish(context.Canceled)
	return nil
}

// headersOf and headerOf convert between http.Header and the channel's.
func headersOf(h http.Header) []*controlv1.ChannelHeader {
	out := make([]*controlv1.ChannelHeader, 0, len(h))
	for k, v := range h {
		out = append(out, &controlv1.ChannelHeader{Name: k, Values: v})
	}
	return out
}

func headerOf(hs []*controlv1.ChannelHeader) http.Header {
	h := make(http.Header, len(hs))
	for _, e := range hs {
		for _, v := range e.GetValues() {
			h.Add(e.GetName(), v)
		}
	}
	return h
}

// copyBody sends r as messages on stream, ending the stream.
func copyBody(c *chanConn, stream uint32, r io.Reader) error {
	buf := make([]byte, maxPayload)
	for {
		n, err := io.ReadFull(r, buf)
		end := err == io.EOF || err == io.ErrUnexpectedEOF
		if err != nil && !end {
			return err
		}
		if n > 0 || end {
			if serr := c.sendMessage(stream, buf[:n], end); serr != nil {
				return serr
			}
		}
		if end {
			return nil
		}
	}
}
