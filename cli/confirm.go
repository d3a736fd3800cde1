package cli

import (
	"bufio"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// yesFlag adds --yes, which confirms a destructive command without asking.
func yesFlag(cmd *cobra.Command, yes *bool) {
	cmd.Flags().BoolVarP(yes, "yes", "y", false, "do it without asking")
}

// confirm asks on the terminal whether to do what (a sentence such as
// "delete machine rover"), unless yes. Without a terminal to ask on it
// refuses: a script must say --yes, so a deletion is never the accident of
// a pipe's leftover input.
func (g *globals) confirm(cmd *cobra.Command, yes bool, what string) error {
	if yes {
		return nil
	}
	if !g.env.stdinTerminal {
		return fmt.Errorf("%s: stdin is not a terminal to ask on; pass --yes to confirm", printable(what))
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "%s? [y/N] ", printable(what))
	line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
	if err != nil && line == "" {
		return errors.New("not confirmed: nothing was done")
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return nil
	}
	return errors.New("not confirmed: nothing was done")
}
