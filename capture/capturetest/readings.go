package capturetest

import (
	"fmt"
	"math/rand/v2"
)

// Readings is one ~1 KiB capture's data as a robot's sensors make it: six
// IMUs' JSON readings (acceleration, rotation, temperature) drawn from rng,
// numbered seq. Benchmarks fill stores and backlogs with it, so what they
// compress and store looks like a real backlog's bulk.
func Readings(rng *rand.Rand, seq int) []byte {
	p := make([]byte, 0, 1100)
	p = append(p, '[')
	for k := range 6 {
		if k > 0 {
			p = append(p, ',')
		}
		p = fmt.Appendf(p, `{"sensor":"imu%d","accel":[%.4f,%.4f,%.4f],"gyro":[%.4f,%.4f,%.4f],"temp_c":%.2f,"seq":%d}`,
			k, rng.NormFloat64(), rng.NormFloat64(), 9.81+rng.NormFloat64()/10, rng.NormFloat64(), rng.NormFloat64(), rng.NormFloat64(), 35+rng.Float64()*10, seq)
	}
	return append(p, ']')
}
