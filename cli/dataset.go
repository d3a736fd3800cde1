package cli

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
)

func datasetTable(w io.Writer, ds ...*fleetv1.Dataset) error {
	var rows [][]string
	for _, d := range ds {
		rows = append(rows, []string{d.GetId(), d.GetName(), fmt.Sprint(d.GetCaptures()), orDash(d.GetCreatedBy()), when(d.GetCreatedAt())})
	}
	return table(w, []string{"ID", "NAME", "CAPTURES", "CREATED BY", "CREATED"}, rows)
}

// datasetChange is what adding to and removing from a dataset answer.
type datasetChange interface {
	GetChanged() uint32
	GetCaptures() uint32
	GetMore() bool
}

func changedLine[R datasetChange](verb string) func(io.Writer, R) error {
	return func(w io.Writer, res R) error {
		_, err := fmt.Fprintf(w, "%s %d captures; the dataset lists %d\n", verb, res.GetChanged(), res.GetCaptures())
		if err == nil && res.GetMore() {
			_, err = fmt.Fprintln(w, "more captures match: run it again")
		}
		return err
	}
}

func parseRefs(args []string) ([]*fleetv1.CaptureRef, error) {
	var refs []*fleetv1.CaptureRef
	for _, a := range args {
		r, err := parseCaptureRef(a)
		if err != nil {
			return nil, err
		}
		refs = append(refs, r)
	}
	return refs, nil
}

func newDatasetCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "dataset", Short: "Manage datasets: named sets of captures for training models"}
	var org string
	create := &cobra.Command{
		Use: "create NAME --org ORG_ID", Short: "Create an empty dataset (dataset.create)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(g, cmd, (*api).CreateDataset, &fleetv1.CreateDatasetRequest{OrgId: org, Name: args[0]},
				func(w io.Writer, res *fleetv1.CreateDatasetResponse) error { return datasetTable(w, res.GetDataset()) })
		},
	}
	create.Flags().StringVar(&org, "org", "", "organization name or ID")
	mustRequire(create, "org")
	list := &cobra.Command{
		Use: "list --org ORG_ID", Short: "List an organization's datasets (dataset.names.view)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return call(g, cmd, (*api).ListDatasets, &fleetv1.ListDatasetsRequest{OrgId: org},
				func(w io.Writer, res *fleetv1.ListDatasetsResponse) error {
					return datasetTable(w, res.GetDatasets()...)
				})
		},
	}
	list.Flags().StringVar(&org, "org", "", "organization name or ID")
	mustRequire(list, "org")
	rename := &cobra.Command{
		Use: "rename DATASET_ID NAME", Short: "Rename a dataset (dataset.rename)", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(g, cmd, (*api).RenameDataset, &fleetv1.RenameDatasetRequest{DatasetId: args[0], Name: args[1]},
				func(w io.Writer, res *fleetv1.RenameDatasetResponse) error { return datasetTable(w, res.GetDataset()) })
		},
	}
	var yes bool
	del := &cobra.Command{
		Use: "delete DATASET_ID --yes", Short: "Delete a dataset; its captures stay (dataset.delete)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !yes {
				return errors.New("this deletes the dataset (not its captures): add --yes")
			}
			return call(g, cmd, (*api).DeleteDataset, &fleetv1.DeleteDatasetRequest{DatasetId: args[0]},
				func(w io.Writer, _ *fleetv1.DeleteDatasetResponse) error {
					_, err := fmt.Fprintf(w, "deleted dataset/%s\n", args[0])
					return err
				})
		},
	}
	del.Flags().BoolVar(&yes, "yes", false, "confirm")
	cmd.AddCommand(create, list, rename, del, newDatasetAddCmd(g, false), newDatasetAddCmd(g, true), newDatasetCapturesCmd(g), newDatasetExportCmd(g))
	return cmd
}

