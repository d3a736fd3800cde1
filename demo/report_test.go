package demo

import (
	"bytes"
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	const key = "opk_0fca7ed80e7df13670c75ea4f7cf36ee_s1R2u0WiXDS8DnIJ6x9NmvGfwgL_-H4Yecr0JKfU__E"
	const token = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ1c2VyIn0.c2lnbmF0dXJl"
	for _, tc := range []struct {
		name    string
		secrets []string
		in      string
		want    string
	}{
		{"nothing registered", nil, "OUTPOST_TOKEN=abc", "OUTPOST_TOKEN=abc"},
		{"a token", []string{token}, "OUTPOST_TOKEN=" + token + " outpost robot", "OUTPOST_TOKEN=**** outpost robot"},
		{"an API key keeps its id", []string{key}, "OUTPOST_API_KEY=" + key, "OUTPOST_API_KEY=opk_0fca7ed80e7df13670c75ea4f7cf36ee_****"},
		{"an API key's secret alone", []string{key}, "secret s1R2u0WiXDS8DnIJ6x9NmvGfwgL_-H4Yecr0JKfU__E here", "secret **** here"},
		{"twice in a line", []string{token}, token + " and " + token, "**** and ****"},
		{"several lines", []string{token}, "a\n" + token + "\nb", "a\n****\nb"},
		{"too short to mask", []string{"ab"}, "ab cd", "ab cd"},
		{"a colon without an id is one secret", []string{"user:pass-word"}, "user:pass-word", "****"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newReport(nil)
			for _, s := range tc.secrets {
				r.secret(s)
			}
			if got := r.redact(tc.in); got != tc.want {
				t.Fatalf("redact(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// TestReportPrintsRedacted: every way of printing goes through the
// redactor.
func TestReportPrintsRedacted(t *testing.T) {
	var buf bytes.Buffer
	r := newReport(&buf)
	r.secret("hunter2-long-secret")
	r.title(1, "title hunter2-long-secret")
	r.cmd("cmd hunter2-long-secret")
	r.result("result hunter2-long-secret\nsecond hunter2-long-secret")
	r.note("note hunter2-long-secret")
	r.printf("printf %s", "hunter2-long-secret")
	out := buf.String()
	if strings.Contains(out, "hunter2") {
		t.Fatalf("a secret was printed:\n%s", out)
	}
	if n := strings.Count(out, mask); n != 6 {
		t.Fatalf("%d masks, want 6:\n%s", n, out)
	}
	if !strings.Contains(out, " 1. title ****") || !strings.Contains(out, "    $ cmd ****") || !strings.Contains(out, "      → result ****\n        second ****") {
		t.Fatalf("layout:\n%s", out)
	}
}

func TestCommandLine(t *testing.T) {
	for _, tc := range []struct {
		env, argv []string
		want      string
	}{
		{nil, []string{"outpost", "org", "create", "Acme Robotics"}, "outpost org create 'Acme Robotics'"},
		{[]string{"OUTPOST_TOKEN=x"}, []string{"outpost", "robot", "do", "motor", `{"set_power":0.5}`}, `OUTPOST_TOKEN=x outpost robot do motor '{"set_power":0.5}'`},
		{nil, []string{"echo", "it's", ""}, `echo 'it'\''s' ''`},
		{nil, []string{"a-b_c./d:e=f@g,h+i%j"}, "a-b_c./d:e=f@g,h+i%j"},
		{nil, []string{"$HOME", "a*b", "x;y"}, `'$HOME' 'a*b' 'x;y'`},
	} {
		if got := commandLine(tc.env, tc.argv); got != tc.want {
			t.Errorf("commandLine(%q, %q) = %s, want %s", tc.env, tc.argv, got, tc.want)
		}
	}
}

func TestClip(t *testing.T) {
	if got := clip("héllo world", 5); got != "héll…" {
		t.Errorf("clip = %q", got)
	}
	if got := clip("short", 10); got != "short" {
		t.Errorf("clip = %q", got)
	}
}

func FuzzRedact(f *testing.F) {
	f.Add("0fca7ed80e7df13670c75ea4f7cf36ee:secretsecret", "x 0fca7ed80e7df13670c75ea4f7cf36ee:secretsecret y")
	f.Add("token", "token token")
	f.Fuzz(func(t *testing.T, secret, line string) {
		r := newReport(nil)
		r.secret(secret)
		out := r.redact(line)
		// Real secrets have no '*'; with one, a mask could complete it.
		if len(secret) >= 4 && !strings.ContainsRune(secret, '*') && strings.Contains(out, secret) {
			t.Fatalf("redact(%q) with secret %q = %q", line, secret, out)
		}
	})
}
