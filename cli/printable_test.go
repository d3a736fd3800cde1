package cli

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// hostile are texts a part or another user could put in a log message, a
// name or an error, each meant to make a terminal do something.
var hostile = []struct{ name, in, want string }{
	{"plain", "lift stalled at 3.2 A", "lift stalled at 3.2 A"},
	{"unicode kept", "Ünïcödé ✓ 日本 🤖", "Ünïcödé ✓ 日本 🤖"},
	{"backslash kept", `C:\robot\x1b`, `C:\robot\x1b`},
	{"clear screen", "\x1b[2J\x1b[Hhi", `\x1b[2J\x1b[Hhi`},
	{"window title", "\x1b]0;pwned\x07", `\x1b]0;pwned\x07`},
	{"clipboard write", "\x1b]52;c;cm0gLXJmIH4=\x1b\\", `\x1b]52;c;cm0gLXJmIH4=\x1b\`},
	{"C1 CSI", "\u009b31mred", `\u009b31mred`},
	{"C1 OSC and ST", "\u009d0;t\u009c", `\u009d0;t\u009c`},
	{"raw C1 byte", "\x9b31m", `\x9b31m`},
	{"newline and CR", "ok\r\nFAKE: all good", `ok\r\nFAKE: all good`},
	{"tab", "a\tb", `a\tb`},
	{"NUL, BEL, backspace, DEL", "a\x00b\x07c\x08d\x7f", `a\x00b\x07c\x08d\x7f`},
	{"invalid UTF-8", "bad \xff\xfe end \xc3", `bad \xff\xfe end \xc3`},
	{"bidi override", "file\u202egnp.exe", `file\u202egnp.exe`},
	{"bidi isolate", "\u2066x\u2069", `\u2066x\u2069`},
	{"line separator", "a\u2028b", `a\u2028b`},
}

func TestPrintable(t *testing.T) {
	for _, tt := range hostile {
		t.Run(tt.name, func(t *testing.T) {
			got := printable(tt.in)
			if got != tt.want {
				t.Errorf("printable(%q) = %q, want %q", tt.in, got, tt.want)
			}
			assertTerminalSafe(t, got)
		})
	}
}

// TestPrintableJSON: the JSON output keeps its value and loses the
// characters a terminal acts on.
func TestPrintableJSON(t *testing.T) {
	for _, tt := range hostile {
		t.Run(tt.name, func(t *testing.T) {
			in := strings.ToValidUTF8(tt.in, "\ufffd")
			b, err := json.Marshal(map[string]string{"message": in})
			if err != nil {
				t.Fatal(err)
			}
			got := printableJSON(b)
			assertTerminalSafe(t, string(got))
			var back map[string]string
			if err := json.Unmarshal(got, &back); err != nil || back["message"] != in {
				t.Errorf("printableJSON(%s) = %s, decodes to %q (%v)", b, got, back["message"], err)
			}
		})
	}
}

// assertTerminalSafe fails on any byte or rune a terminal could act on.
func assertTerminalSafe(t *testing.T, s string) {
	t.Helper()
	if !utf8.ValidString(s) {
		t.Errorf("%q is not valid UTF-8", s)
	}
	for _, line := range strings.Split(strings.TrimSuffix(s, "\n"), "\n") {
		for _, r := range line {
			if unsafeRune(r) {
				t.Errorf("%q holds %U", s, r)
			}
		}
	}
}

func FuzzPrintable(f *testing.F) {
	for _, tt := range hostile {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := printable(s)
		assertTerminalSafe(t, got)
		if strings.Contains(got, "\n") {
			t.Errorf("printable(%q) = %q spans lines", s, got)
		}
		if isPrintable(s) != (got == s) {
			t.Errorf("isPrintable(%q) = %v but printable gives %q", s, isPrintable(s), got)
		}
	})
}
