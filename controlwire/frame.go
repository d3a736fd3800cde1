package controlwire

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Frame flags of the data channel protocol (control.proto documents it).
const (
	// FlagFirst marks a message's first frame.
	FlagFirst = 1 << iota
	// FlagLast marks a message's last frame.
	FlagLast
	// FlagEnd marks the stream's last message.
	FlagEnd
	// FlagError ends the stream with the payload as the reason.
	FlagError
	// FlagsKnown are all the flags this version knows.
	FlagsKnown = FlagFirst | FlagLast | FlagEnd | FlagError
)

const (
	// FrameHeader is a frame's header size: stream, flags, length.
	FrameHeader = 9
	// MaxFrame is the largest channel message: 16 KiB, what every WebRTC
	// stack accepts (pion's OnMessage reads at most 64 KiB - 1, browsers
	// interoperate at 16 KiB).
	MaxFrame = 16 << 10
	// MaxPayload is a frame's payload limit.
	MaxPayload = MaxFrame - FrameHeader
	// MaxJoined bounds a reassembled message: the largest connect message
	// plus room for its envelope and headers.
	MaxJoined = MaxMessageBytes + 64<<10
	// MaxMessageBytes bounds one request or response message on every
	// transport of the control plane.
	MaxMessageBytes = 4 << 20
)

// ErrBadFrame is wrapped by every error about a frame that breaks the protocol.
var ErrBadFrame = errors.New("bad frame")

// Frame is one data channel message.
type Frame struct {
	// Stream is the call the frame belongs to; never 0.
	Stream uint32
	// Flags are Flag* bits.
	Flags uint8
	// Payload is the frame's share of a message.
	Payload []byte
}

// AppendFrame encodes f onto b.
func AppendFrame(b []byte, f Frame) []byte {
	b = binary.BigEndian.AppendUint32(b, f.Stream)
	b = append(b, f.Flags)
	b = binary.BigEndian.AppendUint32(b, uint32(len(f.Payload)))
	return append(b, f.Payload...)
}

// DecodeFrame reads one frame; the payload aliases b.
func DecodeFrame(b []byte) (Frame, error) {
	if len(b) < FrameHeader {
		return Frame{}, fmt.Errorf("frame of %d bytes is shorter than its %d-byte header: %w", len(b), FrameHeader, ErrBadFrame)
	}
	if len(b) > MaxFrame {
		return Frame{}, fmt.Errorf("frame of %d bytes is over the %d-byte limit: %w", len(b), MaxFrame, ErrBadFrame)
	}
	f := Frame{Stream: binary.BigEndian.Uint32(b), Flags: b[4]}
	n := binary.BigEndian.Uint32(b[5:])
	if int64(n) != int64(len(b)-FrameHeader) {
		return Frame{}, fmt.Errorf("frame says %d payload bytes, carries %d: %w", n, len(b)-FrameHeader, ErrBadFrame)
	}
	if f.Flags&^FlagsKnown != 0 {
		return Frame{}, fmt.Errorf("frame has unknown flags %#x: %w", f.Flags, ErrBadFrame)
	}
	if f.Stream == 0 {
		return Frame{}, fmt.Errorf("frame on stream 0: %w", ErrBadFrame)
	}
	f.Payload = b[FrameHeader:]
	return f, nil
}

// SplitMessage encodes msg as frames of at most MaxFrame bytes, the last
// carrying FlagEnd when end is set. An empty message is one frame. Each
// frame emit gets is its own.
func SplitMessage(stream uint32, msg []byte, end bool, emit func([]byte) error) error {
	return splitFrames(stream, msg, end, func(f Frame) error {
		return emit(AppendFrame(make([]byte, 0, FrameHeader+len(f.Payload)), f))
	})
}

// splitFrames cuts msg into the frames SplitMessage encodes; their payloads
// alias msg.
func splitFrames(stream uint32, msg []byte, end bool, emit func(Frame) error) error {
	first := true
	for {
		n := min(len(msg), MaxPayload)
		f := Frame{Stream: stream, Payload: msg[:n]}
		if first {
			f.Flags |= FlagFirst
		}
		msg = msg[n:]
		if len(msg) == 0 {
			f.Flags |= FlagLast
			if end {
				f.Flags |= FlagEnd
			}
		}
		if err := emit(f); err != nil {
			return err
		}
		if len(msg) == 0 {
			return nil
		}
		first = false
	}
}

// Joiner reassembles one stream's messages from frames.
type Joiner struct {
	buf    []byte
	inside bool // between a first and a last frame
}

// Pending returns the bytes of a message begun and not yet complete.
func (j *Joiner) Pending() int { return len(j.buf) }

// Add takes a frame's payload and flags; it returns a whole message when
// the frame completed one. The message is the caller's: the Joiner keeps
// no reference to it, so it may be queued without a copy.
func (j *Joiner) Add(f Frame) (msg []byte, done bool, err error) {
	if f.Flags&FlagFirst != 0 {
		if j.inside {
			return nil, false, fmt.Errorf("stream %d: a message starts before the previous one ended: %w", f.Stream, ErrBadFrame)
		}
		j.inside, j.buf = true, j.buf[:0]
	} else if !j.inside {
		return nil, false, fmt.Errorf("stream %d: a continuation frame with no message started: %w", f.Stream, ErrBadFrame)
	}
	if len(j.buf)+len(f.Payload) > MaxJoined {
		return nil, false, fmt.Errorf("stream %d: message over %d bytes: %w", f.Stream, MaxJoined, ErrBadFrame)
	}
	j.buf = append(j.buf, f.Payload...)
	if f.Flags&FlagLast == 0 {
		return nil, false, nil
	}
	j.inside = false
	msg = j.buf
	j.buf = nil
	return msg, true, nil
}
