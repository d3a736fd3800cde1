package control

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	"github.com/outpost-robotics/outpost/config"
	"github.com/outpost-robotics/outpost/credential"
)

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
