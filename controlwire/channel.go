package controlwire

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"sync"

	"github.com/pion/webrtc/v4"

	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
)

// Send-side flow control: above sendHigh bytes queued in the channel a
// sender waits until it drains to sendLow, so one log stream cannot make the
// daemon buffer without bound.
const (
	sendHigh = 1 << 20
	sendLow  = 256 << 10
	// maxQueued bounds what one stream's receiver holds unread; a peer that
	// sends more is aborted (it ignored the protocol's one-message-at-a-time use).
	maxQueued = MaxJoined
)

// ErrChannelClosed is the error of a send on a closed channel.
var ErrChannelClosed = errors.New("data channel closed")

// Conn sends frames on a data channel with flow control.
type Conn struct {
	dc     *webrtc.DataChannel
	mu     sync.Mutex // one frame at a time
	low    chan struct{}
	closed chan struct{}
	once   sync.Once
	// buf is where SendMessage encodes a frame, reused: pion copies what
	// Send is given into its SCTP chunks before Send returns, so one buffer
	// serves every frame instead of an allocation each. It grows to the
	// largest frame sent, at most MaxFrame.
	buf []byte
}

// NewConn wraps dc, which must not be used to send otherwise.
func NewConn(dc *webrtc.DataChannel) *Conn {
	c := &Conn{dc: dc, low: make(chan struct{}, 1), closed: make(chan struct{})}
	dc.SetBufferedAmountLowThreshold(sendLow)
	dc.OnBufferedAmountLow(func() {
		select {
		case c.low <- struct{}{}:
		default:
		}
	})
	return c
}

// Close makes every later send fail with ErrChannelClosed and wakes a
// sender waiting for the channel to drain.
func (c *Conn) Close() {
	c.once.Do(func() { close(c.closed) })
}

// SendFrame sends one encoded frame, waiting while the channel is full.
func (c *Conn) SendFrame(b []byte) error {
	return c.send(func() []byte { return b })
}

// send sends the frame encode returns, waiting while the channel is full;
// encode runs under c.mu, so it may use c.buf.
func (c *Conn) send(encode func() []byte) error {
	for c.dc.BufferedAmount() > sendHigh {
		select {
		case <-c.low:
		case <-c.closed:
			return ErrChannelClosed
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.closed:
		return ErrChannelClosed
	default:
	}
	if err := c.dc.Send(encode()); err != nil {
		return errors.Join(ErrChannelClosed, err)
	}
	return nil
}

// SendMessage sends msg on stream as frames; end ends the stream.
func (c *Conn) SendMessage(stream uint32, msg []byte, end bool) error {
	return splitFrames(stream, msg, end, func(f Frame) error {
		return c.send(func() []byte {
			c.buf = AppendFrame(c.buf[:0], f)
			return c.buf
		})
	})
}

// SendError ends stream with msg as the reason.
func (c *Conn) SendError(stream uint32, msg string) error {
	p := []byte(msg)
	if len(p) > MaxPayload {
		p = p[:MaxPayload]
	}
	return c.SendFrame(AppendFrame(nil, Frame{Stream: stream, Flags: FlagFirst | FlagLast | FlagEnd | FlagError, Payload: p}))
}

// Queue is one stream's received body: messages are queued as they
// arrive and read as a byte stream.
type Queue struct {
	mu     sync.Mutex
	bufs   [][]byte
	size   int
	err    error // io.EOF once the stream ended
	notify chan struct{}
	done   <-chan struct{} // the reader's context
}

// NewQueue returns an empty queue whose reads give up when done is closed.
func NewQueue(done <-chan struct{}) *Queue {
	return &Queue{notify: make(chan struct{}, 1), done: done}
}

func (q *Queue) signal() {
	select {
	case q.notify <- struct{}{}:
	default:
	}
}

// Push queues a message; false when the stream's unread bytes would be
// over MaxJoined (the peer ignored the one-message-at-a-time protocol).
func (q *Queue) Push(b []byte) bool {
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

// Finish ends the stream with err (io.EOF for a clean end).
func (q *Queue) Finish(err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.err == nil {
		q.err = err
	}
	q.signal()
}

// Read reads the queued bytes, blocking until there are some, the stream
// finished or the reader's done channel closed.
func (q *Queue) Read(p []byte) (int, error) {
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

// Queued returns the unread bytes.
func (q *Queue) Queued() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.size
}

// Close ends the stream as cancelled.
func (q *Queue) Close() error {
	q.Finish(context.Canceled)
	return nil
}

// HeadersOf converts an http.Header to the channel's headers.
func HeadersOf(h http.Header) []*controlv1.ChannelHeader {
	// One allocation for every entry rather than one each: a call's head
	// carries about ten headers, each way.
	es := make([]controlv1.ChannelHeader, len(h))
	out := make([]*controlv1.ChannelHeader, 0, len(h))
	for k, v := range h {
		e := &es[len(out)]
		e.Name, e.Values = k, v
		out = append(out, e)
	}
	return out
}

// HeaderOf converts the channel's headers to an http.Header.
func HeaderOf(hs []*controlv1.ChannelHeader) http.Header {
	h := make(http.Header, len(hs))
	for _, e := range hs {
		vs := e.GetValues()
		if len(vs) == 0 {
			continue
		}
		k := http.CanonicalHeaderKey(e.GetName())
		if h[k] == nil {
			// The decoded message's own slice, clipped so that a value
			// added later is appended to a copy: the message is the
			// caller's to drop, not to reuse.
			h[k] = slices.Clip(vs)
			continue
		}
		h[k] = append(h[k], vs...)
	}
	return h
}

// CopyBody sends r as messages on stream, ending the stream.
func CopyBody(c *Conn, stream uint32, r io.Reader) error {
	// A call's body is mostly a few hundred bytes (a command): the buffer
	// starts small and grows to a frame's payload only for a body that
	// needs it, rather than clearing 16 KiB for every call.
	buf := make([]byte, 0, smallBody)
	for {
		// buf never holds more than MaxPayload: it is sent when full.
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(cap(buf), MaxPayload-len(buf)))
		}
		n, err := r.Read(buf[len(buf):min(cap(buf), MaxPayload)])
		buf = buf[:len(buf)+n]
		end := err == io.EOF
		if err != nil && !end {
			return err
		}
		if len(buf) == MaxPayload || end {
			if serr := c.SendMessage(stream, buf, end); serr != nil {
				return serr
			}
			buf = buf[:0]
		}
		if end {
			return nil
		}
	}
}

// smallBody is the size CopyBody's buffer starts at.
const smallBody = 512
