package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"
)

// readSecret reads a password from stdin (--password-stdin) or prompts for
// it on a terminal without echo.
func (g *globals) readSecret(fromStdin bool, prompt string, stderr io.Writer) (string, error) {
	if fromStdin {
		b, err := io.ReadAll(io.LimitReader(g.env.stdin, 4096))
		if err != nil {
			return "", fmt.Errorf("read password from stdin: %w", err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	if !g.env.stdinTerminal || g.env.readPassword == nil {
		return "", errors.New("no terminal to ask for a password: pipe it in with --password-stdin")
	}
	fmt.Fprint(stderr, prompt)
	pw, err := g.env.readPassword()
	fmt.Fprintln(stderr)
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	return pw, nil
}

// readPasswordChange reads the current and the new password.
func readPasswordChange(g *globals, fromStdin bool, stderr io.Writer) (string, string, error) {
	if fromStdin {
		all, err := g.readSecret(true, "", stderr)
		if err != nil {
			return "", "", err
		}
		cur, next, ok := strings.Cut(all, "\n")
		next = strings.TrimRight(next, "\r\n")
		if !ok || next == "" || strings.Contains(next, "\n") {
			return "", "", errors.New("--password-stdin: give the current password on the first line and the new one on the second")
		}
		return strings.TrimRight(cur, "\r"), next, nil
	}
	cur, err := g.readSecret(false, "Current password: ", stderr)
	if err != nil {
		return "", "", err
	}
	next, err := g.readSecret(false, "New password: ", stderr)
	if err != nil {
		return "", "", err
	}
	again, err := g.readSecret(false, "New password again: ", stderr)
	if err != nil {
		return "", "", err
	}
	if again != next {
		return "", "", errors.New("the new passwords differ: nothing changed")
	}
	return cur, next, nil
}
