package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
)

func logLine(w io.Writer, e *fleetv1.LogEntry) error {
	en := e.GetEntry()
	line := fmt.Sprintf("%s %s %-5s %s %s", when(e.GetTime()), nameOrID(e.GetPartName(), e.GetPartId()), orDash(en.GetLevel()), orDash(en.GetLogger()), en.GetMessage())
	if f := en.GetFieldsJson(); f != "" && f != "{}" {
		line += " " + f
	}
	_, err := fmt.Fprintln(w, printable(line))
	return err
}

func newLogsCmd(g *globals) *cobra.Command {
	var machine, part, level string
	var limit int32
	var follow bool
	var interval, window time.Duration
	var tf timeFlags
	var fl fleetFlags
	cmd := &cobra.Command{
		Use:   "logs --machine MACHINE_ID | --org ORG_ID | --location LOCATION_ID",
		Short: "Print the logs parts uploaded, of a machine or across a fleet",
		Long: "Prints the logs of a machine (or one --part), or of every machine of an --org or a --location's subtree\n" +
			"that you may view, at --level and above, each line with its part's name, the parts merged by time.\n" +
			"--follow keeps polling and prints entries as they arrive, stopping on Ctrl-C; it shows entries the parts\n" +
			"wrote within --window of each poll, so a backlog a part uploads after a long time offline is shown by\n" +
			"`outpost logs --from ...`, not by --follow. Logs need machine.view (the LOGS tab).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			from, to, err := tf.parse(time.Now())
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			one := &fleetv1.ListLogsRequest{MachineId: machine, PartId: part, Level: level, To: to, PageSize: limit}
			list := func(from *timestamppb.Timestamp, token string) (*fleetv1.ListLogsResponse, error) {
				one.From, one.PageToken = from, token
				res, err := c.ListLogs(ctx, connect.NewRequest(one))
				if err != nil {
					return nil, err
				}
				return res.Msg, nil
			}
			if fl.fleet() {
				if fl.org != "" && fl.location != "" {
					return fmt.Errorf("--org and --location: give one")
				}
				r := &fleetv1.ListFleetLogsRequest{OrgId: fl.org, LocationId: fl.location, PartIds: fl.parts, Level: level, To: to, PageSize: limit}
				if machine != "" {
					r.MachineIds = []string{machine}
				}
				if part != "" {
					r.PartIds = append(r.PartIds, part)
				}
				if err := g.resolve(ctx, c, r); err != nil {
					return err
				}
				list = func(from *timestamppb.Timestamp, token string) (*fleetv1.ListLogsResponse, error) {
					r.From, r.PageToken = from, token
					res, err := c.ListFleetLogs(ctx, connect.NewRequest(r))
					if err != nil {
						return nil, err
					}
					return &fleetv1.ListLogsResponse{Entries: res.Msg.GetEntries(), NextPageToken: res.Msg.GetNextPageToken()}, nil
				}
			} else if machine == "" {
				return fmt.Errorf("one of --machine, --org or --location is required")
			} else if err := g.resolve(ctx, c, one); err != nil {
				return err
			}
			if !follow {
				res, err := list(from, "")
				if err != nil {
					return err
				}
				return g.output(cmd.OutOrStdout(), res, func(w io.Writer) error {
					for _, e := range res.GetEntries() {
						if err := logLine(w, e); err != nil {
							return err
						}
					}
					if res.GetNextPageToken() != "" {
						_, err := fmt.Fprintln(cmd.ErrOrStderr(), "(more entries: narrow --from/--to or raise --limit)")
						return err
					}
					return nil
				})
			}
			return g.followLogs(ctx, cmd.OutOrStdout(), list, from, interval, window)
		},
	}
	cmd.Flags().StringVar(&machine, "machine", "", "machine name, path or ID")
	cmd.Flags().StringVar(&part, "part", "", "only this part of the machine")
	cmd.Flags().StringVar(&level, "level", "info", "lowest level shown: debug, info, warn or error")
	cmd.Flags().Int32Var(&limit, "limit", 1000, "at most this many entries per request (1 to 1000)")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing entries as they arrive")
	cmd.Flags().DurationVar(&interval, "interval", 2*time.Second, "with --follow, how often to poll")
	cmd.Flags().DurationVar(&window, "window", 10*time.Minute, "with --follow, how far back each poll looks")
	tf.add(cmd)
	fl.add(cmd)
	return cmd
}

// followLogs polls until ctx ends, printing each entry once. Entries are
// known by part, stream, sequence and time (a part's store that was reset
// starts its sequences again, at a later time).
func (g *globals) followLogs(ctx context.Context, w io.Writer, list func(*timestamppb.Timestamp, string) (*fleetv1.ListLogsResponse, error),
	from *timestamppb.Timestamp, interval, window time.Duration) error {
	seen := map[string]time.Time{}
	for {
		since := timestamppb.New(time.Now().Add(-window))
		if from != nil && from.AsTime().After(since.AsTime()) {
			since = from
		}
		token := ""
		for {
			res, err := list(since, token)
			if err != nil {
				return err
			}
			for _, e := range res.GetEntries() {
				k := fmt.Sprintf("%s|%s|%d|%d", e.GetPartId(), e.GetStream(), e.GetSeq(), e.GetTime().AsTime().UnixNano())
				if _, ok := seen[k]; ok {
					continue
				}
				seen[k] = e.GetTime().AsTime()
				if g.json {
					err = writeJSON(w, e)
				} else {
					err = logLine(w, e)
				}
				if err != nil {
					return err
				}
			}
			if token = res.GetNextPageToken(); token == "" {
				break
			}
		}
		// Forget what no poll can return again, so memory stays bounded.
		for k, t := range seen {
			if t.Before(since.AsTime()) {
				delete(seen, k)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(interval):
		}
	}
}
