package partsync_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1/syncv1connect"
	"github.com/outpost-robotics/outpost/cloud/ingest"
	"github.com/outpost-robotics/outpost/cloud/partsync"
	"github.com/outpost-robotics/outpost/faultproxy"
	"github.com/outpost-robotics/outpost/signed"
)

func pull(t *testing.T, c syncv1connect.SyncServiceClient, cfg, grants uint64) *syncv1.PullResponse {
	t.Helper()
	ans, err := c.Pull(context.Background(), connect.NewRequest(&syncv1.PullRequest{ConfigVersion: cfg, GrantsVersion: grants}))
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	return ans.Msg
}

func TestPull(t *testing.T) {
	e := newEnv(t, partsync.Options{})
	c := e.part("part-a")
	e.backend.publish(t, "part-a", 1, 1)
	keys, err := signed.KeysFromProto([]*syncv1.PublicKey{e.backend.signer.PublicKey()})
	if err != nil {
		t.Fatal(err)
	}

	first := pull(t, c, 0, 0)
	if !first.GetServerTime().AsTime().Equal(t0) {
		t.Errorf("server time %v, want the cloud clock's %v", first.GetServerTime().AsTime(), t0)
	}
	if first.GetPollInterval().AsDuration() != 20*time.Second {
		t.Errorf("poll interval %v, want the backend's 20s", first.GetPollInterval().AsDuration())
	}
	var cfg syncv1.ConfigDocument
	if err := signed.Verify(keys, first.GetConfig(), &cfg); err != nil || cfg.GetVersion() != 1 || cfg.GetPartId() != "part-a" {
		t.Fatalf("config: %v, %v", &cfg, err)
	}
	var grants syncv1.GrantBundle
	if err := signed.Verify(keys, first.GetGrants(), &grants); err != nil || grants.GetVersion() != 1 {
		t.Fatalf("grants: %v, %v", &grants, err)
	}

	// Nothing changed: nothing comes.
	e.clock.Advance(15 * time.Second)
	again := pull(t, c, 1, 1)
	if again.GetConfig() != nil || again.GetGrants() != nil {
		t.Fatalf("a pull with nothing changed returned documents: %v", again)
	}
	if !again.GetServerTime().AsTime().Equal(t0.Add(15 * time.Second)) {
		t.Errorf("server time %v does not follow the cloud clock", again.GetServerTime().AsTime())
	}

	// A new config appears in the next pull, alone.
	e.backend.publish(t, "part-a", 2, 0)
	next := pull(t, c, 1, 1)
	if next.GetGrants() != nil {
		t.Error("unchanged grants came again")
	}
	if err := signed.Verify(keys, next.GetConfig(), &cfg); err != nil || cfg.GetVersion() != 2 {
		t.Fatalf("new config: version %d, %v", cfg.GetVersion(), err)
	}
	if p := pull(t, c, 2, 1); p.GetConfig() != nil || p.GetGrants() != nil {
		t.Fatal("documents came again after the part took them")
	}
}

