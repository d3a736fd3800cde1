package cloud

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	"github.com/outpost-robotics/outpost/cloud/store"
)

// BenchmarkAccessCheck measures CheckAccess end to end over loopback: HTTP
// (Connect protocol, keep-alive), token verification, the subject's grants
// from the store, the hierarchy snapshot check, the interceptor's decision
// and the simulated one. The fleet is one side of the permission matrix
// plus 200 machines; the caller is a location operator asking about itself.
func BenchmarkAccessCheck(b *testing.B) {
	e := newEnvLog(b, zap.NewNop())
	s := newSide()
	user := s.t2 // operator of location L2
	e.update(func(ctx context.Context, tx store.Tx) error {
		if err := s.write(ctx, tx); err != nil {
			return err
		}
		for i := range 200 {
			m := store.Machine{ID: newBenchID(i), LocationID: s.l2, Name: "m"}
			if err := tx.PutMachine(ctx, m); err != nil {
				return err
			}
		}
		return nil
	})
	c := e.client(e.token(user))
	ctx := context.Background()
	r := &fleetv1.CheckAccessRequest{Subject: "user:" + user, Action: "machine.control", Resource: "machine/" + s.m}
	res, err := c.access.CheckAccess(ctx, req(r))
	if err != nil || !res.Msg.GetAllowed() {
		b.Fatalf("check: %v %v", res, err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.access.CheckAccess(ctx, req(r)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
}

func newBenchID(i int) string {
	const hex = "0123456789abcdef"
	id := []byte("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb")
	for j := 0; j < 8; j++ {
		id[31-j] = hex[(i>>(4*j))&0xf]
	}
	return string(id)
}
