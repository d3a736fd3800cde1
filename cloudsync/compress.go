package cloudsync

import (
	"math"
	"time"

	"github.com/outpost-robotics/outpost/api/codec"
	"github.com/outpost-robotics/outpost/cache"
)

// Compression by the link's rate (docs/ARCHITECTURE.md, decision 50).
// Compressing an upload pays only when the link, not the part's CPU or the
// cloud, is what holds the drain back: on a 10 Mbit/s uplink zstd's 3.7
// times smaller readings drain 3.7 times faster, while on loopback or a
// fast LAN the same encoder spends the robot's CPU and the drain is no
// faster. So each stream learns, from its own uploads, which of the two
// moves more payload per second, and sends compressed only when that is
// worth it by a margin.

// sendMode is how an upload's body travels.
type sendMode uint8

const (
	sendZstd  sendMode = iota // zstd, with the codec's raw frames for incompressible bodies
	sendPlain                 // identity: no compression at all
)

func (m sendMode) String() string {
	if m == sendPlain {
		return "identity"
	}
	return "zstd"
}

func (m sendMode) other() sendMode { return 1 - m }

const (
	// minRatio is the compression ratio below which a stream is sent
	// uncompressed whatever the link: incompressible bytes (camera frames)
	// never go through the encoder, and 13 % smaller bodies are not worth
	// the encoder's CPU on any link this part is likely to have.
	minRatio = 1.15
	// switchGain and keepGain are the hysteresis: compressing starts when
	// it is expected to drain a stream twice as fast than sending it
	// as it is, and stops when it drains it less than 1.2 times faster.
	// Between the two the mode stays, so noisy rates do not make it flap.
	switchGain = 2
	keepGain   = 1.2
	// wideGain is the margin by which a probe confirming zstd (over
	// identity, or identity over switchGain) spaces the probes out faster.
	wideGain = 3
	// firstProbe and maxProbe bound how many batches of a stream go out
	// between two probes of the mode not in use. Each probe that confirms
	// the mode doubles the interval, so a settled stream pays for a probe
	// (on a slow link, one batch sent uncompressed, 0.6 s of a 10 Mbit/s
	// link for 1 MiB of readings) once every few hundred batches.
	firstProbe = 16
	maxProbe   = 512
	// sampleEvery is how many batches go between two samples of the
	// encoder's ratio and speed, and sampleBytes how much of a batch a
	// sample compresses: 64 KiB, about 0.2 ms of the encoder, every 64
	// batches of up to 1 MiB.
	sampleEvery = 64
	sampleBytes = 64 << 10
	// rateDecay weighs the earlier samples of a rate against each new one:
	// the last few batches dominate.
	rateDecay = 0.7
	// rateJump is the change of the stream's rate, either way, in one
	// answer, that makes the next probe come after firstProbe batches.
	rateJump = 3
)

// compressionInputs is what chooseCompression decides from, all measured
// on this part; a zero figure is one not measured yet.
type compressionInputs struct {
	current sendMode
	// ratio is the stream's bodies' size over their compressed size.
	ratio float64
	// compressRate is what the encoder takes in per second: payload bytes
	// over the time it spent on the samples.
	compressRate float64
	// zstdRate and plainRate are the payload bytes per second the
	// stream's uploads moved in each mode: bytes per second on the wire
	// times the ratio for zstd, the wire's rate itself for identity.
	zstdRate, plainRate float64
}

// chooseCompression returns how the stream's next batches go: identity
// for incompressible bytes; otherwise zstd when it moves the stream's
// payload switchGain times faster than identity (keepGain once chosen),
// identity when it does not. When the stream has not been measured
// compressed on this link yet, its compressed rate is predicted from the
// link's: the wire carries ratio times more payload, unless the encoder is
// slower than that. Without a figure for both modes the mode stays.
func chooseCompression(in compressionInputs) sendMode {
	if in.ratio > 0 && in.ratio < minRatio {
		return sendPlain
	}
	z, p := in.zstdRate, in.plainRate
	if z == 0 && p > 0 && in.ratio > 0 {
		z = in.ratio * p
		if in.compressRate > 0 {
			z = min(z, in.compressRate)
		}
	}
	if z == 0 || p == 0 {
		return in.current
	}
	switch {
	case in.current == sendZstd && z < keepGain*p:
		return sendPlain
	case in.current == sendPlain && z >= switchGain*p:
		return sendZstd
	}
	return in.current
}

// rate is a moving average of bytes per second, each answer's rate
// weighed 1-rateDecay against the ones before; zero until the first.
type rate float64

func (r *rate) add(perSecond float64) {
	if *r == 0 {
		*r = rate(perSecond)
		return
	}
	*r = rate(rateDecay*float64(*r) + (1-rateDecay)*perSecond)
}

func (r rate) perSecond() float64 { return float64(r) }

// linkModel is what one stream's uploads taught the part about
// compressing them. Only cycles touch it, and they hold cycleMu.
type linkModel struct {
	mode                sendMode
	ratio, compressRate float64
	rates               [2]rate // payload bytes per second, by sendMode
	batches, sampledAt  int
	sinceProbe, every   int
	// confirm is set while a switch waits for a second probe to agree.
	confirm bool
	// jumps counts the answers in a row whose rate jumped (rateJump).
	jumps int
}

func newLinkModel() *linkModel { return &linkModel{every: firstProbe} }

// needsSample says whether the next batch should sample the encoder.
func (m *linkModel) needsSample() bool {
	return m.ratio == 0 || m.batches-m.sampledAt >= sampleEvery
}