func TestUploadExactlyOnce(t *testing.T) {
	e := newEnv(t, partsync.Options{})
	c := e.part("part-a")
	const stream = "logs.info"
	steps := []struct {
		name  string
		seqs  []uint64
		acked uint64
	}{
		{"first batch", span(1, 5), 5},
		{"the same batch again (a lost answer)", span(1, 5), 5},
		{"a later batch first", span(11, 15), 5},
		{"then the one between", span(6, 10), 15},
		{"an overlapping batch", span(9, 16), 16},
		{"an old batch again", span(2, 4), 16},
	}
	for _, st := range steps {
		if got := upload(t, c, "store-1", stream, records(stream, st.seqs...)); got != st.acked {
			t.Fatalf("%s: acked %d, want %d", st.name, got, st.acked)
		}
	}
	rs, _, err := e.store.Records(context.Background(), ingest.Query{PartIDs: []string{"part-a"}, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 16 {
		t.Fatalf("%d records stored, want 16", len(rs))
	}
	for i, r := range rs {
		if r.Seq != uint64(i+1) || !bytes.Equal(r.Payload, payload(stream, r.Seq)) || r.StoreID != "store-1" || r.Stream != stream {
			t.Fatalf("record %d: %+v", i, r)
		}
		if !r.Time.Equal(t0.Add(time.Duration(r.Seq) * time.Second)) {
			t.Fatalf("record %d: time %v", r.Seq, r.Time)
		}
	}
	// Different bytes under a held sequence: the first copy stays, and the
	// repeat is logged without its payload.
	upload(t, c, "store-1", stream, []*syncv1.Record{{Seq: 3, Payload: []byte("something else")}})
	if n, _ := e.store.Count(context.Background(), "part-a", stream); n.Records != 16 || n.Conflicts != 1 {
		t.Errorf("after a conflicting repeat: %+v", n)
	}
	if !strings.Contains(e.logs.String(), "different contents") || strings.Contains(e.logs.String(), "something else") {
		t.Errorf("conflict log: %s", e.logs.String())
	}
}

func TestGapRecordPassesEvictedRange(t *testing.T) {
	e := newEnv(t, partsync.Options{})
	c := e.part("part-a")
	// The part evicted captures 4..6 before sending them.
	if got := upload(t, c, "s1", "captures", records("captures", 1, 2, 3, 7, 8)); got != 3 {
		t.Fatalf("acked %d, want 3: 4..6 are missing", got)
	}
	// Its gap record goes first in the next cycle (sync.UploadOrder).
	if got := upload(t, c, "s1", "gaps", []*syncv1.Record{gap(t, 1, "captures", 4, 6)}); got != 1 {
		t.Fatalf("gaps acked %d, want 1", got)
	}
	if got := upload(t, c, "s1", "captures", records("captures", 7, 8, 9)); got != 9 {
		t.Fatalf("acked %d, want 9: the gap accounts for 4..6", got)
	}
	lost, err := e.store.Lost(context.Background(), ingest.StreamKey{PartID: "part-a", StoreID: "s1", Stream: "captures"})
	if err != nil || len(lost) != 1 || lost[0].First != 4 || lost[0].Last != 6 || lost[0].Reason != "over budget" {
		t.Fatalf("lost ranges %+v, %v", lost, err)
	}
	// A store lost whole (empty stream) is stored but declares nothing.
	if got := upload(t, c, "s1", "gaps", []*syncv1.Record{gap(t, 2, "", 0, 0)}); got != 2 {
		t.Fatalf("gaps acked %d, want 2", got)
	}
	// The gap records themselves are kept.
	if n, _ := e.store.Count(context.Background(), "part-a", "gaps"); n.Records != 2 {
		t.Errorf("%d gap records stored, want 2", n.Records)
	}
}

func TestStoreIDsAreSeparate(t *testing.T) {
	e := newEnv(t, partsync.Options{})
	c := e.part("part-a")
	upload(t, c, "old-store", "audit", records("audit", span(1, 10)...))
	// A store moved aside after corruption starts again at 1 under a new id.
	if got := upload(t, c, "new-store", "audit", records("audit", 2, 3)); got != 0 {
		t.Fatalf("new store acked %d, want 0: its seq 1 has not arrived", got)
	}
	if got := upload(t, c, "new-store", "audit", []*syncv1.Record{{Seq: 1, Payload: []byte("new 1")}}); got != 3 {
		t.Fatalf("new store acked %d, want 3", got)
	}
	rs, _, _ := e.store.Records(context.Background(), ingest.Query{PartIDs: []string{"part-a"}, Stream: "audit", Limit: 100})
	if len(rs) != 13 {
		t.Fatalf("%d audit records, want 13 (10 + 3)", len(rs))
	}
	if rs[0].StoreID != "new-store" || string(rs[0].Payload) != "new 1" {
		t.Errorf("new-store seq 1 = %+v", rs[0])
	}
}

func TestPartsCannotReachEachOther(t *testing.T) {
	e := newEnv(t, partsync.Options{})
	a := e.part("part-a")
	b := e.part("part-b")
	upload(t, a, "s1", "logs.warn", records("logs.warn", 1, 2, 3))
	// B uses the same store id and stream: its records are its own, and
	// it cannot see A's watermark.
	if got := upload(t, b, "s1", "logs.warn", records("logs.warn", 2)); got != 0 {
		t.Fatalf("part-b acked %d: it sees part-a's records", got)
	}
	// A's blob id in B's hands is B's blob.
	data := []byte("part-a's blob")
	sum := sha256.Sum256(data)
	if _, err := a.UploadBlob(context.Background(), connect.NewRequest(&syncv1.UploadBlobRequest{BlobId: "img-1", Data: data, Size: uint64(len(data)), Sha256: sum[:]})); err != nil {
		t.Fatal(err)
	}
	ans, err := b.UploadBlob(context.Background(), connect.NewRequest(&syncv1.UploadBlobRequest{BlobId: "img-1", Offset: 5, Data: data[5:], Size: uint64(len(data)), Sha256: sum[:]}))
	if err != nil || ans.Msg.GetReceived() != 0 || ans.Msg.GetComplete() {
		t.Fatalf("part-b resuming part-a's blob: %v, %v; want received 0", ans, err)
	}
	// A's id with B's secret is refused.
	forged := e.client(e.url, "part-a", e.backend.provision("part-c"))
	if _, err := forged.Pull(context.Background(), connect.NewRequest(&syncv1.PullRequest{})); codeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("part-a with another part's secret: %v, want unauthenticated", err)
	}
	ctx := context.Background()
	if n, _ := e.store.Count(ctx, "part-a", "logs.warn"); n.Records != 3 {
		t.Errorf("part-a holds %d records, want 3", n.Records)
	}
	if n, _ := e.store.Count(ctx, "part-b", "logs.warn"); n.Records != 1 {
		t.Errorf("part-b holds %d records, want 1", n.Records)
	}
}

// rawCall posts a Connect unary call with the given Authorization headers.
func rawCall(t *testing.T, url string, auth []string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+syncv1connect.SyncServicePullProcedure, strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for _, a := range auth {
		req.Header.Add("Authorization", a)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode
}

func TestAuthentication(t *testing.T) {
	e := newEnv(t, partsync.Options{AuthFailureBurst: 100})
	secret := e.backend.provision("part-a")
	other := e.backend.provision("part-b")
	cases := []struct {
		name string
		auth []string
		want int
	}{
		{"right", []string{"Part part-a:" + secret}, http.StatusOK},
		{"scheme in other case", []string{"part part-a:" + secret}, http.StatusOK},
		{"none", nil, http.StatusUnauthorized},
		{"bearer", []string{"Bearer part-a:" + secret}, http.StatusUnauthorized},
		{"wrong secret", []string{"Part part-a:" + other}, http.StatusUnauthorized},
		{"unknown part", []string{"Part part-z:" + secret}, http.StatusUnauthorized},
		{"two headers", []string{"Part part-a:" + secret, "Part part-a:" + secret}, http.StatusUnauthorized},
		{"space in the secret", []string{"Part part-a:" + secret + " x"}, http.StatusUnauthorized},
		{"colon in the id", []string{"Part part:a:" + secret}, http.StatusUnauthorized},
		{"two spaces", []string{"Part  part-a:" + secret}, http.StatusUnauthorized},
		{"no secret", []string{"Part part-a:"}, http.StatusUnauthorized},
		{"no colon", []string{"Part part-a"}, http.StatusUnauthorized},
	}
	for _, tc := range cases {
		if got := rawCall(t, e.url, tc.auth); got != tc.want {
			t.Errorf("%s: HTTP %d, want %d", tc.name, got, tc.want)
		}
	}
	for _, s := range []string{secret, other} {
		if strings.Contains(e.logs.String(), s) {
			t.Fatalf("a secret reached the log: %s", e.logs.String())
		}
	}
	if !strings.Contains(e.logs.String(), "wrong secret") {
		t.Errorf("refusals are not logged: %s", e.logs.String())
	}
}

func TestFailedAuthenticationIsSlowed(t *testing.T) {
	e := newEnv(t, partsync.Options{AuthFailureBurst: 3, AuthFailureRefill: 10 * time.Second})
	good := e.part("part-a")
	bad := e.client(e.url, "part-a", "guessed-secret")
	for i := range 3 {
		if _, err := bad.Pull(context.Background(), connect.NewRequest(&syncv1.PullRequest{})); codeOf(err) != connect.CodeUnauthenticated {
			t.Fatalf("guess %d: %v, want unauthenticated", i, err)
		}
	}
	// The address's bucket is empty: everything from it waits, even a
	// right secret, so a guesser learns nothing from the answer.
	for _, c := range []syncv1connect.SyncServiceClient{bad, good} {
		if _, err := c.Pull(context.Background(), connect.NewRequest(&syncv1.PullRequest{})); codeOf(err) != connect.CodeResourceExhausted {
			t.Fatalf("after the burst: %v, want resource exhausted", err)
		}
	}
	e.clock.Advance(10 * time.Second)
	if _, err := good.Pull(context.Background(), connect.NewRequest(&syncv1.PullRequest{})); err != nil {
		t.Fatalf("after a refill: %v", err)
	}
	if _, err := bad.Pull(context.Background(), connect.NewRequest(&syncv1.PullRequest{})); codeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("one more guess after a refill: %v, want unauthenticated", err)
	}
	if _, err := bad.Pull(context.Background(), connect.NewRequest(&syncv1.PullRequest{})); codeOf(err) != connect.CodeResourceExhausted {
		t.Fatalf("and then: %v, want resource exhausted", err)
	}
	if strings.Contains(e.logs.String(), "guessed-secret") {
		t.Fatal("a presented secret reached the log")
	}
}

func TestUploadRefusals(t *testing.T) {
	e := newEnv(t, partsync.Options{Limits: partsync.Limits{MaxRecordBytes: 1000, MaxBatchRecords: 10, MaxBatchBytes: 5000}, MaxRequestBytes: 64 << 10})
	c := e.part("part-a")
	big := func(n int) []byte { return bytes.Repeat([]byte{'x'}, n) }
	badProposal := []byte{0xff, 0xff, 0xff}
	cases := []struct {
		name string
		req  *syncv1.UploadRequest
		want connect.Code
	}{
		{"unknown stream", &syncv1.UploadRequest{StoreId: "s", Stream: "secrets", Records: records("x", 1)}, connect.CodeInvalidArgument},
		{"no store id", &syncv1.UploadRequest{Stream: "audit", Records: records("audit", 1)}, connect.CodeInvalidArgument},
		{"seq 0", &syncv1.UploadRequest{StoreId: "s", Stream: "audit", Records: records("audit", 0)}, connect.CodeInvalidArgument},
		{"decreasing", &syncv1.UploadRequest{StoreId: "s", Stream: "audit", Records: records("audit", 2, 1)}, connect.CodeInvalidArgument},
		{"repeated in batch", &syncv1.UploadRequest{StoreId: "s", Stream: "audit", Records: records("audit", 1, 1)}, connect.CodeInvalidArgument},
		{"too many records", &syncv1.UploadRequest{StoreId: "s", Stream: "audit", Records: records("audit", span(1, 11)...)}, connect.CodeResourceExhausted},
		{"record too big", &syncv1.UploadRequest{StoreId: "s", Stream: "audit", Records: []*syncv1.Record{{Seq: 1, Payload: big(1001)}}}, connect.CodeResourceExhausted},
		{"batch too big", &syncv1.UploadRequest{StoreId: "s", Stream: "audit", Records: []*syncv1.Record{
			{Seq: 1, Payload: big(1000)}, {Seq: 2, Payload: big(1000)}, {Seq: 3, Payload: big(1000)}, {Seq: 4, Payload: big(1000)}, {Seq: 5, Payload: big(1000)}, {Seq: 6, Payload: big(1)}}}, connect.CodeResourceExhausted},
		{"request too big", &syncv1.UploadRequest{StoreId: "s", Stream: "audit", Records: []*syncv1.Record{{Seq: 1, Payload: big(100 << 10)}}}, connect.CodeResourceExhausted},
		{"gap of an unknown stream", &syncv1.UploadRequest{StoreId: "s", Stream: "gaps", Records: []*syncv1.Record{gap(t, 1, "nope", 1, 2)}}, connect.CodeInvalidArgument},
		{"gap backwards", &syncv1.UploadRequest{StoreId: "s", Stream: "gaps", Records: []*syncv1.Record{gap(t, 1, "audit", 5, 2)}}, connect.CodeInvalidArgument},
		{"gap from 0", &syncv1.UploadRequest{StoreId: "s", Stream: "gaps", Records: []*syncv1.Record{gap(t, 1, "audit", 0, 2)}}, connect.CodeInvalidArgument},
		{"not a proposal", &syncv1.UploadRequest{StoreId: "s", Stream: "proposals", Records: []*syncv1.Record{{Seq: 1, Payload: badProposal}}}, connect.CodeInvalidArgument},
	}
	for _, tc := range cases {
		_, err := c.Upload(context.Background(), connect.NewRequest(tc.req))
		if codeOf(err) != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	// Nothing of a refused batch was stored.
	for _, st := range []string{"audit", "gaps", "proposals"} {
		if n, _ := e.store.Count(context.Background(), "part-a", st); n.Records != 0 {
			t.Errorf("%s: %d records stored from refused batches", st, n.Records)
		}
	}
}

// TestCompressedBodies checks every encoding the daemon may use, and that
// the size bound applies to the decompressed body: a small compressed body that
// inflates past it is refused.
func TestCompressedBodies(t *testing.T) {
	e := newEnv(t, partsync.Options{MaxRequestBytes: 256 << 10})
	secret := e.backend.provision("part-a")
	for i, comp := range []string{"zstd", "gzip", "identity"} {
		c, err := outsyncClient(e.url, "part-a", secret, comp)
		if err != nil {
			t.Fatal(err)
		}
		seq := uint64(i + 1)
		recs := []*syncv1.Record{{Seq: seq, Payload: bytes.Repeat([]byte("compressible "), 10_000)}}
		if got := upload(t, c, "s", "captures", recs); got != seq {
			t.Fatalf("%s: acked %d, want %d", comp, got, seq)
		}
		bomb := []*syncv1.Record{{Seq: 10, Payload: make([]byte, 1<<20)}}
		if _, err := c.Upload(context.Background(), connect.NewRequest(&syncv1.UploadRequest{StoreId: "s", Stream: "captures", Records: bomb})); codeOf(err) != connect.CodeResourceExhausted {
			t.Fatalf("%s: 1 MiB of zeros past a 256 KiB bound: %v, want resource exhausted", comp, err)
		}
	}
}

func TestProposals(t *testing.T) {
	e := newEnv(t, partsync.Options{})
	c := e.part("part-a")
	var recs []*syncv1.Record
	for seq := uint64(1); seq <= 3; seq++ {
		b, err := proto.Marshal(&syncv1.ConfigProposal{BaseRevision: 7, Author: "user/u1"})
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, &syncv1.Record{Seq: seq, Payload: b})
	}
	upload(t, c, "s", "proposals", recs)
	upload(t, c, "s", "proposals", recs) // the answer was lost; sent again
	e.backend.mu.Lock()
	got, calls := len(e.backend.proposals), e.backend.handled
	e.backend.mu.Unlock()
	if got != 3 || calls != 6 {
		t.Fatalf("backend holds %d proposals after %d calls; want 3 after 6 (it is told again until acked)", got, calls)
	}
	if n, _ := e.store.Count(context.Background(), "part-a", "proposals"); n.Records != 3 {
		t.Fatalf("%d proposal records stored, want 3", n.Records)
	}
	outs := pull(t, c, 0, 0).GetProposals()
	if len(outs) != 3 || !outs[0].GetAccepted() || outs[0].GetRevision() != 101 {
		t.Fatalf("outcomes %v", outs)
	}
}

func TestReportStatus(t *testing.T) {
	e := newEnv(t, partsync.Options{})
	c := e.part("part-a")
	e.clock.Advance(time.Hour)
	st := &syncv1.PartStatus{Version: "1.2.3", StoreBytes: 1 << 20, Backlog: []*syncv1.StreamBacklog{{Stream: "captures", Records: 9}}}
	if _, err := c.ReportStatus(context.Background(), connect.NewRequest(&syncv1.ReportStatusRequest{Status: st})); err != nil {
		t.Fatal(err)
	}
	got, err := e.store.Status(context.Background(), "part-a")
	if err != nil || !proto.Equal(got.Status, st) || !got.At.Equal(t0.Add(time.Hour)) {
		t.Fatalf("status %v at %v, %v", got.Status, got.At, err)
	}
	if _, err := c.ReportStatus(context.Background(), connect.NewRequest(&syncv1.ReportStatusRequest{})); codeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("empty status: %v", err)
	}
}

