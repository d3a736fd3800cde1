package cloudsync

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/outpost-robotics/outpost/clock"
)

func TestChooseCompression(t *testing.T) {
	const mb = 1e6
	tests := []struct {
		name string
		in   compressionInputs
		want sendMode
	}{
		{"nothing measured keeps zstd", compressionInputs{current: sendZstd}, sendZstd},
		{"nothing measured keeps identity", compressionInputs{current: sendPlain}, sendPlain},
		{"incompressible: identity, whatever the link", compressionInputs{current: sendZstd, ratio: 1.0, plainRate: 0.1 * mb, zstdRate: 0.1 * mb}, sendPlain},
		{"barely compressible: identity", compressionInputs{current: sendZstd, ratio: 1.1}, sendPlain},
		{"ratio only: stays", compressionInputs{current: sendZstd, ratio: 3.7, compressRate: 300 * mb}, sendZstd},
		// 10 Mbit/s: identity moves 1.25 MB/s, zstd 3.7 times that.
		{"slow link, both measured: zstd", compressionInputs{current: sendZstd, ratio: 3.7, compressRate: 300 * mb, plainRate: 1.25 * mb, zstdRate: 4.4 * mb}, sendZstd},
		{"slow link, identity measured: predicted zstd", compressionInputs{current: sendPlain, ratio: 3.7, compressRate: 300 * mb, plainRate: 1.25 * mb}, sendZstd},
		// Loopback: the cloud and the CPUs hold the drain back, not the
		// link, so compressing moves no more.
		{"fast link: identity", compressionInputs{current: sendZstd, ratio: 3.7, compressRate: 300 * mb, plainRate: 60 * mb, zstdRate: 40 * mb}, sendPlain},
		{"fast link, identity: stays", compressionInputs{current: sendPlain, ratio: 3.7, compressRate: 300 * mb, plainRate: 60 * mb, zstdRate: 40 * mb}, sendPlain},
		// Gigabit: the link would carry 3.7 times more compressed, but the
		// encoder is slower than the link already is.
		{"link faster than the encoder: identity", compressionInputs{current: sendPlain, ratio: 3.7, compressRate: 100 * mb, plainRate: 110 * mb}, sendPlain},
		// Hysteresis: between keepGain and switchGain the mode stays.
		{"zstd 1.5x faster: zstd stays", compressionInputs{current: sendZstd, ratio: 3.7, plainRate: 10 * mb, zstdRate: 15 * mb}, sendZstd},
		{"zstd 1.5x faster: identity stays", compressionInputs{current: sendPlain, ratio: 3.7, plainRate: 10 * mb, zstdRate: 15 * mb}, sendPlain},
		{"zstd 1.1x faster: identity", compressionInputs{current: sendZstd, ratio: 3.7, plainRate: 10 * mb, zstdRate: 11 * mb}, sendPlain},
		{"zstd 2.1x faster: zstd", compressionInputs{current: sendPlain, ratio: 3.7, plainRate: 10 * mb, zstdRate: 21 * mb}, sendZstd},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := chooseCompression(tc.in); got != tc.want {
				t.Fatalf("chooseCompression(%+v) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

// TestLinkModel feeds a stream's model the answers a link of a given rate
// gives, batch by batch, and checks where it settles and how often it
// changes its mind.
func TestLinkModel(t *testing.T) {
	const (
		batch = 1 << 20
		ratio = 3.7
		mb    = 1e6
	)
	tests := []struct {
		name string
		// plain and zstd are the payload bytes per second each mode moves
		// for batches in turn i (a link that changes); noise alternates
		// each answer's rate by ±noise.
		plain, zstd func(i int) float64
		noise       float64
		ratio       float64
		want        sendMode
		maxSwitches int
		maxProbes   int
	}{
		{"slow link", func(int) float64 { return 1.25 * mb }, func(int) float64 { return 4.4 * mb }, 0.2, ratio, sendZstd, 0, 4},
		{"loopback", func(int) float64 { return 60 * mb }, func(int) float64 { return 35 * mb }, 0.2, ratio, sendPlain, 1, 8},
		{"incompressible", func(int) float64 { return 60 * mb }, func(int) float64 { return 60 * mb }, 0, 1.0, sendPlain, 1, 0},
		// The two modes within the hysteresis band, with noise: settles
		// without flapping.
		{"undecided link", func(int) float64 { return 10 * mb }, func(int) float64 { return 15 * mb }, 0.25, ratio, sendZstd, 0, 8},
		{"LAN, then a slow uplink", func(i int) float64 {
			if i < 500 {
				return 100 * mb
			}
			return 1.25 * mb
		}, func(i int) float64 {
			if i < 500 {
				return 60 * mb
			}
			return 4.4 * mb
		}, 0.2, ratio, sendZstd, 2, 16},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newLinkModel()
			rng := rand.New(rand.NewPCG(uint64(len(tc.name)), 23))
			switches, probes := 0, 0
			for i := range 1000 {
				if m.needsSample() {
					m.sampled(64<<10, int(64<<10/tc.ratio), 200*time.Microsecond)
				}
				mode, probe := m.next()
				if probe {
					probes++
				}
				r := tc.zstd(i)
				if mode == sendPlain {
					r = tc.plain(i)
				}
				r *= 1 + tc.noise*(2*rng.Float64()-1)
				// Eight uploads share the link: each takes eight times
				// its own share.
				took := time.Duration(8 * batch / r * float64(time.Second))
				if m.answered(mode, probe, batch, took, 8) {
					switches++
				}
			}
			if m.mode != tc.want {
				t.Errorf("settled on %v, want %v (%+v)", m.mode, tc.want, m.inputs())
			}
			if switches > tc.maxSwitches {
				t.Errorf("%d switches, want at most %d", switches, tc.maxSwitches)
			}
			if probes > tc.maxProbes {
				t.Errorf("%d probes in 1000 batches, want at most %d", probes, tc.maxProbes)
			}
		})
	}
}

func TestWireBytes(t *testing.T) {
	m := newLinkModel()
	if got := m.wireBytes(sendZstd, 1000); got != 1000 {
		t.Fatalf("unknown ratio: %d", got)
	}
	m.sampled(4000, 1000, 0)
	for _, tc := range []struct {
		mode sendMode
		want int
	}{{sendZstd, 250}, {sendPlain, 1000}} {
		if got := m.wireBytes(tc.mode, 1000); got != tc.want {
			t.Errorf("%v: %d, want %d", tc.mode, got, tc.want)
		}
	}
	if m.compressRate != 0 {
		t.Fatalf("a sample that took no time gave a speed: %v", m.compressRate)
	}
}

// TestUnsentKeepsTheProbe: a probe chosen for a batch that turned out
// empty (the end of a stream's turn) comes with the next batch instead.
func TestUnsentKeepsTheProbe(t *testing.T) {
	m := newLinkModel()
	for i := 1; ; i++ {
		mode, probe := m.next()
		if !probe {
			continue
		}
		if mode != sendPlain || i != firstProbe {
			t.Fatalf("batch %d: probe of %v, want identity at %d", i, mode, firstProbe)
		}
		m.unsent(probe)
		if mode, probe := m.next(); !probe || mode != sendPlain {
			t.Fatalf("after an empty probe: %v, probe %v; want a probe of identity", mode, probe)
		}
		return
	}
}

func TestFits(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC))
	s := &Syncer{o: Options{Clock: clk}}
	ctx := context.WithValue(context.Background(), deadlineKey{}, clk.Uptime()+10*time.Second)
	m := newLinkModel()
	m.rates[sendZstd] = 1e6
	tests := []struct {
		name   string
		ctx    context.Context
		window []*inflight
		mode   sendMode
		raw    int
		want   bool
	}{
		{"no deadline", context.Background(), nil, sendZstd, 100e6, true},
		{"rate unknown", ctx, nil, sendPlain, 100e6, true},
		{"4 s of 5", ctx, nil, sendZstd, 4e6, true},
		{"6 s of 5", ctx, nil, sendZstd, 6e6, false},
		{"4 s after 2 s in flight", ctx, []*inflight{{mode: sendZstd, raw: 2e6}}, sendZstd, 4e6, false},
		{"2 s after 2 s in flight", ctx, []*inflight{{mode: sendZstd, raw: 2e6}}, sendZstd, 2e6, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := s.fits(tc.ctx, m, tc.window, tc.mode, tc.raw); got != tc.want {
				t.Fatalf("fits = %v, want %v", got, tc.want)
			}
		})
	}
}
