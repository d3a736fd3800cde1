// Package codec registers the compression Outpost's sync contract uses on
// the wire: zstd, for both ends of connect-go.
//
// Measured on this project's upload batches (sync's BenchmarkCompression,
// docs/PERFORMANCE.md): zstd compresses JSON sensor readings 6-7 times faster
// than connect's built-in gzip at a slightly better ratio, and passes
// incompressible images through at gigabytes a second where gzip crawls.
// Bodies whose bytes look incompressible skip the encoder altogether (see
// adaptive): they travel as a zstd frame of raw blocks. Servers keep
// accepting gzip too, for clients such as curl.
package codec

import (
	"io"

	"connectrpc.com/connect"
	"github.com/klauspost/compress/zstd"
)

// Zstd is the compression's name in Connect and gRPC headers.
const Zstd = "zstd"

// maxWindow bounds the memory a decoder may use, so a hostile or broken body
// cannot make a part or the cloud allocate without limit; the total size of a
// message is bounded separately by connect's read limits.
const maxWindow = 8 << 20

// ClientOptions make a client send zstd request bodies and accept zstd
// responses.
func ClientOptions() []connect.ClientOption {
	return []connect.ClientOption{
		connect.WithAcceptCompression(Zstd, newDecompressor, newCompressor),
		connect.WithSendCompression(Zstd),
	}
}

// HandlerOption makes a handler accept zstd bodies (and answer in zstd when
// asked), alongside connect's built-in gzip.
func HandlerOption() connect.HandlerOption {
	return connect.WithCompression(Zstd, newDecompressor, newCompressor)
}

func newCompressor() connect.Compressor { return newAdaptive() }

func newEncoder() *zstd.Encoder {
	// One goroutine per encoder: a Raspberry Pi has four small cores and the
	// daemon has other work; connect pools encoders across calls. The
	// fastest level compresses JSON readings twice as fast as the default
	// and, on those, slightly smaller (sync's BenchmarkCompression).
	e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(1<<20))
	if err != nil {
		// Only invalid options make NewWriter fail; these are constants.
		panic("codec: zstd encoder options: " + err.Error())
	}
	return e
}

func newDecompressor() connect.Decompressor {
	d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxWindow(maxWindow))
	if err != nil {
		panic("codec: zstd decoder options: " + err.Error())
	}
	return decoder{d}
}

// decoder adapts zstd.Decoder, whose Close returns nothing, to connect's
// Decompressor. Close must not end a pooled decoder: connect reuses it after
// Reset, so Close only detaches the source.
type decoder struct{ d *zstd.Decoder }

func (d decoder) Read(p []byte) (int, error) { return d.d.Read(p) }
func (d decoder) Reset(r io.Reader) error    { return d.d.Reset(r) }
func (d decoder) Close() error               { return d.d.Reset(nil) }

// Incompressible reports whether p looks incompressible by the same test
// the compressor applies to a message (the byte entropy of a sample), so
// a caller can tell, without running the encoder, that compressing p would
// only copy it.
func Incompressible(p []byte) bool {
	return len(p) >= sampleMin && sampleEntropy(p) >= rawEntropy
}

// Sampler compresses samples of a stream's bodies as the wire's zstd
// encoder does, so the sync loop can learn the compression ratio and the
// encoder's speed on this machine. It is not safe for concurrent use.
type Sampler struct {
	enc *zstd.Encoder
	buf []byte
}

// CompressedSize returns the size of p compressed by the wire's encoder
// (its settings and its skip of incompressible bytes, which it reports as
// len(p) without running the encoder).
func (s *Sampler) CompressedSize(p []byte) int {
	if Incompressible(p) {
		return len(p)
	}
	if s.enc == nil {
		s.enc = newEncoder()
	}
	s.buf = s.enc.EncodeAll(p, s.buf[:0])
	return len(s.buf)
}