func TestBlobResumeAndMismatch(t *testing.T) {
	e := newEnv(t, partsync.Options{})
	secret := e.backend.provision("part-a")
	// Chunk 2's answer is lost twice (the client retries once): the cloud
	// stored the chunk, the part did not hear so.
	proxy, err := faultproxy.New(e.url, faultproxy.Script(faultproxy.Pass, faultproxy.ResetAfter, faultproxy.ResetAfter))
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	c, err := outsyncClient(proxy.URL(), "part-a", secret, "gzip")
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	sum := sha256.Sum256(data)
	send := func(off, n int, digest []byte) (*syncv1.UploadBlobResponse, error) {
		ans, err := c.UploadBlob(context.Background(), connect.NewRequest(&syncv1.UploadBlobRequest{
			BlobId: "cam-1", Offset: uint64(off), Data: data[off : off+n], Size: uint64(len(data)), Sha256: digest, Name: "captures/cam-1.jpg",
			Meta: &syncv1.Capture{Component: "cam", Method: "image", MimeType: "image/jpeg", BlobId: "cam-1"},
		}))
		if err != nil {
			return nil, err
		}
		return ans.Msg, nil
	}
	if ans, err := send(0, 20000, sum[:]); err != nil || ans.GetReceived() != 20000 {
		t.Fatalf("chunk 1: %v, %v", ans, err)
	}
	if _, err := send(20000, 20000, sum[:]); err == nil {
		t.Fatal("the proxy did not interrupt chunk 2")
	}
	// The part resends chunk 2 at the offset it knows; the cloud has it.
	if ans, err := send(20000, 20000, sum[:]); err != nil || ans.GetReceived() != 40000 || ans.GetComplete() {
		t.Fatalf("chunk 2 again: %v, %v; want received 40000", ans, err)
	}
	if ans, err := send(40000, len(data)-40000, sum[:]); err != nil || !ans.GetComplete() {
		t.Fatalf("last chunk: %v, %v", ans, err)
	}
	rc, err := e.blobs.Open(context.Background(), ingest.BlobKey{PartID: "part-a", BlobID: "cam-1"})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, data) {
		t.Fatal("the stored blob differs from the one sent")
	}
	info, err := e.store.Blob(context.Background(), "part-a", "cam-1")
	var meta syncv1.Capture
	if err != nil || proto.Unmarshal(info.Meta, &meta) != nil || meta.GetComponent() != "cam" || info.Name != "captures/cam-1.jpg" {
		t.Fatalf("blob info %+v, %v", info, err)
	}

	// A blob whose bytes do not match its SHA-256 is refused at its end and
	// discarded, so the part sends it again.
	bad := sha256.Sum256([]byte("something else"))
	ansOf := func(off, n int) error {
		_, err := c.UploadBlob(context.Background(), connect.NewRequest(&syncv1.UploadBlobRequest{
			BlobId: "cam-2", Offset: uint64(off), Data: data[off : off+n], Size: uint64(len(data)), Sha256: bad[:]}))
		return err
	}
	if err := ansOf(0, 40000); err != nil {
		t.Fatal(err)
	}
	err = ansOf(40000, len(data)-40000)
	if codeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "send the blob again") {
		t.Fatalf("mismatched blob: %v", err)
	}
	if _, err := e.store.Blob(context.Background(), "part-a", "cam-2"); err == nil {
		t.Fatal("the mismatched blob is still held")
	}
}

