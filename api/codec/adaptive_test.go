package codec

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os/exec"
	"testing"

	"github.com/klauspost/compress/zstd"
	"google.golang.org/protobuf/proto"

	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
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

// uploadBatch is an upload request of the sync contract as a part sends
// it: records of captures, each holding data from gen, up to about size
// bytes.
func uploadBatch(t testing.TB, size int, gen func(i int) []byte) []byte {
	t.Helper()
	req := &syncv1.UploadRequest{StoreId: "store-1", Stream: "captures"}
	for i, n := 0, 0; n < size; i++ {
		c, err := proto.Marshal(&syncv1.Capture{Component: "cam", Method: "frame", Priority: 5, Data: gen(i), MimeType: "image/jpeg"})
		if err != nil {
			t.Fatal(err)
		}
		req.Records = append(req.Records, &syncv1.Record{Seq: uint64(i + 1), Payload: c})
		n += len(c)
	}
	b, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestIncompressibleBatchesNeverReachTheEncoder: upload batches of camera
// frames go through a pooled compressor without one byte handed to the
// zstd encoder, before and after batches of readings that the same
// compressor does compress, by about 4 times as on the sync wire.
func TestIncompressibleBatchesNeverReachTheEncoder(t *testing.T) {
	images := func(seed uint64) []byte {
		return uploadBatch(t, 1<<20, func(i int) []byte { return randomBytes(64<<10, seed+uint64(i)) })
	}
	jsonBatch := uploadBatch(t, 1<<20, func(i int) []byte { return readings(1024 + i%7) })
	c := newAdaptive() // one compressor for all, as connect pools them
	for i, tt := range []struct {
		kind string
		msg  []byte
	}{
		{"images", images(100)},
		{"readings", jsonBatch},
		{"images", images(200)},
		{"images", images(300)},
		{"readings", jsonBatch},
		{"images", images(400)},
	} {
		before := c.encoded
		frame := compress(t, c, tt.msg, 32<<10) // connect writes in pieces
		encoded := c.encoded - before
		switch tt.kind {
		case "images":
			if encoded != 0 {
				t.Fatalf("batch %d (%s, %d bytes): %d bytes went through the encoder", i, tt.kind, len(tt.msg), encoded)
			}
		case "readings":
			if encoded != int64(len(tt.msg)) {
				t.Fatalf("batch %d (%s): %d of %d bytes went through the encoder", i, tt.kind, encoded, len(tt.msg))
			}
			if ratio := float64(len(tt.msg)) / float64(len(frame)); ratio < 3 {
				t.Fatalf("batch %d (%s): compressed %.1f times, want at least 3", i, tt.kind, ratio)
			}
		}
		if got := decompress(t, frame); !bytes.Equal(got, tt.msg) {
			t.Fatalf("batch %d (%s): round trip: %d bytes back of %d", i, tt.kind, len(got), len(tt.msg))
		}
	}
}

// rawFrame writes msg as a raw frame whatever it holds, in the given write
// sizes.
func rawFrame(t testing.TB, c *adaptive, msg []byte, chunk int) []byte {
	t.Helper()
	var out bytes.Buffer
	c.Reset(&out)
	if err := c.start(true); err != nil {
		t.Fatal(err)
	}
	before := c.encoded
	chunk = max(chunk, 1)
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
	if c.encoded != before {
		t.Fatalf("a raw frame handed %d bytes to the encoder", c.encoded-before)
	}
	return out.Bytes()
}

// FuzzRawFrame: a raw frame of any message, written in any pieces, is the
// message and a few bytes of headers, and the stock zstd decoder, with no
// options of ours, reads the message back.
func FuzzRawFrame(f *testing.F) {
	f.Add([]byte{}, uint32(0))
	f.Add([]byte("hello"), uint32(1))
	f.Add(randomBytes(rawBlock+1, 1), uint32(rawBlock))
	f.Add(randomBytes(3*rawBlock, 2), uint32(70_000))
	f.Add(readings(rawBlock-1), uint32(4096))
	dec, err := zstd.NewReader(nil)
	if err != nil {
		f.Fatal(err)
	}
	defer dec.Close()
	c := newAdaptive()
	f.Fuzz(func(t *testing.T, msg []byte, chunk uint32) {
		frame := rawFrame(t, c, msg, int(chunk%(2*rawBlock)))
		blocks := max(1, (len(msg)+rawBlock-1)/rawBlock)
		if want := len(rawHeader) + 3*blocks + len(msg); len(frame) != want {
			t.Fatalf("raw frame of %d bytes for %d, want %d", len(frame), len(msg), want)
		}
		got, err := dec.DecodeAll(frame, nil)
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("stock decoder: %d bytes back of %d, %v", len(got), len(msg), err)
		}
	})
}

// TestRawFramesReadByReferenceZstd: the zstd command, the format's
// reference implementation in C, reads raw frames back too, so they are
// zstd and not only what one Go decoder accepts.
func TestRawFramesReadByReferenceZstd(t *testing.T) {
	bin, err := exec.LookPath("zstd")
	if err != nil {
		t.Skip("no zstd command here (Debian's zstd package)")
	}
	c := newAdaptive()
	for _, msg := range [][]byte{nil, []byte("hello"), randomBytes(rawBlock, 5), randomBytes(2*rawBlock+17, 6), readings(300_000)} {
		cmd := exec.Command(bin, "-d", "-c", "-q")
		cmd.Stdin = bytes.NewReader(rawFrame(t, c, msg, 50_000))
		got, err := cmd.Output()
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("zstd -d: %d bytes back of %d, %v", len(got), len(msg), err)
		}
	}
}

func TestSampler(t *testing.T) {
	var s Sampler
	for _, tc := range []struct {
		name     string
		p        []byte
		minRatio float64
		maxRatio float64
	}{
		{"readings", readings(64 << 10), 2, 20},
		{"random", randomBytes(64<<10, 9), 1, 1},
		{"small random", randomBytes(1<<10, 9), 0.9, 1.01},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := s.CompressedSize(tc.p)
			if r := float64(len(tc.p)) / float64(n); r < tc.minRatio || r > tc.maxRatio {
				t.Fatalf("ratio %.2f, want %.2f..%.2f", r, tc.minRatio, tc.maxRatio)
			}
		})
	}
	if Incompressible(readings(64<<10)) || !Incompressible(randomBytes(64<<10, 1)) {
		t.Fatal("Incompressible misjudged readings or random bytes")
	}
}
