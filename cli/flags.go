package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/outpost-robotics/outpost/rbac"
)

// mustRequire marks flags required; the names are constants, so an error
// is a programming mistake caught by every test.
func mustRequire(cmd *cobra.Command, names ...string) {
	for _, n := range names {
		if err := cmd.MarkFlagRequired(n); err != nil {
			panic(err)
		}
	}
}

// grantFlags adds --subject, --role and --scope as asked.
func grantFlags(cmd *cobra.Command, subject, role, scope *string) {
	if subject != nil {
		cmd.Flags().StringVar(subject, "subject", "", "user/EMAIL, user/ID or apikey/KEY_ID")
		mustRequire(cmd, "subject")
	}
	if role != nil {
		cmd.Flags().StringVar(role, "role", "", "owner or operator")
		mustRequire(cmd, "role")
		_ = cmd.RegisterFlagCompletionFunc("role", completeRoles)
	}
	if scope != nil {
		cmd.Flags().StringVar(scope, "scope", "", "org/ID, location/ID or machine/ID")
		mustRequire(cmd, "scope")
		_ = cmd.RegisterFlagCompletionFunc("scope", completeScopes)
	}
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

// timeFlags are --from and --to, as RFC 3339 times or durations before now
// ("15m" is a quarter of an hour ago).
type timeFlags struct{ from, to string }

func (t *timeFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&t.from, "from", "", `only from this time: RFC 3339, or a duration before now such as "15m"`)
	cmd.Flags().StringVar(&t.to, "to", "", "only before this time: RFC 3339, or a duration before now")
}

func parseWhen(flag, v string, now time.Time) (*timestamppb.Timestamp, error) {
	if v == "" {
		return nil, nil
	}
	if d, err := time.ParseDuration(v); err == nil {
		return timestamppb.New(now.Add(-d)), nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return nil, fmt.Errorf("--%s %q: want an RFC 3339 time such as 2026-11-22T12:00:00Z or a duration such as 15m", flag, v)
	}
	return timestamppb.New(t), nil
}

func (t *timeFlags) parse(now time.Time) (from, to *timestamppb.Timestamp, err error) {
	if from, err = parseWhen("from", t.from, now); err != nil {
		return nil, nil, err
	}
	to, err = parseWhen("to", t.to, now)
	return from, to, err
}