// TestClientAddress checks that failures are counted by the address
// Options.ClientAddress names, so parts behind one load balancer do not
// share a bucket.
func TestClientAddress(t *testing.T) {
	e := newEnv(t, partsync.Options{AuthFailureBurst: 1, ClientAddress: func(_ connect.Peer, h http.Header) string {
		return h.Get("X-Forwarded-For")
	}})
	secret := e.backend.provision("part-a")
	call := func(from, auth string) int {
		req, _ := http.NewRequest(http.MethodPost, e.url+syncv1connect.SyncServicePullProcedure, strings.NewReader("{}"))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", auth)
		req.Header.Set("X-Forwarded-For", from)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	steps := []struct {
		from, auth string
		want       int
	}{
		{"10.0.0.1", "Part part-a:wrong", http.StatusUnauthorized},
		{"10.0.0.1", "Part part-a:" + secret, http.StatusTooManyRequests},
		{"10.0.0.2", "Part part-a:" + secret, http.StatusOK},
	}
	for i, st := range steps {
		if got := call(st.from, st.auth); got != st.want {
			t.Errorf("step %d from %s: HTTP %d, want %d", i, st.from, got, st.want)
		}
	}
}

// cancelOnPut is an ingest store whose puts begin just as the part gives
// up waiting: it cancels the request's context, then stores.
type cancelOnPut struct {
	ingest.Store
	cancel context.CancelFunc
}

func (c cancelOnPut) PutBatch(ctx context.Context, key ingest.StreamKey, recs []ingest.Record, losses []ingest.Loss) (ingest.PutResult, error) {
	c.cancel()
	return c.Store.PutBatch(ctx, key, recs, losses)
}

// TestUploadOutlivesItsCaller checks that what the cloud starts storing it
// stores whole even when the part stops waiting (its deadline passed), so
// the part's next attempt is a repeat the watermark answers at once.
func TestUploadOutlivesItsCaller(t *testing.T) {
	e := newEnv(t, partsync.Options{})
	secret := e.backend.provision("part-a")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, h := partsync.NewHandler(e.backend, cancelOnPut{Store: e.store, cancel: cancel}, partsync.Options{Clock: e.clock})
	body, err := proto.Marshal(&syncv1.UploadRequest{StoreId: "s1", Stream: "captures", Records: records("captures", span(1, 50)...)})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/outpost.sync.v1.SyncService/Upload", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/proto")
	req.Header.Set("Authorization", "Part part-a:"+secret)
	h.ServeHTTP(httptest.NewRecorder(), req)
	key := ingest.StreamKey{PartID: "part-a", StoreID: "s1", Stream: "captures"}
	if got, err := e.store.AckedThrough(context.Background(), key); err != nil || got != 50 {
		t.Fatalf("after the part stopped waiting the cloud holds through %d (%v), want 50", got, err)
	}
}

