package partsync

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
)

func FuzzParseAuthorization(f *testing.F) {
	for _, s := range []string{
		"Part part-a:secret", "part p:s", "PART 0123456789abcdef0123456789abcdef:Zm9vYmFy-_",
		"Bearer x.y.z", "Part ", "Part :", "Part a:", "Part :b", "Part a:b c", "Part a\x00:b", "Part a:b\r\n",
		"Part  a:b", "Part a::b", strings.Repeat("x", 2000),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		id, secret, err := ParseAuthorization(header)
		if err != nil {
			if err != errBadHeader || id != "" || secret != "" {
				t.Fatalf("a refusal returned %q, %q, %v", id, secret, err)
			}
			return
		}
		scheme, _, _ := strings.Cut(header, " ")
		if !strings.EqualFold(scheme, "Part") || header != scheme+" "+id+":"+secret {
			t.Fatalf("%q parsed as id %q secret %q", header, id, secret)
		}
		if !validPartID(id) || !validSecret(secret) || strings.Contains(id, ":") {
			t.Fatalf("%q: accepted id %q secret %q", header, id, secret)
		}
		for i := 0; i < len(secret); i++ {
			if secret[i] <= ' ' || secret[i] > '~' {
				t.Fatalf("secret %q holds byte %#x", secret, secret[i])
			}
		}
	})
}

func FuzzValidateUpload(f *testing.F) {
	seed := func(m *syncv1.UploadRequest) {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	gap, _ := proto.Marshal(&syncv1.GapRecord{Stream: "captures", FirstSeq: 3, LastSeq: 9})
	prop, _ := proto.Marshal(&syncv1.ConfigProposal{BaseRevision: 2, Author: "user/x"})
	seed(&syncv1.UploadRequest{StoreId: "s", Stream: "logs.info", Records: []*syncv1.Record{{Seq: 1, Payload: []byte("a")}, {Seq: 3}}})
	seed(&syncv1.UploadRequest{StoreId: "s", Stream: "gaps", Records: []*syncv1.Record{{Seq: 1, Payload: gap}}})
	seed(&syncv1.UploadRequest{StoreId: "s", Stream: "proposals", Records: []*syncv1.Record{{Seq: 5, Payload: prop}}})
	seed(&syncv1.UploadRequest{StoreId: "s\x00", Stream: "audit", Records: []*syncv1.Record{{Seq: 2}, {Seq: 1}}})
	lim := Limits{MaxRecordBytes: 64, MaxBatchRecords: 8, MaxBatchBytes: 256, MaxChunkBytes: 64, MaxBlobBytes: 1 << 20}
	f.Fuzz(func(t *testing.T, raw []byte) {
		req := &syncv1.UploadRequest{}
		if proto.Unmarshal(raw, req) != nil {
			return
		}
		u, err := validateUpload(req, lim)
		if err != nil {
			return
		}
		if !knownStreams[req.GetStream()] || req.GetStoreId() == "" {
			t.Fatalf("accepted stream %q store %q", req.GetStream(), req.GetStoreId())
		}
		if len(u.records) != len(req.GetRecords()) || len(u.records) > lim.MaxBatchRecords {
			t.Fatalf("%d records accepted of %d", len(u.records), len(req.GetRecords()))
		}
		total := 0
		for i, r := range u.records {
			if r.Seq == 0 || (i > 0 && r.Seq <= u.records[i-1].Seq) || len(r.Payload) > lim.MaxRecordBytes {
				t.Fatalf("accepted record %d: seq %d, %d bytes", i, r.Seq, len(r.Payload))
			}
			total += len(r.Payload)
		}
		if total > lim.MaxBatchBytes {
			t.Fatalf("accepted %d payload bytes", total)
		}
		switch req.GetStream() {
		case "gaps":
			if len(u.gaps) != len(u.records) {
				t.Fatalf("%d gaps for %d records", len(u.gaps), len(u.records))
			}
			for _, g := range u.gaps {
				if g.GetStream() != "" && (g.GetFirstSeq() == 0 || g.GetFirstSeq() > g.GetLastSeq() || !knownStreams[g.GetStream()]) {
					t.Fatalf("accepted gap %v", g)
				}
			}
		case "proposals":
			if len(u.proposals) != len(u.records) {
				t.Fatalf("%d proposals for %d records", len(u.proposals), len(u.records))
			}
		}
	})
}

func FuzzValidateRestartReport(f *testing.F) {
	seed := func(m *syncv1.RestartReport) {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	now := timestamppb.New(time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC))
	seed(&syncv1.RestartReport{Id: strings.Repeat("ab", 16), Outcome: syncv1.RestartOutcome_RESTART_OUTCOME_RESTARTED, At: now, RequestedAt: now})
	seed(&syncv1.RestartReport{Id: strings.Repeat("AB", 16), Outcome: 9, At: now, Error: "é"})
	seed(&syncv1.RestartReport{Id: "x", Outcome: syncv1.RestartOutcome_RESTART_OUTCOME_FAILED, Error: strings.Repeat("e", 2000)})
	f.Fuzz(func(t *testing.T, raw []byte) {
		r := &syncv1.RestartReport{}
		if proto.Unmarshal(raw, r) != nil {
			return
		}
		if validateRestartReport(r) != nil {
			return
		}
		if len(r.GetId()) != 32 || strings.Trim(r.GetId(), "0123456789abcdef") != "" {
			t.Fatalf("accepted id %q", r.GetId())
		}
		if r.GetOutcome() < 1 || r.GetOutcome() > 3 || r.GetAt().CheckValid() != nil || len(r.GetError()) > maxRestartError || !utf8.ValidString(r.GetError()) {
			t.Fatalf("accepted %v", r)
		}
	})
}
