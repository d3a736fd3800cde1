package partsync

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/cloud/ingest"
)

// The stream names of UploadRequest.stream.
const (
	StreamLogsDebug = "logs.debug"
	StreamLogsInfo  = "logs.info"
	StreamLogsWarn  = "logs.warn"
	StreamCaptures  = "captures"
	StreamAudit     = "audit"
	StreamGaps      = "gaps"
	StreamProposals = "proposals"
)

var knownStreams = map[string]bool{
	StreamLogsDebug: true, StreamLogsInfo: true, StreamLogsWarn: true, StreamCaptures: true,
	StreamAudit: true, StreamGaps: true, StreamProposals: true,
}

// Limits bound what one request may carry.
type Limits struct {
	// MaxRecordBytes bounds one record's payload.
	MaxRecordBytes int
	// MaxBatchRecords bounds the records of one upload.
	MaxBatchRecords int
	// MaxBatchBytes bounds the payload bytes of one upload.
	MaxBatchBytes int
	// MaxChunkBytes bounds one blob chunk.
	MaxChunkBytes int
	// MaxBlobBytes bounds a blob's declared size.
	MaxBlobBytes uint64
}

// upload is a validated UploadRequest, its special payloads decoded.
type upload struct {
	records   []ingest.Record
	gaps      []*syncv1.GapRecord      // for the gaps stream, one per record
	proposals []*syncv1.ConfigProposal // for the proposals stream, one per record
}

func invalid(format string, a ...any) error {
	return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf(format, a...))
}

func tooBig(format string, a ...any) error {
	return connect.NewError(connect.CodeResourceExhausted, fmt.Errorf(format, a...))
}

// validateUpload checks an upload against the contract and the limits and
// decodes gap records and proposals. Its errors are connect errors that say
// what was wrong; none of them repeats a payload.
func validateUpload(req *syncv1.UploadRequest, lim Limits) (upload, error) {
	if err := ingest.ValidateID("store_id", req.GetStoreId()); err != nil {
		return upload{}, invalid("upload: %v", err)
	}
	stream := req.GetStream()
	if !knownStreams[stream] {
		return upload{}, invalid("upload: unknown stream %q; want logs.debug, logs.info, logs.warn, captures, audit, gaps or proposals", clip(stream))
	}
	recs := req.GetRecords()
	if len(recs) > lim.MaxBatchRecords {
		return upload{}, tooBig("upload of %s: %d records in one batch; at most %d", stream, len(recs), lim.MaxBatchRecords)
	}
	u := upload{records: make([]ingest.Record, 0, len(recs))}
	total := 0
	var prev uint64
	for i, r := range recs {
		seq := r.GetSeq()
		if seq == 0 {
			return upload{}, invalid("upload of %s: record %d has sequence 0; sequences start at 1", stream, i)
		}
		if i > 0 && seq <= prev {
			return upload{}, invalid("upload of %s: sequence %d follows %d; sequences must increase within a batch", stream, seq, prev)
		}
		prev = seq
		n := len(r.GetPayload())
		if n > lim.MaxRecordBytes {
			return upload{}, tooBig("upload of %s: record %d holds %d bytes; at most %d per record", stream, seq, n, lim.MaxRecordBytes)
		}
		if total += n; total > lim.MaxBatchBytes {
			return upload{}, tooBig("upload of %s: the batch holds more than %d payload bytes; send smaller batches", stream, lim.MaxBatchBytes)
		}
		var at time.Time
		if r.GetTime() != nil {
			if err := r.GetTime().CheckValid(); err != nil {
				return upload{}, invalid("upload of %s: record %d has an invalid time: %v", stream, seq, err)
			}
			at = r.GetTime().AsTime()
		}
		switch stream {
		case StreamGaps:
			g := &syncv1.GapRecord{}
			if err := proto.Unmarshal(r.GetPayload(), g); err != nil {
				return upload{}, invalid("upload of gaps: record %d is not a GapRecord: %v", seq, err)
			}
			if g.GetStream() != "" && (!knownStreams[g.GetStream()] || g.GetStream() == StreamGaps) {
				return upload{}, invalid("upload of gaps: record %d declares a loss of unknown stream %q", seq, clip(g.GetStream()))
			}
			if g.GetStream() != "" && (g.GetFirstSeq() == 0 || g.GetFirstSeq() > g.GetLastSeq()) {
				return upload{}, invalid("upload of gaps: record %d declares %d..%d lost; want 0 < first_seq <= last_seq", seq, g.GetFirstSeq(), g.GetLastSeq())
			}
			u.gaps = append(u.gaps, g)
		case StreamProposals:
			p := &syncv1.ConfigProposal{}
			if err := proto.Unmarshal(r.GetPayload(), p); err != nil {
				return upload{}, invalid("upload of proposals: record %d is not a ConfigProposal: %v", seq, err)
			}
			u.proposals = append(u.proposals, p)
		}
		u.records = append(u.records, ingest.Record{Seq: seq, Time: at, Payload: r.GetPayload()})
	}
	return u, nil
}

// validateChunk checks a blob chunk against the contract and the limits.
func validateChunk(req *syncv1.UploadBlobRequest, lim Limits) error {
	if err := ingest.ValidateID("blob_id", req.GetBlobId()); err != nil {
		return invalid("upload blob: %v", err)
	}
	if len(req.GetSha256()) != 32 {
		return invalid("upload blob %s: sha256 holds %d bytes, want 32", req.GetBlobId(), len(req.GetSha256()))
	}
	if req.GetSize() > lim.MaxBlobBytes {
		return tooBig("upload blob %s: %d bytes; at most %d per blob", req.GetBlobId(), req.GetSize(), lim.MaxBlobBytes)
	}
	if len(req.GetData()) > lim.MaxChunkBytes {
		return tooBig("upload blob %s: a chunk of %d bytes; at most %d", req.GetBlobId(), len(req.GetData()), lim.MaxChunkBytes)
	}
	if req.GetOffset() > req.GetSize() || uint64(len(req.GetData())) > req.GetSize()-req.GetOffset() {
		return invalid("upload blob %s: a chunk of %d bytes at %d ends past the blob's %d bytes", req.GetBlobId(), len(req.GetData()), req.GetOffset(), req.GetSize())
	}
	if len(req.GetName()) > 4096 {
		return invalid("upload blob %s: name longer than 4096 bytes", req.GetBlobId())
	}
	return nil
}

// clip shortens a client-chosen string for an error message.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// maxRestartError bounds RestartReport.error.
const maxRestartError = 1024

// validateRestartReport checks the restart report of a status: an order id
// as the cloud makes them (32 hex digits), a known outcome, a valid time and
// a bounded error.
func validateRestartReport(r *syncv1.RestartReport) error {
	id := r.GetId()
	if len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" {
		return invalid("report status: restart.id: want the 32 hex digits of a restart order")
	}
	if _, ok := syncv1.RestartOutcome_name[int32(r.GetOutcome())]; !ok || r.GetOutcome() == syncv1.RestartOutcome_RESTART_OUTCOME_UNSPECIFIED {
		return invalid("report status: restart.outcome: unknown outcome %d", r.GetOutcome())
	}
	if r.GetAt() == nil || r.GetAt().CheckValid() != nil {
		return invalid("report status: restart.at: want a valid time")
	}
	if len(r.GetError()) > maxRestartError || !utf8.ValidString(r.GetError()) {
		return invalid("report status: restart.error: want at most %d bytes of UTF-8", maxRestartError)
	}
	return nil
}
