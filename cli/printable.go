package cli

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// printable makes text from a part, the cloud or another user safe to put
// on a terminal. Parts and users choose log messages, names, reasons and
// error texts, and a terminal obeys escape sequences in them: ESC and CSI
// sequences can clear the screen, retitle the window, write to the
// clipboard or hide what follows. So every control character (C0, DEL,
// C1), every bidirectional formatting character (which reorders what is
// shown) and the line and paragraph separators are shown as Go-style
// escapes (\x1b, \u009b, \u202e), tab and newline as \t and \n so one
// entry stays one line and table columns stay aligned, and each byte of
// invalid UTF-8 as \xNN. All other text, backslashes included, is shown as
// it is, so paths and ordinary messages read naturally.
func printable(s string) string {
	if isPrintable(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x80 && unsafeRune(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case unsafeRune(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// isPrintable says s needs no escaping, the common case.
func isPrintable(s string) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < 0x7f {
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 || unsafeRune(r) {
			return false
		}
		i += n
	}
	return true
}

// unsafeRune says a terminal could act on r instead of showing it.
func unsafeRune(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) || r == '\u2028' || r == '\u2029'
}

// printableAll applies printable to each string, for table rows.
func printableAll(row []string) []string {
	out := make([]string, len(row))
	for i, s := range row {
		out[i] = printable(s)
	}
	return out
}

// printableJSON escapes, as \uXXXX, the characters of encoded JSON that a
// terminal could act on and that JSON encoders leave raw (DEL, C1 controls
// and bidirectional formatting; C0 controls are escaped by every encoder).
// Outside strings JSON has only ASCII, so the result decodes to the same
// value.
func printableJSON(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r >= 0x7f && r <= 0xffff && unsafeRune(r) {
			out = fmt.Appendf(out, `\u%04x`, r)
		} else {
			out = append(out, b[i:i+n]...)
		}
		i += n
	}
	return out
}
