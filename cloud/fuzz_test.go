package cloud

import (
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

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

// FuzzVerifyAlert feeds a webhook receiver's check arbitrary signature
// headers and bodies: it never panics, and it accepts only what SignAlert
// made with the same key, body and a time within the skew.
func FuzzVerifyAlert(f *testing.F) {
	key := []byte("0123456789abcdef0123456789abcdef")
	now := time.Unix(1_800_000_000, 0)
	good := SignAlert(key, now, []byte(`{"id":"x"}`))
	for _, h := range []string{good, "", "t=", "v1=", "t=1,v1=zz", "t=-1,v1=" + strings.Repeat("0", 64), good + ",v1=00", "t=01800000000,v1=ab", strings.Repeat("t=1,", 300)} {
		f.Add(h, []byte(`{"id":"x"}`))
	}
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		if VerifyAlert(key, header, body, now, 5*time.Minute) != nil {
			return
		}
		if VerifyAlert([]byte("another key, same length........"), header, body, now, 5*time.Minute) == nil {
			t.Fatalf("header %q verifies under two keys", header)
		}
	})
}

// FuzzWebhookURL feeds the webhook URL check arbitrary strings: it never
// panics, and what it accepts is an https URL with a host, or http to
// loopback when that is allowed.
func FuzzWebhookURL(f *testing.F) {
	for _, s := range []string{"https://hooks.example.com/x", "http://127.0.0.1:8080/", "http://[::1]/", "https://169.254.169.254/", "file:///etc/passwd", "https://u:p@h/", "https://h:99999/", "https://[fe80::1%25eth0]/", "javascript:alert(1)", "HTTPS://H/"} {
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, raw string, lab bool) {
		if validateWebhookURL(raw, AlertOptions{AllowLoopbackHTTP: lab}) != nil {
			return
		}
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" || u.User != nil {
			t.Fatalf("accepted %q", raw)
		}
		if u.Scheme != "https" && !(lab && u.Scheme == "http") {
			t.Fatalf("accepted %q with scheme %q (lab %v)", raw, u.Scheme, lab)
		}
	})
}
