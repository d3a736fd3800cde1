package control

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	"github.com/outpost-robotics/outpost/config"
	"github.com/outpost-robotics/outpost/credential"
)

func TestFrameRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, maxPayload - 1, maxPayload, maxPayload + 1, 64 << 10, 300 << 10} {
		msg := make([]byte, n)
		for i := range msg {
			msg[i] = byte(i)
		}
		var frames [][]byte
		if err := splitMessage(7, msg, true, func(b []byte) error { frames = append(frames, b); return nil }); err != nil {
			t.Fatal(err)
		}
		if want := max(1, (n+maxPayload-1)/maxPayload); len(frames) != want {
			t.Fatalf("%d bytes: %d frames, want %d", n, len(frames), want)
		}
		var j joiner
		for i, b := range frames {
			if len(b) > maxFrame {
				t.Fatalf("frame of %d bytes", len(b))
			}
			f, err := decodeFrame(b)
			if err != nil {
				t.Fatal(err)
			}
			got, done, err := j.add(f)
			if err != nil {
				t.Fatal(err)
			}
			last := i == len(frames)-1
			if done != last || (f.flags&flagEnd != 0) != last {
				t.Fatalf("frame %d of %d: done %v, flags %#x", i, len(frames), done, f.flags)
			}
			if done && !bytes.Equal(got, msg) {
				t.Fatalf("%d bytes joined wrong", n)
			}
		}
	}
}

func FuzzDecodeFrame(f *testing.F) {
	f.Add(appendFrame(nil, frame{stream: 1, flags: flagFirst | flagLast, payload: []byte("hi")}))
	f.Add([]byte{0, 0, 0, 1, 0xff, 0, 0, 0, 0})
	f.Add([]byte{0, 0, 0, 1, 1, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := decodeFrame(b)
		if err != nil {
			if !errors.Is(err, errBadFrame) {
				t.Fatalf("error %v does not wrap errBadFrame", err)
			}
			return
		}
		if again := appendFrame(nil, fr); !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs")
		}
	})
}

// FuzzJoiner feeds a sequence of frames (as a byte string cut at 0xFE
// markers) into one joiner: it must never panic, and never return more
// than maxJoined.
func FuzzJoiner(f *testing.F) {
	f.Add([]byte{flagFirst, 'a', 0xfe, flagLast | flagEnd, 'b'})
	f.Add([]byte{flagLast, 'x'})
	f.Fuzz(func(t *testing.T, b []byte) {
		var j joiner
		for _, part := range bytes.Split(b, []byte{0xfe}) {
			if len(part) == 0 {
				continue
			}
			msg, done, err := j.add(frame{stream: 1, flags: part[0] & flagsKnown, payload: part[1:]})
			if err != nil {
				j = joiner{}
				continue
			}
			if done && len(msg) > maxJoined {
				t.Fatal("joined past the limit")
			}
		}
	})
}

func FuzzValidateOffer(f *testing.F) {
	f.Add(validLookingOffer)
	f.Add("garbage")
	f.Add("v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n")
	f.Fuzz(func(t *testing.T, s string) {
		_ = validateOffer(s)
	})
}

func FuzzRequestHead(f *testing.F) {
	good, _ := proto.Marshal(&controlv1.ChannelRequestHead{Method: "POST", Path: "/outpost.control.v1.ControlService/Status",
		Headers: []*controlv1.ChannelHeader{{Name: "Content-Type", Values: []string{"application/proto"}}}})
	f.Add(good)
	f.Add([]byte{0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		var h controlv1.ChannelRequestHead
		if proto.Unmarshal(b, &h) != nil {
			return
		}
		req, err := requestOf(&h)
		if err != nil {
			return
		}
		if req.Header.Get("Authorization") != "" || req.Header.Get(credential.ProofHeader) != "" {
			t.Fatal("a channel request kept a credential header")
		}
	})
}

// FuzzValidTagEdit: tag edits are outside input; whatever validTagEdit
// accepts is within the cloud's bounds, and it never panics.
func FuzzValidTagEdit(f *testing.F) {
	f.Add(uint64(1), "reviewed", "", 1)
	f.Add(uint64(0), "", "a,b", 2000)
	f.Add(uint64(7), "\x00", "é", 3)
	f.Fuzz(func(t *testing.T, id uint64, add, remove string, n int) {
		m := &controlv1.TagCapturesRequest{}
		for i := range min(max(n, 0), 1100) {
			m.Ids = append(m.Ids, id+uint64(i))
		}
		if add != "" {
			m.Add = strings.Split(add, "|")
		}
		if remove != "" {
			m.Remove = strings.Split(remove, "|")
		}
		if validTagEdit(m) != nil {
			return
		}
		if len(m.Ids) == 0 || len(m.Ids) > maxCapturesPerEdit || slices.Contains(m.Ids, 0) {
			t.Fatalf("accepted ids %d..(%d)", id, len(m.Ids))
		}
		for _, tag := range append(m.Add, m.Remove...) {
			if tag == "" || len(tag) > config.MaxEditTagLen || !utf8.ValidString(tag) || strings.Contains(tag, ",") {
				t.Fatalf("accepted tag %q", tag)
			}
		}
	})
}