// TestRestartOrdersAndReports: a part's pull carries its own pending
// restart order and no other part's; the restart report of its status
// reaches the backend for that part; a hostile report is refused whole,
// status included, and never reaches the backend.
func TestRestartOrdersAndReports(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, partsync.Options{})
	a, b := e.part("part-a"), e.part("part-b")
	if r := pull(t, a, 0, 0).GetRestart(); r != nil {
		t.Fatalf("a pull with nothing pending carried %v", r)
	}
	id := strings.Repeat("0f", 16)
	e.backend.askRestart(t, "part-a", id)
	keys, err := signed.KeysFromProto([]*syncv1.PublicKey{e.backend.signer.PublicKey()})
	if err != nil {
		t.Fatal(err)
	}
	var order syncv1.RestartOrder
	if err := signed.Verify(keys, pull(t, a, 0, 0).GetRestart(), &order); err != nil || order.GetId() != id {
		t.Fatalf("part-a's pull: order %v, %v", &order, err)
	}
	if r := pull(t, b, 0, 0).GetRestart(); r != nil {
		t.Fatalf("part-b's pull carried part-a's order %v", r)
	}

	at := timestamppb.New(t0)
	good := &syncv1.RestartReport{Id: id, Outcome: syncv1.RestartOutcome_RESTART_OUTCOME_RESTARTED, At: at, RequestedAt: at}
	hostile := map[string]*syncv1.RestartReport{
		"short id":        {Id: "0f", Outcome: 1, At: at},
		"upper-case id":   {Id: strings.ToUpper(id), Outcome: 1, At: at},
		"64-digit id":     {Id: id + id, Outcome: 1, At: at},
		"non-hex id":      {Id: strings.Repeat("zz", 16), Outcome: 1, At: at},
		"no outcome":      {Id: id, At: at},
		"unknown outcome": {Id: id, Outcome: 99, At: at},
		"no time":         {Id: id, Outcome: 1},
		"invalid time":    {Id: id, Outcome: 1, At: &timestamppb.Timestamp{Seconds: -1 << 62}},
		"long error":      {Id: id, Outcome: 3, At: at, Error: strings.Repeat("x", 1025)},
	}
	for name, r := range hostile {
		_, err := b.ReportStatus(ctx, connect.NewRequest(&syncv1.ReportStatusRequest{Status: &syncv1.PartStatus{Version: name, Restart: r}}))
		if codeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "restart.") {
			t.Errorf("%s: %v, want InvalidArgument naming the field", name, err)
		}
	}
	if _, err := e.store.Status(ctx, "part-b"); err == nil {
		t.Error("a refused status was stored")
	}
	if got := e.backend.restartReports("part-b"); len(got) != 0 {
		t.Errorf("refused reports reached the backend: %v", got)
	}
	if _, err := a.ReportStatus(ctx, connect.NewRequest(&syncv1.ReportStatusRequest{Status: &syncv1.PartStatus{Restart: good}})); err != nil {
		t.Fatal(err)
	}
	if got := e.backend.restartReports("part-a"); len(got) != 1 || !proto.Equal(got[0], good) {
		t.Fatalf("the backend got %v for part-a, want the report", got)
	}
	if r := pull(t, a, 0, 0).GetRestart(); r != nil {
		t.Fatalf("after the report, the pull still carried %v", r)
	}
}
