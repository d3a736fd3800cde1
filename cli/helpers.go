package cli

import (
	"context"
	"io"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	"github.com/outpost-robotics/outpost/rbac"
)

// printer prints an answer for a person.
type printer = func(w io.Writer) error

// do runs one API call: it connects, calls fn, and prints the answer as
// JSON (--json) or with fn's printer.
func (g *globals) do(cmd *cobra.Command, fn func(ctx context.Context, c *api) (proto.Message, printer, error)) error {
	c, err := g.client()
	if err != nil {
		return err
	}
	msg, plain, err := fn(cmd.Context(), c)
	if err != nil {
		return err
	}
	return g.output(cmd.OutOrStdout(), msg, plain)
}

// completeRoles and completeActions feed shell completion.
func completeRoles(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return []string{"owner", "operator"}, cobra.ShellCompDirectiveNoFileComp
}

func completeActions(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	var out []string
	for _, a := range rbac.AllActions() {
		out = append(out, string(a)+"\t"+a.SeedRow())
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

func completeScopes(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return []string{"org/", "location/", "machine/"}, cobra.ShellCompDirectiveNoSpace | cobra.ShellCompDirectiveNoFileComp
}

// mustRequire marks flags required; the names are constants, so an error
// is a programming mistake caught by every test.
func mustRequire(cmd *cobra.Command, names ...string) {
	for _, n := range names {
		if err := cmd.MarkFlagRequired(n); err != nil {
			panic(err)
		}
	}
}
