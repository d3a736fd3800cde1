package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// unknownCommandError is a mistyped subcommand: it names the command and
// what the user may have meant, on one line, and the CLI exits with 1.
type unknownCommandError struct {
	name, parent string
	suggestions  []string
}

func (e *unknownCommandError) Error() string {
	msg := fmt.Sprintf("unknown command %q for %q", e.name, e.parent)
	switch len(e.suggestions) {
	case 0:
		return msg + fmt.Sprintf(": see '%s --help'", e.parent)
	case 1:
		return msg + fmt.Sprintf(": did you mean %q?", e.suggestions[0])
	default:
		return msg + fmt.Sprintf(": did you mean one of %s?", strings.Join(e.suggestions, ", "))
	}
}

// refuseUnknownSubcommands makes every command that only groups others
// (root included) fail on an argument that names none of them. Cobra's own
// handling prints the group's help and exits 0 below the root, which a
// script takes for success.
func refuseUnknownSubcommands(c *cobra.Command) {
	if c.HasSubCommands() && c.Run == nil && c.RunE == nil {
		c.Args = cobra.ArbitraryArgs
		if c.SuggestionsMinimumDistance <= 0 {
			c.SuggestionsMinimumDistance = 2
		}
		c.RunE = func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cmd.Help()
			}
			return &unknownCommandError{name: args[0], parent: cmd.CommandPath(), suggestions: cmd.SuggestionsFor(args[0])}
		}
	}
	for _, sub := range c.Commands() {
		refuseUnknownSubcommands(sub)
	}
}