// next returns the mode of the stream's next batch and whether it is a
// probe of the mode not in use.
func (m *linkModel) next() (mode sendMode, probe bool) {
	m.batches++
	if m.ratio > 0 && m.ratio < minRatio {
		// Incompressible: nothing to probe, only a later sample may show
		// the stream's bytes have changed.
		return sendPlain, false
	}
	m.sinceProbe++
	if m.sinceProbe >= m.every {
		m.sinceProbe = 0
		return m.mode.other(), true
	}
	return m.mode, false
}

// unsent takes back the last next, whose batch turned out empty, so a
// probe it chose is not lost.
func (m *linkModel) unsent(probe bool) {
	m.batches--
	switch {
	case probe:
		m.sinceProbe = m.every - 1
	case m.sinceProbe > 0:
		m.sinceProbe--
	}
}

// sampled takes a sample of the encoder: raw bytes became compressed ones
// in took (zero when the clock did not move: the speed stays unknown).
func (m *linkModel) sampled(raw, compressed int, took time.Duration) {
	if raw == 0 || compressed == 0 {
		return
	}
	m.sampledAt = m.batches
	m.ratio = float64(raw) / float64(compressed)
	if took > 0 {
		m.compressRate = float64(raw) / took.Seconds()
	}
	m.mode = chooseCompression(m.inputs())
}

// answered takes an answered batch of raw payload bytes, sent in mode,
// that took took from its send to its answer while shared uploads were on
// their way on average (itself included): uploads in flight share the
// link, so the link moved shared times its bytes in that time. It returns
// whether the stream's mode changed.
func (m *linkModel) answered(mode sendMode, probe bool, raw int, took time.Duration, shared float64) bool {
	if took <= 0 || raw == 0 {
		return false
	}
	now := float64(raw) * max(shared, 1) / took.Seconds()
	switch was := m.rates[mode].perSecond(); {
	case mode != m.mode:
		// A probe's answer. Probes are far apart, so the earlier ones
		// are stale, but the two of a confirmation (see below) count
		// alike.
		if m.confirm && was > 0 {
			now = (was + now) / 2
		}
		m.rates[mode] = rate(now)
	case was > 0 && (now > rateJump*was || now*rateJump < was):
		m.jumps++
		if m.jumps < 2 {
			return false // one odd answer (a cycle's first, a stall) is not a new link
		}
		// The link changed under the stream (a robot from its dock's
		// Ethernet to LTE): what was measured before is stale. Start
		// again from this answer, and probe the other mode soon.
		m.rates = [2]rate{}
		m.every, m.sinceProbe, m.jumps = firstProbe, firstProbe-1, 0
		m.rates[mode].add(now)
	default:
		m.jumps = 0
		m.rates[mode].add(now)
	}
	next := chooseCompression(m.inputs())
	switch {
	case next == m.mode:
		m.confirm = false
		if probe {
			// A probe that confirms the mode by a wide margin (on a slow
			// link, zstd moves 3.5 times what identity does, and each
			// probe costs 0.6 s of a 10 Mbit/s link) makes the next one
			// come eight times later rather than twice.
			in, k := m.inputs(), 2
			if m.mode == sendZstd && in.zstdRate >= wideGain*in.plainRate || m.mode == sendPlain && in.zstdRate*wideGain <= switchGain*in.plainRate {
				k = 8
			}
			m.every = min(k*m.every, maxProbe)
		}
		return false
	case !m.confirm:
		// A first sign that the other mode is better, from one answer:
		// probe it again at once, and switch only if that agrees.
		m.confirm = true
		m.sinceProbe = m.every - 1
		return false
	case !probe:
		return false // waiting for the probe
	}
	// The probes go on at the interval reached: probing sooner after a
	// switch would only give noise more chances to switch back.
	m.mode, m.sinceProbe, m.confirm = next, 0, false
	return true
}

func (m *linkModel) inputs() compressionInputs {
	return compressionInputs{
		current: m.mode, ratio: m.ratio, compressRate: m.compressRate,
		zstdRate: m.rates[sendZstd].perSecond(), plainRate: m.rates[sendPlain].perSecond(),
	}
}

// rawBytes is how many payload bytes are expected to take wire bytes on
// the wire in mode.
func (m *linkModel) rawBytes(mode sendMode, wire int) int {
	if mode == sendZstd && m.ratio > 1 && wire > 0 {
		return int(min(float64(wire)*m.ratio, float64(math.MaxInt32)))
	}
	return wire
}

// wireBytes is what raw payload bytes are expected to take on the wire in
// mode: the cycle's budget counts those, since what it bounds is the time
// a cycle holds the link.
func (m *linkModel) wireBytes(mode sendMode, raw int) int {
	if mode == sendZstd && m.ratio > 1 {
		return max(int(float64(raw)/m.ratio), 1)
	}
	return raw
}

// sampleOf copies up to sampleBytes of the entries' payloads into buf.
func sampleOf(buf []byte, entries []cache.Entry) []byte {
	buf = buf[:0]
	for _, e := range entries {
		if len(buf) >= sampleBytes {
			break
		}
		buf = append(buf, e.Payload[:min(len(e.Payload), sampleBytes-len(buf))]...)
	}
	return buf
}

// sampler is the Syncer's encoder sample: the codec's, with the buffer a
// sample is copied into.
type sampler struct {
	codec.Sampler
	buf []byte
}
