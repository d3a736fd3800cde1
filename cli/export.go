package cli

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"

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
	cmd := &cobra.Command{
		Use:   "export --machine MACHINE_ID --format jsonl|tar -o FILE",
		Short: "Export a machine's captures as JSON lines, or a tar of their blobs (data.export)",
		Long: "Exports the captures selected like `outpost data captures` does. jsonl writes one capture per line\n" +
			"(protobuf JSON). tar writes captures.jsonl and every capture's blob as PART_ID/BLOB_ID, each checked\n" +
			"against its SHA-256. A progress bar goes to stderr unless --quiet. -o - writes to stdout.",
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
			for token := ""; ; {
				res, err := c.ExportCaptures(ctx, connect.NewRequest(&fleetv1.ExportCapturesRequest{MachineId: machine, Component: component, Tag: tag,
					From: from, To: to, PageSize: 1000, PageToken: token}))
				if err != nil {
					return err
				}
				caps = append(caps, res.Msg.GetCaptures()...)
				if len(caps) > maxExportCaptures {
					return fmt.Errorf("more than %d captures: export a narrower selection (--from, --to, --component, --tag)", maxExportCaptures)
				}
				if token = res.Msg.GetNextPageToken(); token == "" {
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
			if !quiet {
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
	cmd.Flags().StringVar(&machine, "machine", "", "machine ID")
	cmd.Flags().StringVar(&component, "component", "", "only this component")
	cmd.Flags().StringVar(&tag, "tag", "", "only captures with this tag")
	cmd.Flags().StringVar(&format, "format", "jsonl", "jsonl or tar")
	cmd.Flags().StringVarP(&out, "output", "o", "", "file to write (never replaced); - for stdout")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress bar")
	tf.add(cmd)
	mustRequire(cmd, "machine", "output")
	return cmd
}

func captureLine(c *fleetv1.CaptureRecord) ([]byte, error) {
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode capture: %w", err)
	}
	// protojson varies its spacing on purpose; compact it for stable lines.
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return nil, fmt.Errorf("encode capture: %w", err)
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

func exportJSONL(w io.Writer, caps []*fleetv1.CaptureRecord, p *progress) error {
	for _, c := range caps {
		line, err := captureLine(c)
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

func exportTar(ctx context.Context, c *api, w io.Writer, machine string, caps []*fleetv1.CaptureRecord, p *progress) error {
	tw := tar.NewWriter(w)
	var manifest []byte
	for _, cr := range caps {
		line, err := captureLine(cr)
		if err != nil {
			return err
		}
		manifest = append(manifest, line...)
	}
	now := time.Now()
	if err := tw.WriteHeader(&tar.Header{Name: "captures.jsonl", Mode: 0o644, Size: int64(len(manifest)), ModTime: now}); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if _, err := tw.Write(manifest); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	for _, cr := range caps {
		if id := cr.GetCapture().GetBlobId(); id != "" {
			n, err := exportBlob(ctx, c, tw, machine, cr.GetPartId(), id, now)
			if err != nil {
				return err
			}
			p.bytes += n
		}
		p.done++
		p.draw()
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return nil
}

// exportBlob copies one blob into the tar piece by piece and checks its SHA-256.
func exportBlob(ctx context.Context, c *api, tw *tar.Writer, machine, part, blob string, now time.Time) (int64, error) {
	read := func(off uint64) (*fleetv1.ReadBlobResponse, error) {
		res, err := c.ReadBlob(ctx, connect.NewRequest(&fleetv1.ReadBlobRequest{MachineId: machine, PartId: part, BlobId: blob, Offset: off}))
		if err != nil {
			return nil, fmt.Errorf("export blob %s of part/%s: %w", blob, part, err)
		}
		return res.Msg, nil
	}
	first, err := read(0)
	if err != nil {
		return 0, err
	}
	name := path.Join(tarName(part), tarName(blob))
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
