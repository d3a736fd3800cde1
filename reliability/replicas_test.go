package reliability

import (
	"context"
	"encoding/csv"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	"github.com/outpost-robotics/outpost/cache"
	"github.com/outpost-robotics/outpost/cloud/ingest/pgingest"
	"github.com/outpost-robotics/outpost/cloud/pgtest"
)

// newCloudOn starts outpost-cloud with env added to its environment (the
// database URL, kept out of its command line as in production).
func newCloudOn(t *testing.T, env ...string) *cloudProc {
	t.Helper()
	dir := t.TempDir()
	cp := &cloudProc{dir: filepath.Join(dir, "data"), addr: fixedAddr(t), log: filepath.Join(dir, "outpost-cloud.log"), env: env}
	if err := cp.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cp.c != nil && cp.c.running() {
			cp.c.kill()
		}
		if t.Failed() {
			t.Logf("outpost-cloud %s log tail:\n%s", cp.addr, tail(cp.log, 30))
		}
	})
	return cp
}

// balancer is HAProxy in front of the replicas.
type balancer struct {
	addr, stats string
	c           *child
}

func (b *balancer) URL() string { return "http://" + b.addr }

// startHAProxy runs Debian's HAProxy (scripts/deps installs it) on a
// loopback port with a generated configuration: the fleet API and the part
// sync API balanced request by request over both replicas, a replica that
// fails its health check (every 300 ms) taken out, a request that cannot
// connect sent to the other. A part's relay polls and answers go to the
// first replica while it is up (the second is its backup), so a caller who
// offers through the second is always on another replica than the part.
func startHAProxy(t *testing.T, a, b *cloudProc) *balancer {
	t.Helper()
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		for _, p := range []string{"/usr/sbin/haproxy", "/usr/local/sbin/haproxy"} {
			if _, serr := os.Stat(p); serr == nil {
				bin, err = p, nil
			}
		}
	}
	if err != nil {
		t.Fatal("HAProxy is not installed: run scripts/deps")
	}
	lb := &balancer{addr: fixedAddr(t), stats: fixedAddr(t)}
	srv := func(name string, cp *cloudProc, extra string) string {
		return fmt.Sprintf("  server %s %s check inter 300ms fall 1 rise 1%s\n", name, cp.addr, extra)
	}
	cfg := "global\n  maxconn 2000\n" +
		"defaults\n  mode http\n  timeout connect 2s\n  timeout client 60s\n  timeout server 60s\n  retries 3\n  option redispatch\n" +
		"frontend cloud\n  bind " + lb.addr + "\n" +
		"  acl relay path_end /outpost.sync.v1.SyncService/NextOffer /outpost.sync.v1.SyncService/AnswerOffer\n" +
		"  acl sync path_beg /outpost.sync.v1.SyncService/\n" +
		"  use_backend relay if relay\n  use_backend sync if sync\n  default_backend fleet\n" +
		"backend sync\n  balance roundrobin\n  option httpchk GET /\n" + srv("a", a, "") + srv("b", b, "") +
		"backend fleet\n  balance roundrobin\n  option httpchk GET /\n" + srv("a", a, "") + srv("b", b, "") +
		"backend relay\n  option httpchk GET /\n" + srv("a", a, "") + srv("b", b, " backup") +
		"listen stats\n  bind " + lb.stats + "\n  stats enable\n  stats uri /stats\n"
	dir := t.TempDir()
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(dir, "haproxy.log")
	if lb.c, err = startChild("haproxy", log, nil, bin, "-db", "-f", path); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if lb.c.running() {
			lb.c.kill()
		}
		if t.Failed() {
			t.Logf("haproxy log tail:\n%s", tail(log, 20))
		}
	})
	if err := waitFor(startDeadline, func() (bool, error) {
		if !lb.c.running() {
			return false, fmt.Errorf("haproxy exited: %v\n%s", lb.c.err, tail(log, 20))
		}
		_, err := lb.served()
		return err == nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	return lb
}

// served reads HAProxy's statistics: the requests each server of each
// backend took, by "backend/server".
func (b *balancer) served() (map[string]int, error) {
	resp, err := http.Get("http://" + b.stats + "/stats;csv")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	r := csv.NewReader(resp.Body)
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil || len(rows) == 0 {
		return nil, fmt.Errorf("read HAProxy's statistics: %v", err)
	}
	col := -1
	for i, h := range rows[0] {
		if strings.TrimPrefix(h, "# ") == "stot" {
			col = i
		}
	}
	if col < 0 {
		return nil, fmt.Errorf("HAProxy's statistics have no stot column")
	}
	out := map[string]int{}
	for _, row := range rows[1:] {
		if len(row) > col {
			n, _ := strconv.Atoi(row[col])
			out[row[0]+"/"+row[1]] = n
		}
	}
	return out, nil
}

// TestReplicasOnPostgreSQL runs the cloud as two replicas of outpost-cloud
// on one PostgreSQL behind HAProxy, with a real part and the CLI: the
// part's sync and uploads go through both replicas; a WebRTC session is
// relayed while the caller is on one replica and the part's poll on the
// other; one replica is SIGKILLed mid-upload, and later PostgreSQL is
// restarted mid-upload; at the end every record the part's store
// acknowledged is in the database exactly once.
func TestReplicasOnPostgreSQL(t *testing.T) {
	rep := newReport(t, "replicas-postgresql")
	ctx := context.Background()
	pg := pgtest.NewServer(t)
	if err := pg.CreateDatabase(ctx, "outpost"); err != nil {
		rep.fatal("%v", err)
	}
	db := pg.URL("outpost")
	a := newCloudOn(t, "OUTPOST_DATABASE_URL="+db)
	b := newCloudOn(t, "OUTPOST_DATABASE_URL="+db)
	tokA, errA := a.adminToken()
	tokB, errB := b.adminToken()
	if errA != nil || errB != nil || tokA != tokB {
		rep.fatal("the replicas' admin tokens differ (%v, %v): the session is not the database's", errA, errB)
	}
	lb := startHAProxy(t, a, b)
	f := newFleet(lb.URL(), tokA, time.Now)
	ln := newLink(t, lb.URL())
	p := newPart(t)
	cfg := sensors(50, 0, map[string]uint32{"imu": 5, "gps": 3})
	m, err := f.provision(ctx, cfg, p.boot, ln.URL())
	if err != nil {
		rep.fatal("provision through the balancer: %v", err)
	}
	if _, err := p.start(); err != nil {
		rep.fatal("start: %v", err)
	}

	// stop fails the scenario from a subtest and ends the subtest; the
	// scenario ends with it.
	stop := func(t *testing.T, format string, args ...any) {
		t.Helper()
		rep.fail(format, args...)
		t.FailNow()
	}
	if !t.Run("either replica", func(t *testing.T) {
		if err := waitFor(waitDeadline, func() (bool, error) {
			rev, err := runningRevision(ctx, p.socket())
			return err == nil && rev == m.revision, nil
		}); err != nil {
			stop(t, "the part never ran its config from the cloud: %v", err)
		}
		// Each replica has served the part's sync calls, uploads among them.
		var last map[string]int
		if err := waitFor(waitDeadline, func() (bool, error) {
			s, err := lb.served()
			last = s
			return err == nil && s["sync/a"] >= 3 && s["sync/b"] >= 3, nil
		}); err != nil {
			stop(t, "the part's sync did not reach both replicas: %v (served %v)", err, last)
		}
		for range 2 {
			ln.forget()
			if err := waitCall(ln, "Upload"); err != nil {
				stop(t, "%v", err)
			}
		}
		rep.set("sync_a", last["sync/a"])
		rep.set("sync_b", last["sync/b"])
	}) {
		return
	}

	if !t.Run("relay across replicas", func(t *testing.T) {
		// The caller is on replica b; the part's relay polls are on a.
		cli := exec.Command(suite.cli, "robot", "--via-cloud", m.partID, "status", "--json")
		cli.Env = append(cleanEnv(), "OUTPOST_CLOUD="+b.URL(), "OUTPOST_TOKEN="+tokA, "XDG_CONFIG_HOME="+t.TempDir())
		out, err := cli.Output()
		if err != nil {
			msg := ""
			if ee, ok := err.(*exec.ExitError); ok {
				msg = string(ee.Stderr)
			}
			stop(t, "outpost robot --via-cloud through replica b: %v\n%s", err, msg)
		}
		var st controlv1.StatusResponse
		if err := protojson.Unmarshal(out, &st); err != nil || st.GetPartId() != m.partID {
			stop(t, "the part's status through the relay: %v %s", err, out)
		}
		s, err := lb.served()
		if err != nil || s["relay/a"] == 0 || s["relay/b"] != 0 {
			stop(t, "the part's relay calls were not all on replica a: %v %v", s, err)
		}
	}) {
		return
	}

	if !t.Run("replica killed mid-upload", func(t *testing.T) {
		ln.forget()
		if err := waitCall(ln, "Upload"); err != nil {
			stop(t, "%v", err)
		}
		a.kill()
		// The part goes on through b alone: uploads are acknowledged.
		for range 3 {
			if err := waitCall(ln, "Upload"); err != nil {
				stop(t, "after the kill: %v", err)
			}
		}
	}) {
		return
	}

	if !t.Run("PostgreSQL restarted mid-upload", func(t *testing.T) {
		ln.forget()
		if err := waitCall(ln, "Upload"); err != nil {
			stop(t, "%v", err)
		}
		if err := pg.Restart(ctx); err != nil {
			stop(t, "restart PostgreSQL: %v", err)
		}
		// The killed replica comes back on the restarted database.
		if err := a.start(); err != nil {
			stop(t, "replica a did not come back: %v", err)
		}
	}) {
		return
	}

	// Converge: capture off, the backlog drained through both replicas.
	if _, err := drain(ctx, f, &m, p, cfg); err != nil {
		rep.fatal("drain: %v", err)
	}
	sv, err := inspectStore(ctx, p.data, true)
	if err != nil {
		rep.fatal("final inspection: %v", err)
	}
	for _, cp := range []*cloudProc{a, b} {
		if err := cp.stop(); err != nil {
			rep.fatal("%v", err)
		}
	}
	blobs, err := pgingest.OpenBlobStore(ctx, db)
	if err != nil {
		rep.fatal("%v", err)
	}
	defer blobs.Close()
	ing, err := pgingest.Open(ctx, pgingest.Options{URL: db, Blobs: blobs})
	if err != nil {
		rep.fatal("%v", err)
	}
	defer ing.Close()
	cv, err := readIngest(ctx, ing, m.partID, sv.id)
	if err != nil {
		rep.fatal("%v", err)
	}
	tl := account(cv, sv, nil)
	rep.set("records", tl.acked)
	rep.set("in_cloud", tl.inCloud)
	rep.set("dup", tl.dup)
	rep.set("missing", tl.missing)
	rep.set("lost", tl.lost)
	for _, pr := range tl.problems {
		t.Log(pr)
	}
	rep.check(tl.ok(), "not exactly once: %s", strings.Join(tl.problems, "; "))
	rep.check(tl.lost == 0, "%d records declared lost", tl.lost)
	rep.check(sv.stats[cache.StreamCaptures].Last > 0 && sv.stats[cache.StreamCaptures].Count == 0,
		"captures: last %d, %d left on the part after the drain", sv.stats[cache.StreamCaptures].Last, sv.stats[cache.StreamCaptures].Count)
}
