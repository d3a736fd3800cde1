package cli

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
)

func captureTable(w io.Writer, cs []*fleetv1.CaptureRecord) error {
	var rows [][]string
	for _, c := range cs {
		rows = append(rows, append([]string{when(c.GetTime())}, captureCells(c)...))
	}
	return table(w, []string{"TIME", "CAPTURE", "COMPONENT", "METHOD", "TYPE", "DATA", "TAGS"}, rows)
}

// captureCells are a capture's CAPTURE, COMPONENT, METHOD, TYPE, DATA and
// TAGS cells, as both capture tables show them.
func captureCells(c *fleetv1.CaptureRecord) []string {
	cp := c.GetCapture()
	size := fmt.Sprintf("%d B", len(cp.GetData()))
	if cp.GetBlobId() != "" {
		size = "blob " + cp.GetBlobId()
	}
	ref := fmt.Sprintf("%s:%s:%d", c.GetPartId(), c.GetStoreId(), c.GetSeq())
	return []string{ref, cp.GetComponent(), cp.GetMethod(), orDash(cp.GetMimeType()), size, orDash(strings.Join(cp.GetTags(), ","))}
}

func newDataCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "data", Short: "Read the data machines captured"}
	var machine, component, tag, page string
	var limit int32
	var tf timeFlags
	var fl fleetFlags
	captures := &cobra.Command{
		Use: "captures --machine MACHINE_ID | --org ORG_ID | --location LOCATION_ID", Short: "List captures of a machine or across a fleet (data.view; tags need data.tags.view)",
		Long: "Lists the captures of one --machine, or of every machine of an --org (its nested locations and those\n" +
			"shared with it) or of a --location's subtree, merged by time; only machines you may read data of count,\n" +
			"and tags show only where you may see them. --part, --component, --method, --mime, --tag and --from/--to narrow it.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			from, to, err := tf.parse(time.Now())
			if err != nil {
				return err
			}
			if fl.fleet() {
				q, err := fl.query(machine, component, tag, from, to)
				if err != nil {
					return err
				}
				return call(g, cmd, (*api).ListFleetCaptures, &fleetv1.ListFleetCapturesRequest{Query: q, PageSize: limit, PageToken: page},
					func(w io.Writer, res *fleetv1.ListFleetCapturesResponse) error {
						if err := fleetCaptureTable(w, res.GetCaptures()); err != nil {
							return err
						}
						if t := res.GetNextPageToken(); t != "" {
							_, err := fmt.Fprintf(w, "more: --page %s\n", t)
							return err
						}
						return nil
					})
			}
			if err := fl.machineOnly(machine); err != nil {
				return err
			}
			return call(g, cmd, (*api).ListCaptures, &fleetv1.ListCapturesRequest{MachineId: machine, Component: component, Tag: tag,
				From: from, To: to, PageSize: limit, PageToken: page},
				func(w io.Writer, res *fleetv1.ListCapturesResponse) error {
					if err := captureTable(w, res.GetCaptures()); err != nil {
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
	captures.Flags().StringVar(&machine, "machine", "", "machine name, path or ID")
	captures.Flags().StringVar(&component, "component", "", "only this component")
	captures.Flags().StringVar(&tag, "tag", "", "only captures with this tag")
	captures.Flags().Int32Var(&limit, "limit", 100, "at most this many captures (1 to 1000)")
	captures.Flags().StringVar(&page, "page", "", "continue from where a previous list stopped")
	tf.add(captures)
	fl.add(captures)
	cmd.AddCommand(captures, newTagCmd(g), newExportCmd(g), newDeleteDataCmd(g))
	return cmd
}

func newDeleteDataCmd(g *globals) *cobra.Command {
	var machine, component, tag string
	var yes bool
	var tf timeFlags
	var fl fleetFlags
	cmd := &cobra.Command{
		Use:   "delete --machine MACHINE_ID | --org ORG_ID | --location LOCATION_ID [PART_ID:STORE_ID:SEQ...] [--component C] [--tag T] [--from F] [--to T] --yes",
		Short: "Delete captures and their blobs for good (data.edit)",
		Long: "Deletes the captures selected like `outpost data captures` does (narrowed to the captures named, if any)\n" +
			"and their blobs. Deleted data never comes back, even when a part sends it again. --yes confirms.",
		RunE: func(cmd *cobra.Command, args []string) error {
			if !yes {
				return fmt.Errorf("this deletes data for good: add --yes")
			}
			var refs []*fleetv1.CaptureRef
			for _, a := range args {
				r, err := parseCaptureRef(a)
				if err != nil {
					return err
				}
				refs = append(refs, r)
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
			total := &fleetv1.DeleteCapturesResponse{}
			what := "machine/" + machine
			one := &fleetv1.DeleteCapturesRequest{MachineId: machine, Component: component, Tag: tag, From: from, To: to, Captures: refs}
			del := func() (*connect.Response[fleetv1.DeleteCapturesResponse], error) {
				return c.DeleteCaptures(ctx, connect.NewRequest(one))
			}
			if fl.fleet() {
				q, err := fl.query(machine, component, tag, from, to)
				if err != nil {
					return err
				}
				what = fl.scope()
				r := &fleetv1.DeleteFleetCapturesRequest{Query: q, Captures: refs}
				if err := g.resolve(ctx, c, r); err != nil {
					return err
				}
				del = func() (*connect.Response[fleetv1.DeleteCapturesResponse], error) {
					res, err := c.DeleteFleetCaptures(ctx, connect.NewRequest(r))
					if err != nil {
						return nil, err
					}
					return connect.NewResponse(&fleetv1.DeleteCapturesResponse{Deleted: res.Msg.GetDeleted(), Blobs: res.Msg.GetBlobs(), More: res.Msg.GetMore()}), nil
				}
			} else if err := fl.machineOnly(machine); err != nil {
				return err
			} else if err := g.resolve(ctx, c, one); err != nil {
				return err
			}
			for {
				res, err := del()
				if err != nil {
					return err
				}
				total.Deleted += res.Msg.GetDeleted()
				total.Blobs += res.Msg.GetBlobs()
				if !res.Msg.GetMore() {
					break
				}
			}
			return g.output(cmd.OutOrStdout(), total, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "deleted %d captures and %d blobs of %s\n", total.GetDeleted(), total.GetBlobs(), what)
				return err
			})
		},
	}
	cmd.Flags().StringVar(&machine, "machine", "", "machine name, path or ID")
	cmd.Flags().StringVar(&component, "component", "", "only this component")
	cmd.Flags().StringVar(&tag, "tag", "", "only captures with this tag")
	cmd.Flags().BoolVar(&yes, "yes", false, "confirm: the data is deleted for good")
	tf.add(cmd)
	fl.add(cmd)
	return cmd
}

// parseCaptureRef reads PART_ID:STORE_ID:SEQ, as `data captures --json` names captures.
func parseCaptureRef(s string) (*fleetv1.CaptureRef, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return nil, fmt.Errorf("capture %q: want PART_ID:STORE_ID:SEQ", s)
	}
	seq, err := strconv.ParseUint(parts[2], 10, 64)
	if err != nil || seq == 0 {
		return nil, fmt.Errorf("capture %q: the sequence must be a number from 1", s)
	}
	return &fleetv1.CaptureRef{PartId: parts[0], StoreId: parts[1], Seq: seq}, nil
}

func newTagCmd(g *globals) *cobra.Command {
	var machine string
	var add, remove []string
	cmd := &cobra.Command{
		Use:   "tag PART_ID:STORE_ID:SEQ... --machine MACHINE_ID [--add TAG] [--remove TAG]",
		Short: "Add or remove tags of captures (data.edit)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var refs []*fleetv1.CaptureRef
			for _, a := range args {
				r, err := parseCaptureRef(a)
				if err != nil {
					return err
				}
				refs = append(refs, r)
			}
			return call(g, cmd, (*api).TagCaptures, &fleetv1.TagCapturesRequest{MachineId: machine, Captures: refs, Add: add, Remove: remove},
				func(w io.Writer, res *fleetv1.TagCapturesResponse) error {
					_, err := fmt.Fprintf(w, "tags changed on %d of %d captures\n", res.GetChanged(), len(refs))
					return err
				})
		},
	}
	cmd.Flags().StringVar(&machine, "machine", "", "machine name, path or ID")
	cmd.Flags().StringSliceVar(&add, "add", nil, "tags to add (repeat or comma-separate)")
	cmd.Flags().StringSliceVar(&remove, "remove", nil, "tags to remove (repeat or comma-separate)")
	mustRequire(cmd, "machine")
	return cmd
}
