package ingest

import (
	"testing"
	"time"
)

// FuzzTimeCursor feeds DecodeTimeCursor what a caller could put in a page
// token: it never panics, and what it accepts encodes back to itself, so
// one position has one cursor.
func FuzzTimeCursor(f *testing.F) {
	f.Add(EncodeTimeCursor(TimeKey{Time: time.Unix(1, 2), StreamKey: StreamKey{PartID: "p", StoreID: "s", Stream: "captures"}, Seq: 3}))
	f.Add("")
	f.Add("AAAAAAAAAAAAAAAAAAAAAQ")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := DecodeTimeCursor(s)
		if err != nil {
			return
		}
		if k.Validate() != nil || k.Seq == 0 {
			t.Fatalf("accepted %q as %+v", s, k)
		}
		if again := EncodeTimeCursor(k); again != s {
			if k2, err := DecodeTimeCursor(again); err != nil || k2.Compare(k) != 0 {
				t.Fatalf("%q decodes to %+v, which encodes to %q", s, k, again)
			}
		}
	})
}
