package demo

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	"github.com/outpost-robotics/outpost/config"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseRefusal(t *testing.T) {
	for _, tc := range []struct {
		name   string
		stderr string
		want   refusal
		ok     bool
	}{
		{"the CLI's denial", string(readTestdata(t, "denied.stderr")), refusal{
			Message: "denied: apikey/0fca7ed80e7df13670c75ea4f7cf36ee may not machine.view machine/2e3fb82d32c31b603cf5796b9f8403f5: as operator of machine/2e3fb82d32c31b603cf5796b9f8403f5 it reaches it, but machine.view is only for org owner, location owner, machine owner",
			Code:    "permission_denied"}, true},
		{"no code", "outpost: give --robot HOST:PORT\n", refusal{Message: "give --robot HOST:PORT"}, true},
		{"the last error line wins", "outpost: first [internal]\nnoise\noutpost: second [unauthenticated]\r\n", refusal{Message: "second", Code: "unauthenticated"}, true},
		{"brackets inside the message", "outpost: list [a b] failed [not_found]", refusal{Message: "list [a b] failed", Code: "not_found"}, true},
		{"not the CLI's", "panic: runtime error\n", refusal{}, false},
		{"empty", "", refusal{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parseRefusal([]byte(tc.stderr))
			if ok != tc.ok || got != tc.want {
				t.Fatalf("parseRefusal = %+v, %v; want %+v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func FuzzParseRefusal(f *testing.F) {
	f.Add(readTestdata(f, "denied.stderr"))
	f.Add([]byte("outpost: x [y]\noutpost: z"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ref, ok := parseRefusal(b)
		if !ok && ref != (refusal{}) {
			t.Fatalf("not ok, but %+v", ref)
		}
		if strings.ContainsAny(ref.Message, "\n") || strings.Trim(ref.Code, "abcdefghijklmnopqrstuvwxyz_") != "" {
			t.Fatalf("bad refusal %+v", ref)
		}
	})
}

func TestParseTrust(t *testing.T) {
	out := readTestdata(t, "trust.stdout")
	fp, err := parseTrust(out, "127.0.0.1:18443")
	if err != nil || fp != "dbfb542bcf80b902c189797026a02c14d0ba37807def8c73444a4cf2b2549a87" {
		t.Fatalf("parseTrust = %q, %v", fp, err)
	}
	if _, err := parseTrust(out, "127.0.0.1:9999"); err == nil {
		t.Fatal("found a fingerprint for an address the output does not name")
	}
	if _, err := parseTrust([]byte("127.0.0.1:1 presents certificate SHA-256 DBFB\n"), "127.0.0.1:1"); err == nil {
		t.Fatal("took a fingerprint that is not 64 lower-case hex digits")
	}
}

var hex64 = regexp.MustCompile(`^[0-9a-f]{64}$`)

func FuzzParseTrust(f *testing.F) {
	f.Add(readTestdata(f, "trust.stdout"), "127.0.0.1:18443")
	f.Fuzz(func(t *testing.T, b []byte, addr string) {
		fp, err := parseTrust(b, addr)
		if err == nil && !hex64.MatchString(fp) {
			t.Fatalf("fingerprint %q", fp)
		}
	})
}

func TestDecode(t *testing.T) {
	var ls controlv1.ListCapturesResponse
	if err := decode("data ls", readTestdata(t, "data-ls.json"), &ls); err != nil {
		t.Fatal(err)
	}
	held, err := heldCaptures(&ls)
	if err != nil || !slices.Equal(held, []uint64{109, 110, 111}) {
		t.Fatalf("held %v, %v", held, err)
	}
	if err := decode("x", []byte(`{"captures":[],"added_later":1}`), &ls); err != nil {
		t.Errorf("a field a newer CLI adds: %v", err)
	}
	for _, bad := range []string{"", "  \n", "{", `{"captures":"no"}`, "[1]"} {
		if err := decode("x", []byte(bad), &ls); err == nil {
			t.Errorf("decoded %q", bad)
		}
	}
	if err := decode("x", make([]byte, maxOutput+1), &ls); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("oversized output: %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(readTestdata(f, "data-ls.json"))
	f.Add(readTestdata(f, "captures.json"))
	f.Add([]byte(`{"count": 2, "temperature_c": 21.5}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var ls controlv1.ListCapturesResponse
		if decode("x", b, &ls) == nil {
			_, _ = heldCaptures(&ls)
		}
		var cs fleetv1.ListCapturesResponse
		if decode("x", b, &cs) == nil {
			_ = duplicate(cs.GetCaptures())
			_, _ = arrived([]uint64{1, 2}, "p", cs.GetCaptures())
		}
		var st fleetv1.GetMachineStatusResponse
		if decode("x", b, &st) == nil {
			_ = partsReady(&st, []*part{{name: "main", id: "p"}})
		}
		var s structpb.Struct
		_ = decode("x", b, &s)
	})
}

func TestHeldCaptures(t *testing.T) {
	ls := func(ids ...uint64) *controlv1.ListCapturesResponse {
		r := &controlv1.ListCapturesResponse{}
		for _, id := range ids {
			r.Captures = append(r.Captures, &controlv1.CaptureInfo{Id: id})
		}
		return r
	}
	if got, err := heldCaptures(ls(5, 3, 4)); err != nil || !slices.Equal(got, []uint64{3, 4, 5}) {
		t.Errorf("heldCaptures = %v, %v", got, err)
	}
	if _, err := heldCaptures(ls(3, 0)); err == nil {
		t.Error("took a capture without an id")
	}
	if _, err := heldCaptures(ls(3, 4, 3)); err == nil {
		t.Error("took a capture listed twice")
	}
}

func TestArrivedAndStillHeld(t *testing.T) {
	var cs fleetv1.ListCapturesResponse
	if err := decode("captures", readTestdata(t, "captures.json"), &cs); err != nil {
		t.Fatal(err)
	}
	const main = "57c88968d217fd2e81ae526592aac250"
	n, missing := arrived([]uint64{1, 2, 3, 4}, main, cs.GetCaptures())
	if n != 2 || !slices.Equal(missing, []uint64{3, 4}) {
		t.Fatalf("arrived = %d, missing %v; want 2, [3 4] (seq 3 in the file is another part's)", n, missing)
	}
	if d := duplicate(cs.GetCaptures()); d != "" {
		t.Fatalf("duplicate %q in distinct captures", d)
	}
	twice := append(slices.Clone(cs.GetCaptures()), cs.GetCaptures()[0])
	if d := duplicate(twice); d != main+":38a0fdce10d8b131a1d52bf5983fd6c2:1" {
		t.Fatalf("duplicate = %q", d)
	}
	if got := stillHeld([]uint64{3, 5, 7}, []uint64{1, 5, 7, 9}); got != 2 {
		t.Fatalf("stillHeld = %d", got)
	}
}

func TestSeqRange(t *testing.T) {
	for _, tc := range []struct {
		in   []uint64
		want string
	}{{nil, "none"}, {[]uint64{7}, "7"}, {[]uint64{3, 4, 9}, "3-9"}} {
		if got := seqRange(tc.in); got != tc.want {
			t.Errorf("seqRange(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestPartsReady(t *testing.T) {
	parts := []*part{{name: "main", id: "p1"}, {name: "arm", id: "p2"}}
	var st fleetv1.GetMachineStatusResponse
	if err := decode("status", readTestdata(t, "machine-status.json"), &st); err != nil {
		t.Fatal(err)
	}
	if err := partsReady(&st, parts); err != nil {
		t.Fatalf("ready parts: %v", err)
	}
	st.GetParts()[1].GetStatus().GetResources()[0].State = "failed"
	if err := partsReady(&st, parts); err == nil || !strings.Contains(err.Error(), "arm") {
		t.Fatalf("a failed component: %v", err)
	}
	st.GetParts()[1].IssuedConfigVersion = 2
	if err := partsReady(&st, parts); err == nil || !strings.Contains(err.Error(), "runs config 1 of 2") {
		t.Fatalf("an old config: %v", err)
	}
	if err := partsReady(&fleetv1.GetMachineStatusResponse{Parts: st.GetParts()[:1]}, parts); err == nil {
		t.Fatal("one part of two reported, and it is ready")
	}
}

// TestMachineConfigIsValid: the demo's config is one the cloud accepts.
func TestMachineConfigIsValid(t *testing.T) {
	var cfg configv1.RobotConfig
	if err := protojson.Unmarshal([]byte(machineConfig), &cfg); err != nil {
		t.Fatal(err)
	}
	if err := config.Validate(&cfg); err != nil {
		t.Fatal(err)
	}
	if got := cfg.GetCaptures()[0].GetFrequencyHz(); got != captureHz {
		t.Fatalf("captures at %g Hz; the demo says %d", got, captureHz)
	}
}
