package controlwire

import (
	"bytes"
	"errors"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, MaxPayload - 1, MaxPayload, MaxPayload + 1, 64 << 10, 300 << 10} {
		msg := make([]byte, n)
		for i := range msg {
			msg[i] = byte(i)
		}
		var frames [][]byte
		if err := SplitMessage(7, msg, true, func(b []byte) error { frames = append(frames, b); return nil }); err != nil {
			t.Fatal(err)
		}
		if want := max(1, (n+MaxPayload-1)/MaxPayload); len(frames) != want {
			t.Fatalf("%d bytes: %d frames, want %d", n, len(frames), want)
		}
		var j Joiner
		for i, b := range frames {
			if len(b) > MaxFrame {
				t.Fatalf("frame of %d bytes", len(b))
			}
			f, err := DecodeFrame(b)
			if err != nil {
				t.Fatal(err)
			}
			got, done, err := j.Add(f)
			if err != nil {
				t.Fatal(err)
			}
			last := i == len(frames)-1
			if done != last || (f.Flags&FlagEnd != 0) != last {
				t.Fatalf("frame %d of %d: done %v, flags %#x", i, len(frames), done, f.Flags)
			}
			if done && !bytes.Equal(got, msg) {
				t.Fatalf("%d bytes joined wrong", n)
			}
		}
	}
}

func FuzzDecodeFrame(f *testing.F) {
	f.Add(AppendFrame(nil, Frame{Stream: 1, Flags: FlagFirst | FlagLast, Payload: []byte("hi")}))
	f.Add([]byte{0, 0, 0, 1, 0xff, 0, 0, 0, 0})
	f.Add([]byte{0, 0, 0, 1, 1, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := DecodeFrame(b)
		if err != nil {
			if !errors.Is(err, ErrBadFrame) {
				t.Fatalf("error %v does not wrap ErrBadFrame", err)
			}
			return
		}
		if again := AppendFrame(nil, fr); !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs")
		}
	})
}

// FuzzJoiner feeds a sequence of frames (as a byte string cut at 0xFE
// markers) into one Joiner: it must never panic, and never return more
// than MaxJoined.
func FuzzJoiner(f *testing.F) {
	f.Add([]byte{FlagFirst, 'a', 0xfe, FlagLast | FlagEnd, 'b'})
	f.Add([]byte{FlagLast, 'x'})
	f.Fuzz(func(t *testing.T, b []byte) {
		var j Joiner
		for _, part := range bytes.Split(b, []byte{0xfe}) {
			if len(part) == 0 {
				continue
			}
			msg, done, err := j.Add(Frame{Stream: 1, Flags: part[0] & FlagsKnown, Payload: part[1:]})
			if err != nil {
				j = Joiner{}
				continue
			}
			if done && len(msg) > MaxJoined {
				t.Fatal("joined past the limit")
			}
		}
	})
}

// A message Add returns is not written by later frames: the receivers
// queue it without a copy.
func TestJoinedMessageIsTheCallers(t *testing.T) {
	var j Joiner
	msg, done, err := j.Add(Frame{Stream: 1, Flags: FlagFirst | FlagLast, Payload: []byte("first")})
	if err != nil || !done {
		t.Fatalf("Add = %q, %v, %v", msg, done, err)
	}
	for _, p := range []string{"secon", "d"} {
		flags := uint8(FlagFirst)
		if p == "d" {
			flags = FlagLast
		}
		if _, _, err := j.Add(Frame{Stream: 1, Flags: flags, Payload: []byte(p)}); err != nil {
			t.Fatal(err)
		}
	}
	if string(msg) != "first" {
		t.Errorf("the first message became %q", msg)
	}
}
