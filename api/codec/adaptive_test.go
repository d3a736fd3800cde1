package codec

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/klauspost/compress/zstd"
)

func randomBytes(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func readings(n int) []byte {
	rng := rand.New(rand.NewPCG(3, 3))
	var b []byte
	for len(b) < n {
		b = fmt.Appendf(b, `{"sensor":"imu","accel":[%.4f,%.4f,%.4f],"temp_c":%.2f}`, rng.NormFloat64(), rng.NormFloat64(), rng.NormFloat64(), 35+rng.Float64()*10)
	}
	return b[:n]
}

// compress runs msg through one pooled compressor as connect does, in the
// given write sizes (0: one write), and returns the frame.
func compress(t testing.TB, c *adaptive, msg []byte, chunk int) []byte {
	t.Helper()
	var out bytes.Buffer
	c.Reset(&out)
	if chunk <= 0 {
		chunk = max(len(msg), 1)
	}
	for p := msg; len(p) > 0; {
		k := min(chunk, len(p))
		if n, err := c.Write(p[:k]); err != nil || n != k {
			t.Fatalf("write: %d, %v", n, err)
		}
		p = p[k:]
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func decompress(t testing.TB, frame []byte) []byte {
	t.Helper()
	d := newDecompressor()
	if err := d.Reset(bytes.NewReader(frame)); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(d)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	return got
}

// TestCompressionThatPays: incompressible bodies skip the encoder (their
// frame is the message and a few bytes of block headers), compressible ones
// are compressed, and every frame is one any zstd decoder reads back, in
// one write or many, across block boundaries, with the compressor reused.
func TestCompressionThatPays(t *testing.T) {
	shared := newAdaptive()
	tests := []struct {
		name  string
		msg   []byte
		chunk int
		raw   bool
	}{
		{"empty", nil, 0, true},
		{"small random, compressed anyway", randomBytes(1000, 1), 0, false},
		{"1 MiB of images", randomBytes(1<<20, 2), 0, true},
		{"images in odd writes", randomBytes(300_001, 3), 70_000, true},
		{"exactly one block", randomBytes(rawBlock, 4), 0, true},
		{"one block and a byte", randomBytes(rawBlock+1, 5), 0, true},
		{"1 MiB of JSON readings", readings(1 << 20), 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newAdaptive()
			frame := compress(t, c, tt.msg, tt.chunk)
			if skipped := c.enc == nil; skipped != tt.raw {
				t.Errorf("the encoder was skipped: %v, want %v", skipped, tt.raw)
			}
			// The shared compressor, reused across kinds, writes the same.
			if again := compress(t, shared, tt.msg, tt.chunk); !bytes.Equal(again, frame) && tt.raw {
				t.Errorf("a reused compressor wrote a different raw frame")
			} else if got := decompress(t, again); !bytes.Equal(got, tt.msg) {
				t.Fatalf("reused compressor round trip: %d bytes back of %d", len(got), len(tt.msg))
			}
			if got := decompress(t, frame); !bytes.Equal(got, tt.msg) {
				t.Fatalf("round trip: %d bytes back of %d", len(got), len(tt.msg))
			}
			blocks := max(1, (len(tt.msg)+rawBlock-1)/rawBlock)
			rawSize := len(rawHeader) + 3*blocks + len(tt.msg)
			if raw := len(frame) == rawSize; raw != tt.raw {
				t.Errorf("frame of %d bytes for %d: raw = %v, want %v", len(frame), len(tt.msg), raw, tt.raw)
			}
			if !tt.raw && len(frame) >= len(tt.msg) && len(tt.msg) > 4096 {
				t.Errorf("compressible message of %d bytes became %d", len(tt.msg), len(frame))
			}
			// A frame the stock decoder reads, not only ours.
			dec, err := zstd.NewReader(nil)
			if err != nil {
				t.Fatal(err)
			}
			defer dec.Close()
			if got, err := dec.DecodeAll(frame, nil); err != nil || !bytes.Equal(got, tt.msg) {
				t.Fatalf("stock decoder: %d bytes, %v", len(got), err)
			}
		})
	}
}

func TestSampleEntropy(t *testing.T) {
	if e := sampleEntropy(randomBytes(1<<20, 9)); e < rawEntropy {
		t.Errorf("random bytes: %.3f bits per byte, want ≥ %.1f", e, rawEntropy)
	}
	if e := sampleEntropy(readings(1 << 20)); e >= rawEntropy {
		t.Errorf("JSON readings: %.3f bits per byte, want < %.1f", e, rawEntropy)
	}
	if e := sampleEntropy(make([]byte, sampleMin)); e != 0 {
		t.Errorf("zeros: %.3f bits per byte", e)
	}
}

// FuzzAdaptiveRoundTrip: whatever a message holds and however it is
// written, the frame decodes back to it.
func FuzzAdaptiveRoundTrip(f *testing.F) {
	f.Add([]byte("hello"), uint16(0), false)
	f.Add(randomBytes(40_000, 1), uint16(5000), true)
	f.Add(readings(20_000), uint16(0), true)
	c := newAdaptive()
	f.Fuzz(func(t *testing.T, msg []byte, chunk uint16, grow bool) {
		if grow {
			// Past sampleMin and a block, so the raw path is reached.
			msg = bytes.Repeat(msg, (rawBlock+sampleMin)/max(len(msg), 1)+1)
		}
		if got := decompress(t, compress(t, c, msg, int(chunk))); !bytes.Equal(got, msg) {
			t.Fatalf("round trip: %d bytes back of %d", len(got), len(msg))
		}
	})
}
