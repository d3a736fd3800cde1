package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
)

func robotLogLine(w io.Writer, e *controlv1.LogEntry) {
	t := "-"
	if e.GetTime() != nil {
		t = e.GetTime().AsTime().UTC().Format(time.RFC3339Nano)
	}
	fmt.Fprintln(w, printable(fmt.Sprintf("%s %-5s %s %s %s", t, e.GetLevel(), e.GetLogger(), e.GetMessage(), e.GetFieldsJson())))
}

func (f *robotFlags) logsCmd() *cobra.Command {
	var follow bool
	var level string
	var limit uint32
	cmd := &cobra.Command{
		Use: "logs", Short: "Show the part's recent log, or follow it", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.run(cmd, func(ctx context.Context, c *robotConn, w io.Writer) error {
				if !follow {
					r, err := c.control.TailLogs(ctx, connect.NewRequest(&controlv1.TailLogsRequest{Limit: limit, MinLevel: level}))
					if err != nil {
						return err
					}
					return f.print(w, r.Msg, func(w io.Writer) error {
						for _, e := range r.Msg.GetEntries() {
							robotLogLine(w, e)
						}
						return nil
					})
				}
				s, err := c.control.FollowLogs(ctx, connect.NewRequest(&controlv1.FollowLogsRequest{MinLevel: level}))
				if err != nil {
					return err
				}
				defer s.Close()
				for s.Receive() {
					if err := f.print(w, s.Msg().GetEntry(), func(w io.Writer) error { robotLogLine(w, s.Msg().GetEntry()); return nil }); err != nil {
						return err
					}
				}
				if err := s.Err(); err != nil && ctx.Err() == nil {
					return err
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "stream new entries until interrupted")
	cmd.Flags().StringVar(&level, "level", "", "lowest level shown: debug, info, warn or error")
	cmd.Flags().Uint32VarP(&limit, "lines", "n", 100, "how many recent entries")
	return cmd
}
