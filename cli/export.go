package cli

import (
	"archive/tar"
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"golang.org/x/term"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
)

// progress draws a one-line progress bar on a terminal-like writer:
// "[#####.....]  50%  3/6 captures  1.2 MiB". Each draw rewrites the line.
type progress struct {
	w     io.Writer
	total int
	done  int
	bytes int64
	// unit names what done counts; empty means captures. A count of
	// bytes draws only the byte count.
	unit string
}

func (p *progress) draw() {
	if p.w == nil {
		return
	}
	const width = 20
	filled, pct := width, 100
	if p.total > 0 {
		filled, pct = p.done*width/p.total, p.done*100/p.total
	}
	if p.unit == "bytes" {
		fmt.Fprintf(p.w, "\r[%s%s] %3d%%  %.1f MiB", strings.Repeat("#", filled), strings.Repeat(".", width-filled), pct, float64(p.bytes)/(1<<20))
		return
	}
	fmt.Fprintf(p.w, "\r[%s%s] %3d%%  %d/%d captures  %.1f MiB", strings.Repeat("#", filled), strings.Repeat(".", width-filled),
		pct, p.done, p.total, float64(p.bytes)/(1<<20))
}

func (p *progress) finish() {
	if p.w != nil {
		p.draw()
		fmt.Fprintln(p.w)
	}
}

// maxExportCaptures bounds one export, whose list is held in memory.
const maxExportCaptures = 1_000_000

func newExportCmd(g *globals) *cobra.Command {
	var machine, component, tag, format, out string
	var quiet bool
	var tf timeFlags
	var fl fleetFlags
	cmd := &cobra.Command{
		Use:   "export --machine MACHINE_ID | --org ORG_ID | --location LOCATION_ID --format jsonl|tar -o FILE",
		Short: "Export captures as JSON lines, or a tar of their files (data.export)",
		Long: "Exports the captures selected like `outpost data captures` does. jsonl writes one capture per line\n" +
			"(protobuf JSON; JSON readings as JSON, not base64). tar writes captures.jsonl and every capture's file\n" +
			"as PART_ID/NAME, with the name and extension the part gave it (blobs checked against their SHA-256).\n" +
			"A progress bar goes to stderr when it is a terminal, unless --quiet. -o - writes to stdout.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) (err error) {
			if format != "jsonl" && format != "tar" {
				return fmt.Errorf("--format %q: want jsonl or tar", format)
			}
			from, to, err := tf.parse(time.Now())
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			var caps []*fleetv1.CaptureRecord
			one := &fleetv1.ExportCapturesRequest{MachineId: machine, Component: component, Tag: tag, From: from, To: to, PageSize: 1000}
			page := func(token string) ([]*fleetv1.CaptureRecord, string, error) {
				one.PageToken = token
				res, err := c.ExportCaptures(ctx, connect.NewRequest(one))
				if err != nil {
					return nil, "", err
				}
				return res.Msg.GetCaptures(), res.Msg.GetNextPageToken(), nil
			}
			if fl.fleet() {
				q, err := fl.query(machine, component, tag, from, to)
				if err != nil {
					return err
				}
				r := &fleetv1.ExportFleetCapturesRequest{Query: q, PageSize: 1000}
				if err := g.resolve(ctx, c, r); err != nil {
					return err
				}
				page = func(token string) ([]*fleetv1.CaptureRecord, string, error) {
					r.PageToken = token
					res, err := c.ExportFleetCaptures(ctx, connect.NewRequest(r))
					if err != nil {
						return nil, "", err
					}
					return res.Msg.GetCaptures(), res.Msg.GetNextPageToken(), nil
				}
			} else if err := fl.machineOnly(machine); err != nil {
				return err
			} else if err := g.resolve(ctx, c, one); err != nil {
				return err
			}
			for token := ""; ; {
				got, next, err := page(token)
				if err != nil {
					return err
				}
				caps = append(caps, got...)
				if len(caps) > maxExportCaptures {
					return fmt.Errorf("more than %d captures: export a narrower selection (--from, --to, --component, --tag)", maxExportCaptures)
				}
				if token = next; token == "" {
					break
				}
			}
			var w io.Writer = cmd.OutOrStdout()
			if out != "-" {
				f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
				if err != nil {
					return fmt.Errorf("export: %w", err)
				}
				defer func() {
					if cerr := f.Close(); cerr != nil && err == nil {
						err = fmt.Errorf("export: %w", cerr)
					}
				}()
				w = f
			}
			bw := bufio.NewWriter(w)
			p := &progress{total: len(caps)}
			if !quiet && isTerminal(cmd.ErrOrStderr()) {
				p.w = cmd.ErrOrStderr()
			}
			if format == "jsonl" {
				err = exportJSONL(bw, caps, p)
			} else {
				err = exportTar(ctx, c, bw, machine, caps, p)
			}
			if err != nil {
				return err
			}
			p.finish()
			if err := bw.Flush(); err != nil {
				return fmt.Errorf("export: %w", err)
			}
			if out != "-" {
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "exported %d captures (%d bytes) to %s\n", p.done, p.bytes, out)
			}
			return err
		},
	}
	cmd.Flags().StringVar(&machine, "machine", "", "machine name, path or ID")
	cmd.Flags().StringVar(&component, "component", "", "only this component")
	cmd.Flags().StringVar(&tag, "tag", "", "only captures with this tag")
	cmd.Flags().StringVar(&format, "format", "jsonl", "jsonl or tar")
	cmd.Flags().StringVarP(&out, "output", "o", "", "file to write (never replaced); - for stdout")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress bar")
	tf.add(cmd)
	fl.add(cmd)
	mustRequire(cmd, "output")
	return cmd
}

