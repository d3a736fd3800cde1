package cloud

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/cloud/ingest"
)

// partialBlobSweep is how often abandoned incomplete blobs are looked for;
// they expire after days (ingest.DefaultPartialBlobTTL), so hourly is ample.
const partialBlobSweep = time.Hour

// sweepPartialBlobs discards abandoned incomplete blobs every
// partialBlobSweep until ctx ends, when st bounds them.
func sweepPartialBlobs(ctx context.Context, clk clock.Clock, st ingest.Store, log *zap.Logger) {
	pb, ok := st.(ingest.PartialBlobs)
	if !ok {
		return
	}
	t := clk.NewTicker(partialBlobSweep)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
		n, err := pb.ExpirePartialBlobs(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("could not expire abandoned incomplete blobs", zap.Error(err))
		case n > 0:
			log.Info("expired abandoned incomplete blobs", zap.Int("blobs", n))
		}
	}
}