// newDatasetAddCmd is `dataset add`, or `dataset remove` with remove.
func newDatasetAddCmd(g *globals, remove bool) *cobra.Command {
	var machine, component, tag string
	var tf timeFlags
	var fl fleetFlags
	use, short := "add", "Add captures, named or selected by a query, to a dataset (dataset.images.add)"
	if remove {
		use, short = "remove", "Remove captures, named or selected by a query, from a dataset (dataset.images.remove)"
	}
	cmd := &cobra.Command{
		Use:   use + " DATASET_ID [PART_ID:STORE_ID:SEQ...] [--org O | --location L] [--machine M] [--part P] [--component C] [--method M] [--mime T] [--from F] [--to T]",
		Short: short,
		Long: "Names captures as `outpost data captures` shows them (PART_ID:STORE_ID:SEQ), or selects them like it does\n" +
			"(without --org or --location: the whole organization of the dataset). Only captures of machines you may\n" +
			"use count.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			refs, err := parseRefs(args[1:])
			if err != nil {
				return err
			}
			var q *fleetv1.FleetDataQuery
			if len(refs) == 0 {
				from, to, err := tf.parse(time.Now())
				if err != nil {
					return err
				}
				if q, err = fl.query(machine, component, tag, from, to); err != nil {
					return err
				}
			}
			if remove {
				return call(g, cmd, (*api).RemoveFromDataset, &fleetv1.RemoveFromDatasetRequest{DatasetId: args[0], Captures: refs, Query: q}, changedLine[*fleetv1.RemoveFromDatasetResponse]("removed"))
			}
			return call(g, cmd, (*api).AddToDataset, &fleetv1.AddToDatasetRequest{DatasetId: args[0], Captures: refs, Query: q}, changedLine[*fleetv1.AddToDatasetResponse]("added"))
		},
	}
	cmd.Flags().StringVar(&machine, "machine", "", "only this machine")
	cmd.Flags().StringVar(&component, "component", "", "only this component")
	if !remove {
		cmd.Flags().StringVar(&tag, "tag", "", "only captures with this tag")
	}
	tf.add(cmd)
	fl.add(cmd)
	return cmd
}

func newDatasetCapturesCmd(g *globals) *cobra.Command {
	var page string
	var limit int32
	cmd := &cobra.Command{
		Use: "captures DATASET_ID", Short: "List the captures of a dataset you may see (dataset.open)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(g, cmd, (*api).ListDatasetCaptures, &fleetv1.ListDatasetCapturesRequest{DatasetId: args[0], PageSize: limit, PageToken: page},
				func(w io.Writer, res *fleetv1.ListDatasetCapturesResponse) error {
					if err := fleetCaptureTable(w, res.GetCaptures()); err != nil {
						return err
					}
					if t := res.GetNextPageToken(); t != "" {
						_, err := fmt.Fprintf(w, "more: --page %s\n", t)
						return err
					}
					return nil
				})
		},
	}
	cmd.Flags().Int32Var(&limit, "limit", 100, "at most this many captures (1 to 1000)")
	cmd.Flags().StringVar(&page, "page", "", "continue from where a previous list stopped")
	return cmd
}

// manifestLine is one line of a dataset export's manifest.jsonl.
type manifestLine struct {
	File      string    `json:"file"`
	Capture   string    `json:"capture"`
	MachineID string    `json:"machine_id"`
	PartID    string    `json:"part_id"`
	PartName  string    `json:"part_name,omitempty"`
	Component string    `json:"component"`
	Method    string    `json:"method"`
	MimeType  string    `json:"mime_type,omitempty"`
	Time      time.Time `json:"time"`
	Tags      []string  `json:"tags"`
}

