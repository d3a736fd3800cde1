package cli

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
)

// newAlertCmd is `outpost alert`: fleet alert rules, evaluated by the cloud
// and posted to webhooks.
func newAlertCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "alert", Short: "Manage fleet alert rules: conditions the cloud watches and posts to a webhook"}
	cmd.AddCommand(newAlertCreateCmd(g), newAlertListCmd(g), newAlertDeleteCmd(g), newAlertHistoryCmd(g), newAlertTestCmd(g))
	return cmd
}

// alertScopeFlags adds --org and --location, one required, and returns
// the scope they name.
func alertScopeFlags(c *cobra.Command) func() string {
	var org, loc string
	c.Flags().StringVar(&org, "org", "", "organization ID: its machines, nested and shared")
	c.Flags().StringVar(&loc, "location", "", "location ID: its machines and those of the locations in it")
	c.MarkFlagsOneRequired("org", "location")
	c.MarkFlagsMutuallyExclusive("org", "location")
	return func() string {
		if org != "" {
			return "org/" + org
		}
		return "location/" + loc
	}
}

// alertCondition says a rule's condition in words.
func alertCondition(r *fleetv1.AlertRule) string {
	w := time.Duration(r.GetWindowSeconds()) * time.Second
	switch r.GetKind() {
	case "offline":
		return fmt.Sprintf("offline for more than %s", w)
	case "failing":
		return "a resource failing"
	case "error_logs":
		return fmt.Sprintf("more than %d error logs in %s", r.GetThreshold(), w)
	case "capture_backlog":
		return fmt.Sprintf("more than %d captures waiting", r.GetThreshold())
	case "store_bytes":
		return fmt.Sprintf("store above %d bytes", r.GetThreshold())
	case "rollout_failed":
		return "a package failed or rolled back"
	}
	return r.GetKind()
}

func alertRulesTable(w io.Writer, rules []*fleetv1.AlertRule) error {
	var rows [][]string
	for _, r := range rules {
		rows = append(rows, []string{r.GetName(), r.GetId(), r.GetScope(), alertCondition(r), fmt.Sprint(r.GetFiring()), r.GetWebhookUrl()})
	}
	return table(w, []string{"NAME", "ID", "SCOPE", "CONDITION", "FIRING", "WEBHOOK"}, rows)
}

func newAlertCreateCmd(g *globals) *cobra.Command {
	var r fleetv1.CreateAlertRuleRequest
	var window time.Duration
	c := &cobra.Command{
		Use:   "create NAME (--org ORG_ID | --location LOCATION_ID) --kind KIND --webhook URL",
		Short: "Create an alert rule; prints the webhook signing secret once",
		Long: "Creates a rule the cloud evaluates over every part of an organization or a location's subtree. Kinds:\n" +
			"  offline          --window: a part silent for longer than this\n" +
			"  failing          a resource failing (a process in a crash loop counts)\n" +
			"  error_logs       --threshold --window: more error logs than this within the window\n" +
			"  capture_backlog  --threshold: more captures than this waiting to upload\n" +
			"  store_bytes      --threshold: the part's store above this many bytes\n" +
			"  rollout_failed   a package failed or was rolled back\n" +
			"Each part's transition (firing, resolved) is posted as JSON to the webhook with the header\n" +
			"Outpost-Signature: t=UNIX,v1=HEX, HEX the HMAC-SHA256 with the secret of \"UNIX.\" and the body.",
		Args: cobra.ExactArgs(1),
	}
	scope := alertScopeFlags(c)
	c.RunE = func(cmd *cobra.Command, args []string) error {
		r.Name, r.Scope = args[0], scope()
		if window < 0 || window%time.Second != 0 {
			return fmt.Errorf("--window %s: want whole seconds, such as 5m or 90s", window)
		}
		r.WindowSeconds = uint32(min(window/time.Second, 1<<32-1))
		return call(g, cmd, (*api).CreateAlertRule, &r, func(w io.Writer, res *fleetv1.CreateAlertRuleResponse) error {
			if err := alertRulesTable(w, []*fleetv1.AlertRule{res.GetRule()}); err != nil {
				return err
			}
			_, err := fmt.Fprintf(w, "secret: %s\n(shown only now: the webhook checks Outpost-Signature with it)\n", res.GetSecret())
			return err
		})
	}
	f := c.Flags()
	f.StringVar(&r.Kind, "kind", "", "offline, failing, error_logs, capture_backlog, store_bytes or rollout_failed")
	f.Uint64Var(&r.Threshold, "threshold", 0, "the limit of error_logs, capture_backlog and store_bytes")
	f.DurationVar(&window, "window", 0, "how long offline, or the window error_logs counts over (such as 5m)")
	f.StringVar(&r.WebhookUrl, "webhook", "", "the https URL transitions are posted to")
	mustRequire(c, "kind")
	mustRequire(c, "webhook")
	return c
}

func newAlertListCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "list --org ORG_ID | --location LOCATION_ID",
		Short: "List the alert rules on an organization or a location (and the locations in it)",
		Args:  cobra.NoArgs,
	}
	scope := alertScopeFlags(c)
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		return call(g, cmd, (*api).ListAlertRules, &fleetv1.ListAlertRulesRequest{Scope: scope()}, func(w io.Writer, res *fleetv1.ListAlertRulesResponse) error {
			return alertRulesTable(w, res.GetRules())
		})
	}
	return c
}

func newAlertDeleteCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "delete RULE_ID", Short: "Delete an alert rule with its history", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(g, cmd, (*api).DeleteAlertRule, &fleetv1.DeleteAlertRuleRequest{RuleId: args[0]}, func(w io.Writer, _ *fleetv1.DeleteAlertRuleResponse) error {
				_, err := fmt.Fprintf(w, "deleted alert rule %s\n", args[0])
				return err
			})
		},
	}
}

// delivery says how an event's delivery went.
func delivery(e *fleetv1.AlertEvent) string {
	attempts := "attempt"
	if e.GetAttempts() != 1 {
		attempts += "s"
	}
	if e.GetDelivered() {
		return fmt.Sprintf("delivered (%d, %d %s)", e.GetStatusCode(), e.GetAttempts(), attempts)
	}
	if e.GetAttempts() == 0 && e.GetError() == "" {
		return "pending"
	}
	return fmt.Sprintf("not delivered after %d %s: %s", e.GetAttempts(), attempts, e.GetError())
}

func newAlertHistoryCmd(g *globals) *cobra.Command {
	var page string
	var limit int32
	c := &cobra.Command{
		Use: "history RULE_ID", Short: "List a rule's transitions and test-fires, newest first, with their delivery", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(g, cmd, (*api).ListAlertEvents, &fleetv1.ListAlertEventsRequest{RuleId: args[0], PageSize: limit, PageToken: page},
				func(w io.Writer, res *fleetv1.ListAlertEventsResponse) error {
					var rows [][]string
					for _, e := range res.GetEvents() {
						rows = append(rows, []string{when(e.GetTime()), e.GetState(), orDash(e.GetPartId()), e.GetDetail(), delivery(e)})
					}
					if err := table(w, []string{"TIME", "STATE", "PART", "DETAIL", "DELIVERY"}, rows); err != nil {
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
	c.Flags().Int32Var(&limit, "limit", 50, "at most this many events")
	c.Flags().StringVar(&page, "page", "", "continue from a previous listing")
	return c
}

// errNotDelivered makes a failed test-fire exit non-zero.
var errNotDelivered = errors.New("the webhook did not accept the test event")

func newAlertTestCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use: "test RULE_ID", Short: "Post a signed sample event to the rule's webhook now and print how it went", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var ok bool
			err := call(g, cmd, (*api).TestAlertRule, &fleetv1.TestAlertRuleRequest{RuleId: args[0]}, func(w io.Writer, res *fleetv1.TestAlertRuleResponse) error {
				ok = res.GetEvent().GetDelivered()
				_, err := fmt.Fprintf(w, "test event %s: %s\n", res.GetEvent().GetId(), delivery(res.GetEvent()))
				return err
			})
			if err == nil && !ok && !g.json {
				return errNotDelivered
			}
			return err
		},
	}
}
