package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// output prints msg as indented JSON with --json, and otherwise calls
// plain to print it for a person.
func (g *globals) output(w io.Writer, msg proto.Message, plain func(w io.Writer) error) error {
	if g.json || plain == nil {
		b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(msg)
		if err != nil {
			return fmt.Errorf("encode answer: %w", err)
		}
		// protojson varies its spacing on purpose; re-indent for stable output.
		var buf bytes.Buffer
		if err := json.Indent(&buf, b, "", "  "); err != nil {
			return fmt.Errorf("encode answer: %w", err)
		}
		buf.WriteByte('\n')
		_, err = w.Write(printableJSON(buf.Bytes()))
		return err
	}
	return plain(w)
}

// writeJSON prints a message as indented protobuf JSON with proto names.
func writeJSON(w io.Writer, m proto.Message) error {
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, b, "", "  "); err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	buf.WriteByte('\n')
	_, err = w.Write(printableJSON(buf.Bytes()))
	return err
}

// table prints rows under a header, aligned.
func table(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(printableAll(r), "\t"))
	}
	return tw.Flush()
}

func when(t *timestamppb.Timestamp) string {
	if t == nil {
		return "-"
	}
	return t.AsTime().UTC().Format(time.RFC3339)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// secretNote tells where a one-time secret is and that it is shown once.
func secretNote(w io.Writer, what, secret string) error {
	_, err := fmt.Fprintf(w, "\n%s (shown once, keep it safe):\n%s\n", what, secret)
	return err
}