// isTerminal says whether w is a terminal, where a progress bar that
// rewrites its line belongs (not a file, a pipe or a CI log).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// captureLine is a capture as one line of JSON: protobuf JSON, except
// that JSON data (readings) is written as JSON, not base64, and file
// names the capture's file in a tar export.
func captureLine(c *fleetv1.CaptureRecord, file string) ([]byte, error) {
	data := c.GetCapture().GetData()
	readings := len(data) > 0 && isJSONType(c.GetCapture().GetMimeType()) && json.Valid(data)
	if readings {
		c = proto.CloneOf(c)
		c.Capture.Data = nil
	}
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode capture: %w", err)
	}
	{ // one key order for every line: sorted
		var m map[string]json.RawMessage
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("encode capture: %w", err)
		}
		if readings {
			var cm map[string]json.RawMessage
			if err := json.Unmarshal(m["capture"], &cm); err != nil {
				return nil, fmt.Errorf("encode capture: %w", err)
			}
			cm["data"] = data
			if m["capture"], err = json.Marshal(cm); err != nil {
				return nil, fmt.Errorf("encode capture: %w", err)
			}
		}
		if file != "" {
			m["file"], _ = json.Marshal(file)
		}
		if b, err = json.Marshal(m); err != nil { // sorted keys: stable lines
			return nil, fmt.Errorf("encode capture: %w", err)
		}
	}
	// protojson varies its spacing on purpose; compact it for stable lines.
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return nil, fmt.Errorf("encode capture: %w", err)
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

// isJSONType says whether a media type is JSON ("application/json",
// "application/x+json").
func isJSONType(t string) bool {
	t, _, _ = strings.Cut(t, ";")
	t = strings.TrimSpace(t)
	return t == "application/json" || strings.HasPrefix(t, "application/") && strings.HasSuffix(t, "+json")
}

func exportJSONL(w io.Writer, caps []*fleetv1.CaptureRecord, p *progress) error {
	for _, c := range caps {
		line, err := captureLine(c, "")
		if err != nil {
			return err
		}
		if _, err := w.Write(line); err != nil {
			return fmt.Errorf("export: %w", err)
		}
		p.done++
		p.bytes += int64(len(line))
		p.draw()
	}
	return nil
}

// tarName keeps a part's blob id from naming a path outside its folder.
func tarName(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r < ' ' {
			return '_'
		}
		return r
	}, s)
	if s == "." || s == ".." || s == "" {
		return "_" + s
	}
	return s
}

// captureFile names a capture's file in a tar export: the blob's name as
// the part gave it (its last element), else the capture's sequence with
// the extension of its media type (added to a name without one); "-SEQ" is added before the extension
// when two files of a part would share a name.
func captureFile(c *fleetv1.CaptureRecord, blobName string, taken map[string]bool) string {
	base := tarName(path.Base(strings.ReplaceAll(blobName, "\\", "/")))
	if blobName == "" || base == "_." || base == "_.." || base == "_" {
		base = strconv.FormatUint(c.GetSeq(), 10)
	}
	if path.Ext(base) == "" {
		base += extension(c.GetCapture().GetMimeType())
	}
	name := path.Join(tarName(c.GetPartId()), base)
	if taken[name] {
		ext := path.Ext(base)
		name = path.Join(tarName(c.GetPartId()), fmt.Sprintf("%s-%d%s", strings.TrimSuffix(base, ext), c.GetSeq(), ext))
	}
	taken[name] = true
	return name
}

