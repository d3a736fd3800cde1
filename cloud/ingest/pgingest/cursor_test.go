package pgingest

import (
	"testing"

	"github.com/outpost-robotics/outpost/cloud/ingest"
)

// FuzzCursor: a cursor comes from whoever calls the API; decoding one
// never panics, and whatever decodes encodes back to the same cursor.
func FuzzCursor(f *testing.F) {
	f.Add(encodeCursor(ingest.StreamKey{PartID: "p", StoreID: "s", Stream: "logs.info"}, 42))
	f.Add("")
	f.Add("cABzAGwAMDE")
	f.Fuzz(func(t *testing.T, c string) {
		k, seq, err := decodeCursor(c)
		if err != nil {
			return
		}
		if k.Validate() != nil || seq == 0 {
			t.Fatalf("%q decodes to an invalid key %+v seq %d", c, k, seq)
		}
		if again := encodeCursor(k, seq); again != c {
			t.Fatalf("%q decodes and encodes to %q", c, again)
		}
	})
}
