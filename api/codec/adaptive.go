package codec

import (
	"errors"
	"io"
	"math"

	"github.com/klauspost/compress/zstd"
)

// Compression that pays: a message whose bytes look incompressible (camera
// frames, already-compressed files) is sent as a zstd frame of raw blocks,
// which any zstd decoder reads, without running the encoder over it. The
// decision is made per message from the byte entropy of a sample, which
// costs a few microseconds; a robot's sync batches hold one stream each,
// so each batch learns what its stream holds. A misjudged message is only
// sent larger than it could have been, never wrong.
const (
	// sampleMin is the smallest message that is sampled: smaller ones are
	// cheap to compress whatever they hold.
	sampleMin = 16 << 10
	// samples windows of sampleWindow bytes, spread over the message, make
	// the sample.
	samples      = 8
	sampleWindow = 2 << 10
	// rawEntropy is the entropy, in bits per byte, from which a message is
	// judged incompressible: at that point entropy coding saves at most
	// 2.5 %, and data that dense rarely has the repeats zstd looks for.
	rawEntropy = 7.8
	// rawBlock is the largest raw block, zstd's block size limit, and the
	// window the raw frame declares.
	rawBlock = 128 << 10
)

// rawHeader is the header of a raw frame: the magic 0xFD2FB528 (little
// endian), a descriptor with no content size, checksum or dictionary (so no
// single segment), and a window descriptor of 128 KiB (exponent 7,
// mantissa 0: 1 << (10+7)).
var rawHeader = [...]byte{0x28, 0xB5, 0x2F, 0xFD, 0x00, 7 << 3}

// adaptive is a connect.Compressor that writes a zstd frame either through
// the zstd encoder or as raw blocks, chosen at the message's first write.
type adaptive struct {
	enc     *zstd.Encoder // made at the first message that needs it
	w       io.Writer
	decided bool
	raw     bool
	pending []byte // the raw frame's last block, written at Close
	err     error
	// encoded counts the bytes handed to the encoder, over every message:
	// what tests check to know the encoder never saw an incompressible one.
	encoded int64
}

func newAdaptive() *adaptive { return &adaptive{} }

// Reset prepares the compressor for a new message written to w.
func (a *adaptive) Reset(w io.Writer) {
	a.w, a.decided, a.raw, a.err = w, false, false, nil
	a.pending = a.pending[:0]
}

// Write compresses p, deciding at the message's first write how.
func (a *adaptive) Write(p []byte) (int, error) {
	if a.err != nil {
		return 0, a.err
	}
	if a.w == nil {
		return 0, errors.New("codec: write before Reset")
	}
	if !a.decided {
		if err := a.start(len(p) >= sampleMin && sampleEntropy(p) >= rawEntropy); err != nil {
			return 0, err
		}
	}
	if !a.raw {
		a.encoded += int64(len(p))
		return a.enc.Write(p)
	}
	n := len(p)
	for len(p) > 0 {
		if len(a.pending) == rawBlock {
			// More follows, so the block is not the last.
			if err := a.block(a.pending, false); err != nil {
				return 0, err
			}
			a.pending = a.pending[:0]
		}
		if len(a.pending) == 0 && len(p) > rawBlock {
			// A whole block with more after it: straight from p.
			if err := a.block(p[:rawBlock], false); err != nil {
				return 0, err
			}
			p = p[rawBlock:]
			continue
		}
		k := min(len(p), rawBlock-len(a.pending))
		a.pending = append(a.pending, p[:k]...)
		p = p[k:]
	}
	return n, nil
}

// start begins the message's frame: raw blocks, or the encoder's.
func (a *adaptive) start(raw bool) error {
	a.decided, a.raw = true, raw
	if raw {
		if _, err := a.w.Write(rawHeader[:]); err != nil {
			a.err = err
			return err
		}
		return nil
	}
	if a.enc == nil {
		a.enc = newEncoder()
	}
	a.enc.Reset(a.w)
	return nil
}

// Close ends the frame; it does not close the sink.
func (a *adaptive) Close() error {
	if a.err != nil {
		return a.err
	}
	switch {
	case !a.decided:
		// An empty message: an empty frame.
		if _, err := a.w.Write(rawHeader[:]); err != nil {
			return err
		}
		return a.block(nil, true)
	case a.raw:
		err := a.block(a.pending, true)
		a.pending = a.pending[:0]
		return err
	default:
		return a.enc.Close()
	}
}

// block writes one raw block of p (at most rawBlock bytes).
func (a *adaptive) block(p []byte, last bool) error {
	h := uint32(len(p)) << 3 // block type 0: raw
	if last {
		h |= 1
	}
	if _, err := a.w.Write([]byte{byte(h), byte(h >> 8), byte(h >> 16)}); err != nil {
		a.err = err
		return err
	}
	if _, err := a.w.Write(p); err != nil {
		a.err = err
		return err
	}
	return nil
}

// sampleEntropy estimates the byte entropy of p, in bits per byte, from
// samples windows spread over it.
func sampleEntropy(p []byte) float64 {
	var hist [256]uint32
	step := len(p) / samples
	n := 0
	for i := range samples {
		w := p[i*step : min(i*step+sampleWindow, len(p))]
		for _, c := range w {
			hist[c]++
		}
		n += len(w)
	}
	if n == 0 {
		return 0
	}
	e := 0.0
	for _, c := range hist {
		if c > 0 {
			f := float64(c) / float64(n)
			e -= f * math.Log2(f)
		}
	}
	return e
}