// extension is the usual file extension of a media type, or ".bin".
func extension(mimeType string) string {
	t, _, _ := strings.Cut(mimeType, ";")
	switch t = strings.TrimSpace(t); {
	case isJSONType(t):
		return ".json"
	case t == "image/jpeg":
		return ".jpg"
	}
	if exts, err := mime.ExtensionsByType(t); err == nil && len(exts) > 0 {
		return exts[0]
	}
	return ".bin"
}

// exportTar writes the tar; machine is the machine of captures that do
// not name theirs (a one-machine export).
func exportTar(ctx context.Context, c *api, w io.Writer, machine string, caps []*fleetv1.CaptureRecord, p *progress) error {
	tw := tar.NewWriter(w)
	now := time.Now()
	taken := map[string]bool{}
	var manifest []byte
	type file struct {
		name string
		cr   *fleetv1.CaptureRecord
		blob *fleetv1.ReadBlobResponse
	}
	var files []file
	for _, cr := range caps {
		f := file{cr: cr}
		if id := cr.GetCapture().GetBlobId(); id != "" {
			first, err := readBlob(ctx, c, cmp.Or(cr.GetMachineId(), machine), cr.GetPartId(), id, 0)
			if err != nil {
				return err
			}
			f.blob, f.name = first, captureFile(cr, first.GetName(), taken)
		} else if len(cr.GetCapture().GetData()) > 0 {
			f.name = captureFile(cr, "", taken)
		}
		line, err := captureLine(cr, f.name)
		if err != nil {
			return err
		}
		manifest = append(manifest, line...)
		files = append(files, f)
	}
	if err := tw.WriteHeader(&tar.Header{Name: "captures.jsonl", Mode: 0o644, Size: int64(len(manifest)), ModTime: now}); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if _, err := tw.Write(manifest); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	for _, f := range files {
		switch {
		case f.blob != nil:
			n, err := exportBlob(ctx, c, tw, cmp.Or(f.cr.GetMachineId(), machine), f.cr.GetPartId(), f.cr.GetCapture().GetBlobId(), f.name, f.blob, now)
			if err != nil {
				return err
			}
			p.bytes += n
		case f.name != "":
			data := f.cr.GetCapture().GetData()
			if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(data)), ModTime: now}); err != nil {
				return fmt.Errorf("export: %w", err)
			}
			if _, err := tw.Write(data); err != nil {
				return fmt.Errorf("export: %w", err)
			}
			p.bytes += int64(len(data))
		}
		p.done++
		p.draw()
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return nil
}

// readBlob reads a piece of a blob from off.
func readBlob(ctx context.Context, c *api, machine, part, blob string, off uint64) (*fleetv1.ReadBlobResponse, error) {
	res, err := c.ReadBlob(ctx, connect.NewRequest(&fleetv1.ReadBlobRequest{MachineId: machine, PartId: part, BlobId: blob, Offset: off}))
	if err != nil {
		return nil, fmt.Errorf("export blob %s of part/%s: %w", blob, part, err)
	}
	return res.Msg, nil
}

// exportBlob copies one blob into the tar as name, piece by piece from
// its first, and checks its SHA-256.
func exportBlob(ctx context.Context, c *api, tw *tar.Writer, machine, part, blob, name string, first *fleetv1.ReadBlobResponse, now time.Time) (int64, error) {
	read := func(off uint64) (*fleetv1.ReadBlobResponse, error) { return readBlob(ctx, c, machine, part, blob, off) }
	var err error
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(first.GetSize()), ModTime: now}); err != nil {
		return 0, fmt.Errorf("export: %w", err)
	}
	h := sha256.New()
	got := uint64(0)
	for piece := first; ; {
		if len(piece.GetData()) == 0 && got < first.GetSize() {
			return 0, fmt.Errorf("export blob %s of part/%s: the cloud sent no bytes at %d of %d", blob, part, got, first.GetSize())
		}
		h.Write(piece.GetData())
		if _, err := tw.Write(piece.GetData()); err != nil {
			return 0, fmt.Errorf("export: %w", err)
		}
		got += uint64(len(piece.GetData()))
		if got >= first.GetSize() {
			break
		}
		if piece, err = read(got); err != nil {
			return 0, err
		}
	}
	if string(h.Sum(nil)) != string(first.GetSha256()) {
		return 0, fmt.Errorf("export blob %s of part/%s: the bytes do not match its SHA-256", blob, part)
	}
	return int64(got), nil
}
