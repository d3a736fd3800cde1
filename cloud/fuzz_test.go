package cloud

import (
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	"github.com/outpost-robotics/outpost/cloud/auth"
)

// FuzzPageToken feeds the data lists' page token, which callers send back,
// to its parser: it never panics, and what it accepts names a stream that
// exists and round-trips.
func FuzzPageToken(f *testing.F) {
	for _, s := range []string{"", "0:", "1:abc", "2:Zm9v", "-1:x", "01:x", "9999999999999999999999:x", ":", "0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, token string) {
		const streams = 3
		idx, cursor, err := parsePageToken(token, streams)
		if err != nil || token == "" {
			return
		}
		if idx < 0 || idx >= streams {
			t.Fatalf("accepted stream %d of %d", idx, streams)
		}
		if strconv.Itoa(idx)+":"+cursor != token {
			t.Fatalf("%q parsed as %d, %q", token, idx, cursor)
		}
	})
}

// FuzzMergeConfigs checks that merging never panics and that the machine's
// own config always wins: every component it names is in the result as it
// wrote it.
func FuzzMergeConfigs(f *testing.F) {
	f.Add([]byte{}, []byte{})
	f.Add([]byte("\x0a\x06\x0a\x04left"), []byte("\x0a\x08\x0a\x04left\x10\x01"))
	f.Fuzz(func(t *testing.T, frag, own []byte) {
		fc, err := decodeConfig(frag)
		if err != nil {
			return
		}
		oc, err := decodeConfig(own)
		if err != nil {
			return
		}
		m := mergeConfigs(fc, oc)
		last := map[string]*configv1.Component{} // a name repeated in one piece: the later wins
		for _, c := range oc.GetComponents() {
			last[c.GetName()] = c
		}
		for name, c := range last {
			found := false
			for _, got := range m.GetComponents() {
				found = found || got.GetName() == name && proto.Equal(got, c)
			}
			if !found {
				t.Fatalf("component %q of the machine is missing from the merge", name)
			}
		}
	})
}

// FuzzFleetPageToken feeds ListFleet's page token, which callers send
// back, to its check: it never panics, accepts nothing this cloud did not
// make for the query, and what it makes round-trips.
func FuzzFleetPageToken(f *testing.F) {
	signer, err := auth.NewSigner(auth.GenerateKey())
	if err != nil {
		f.Fatal(err)
	}
	s := &Server{signer: signer}
	query := []byte("user/u|org")
	f.Add("", "rover", "m1")
	f.Add(s.encodePageToken(query, "rover", "m1"), "", "")
	f.Add("AAAAAAAAAAAAAAAAAAAAAAA", "a\x00b", "")
	f.Fuzz(func(t *testing.T, token, name, id string) {
		if n, i, err := s.decodePageToken(query, token); err == nil && token != "" && s.encodePageToken(query, n, i) != token {
			t.Fatalf("accepted %q, which this cloud did not make", token)
		}
		if strings.IndexByte(name, 0) >= 0 || strings.IndexByte(id, 0) >= 0 {
			return
		}
		tok := s.encodePageToken(query, name, id)
		if len(tok) > maxPageToken {
			return
		}
		n, i, err := s.decodePageToken(query, tok)
		if err != nil || n != name || i != id {
			t.Fatalf("(%q, %q) came back as (%q, %q), %v", name, id, n, i, err)
		}
		if _, _, err := s.decodePageToken([]byte("user/other|org"), tok); err == nil {
			t.Fatal("a token was accepted for another query")
		}
	})
}
