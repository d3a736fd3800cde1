package web_test

import (
	"encoding/base64"
	"encoding/json"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	"github.com/outpost-robotics/outpost/controlwire"
	"github.com/outpost-robotics/outpost/web"
)

// respHeads are ChannelResponseHeads as the part sends them, and odd ones.
func respHeads() []*controlv1.ChannelResponseHead {
	return []*controlv1.ChannelResponseHead{
		{Status: 200, Headers: controlwire.HeadersOf(map[string][]string{"Content-Type": {"application/json"}})},
		{Status: 403, Headers: []*controlv1.ChannelHeader{{Name: "Outpost-Nonce", Values: []string{"n1", "n2"}}, {Name: "X-Empty"}}},
		{Status: 599},
		{Status: -1},
		{Status: 2147483647, Headers: []*controlv1.ChannelHeader{{Name: "ünïcödé", Values: []string{hostile, strings.Repeat("v", 300)}}}},
		{},
	}
}

type jsHead struct {
	Status  int32       `json:"status"`
	Headers [][2]string `json:"headers"`
	Err     string      `json:"err"`
}

// flatten lists a head's headers as the JS decoder does.
func flatten(h *controlv1.ChannelResponseHead) [][2]string {
	out := [][2]string{}
	for _, e := range h.GetHeaders() {
		for _, v := range e.GetValues() {
			out = append(out, [2]string{e.GetName(), v})
		}
	}
	return out
}

// TestWireAgreesWithGo: wire.js reads every ChannelResponseHead the Go code
// writes, and never accepts bytes Go's protobuf refuses or reads them
// differently: a differential test over the real heads, every truncation
// of them and seeded random mutations, in Chromium. Frames and request
// heads it writes decode in Go to what it was given.
func TestWireAgreesWithGo(t *testing.T) {
	e := newEnv(t, web.Config{App: web.AppFleet})
	tab := chromium.NewTab(t)
	tab.Navigate(e.url + "/")
	tab.WaitVisible("#signin")

	var inputs [][]byte
	var valid int
	for _, h := range respHeads() {
		b, err := proto.Marshal(h)
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, b)
		valid++
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, b := range slices.Clone(inputs) {
		for i := range b {
			inputs = append(inputs, b[:i])
		}
		for range 200 {
			m := slices.Clone(b)
			if len(m) == 0 {
				m = []byte{0}
			}
			for range 1 + rng.IntN(3) {
				m[rng.IntN(len(m))] = byte(rng.Uint32())
			}
			inputs = append(inputs, m)
		}
	}
	inputs = append(inputs, []byte{0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, []byte{0x0b}, []byte{0x12, 0x80, 0x80, 0x80, 0x80, 0x10})
	enc := make([]string, len(inputs))
	for i, b := range inputs {
		enc[i] = base64.StdEncoding.EncodeToString(b)
	}
	arg, _ := json.Marshal(enc)

	var got []jsHead
	tab.Eval(e.script(t, `
  const inputs = `+string(arg)+`;
  return inputs.map((s) => {
    const b = Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
    try { return wire.decodeResponseHead(b); } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('bad head')) return {err: 'not a clean error: ' + err};
      return {err: err.message};
    }
  });`), &got)
	if len(got) != len(inputs) {
		t.Fatalf("%d answers for %d inputs", len(got), len(inputs))
	}
	accepted := 0
	for i, b := range inputs {
		var h controlv1.ChannelResponseHead
		goErr := proto.Unmarshal(b, &h)
		js := got[i]
		if strings.HasPrefix(js.Err, "not a clean error") {
			t.Errorf("input %x: %s", b, js.Err)
			continue
		}
		if i < valid && js.Err != "" {
			t.Errorf("a head Go wrote (%x) does not decode: %s", b, js.Err)
			continue
		}
		if js.Err != "" {
			continue
		}
		accepted++
		if goErr != nil {
			t.Errorf("wire.js accepts %x, which Go refuses: %v", b, goErr)
			continue
		}
		if js.Status != h.GetStatus() || !slices.Equal(js.Headers, flatten(&h)) {
			t.Errorf("%x: wire.js reads status %d headers %q, Go %d %q", b, js.Status, js.Headers, h.GetStatus(), flatten(&h))
		}
	}
	t.Logf("%d inputs, %d accepted by wire.js", len(inputs), accepted)

	// The other way: what wire.js writes, Go reads.
	var out struct {
		Head   string
		Frames []string
	}
	tab.Eval(e.script(t, `
  const head = wire.encodeRequestHead({method: 'POST', path: '/outpost.control.v1.ControlService/Status?x=ü', headers: [['content-type', 'application/json'], ['x-two', 'a'], ['x-two', '`+hostile+`']]});
  const msg = new Uint8Array(40000).map((_, i) => i % 251);
  const b64 = (u) => btoa(String.fromCharCode(...u));
  return {head: b64(head), frames: wire.splitMessage(7, msg, true).map(b64)};`), &out)
	hb, _ := base64.StdEncoding.DecodeString(out.Head)
	var rh controlv1.ChannelRequestHead
	if err := proto.Unmarshal(hb, &rh); err != nil {
		t.Fatalf("Go cannot read wire.js's request head: %v", err)
	}
	hdr := controlwire.HeaderOf(rh.GetHeaders())
	if rh.GetMethod() != "POST" || rh.GetPath() != "/outpost.control.v1.ControlService/Status?x=ü" ||
		hdr.Get("Content-Type") != "application/json" || !slices.Equal(hdr.Values("X-Two"), []string{"a", hostile}) {
		t.Errorf("wire.js's request head reads in Go as %v", &rh)
	}
	var j controlwire.Joiner
	var joined []byte
	for i, s := range out.Frames {
		b, _ := base64.StdEncoding.DecodeString(s)
		f, err := controlwire.DecodeFrame(b)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		msg, done, err := j.Add(f)
		if err != nil || done != (i == len(out.Frames)-1) || f.Stream != 7 {
			t.Fatalf("frame %d: done %v, stream %d, %v", i, done, f.Stream, err)
		}
		joined = msg
	}
	if len(out.Frames) != 3 || len(joined) != 40000 || joined[39999] != byte(39999%251) {
		t.Errorf("40000 bytes came as %d frames joining to %d bytes", len(out.Frames), len(joined))
	}
}
