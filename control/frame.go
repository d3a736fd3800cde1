package control

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Frame flags of the data channel protocol (control.proto documents it).
const (
	flagFirst = 1 << iota
	flagLast
	flagEnd
	flagError
	flagsKnown = flagFirst | flagLast | flagEnd | flagError
)

const (
	frameHeader = 9
	// maxFrame is the largest channel message: 16 KiB, what every WebRTC
	// stack accepts (pion's OnMessage reads at most 64 KiB - 1, browsers
	// interoperate at 16 KiB).
	maxFrame = 16 << 10
	// maxPayload is a frame's payload limit.
	maxPayload = maxFrame - frameHeader
	// maxJoined bounds a reassembled message: the largest connect message
	// plus room for its envelope and headers.
	maxJoined = maxMessageBytes + 64<<10
)

var errBadFrame = errors.New("bad frame")

// frame is one data channel message.
type frame struct {
	stream  uint32
	flags   uint8
	payload []byte
}

// appendFrame encodes f onto b.
func appendFrame(b []byte, f frame) []byte {
	b = binary.BigEndian.AppendUint32(b, f.stream)
	b = append(b, f.flags)
	b = binary.BigEndian.AppendUint32(b, uint32(len(f.payload)))
	return append(b, f.payload...)
}

// decodeFrame reads one frame; the payload aliases b.
func decodeFrame(b []byte) (frame, error) {
	if len(b) < frameHeader {
		return frame{}, fmt.Errorf("frame of %d bytes is shorter than its %d-byte header: %w", len(b), frameHeader, errBadFrame)
	}
	if len(b) > maxFrame {
		return frame{}, fmt.Errorf("frame of %d bytes is over the %d-byte limit: %w", len(b), maxFrame, errBadFrame)
	}
	f := frame{stream: binary.BigEndian.Uint32(b), flags: b[4]}
	n := binary.BigEndian.Uint32(b[5:])
	if int64(n) != int64(len(b)-frameHeader) {
		return frame{}, fmt.Errorf("frame says %d payload bytes, carries %d: %w", n, len(b)-frameHeader, errBadFrame)
	}
	if f.flags&^flagsKnown != 0 {
		return frame{}, fmt.Errorf("frame has unknown flags %#x: %w", f.flags, errBadFrame)
	}
	if f.stream == 0 {
		return frame{}, fmt.Errorf("frame on stream 0: %w", errBadFrame)
	}
	f.payload = b[frameHeader:]
	return f, nil
}

// splitMessage encodes msg as frames of at most maxFrame bytes, the last
// carrying flagEnd when end is set. An empty message is one frame.
func splitMessage(stream uint32, msg []byte, end bool, emit func([]byte) error) error {
	first := true
	for {
		n := min(len(msg), maxPayload)
		f := frame{stream: stream, payload: msg[:n]}
		if first {
			f.flags |= flagFirst
		}
		msg = msg[n:]
		if len(msg) == 0 {
			f.flags |= flagLast
			if end {
				f.flags |= flagEnd
			}
		}
		if err := emit(appendFrame(make([]byte, 0, frameHeader+n), f)); err != nil {
			return err
		}
		if len(msg) == 0 {
			return nil
		}
		first = false
	}
}

// joiner reassembles one stream's messages from frames.
type joiner struct {
	buf    []byte
	inside bool // between a first and a last frame
}

// add takes a frame's payload and flags; it returns a whole message when
// the frame completed one.
func (j *joiner) add(f frame) (msg []byte, done bool, err error) {
	if f.flags&flagFirst != 0 {
		if j.inside {
			return nil, false, fmt.Errorf("stream %d: a message starts before the previous one ended: %w", f.stream, errBadFrame)
		}
		j.inside, j.buf = true, j.buf[:0]
	} else if !j.inside {
		return nil, false, fmt.Errorf("stream %d: a continuation frame with no message started: %w", f.stream, errBadFrame)
	}
	if len(j.buf)+len(f.payload) > maxJoined {
		return nil, false, fmt.Errorf("stream %d: message over %d bytes: %w", f.stream, maxJoined, errBadFrame)
	}
	j.buf = append(j.buf, f.payload...)
	if f.flags&flagLast == 0 {
		return nil, false, nil
	}
	j.inside = false
	msg = j.buf
	j.buf = nil
	return msg, true, nil
}
