package demo

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
)

// mask is what a secret is printed as.
const mask = "****"

// report prints the demo's steps. Every line goes through the redactor, so
// a secret the demo learned (a token, an API key, a part secret) cannot
// reach the screen, however it got into a line.
type report struct {
	mu      sync.Mutex
	w       io.Writer
	secrets []string // longest first, so a key is masked before its secret half
	step    int
}

func newReport(w io.Writer) *report { return &report{w: w} }

// secret registers s to be masked in everything printed from now on. An
// API key "opk_<id>_<private key>" keeps its id visible: the id names the
// key and is no credential.
func (r *report) secret(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(s) < 4 { // too short to mask without mangling ordinary text
		return
	}
	add := []string{s}
	if _, sec, ok := apiKeyParts(s); ok {
		add = append(add, sec)
	}
	for _, a := range add {
		if !slices.Contains(r.secrets, a) {
			r.secrets = append(r.secrets, a)
		}
	}
	slices.SortFunc(r.secrets, func(a, b string) int { return len(b) - len(a) })
}

// redact masks every registered secret in s.
func (r *report) redact(s string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return redactWith(r.secrets, s)
}

func redactWith(secrets []string, s string) string {
	for _, sec := range secrets {
		if visible, _, ok := apiKeyParts(sec); ok {
			s = strings.ReplaceAll(s, sec, visible+mask)
			continue
		}
		s = strings.ReplaceAll(s, sec, mask)
	}
	return s
}

// printf writes one or more lines, redacted.
func (r *report) printf(format string, args ...any) {
	s := r.redact(fmt.Sprintf(format, args...))
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintln(r.w, s)
}

// title starts step n.
func (r *report) title(n int, s string) {
	r.mu.Lock()
	r.step = n
	r.mu.Unlock()
	r.printf("\n%2d. %s", n, s)
}

// cmd shows a command as a person would type it.
func (r *report) cmd(s string) { r.printf("    $ %s", s) }

// result shows what a command answered, one line per line of s.
func (r *report) result(s string) {
	for i, line := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		lead := "      → "
		if i > 0 {
			lead = "        "
		}
		r.printf("%s%s", lead, line)
	}
}

// note is a line of explanation under a step.
func (r *report) note(s string) { r.printf("      %s", s) }

// commandLine renders env assignments and argv as a shell command line,
// quoting what the shell would split or expand.
func commandLine(env []string, argv []string) string {
	var b strings.Builder
	for _, e := range env {
		b.WriteString(e)
		b.WriteByte(' ')
	}
	for i, a := range argv {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(shellQuote(a))
	}
	return b.String()
}

// shellQuote quotes s for a POSIX shell when it needs quoting.
func shellQuote(s string) string {
	if s == "" {
		return "''"
	}
	safe := true
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_./:=@,+%", c)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// clip shortens a line to n runes.
func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// isHexID says whether s is an Outpost id: 32 lower-case hex digits.
func isHexID(s string) bool {
	if len(s) != 32 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// apiKeyParts splits a printed API key "opk_<id>_<private key>" into what
// may be shown ("opk_<id>_") and the private key.
func apiKeyParts(s string) (visible, private string, ok bool) {
	rest, ok := strings.CutPrefix(s, "opk_")
	if !ok {
		return "", "", false
	}
	id, private, ok := strings.Cut(rest, "_")
	if !ok || !isHexID(id) || len(private) < 4 {
		return "", "", false
	}
	return "opk_" + id + "_", private, true
}
