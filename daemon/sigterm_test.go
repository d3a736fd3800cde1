package daemon

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/cache"
	"github.com/outpost-robotics/outpost/capture"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/qemutest"
)

const childEnv = "OUTPOSTD_TEST_CHILD"

// ackedSink calls acked for every append the store acknowledged, once its
// Wait returned nil (Append waits through Queue): what the daemon
// promised.
type ackedSink struct {
	capture.Sink
	acked func(seq uint64, rec capture.Record)
}

func (a ackedSink) Append(ctx context.Context, st capture.Stream, rec capture.Record) (uint64, error) {
	return capture.Await(a.Queue(ctx, st, rec))
}

func (a ackedSink) Queue(ctx context.Context, st capture.Stream, rec capture.Record) (capture.Queued, error) {
	q, err := a.Sink.Queue(ctx, st, rec)
	if err != nil {
		return nil, err
	}
	return afterWait{Queued: q, then: func(seq uint64) { a.acked(seq, rec) }}, nil
}

// afterWait calls then after Wait returned nil.
type afterWait struct {
	capture.Queued
	then func(seq uint64)
}

func (q afterWait) Wait() (uint64, error) {
	seq, err := q.Queued.Wait()
	if err == nil {
		q.then(seq)
	}
	return seq, err
}

// printAcks reports each acknowledged append on out as "ack SEQ SHA256".
func printAcks(out *os.File) func(uint64, capture.Record) {
	var mu sync.Mutex
	return func(seq uint64, rec capture.Record) {
		sum := sha256.Sum256(rec.Payload)
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(out, "ack %d %s\n", seq, hex.EncodeToString(sum[:]))
	}
}

// runChild is the child process: the real daemon, real clock, real signals.
func runChild(t *testing.T, spec string) {
	var p part
	if err := json.Unmarshal([]byte(spec), &p); err != nil {
		t.Fatal(err)
	}
	err := Run(context.Background(), Options{
		ConfigPath: p.BootPath, DataDir: p.DataDir, RuntimeDir: p.RunDir, Listen: "127.0.0.1:0", MetricsListen: "-",
		Stderr: os.Stderr, LogFormat: "json",
		OnReady:  func(Endpoints) { fmt.Fprintln(os.Stdout, "ready") },
		wrapSink: func(s capture.Sink) capture.Sink { return ackedSink{Sink: s, acked: printAcks(os.Stdout)} },
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child Run:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// TestSIGTERMDuringHeavyCaptureLosesNothing runs outpostd in a child
// process capturing 4 × 1,000 readings/s, sends it a real SIGTERM, and
// checks that every record the child reported acknowledged is in the store
// exactly once, and that it exited 0.
func TestSIGTERMDuringHeavyCaptureLosesNothing(t *testing.T) {
	if spec := os.Getenv(childEnv); spec != "" {
		runChild(t, spec)
		return
	}
	p := newPart(t)
	p.hold(t, epoch, sensorConfig(1000, "s1", "s2", "s3", "s4"))
	spec, _ := json.Marshal(p)

	cmd := qemutest.Command(os.Args[0], "-test.run=^TestSIGTERMDuringHeavyCaptureLosesNothing$", "-test.v=false")
	cmd.Env = append(os.Environ(), childEnv+"="+string(spec))
	var stderr syncBuffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[uint64]string{}
	const before = 2000 // acknowledged appends before the SIGTERM
	sc := bufio.NewScanner(out)
	sent := false
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 || f[0] != "ack" {
			continue
		}
		seq, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			t.Fatalf("child said %q", sc.Text())
		}
		if _, dup := acked[seq]; dup {
			t.Fatalf("sequence %d acknowledged twice", seq)
		}
		acked[seq] = f[2]
		if len(acked) == before && !sent {
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			sent = true
		}
	}
	err = cmd.Wait()
	if !sent {
		t.Fatalf("child ended after %d acknowledged appends, before the SIGTERM: %v\n%s", len(acked), err, tail(stderr.String()))
	}
	if err != nil {
		t.Fatalf("child after SIGTERM: %v (want exit 0)\n%s", err, tail(stderr.String()))
	}
	if !strings.Contains(stderr.String(), `"msg":"stopped"`) {
		t.Errorf("child did not log its clean stop:\n%s", tail(stderr.String()))
	}

	st, err := cache.Open(context.Background(), filepath.Join(p.DataDir, "store"), cache.Options{Clock: clock.NewFake(time.Now()), GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	stored := map[uint64]string{}
	ticks := map[string]bool{}
	for after := uint64(0); ; {
		es, err := st.Read(context.Background(), cache.StreamCaptures, after, 1000, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(es) == 0 {
			break
		}
		for _, e := range es {
			// The record is the wire's syncv1.Capture around capture's JSON.
			var cp syncv1.Capture
			if err := proto.Unmarshal(e.Payload, &cp); err != nil {
				t.Fatalf("record %d: %v", e.Seq, err)
			}
			sum := sha256.Sum256(cp.GetData())
			stored[e.Seq] = hex.EncodeToString(sum[:])
			var c capture.Capture
			if err := json.Unmarshal(cp.GetData(), &c); err != nil {
				t.Fatalf("record %d: %v", e.Seq, err)
			}
			k := c.Component + "/" + strconv.FormatUint(c.Tick, 10)
			if ticks[k] {
				t.Fatalf("reading %s stored twice", k)
			}
			ticks[k] = true
		}
		after = es[len(es)-1].Seq
	}
	for seq, sum := range acked {
		got, ok := stored[seq]
		switch {
		case !ok:
			t.Errorf("acknowledged record %d is missing", seq)
		case got != sum:
			t.Errorf("acknowledged record %d has other contents", seq)
		}
	}
	t.Logf("%d appends acknowledged (%d after SIGTERM), %d records stored", len(acked), len(acked)-before, len(stored))
}

func tail(s string) string {
	if len(s) > 4000 {
		return "..." + s[len(s)-4000:]
	}
	return s
}
