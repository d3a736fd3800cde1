package cloudsync

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	kgzip "github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"google.golang.org/protobuf/proto"

	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
)

// captureBatch builds an upload request of about 1 MiB like the ones sync
// sends: JSON sensor readings (compressible), or random bytes standing in
// for JPEG images (incompressible).
func captureBatch(images bool) []byte {
	rng := rand.New(rand.NewPCG(1, 2))
	req := &syncv1.UploadRequest{StoreId: "0123456789abcdef0123456789abcdef", Stream: "captures"}
	size := 0
	for seq := uint64(1); size < 1<<20; seq++ {
		var data []byte
		if images {
			data = make([]byte, 16<<10)
			for i := range data {
				data[i] = byte(rng.Uint32())
			}
		} else {
			data = fmt.Appendf(nil, `{"cpu_temp_c":%.2f,"load_1m":%.2f,"mem_used_bytes":%d,"disk_free_bytes":%d,"uptime_s":%d,"voltage_v":%.3f}`,
				40+rng.Float64()*30, rng.Float64()*4, 900_000_000+rng.IntN(1_000_000), 20_000_000_000+rng.IntN(1_000_000_000), 86400+seq, 5+rng.Float64()*0.1)
		}
		payload, _ := proto.Marshal(&syncv1.Capture{Component: "system", Method: "readings", Tags: []string{"site-a"}, Priority: 5, Data: data, MimeType: "application/json"})
		req.Records = append(req.Records, &syncv1.Record{Seq: seq, Payload: payload})
		size += len(payload)
	}
	b, _ := proto.Marshal(req)
	return b
}

// BenchmarkCompression compares the upload body codecs connect-go can use:
// the standard library's gzip (connect's built-in), klauspost's gzip (the
// same format, faster) and zstd. MB/s is of uncompressed input; ratio is
// compressed/raw.
func BenchmarkCompression(b *testing.B) {
	// Encoders are made once and Reset per body, as connect-go pools them.
	type resetter interface {
		io.WriteCloser
		Reset(io.Writer)
	}
	codecs := []struct {
		name string
		new  func() resetter
	}{
		{"stdlib-gzip", func() resetter { return gzip.NewWriter(nil) }},
		{"klauspost-gzip", func() resetter { return kgzip.NewWriter(nil) }},
		{"zstd-fastest", func() resetter {
			e, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
			return e
		}},
		{"zstd-default", func() resetter {
			e, _ := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
			return e
		}},
	}
	for _, kind := range []string{"readings", "images"} {
		raw := captureBatch(kind == "images")
		for _, c := range codecs {
			b.Run(kind+"/"+c.name, func(b *testing.B) {
				var out bytes.Buffer
				w := c.new()
				b.SetBytes(int64(len(raw)))
				for b.Loop() {
					out.Reset()
					w.Reset(&out)
					_, _ = w.Write(raw)
					_ = w.Close()
				}
				b.ReportMetric(float64(out.Len())/float64(len(raw)), "ratio")
			})
		}
	}
}