func newDatasetExportCmd(g *globals) *cobra.Command {
	var out string
	var quiet bool
	cmd := &cobra.Command{
		Use:   "export DATASET_ID -o DIR",
		Short: "Export the captures of a dataset you may train on, as files and a JSONL manifest (dataset.train)",
		Long: "Writes DIR/manifest.jsonl, one line per capture (file, capture, machine, part, component, method, media\n" +
			"type, time and tags, the tags only where you may see them), and each capture's file under DIR/data/PART_ID/\n" +
			"with the name and extension the part gave it (JSON readings as .json). DIR must not exist. A progress\n" +
			"bar goes to stderr when it is a terminal, unless --quiet.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			var caps []*fleetv1.CaptureRecord
			for token := ""; ; {
				res, err := c.ExportDataset(ctx, connect.NewRequest(&fleetv1.ExportDatasetRequest{DatasetId: args[0], PageSize: 1000, PageToken: token}))
				if err != nil {
					return err
				}
				caps = append(caps, res.Msg.GetCaptures()...)
				if token = res.Msg.GetNextPageToken(); token == "" {
					break
				}
			}
			if err := os.Mkdir(out, 0o700); err != nil {
				return fmt.Errorf("export: %w", err)
			}
			mf, err := os.OpenFile(filepath.Join(out, "manifest.jsonl"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return fmt.Errorf("export: %w", err)
			}
			defer mf.Close()
			bw := bufio.NewWriter(mf)
			p := &progress{total: len(caps)}
			if !quiet && isTerminal(cmd.ErrOrStderr()) {
				p.w = cmd.ErrOrStderr()
			}
			taken := map[string]bool{}
			for _, cr := range caps {
				cp := cr.GetCapture()
				data := cp.GetData()
				name := ""
				if id := cp.GetBlobId(); id != "" {
					if data, name, err = readWholeBlob(ctx, c, cr.GetMachineId(), cr.GetPartId(), id); err != nil {
						return err
					}
				}
				file := "data/" + captureFile(cr, name, taken)
				if err := os.MkdirAll(filepath.Join(out, "data", tarName(cr.GetPartId())), 0o700); err != nil {
					return fmt.Errorf("export: %w", err)
				}
				if err := os.WriteFile(filepath.Join(out, filepath.FromSlash(file)), data, 0o600); err != nil {
					return fmt.Errorf("export: %w", err)
				}
				line, err := json.Marshal(manifestLine{File: file, Capture: fmt.Sprintf("%s:%s:%d", cr.GetPartId(), cr.GetStoreId(), cr.GetSeq()),
					MachineID: cr.GetMachineId(), PartID: cr.GetPartId(), PartName: cr.GetPartName(), Component: cp.GetComponent(), Method: cp.GetMethod(),
					MimeType: cp.GetMimeType(), Time: cr.GetTime().AsTime(), Tags: append([]string{}, cp.GetTags()...)})
				if err != nil {
					return fmt.Errorf("export: %w", err)
				}
				if _, err := bw.Write(append(line, '\n')); err != nil {
					return fmt.Errorf("export: %w", err)
				}
				p.done++
				p.bytes += int64(len(data))
				p.draw()
			}
			p.finish()
			if err := bw.Flush(); err != nil {
				return fmt.Errorf("export: %w", err)
			}
			if err := mf.Close(); err != nil {
				return fmt.Errorf("export: %w", err)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "exported %d captures (%d bytes) to %s\n", p.done, p.bytes, strings.TrimSuffix(out, "/")+"/manifest.jsonl")
			return err
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "folder to create")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress bar")
	mustRequire(cmd, "output")
	return cmd
}

// readWholeBlob reads a blob piece by piece, checked against its SHA-256,
// and returns it with its name.
func readWholeBlob(ctx context.Context, c *api, machine, part, blob string) ([]byte, string, error) {
	first, err := readBlob(ctx, c, machine, part, blob, 0)
	if err != nil {
		return nil, "", err
	}
	data := first.GetData()
	for uint64(len(data)) < first.GetSize() {
		piece, err := readBlob(ctx, c, machine, part, blob, uint64(len(data)))
		if err != nil {
			return nil, "", err
		}
		if len(piece.GetData()) == 0 {
			return nil, "", fmt.Errorf("export blob %s of part/%s: the cloud sent no bytes at %d of %d", blob, part, len(data), first.GetSize())
		}
		data = append(data, piece.GetData()...)
	}
	if sum := sha256.Sum256(data); string(sum[:]) != string(first.GetSha256()) {
		return nil, "", fmt.Errorf("export blob %s of part/%s: the bytes do not match its SHA-256", blob, part)
	}
	return data, first.GetName(), nil
}
