package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
)

func (f *robotFlags) dataCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "data", Short: "List, export, tag and delete the captures held on the part"}
	var component string
	var limit uint32
	ls := &cobra.Command{
		Use: "ls", Short: "List captures, newest first", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.run(cmd, func(ctx context.Context, c *robotConn, w io.Writer) error {
				r, err := c.control.ListCaptures(ctx, connect.NewRequest(&controlv1.ListCapturesRequest{Component: component, Limit: limit}))
				if err != nil {
					return err
				}
				return f.print(w, r.Msg, func(w io.Writer) error {
					var rows [][]string
					for _, c := range r.Msg.GetCaptures() {
						rows = append(rows, []string{strconv.FormatUint(c.GetId(), 10), c.GetTime().AsTime().UTC().Format(time.RFC3339),
							c.GetComponent(), c.GetMethod(), c.GetMimeType(), strconv.FormatUint(c.GetSize(), 10), strings.Join(c.GetTags(), ",")})
					}
					return table(w, []string{"ID", "TIME", "COMPONENT", "METHOD", "TYPE", "BYTES", "TAGS"}, rows)
				})
			})
		},
	}
	ls.Flags().StringVar(&component, "component", "", "only this component's captures")
	ls.Flags().Uint32Var(&limit, "limit", 0, "at most this many (default 1000)")
	var out string
	var ids []uint
	export := &cobra.Command{
		Use: "export", Short: "Export captures into a folder", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := os.MkdirAll(out, 0o755); err != nil {
				return fmt.Errorf("make %s: %w", out, err)
			}
			return f.run(cmd, func(ctx context.Context, c *robotConn, w io.Writer) error {
				req := &controlv1.ExportCapturesRequest{Component: component}
				for _, id := range ids {
					req.Ids = append(req.Ids, uint64(id))
				}
				s, err := c.control.ExportCaptures(ctx, connect.NewRequest(req))
				if err != nil {
					return err
				}
				defer s.Close()
				n := 0
				for s.Receive() {
					info := s.Msg().GetInfo()
					name := fmt.Sprintf("%d-%s-%s%s", info.GetId(), safeName(info.GetComponent()), safeName(info.GetMethod()), extFor(info.GetMimeType()))
					if err := os.WriteFile(filepath.Join(out, name), s.Msg().GetData(), 0o644); err != nil {
						return fmt.Errorf("write %s: %w", name, err)
					}
					n++
				}
				if err := s.Err(); err != nil {
					return err
				}
				_, err = fmt.Fprintf(w, "exported %d captures into %s\n", n, out)
				return err
			})
		},
	}
	export.Flags().StringVar(&out, "out", ".", "folder to write the captures into")
	export.Flags().UintSliceVar(&ids, "id", nil, "capture ids (default: every capture, or --component's)")
	export.Flags().StringVar(&component, "component", "", "only this component's captures")
	cmd.AddCommand(ls, export, f.dataTagCmd(), f.dataRmCmd())
	return cmd
}

// captureIDs reads capture ids (as `outpost robot data ls` shows them).
func captureIDs(args []string) ([]uint64, error) {
	out := make([]uint64, 0, len(args))
	for _, a := range args {
		id, err := strconv.ParseUint(a, 10, 64)
		if err != nil || id == 0 {
			return nil, fmt.Errorf("capture %q: an id is a number from 1, as `outpost robot data ls` shows", a)
		}
		out = append(out, id)
	}
	return out, nil
}

// editBatch is how many captures one tag or delete call names: the part's
// limit per call.
const editBatch = 1000

// inBatches calls fn with ids editBatch at a time and sums what it returns.
func inBatches(ids []uint64, fn func(batch []uint64) (uint32, error)) (uint32, error) {
	var n uint32
	for len(ids) > 0 {
		b := ids[:min(len(ids), editBatch)]
		ids = ids[len(b):]
		k, err := fn(b)
		if err != nil {
			return n, err
		}
		n += k
	}
	return n, nil
}

func (f *robotFlags) dataTagCmd() *cobra.Command {
	var add, remove []string
	cmd := &cobra.Command{
		Use:   "tag ID... [--add TAG] [--remove TAG]",
		Short: "Add or remove tags of captures still on the part (data.edit); the tags go to the cloud with them",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ids, err := captureIDs(args)
			if err != nil {
				return err
			}
			if len(add)+len(remove) == 0 {
				return errors.New("give --add TAG or --remove TAG")
			}
			return f.run(cmd, func(ctx context.Context, c *robotConn, w io.Writer) error {
				n, err := inBatches(ids, func(b []uint64) (uint32, error) {
					r, err := c.control.TagCaptures(ctx, connect.NewRequest(&controlv1.TagCapturesRequest{Ids: b, Add: add, Remove: remove}))
					if err != nil {
						return 0, err
					}
					return r.Msg.GetChanged(), nil
				})
				if err != nil {
					return err
				}
				return f.print(w, &controlv1.TagCapturesResponse{Changed: n}, func(w io.Writer) error {
					_, err := fmt.Fprintf(w, "tags changed on %d of %d captures\n", n, len(ids))
					return err
				})
			})
		},
	}
	cmd.Flags().StringSliceVar(&add, "add", nil, "tags to add (repeat or comma-separate)")
	cmd.Flags().StringSliceVar(&remove, "remove", nil, "tags to remove (repeat or comma-separate)")
	return cmd
}

func (f *robotFlags) dataRmCmd() *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:     "rm ID... --yes",
		Aliases: []string{"delete"},
		Short:   "Delete captures from the part before they are uploaded (data.edit)",
		Long: `Deletes captures still on the part, and their images or files, so they never
reach the cloud. The cloud is told that they were deleted on the part and by
whom (a gap record), so the loss is known, not silent. A capture already
uploaded (or being uploaded at that moment) is deleted in the cloud: see
"outpost data delete". --yes confirms.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ids, err := captureIDs(args)
			if err != nil {
				return err
			}
			if !yes {
				return errors.New("this deletes data for good: add --yes")
			}
			return f.run(cmd, func(ctx context.Context, c *robotConn, w io.Writer) error {
				n, err := inBatches(ids, func(b []uint64) (uint32, error) {
					r, err := c.control.DeleteCaptures(ctx, connect.NewRequest(&controlv1.DeleteCapturesRequest{Ids: b}))
					if err != nil {
						return 0, err
					}
					return r.Msg.GetDeleted(), nil
				})
				if err != nil {
					return err
				}
				return f.print(w, &controlv1.DeleteCapturesResponse{Deleted: n}, func(w io.Writer) error {
					_, err := fmt.Fprintf(w, "deleted %d of %d captures from the part\n", n, len(ids))
					return err
				})
			})
		},
	}
	cmd.Flags().BoolVar(&yes, "yes", false, "confirm: the captures are deleted for good")
	return cmd
}

// safeName keeps a capture's file name inside the export folder.
func safeName(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == 0 || r == '.' {
			return '_'
		}
		return r
	}, s)
	if s == "" {
		return "_"
	}
	return s
}

func extFor(mime string) string {
	switch mime {
	case "application/json":
		return ".json"
	case "image/jpeg":
		return ".jpg"
	case "image/png":
		return ".png"
	}
	return ".bin"
}
