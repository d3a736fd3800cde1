package web_test

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/outpost-robotics/outpost/web"
)

// TestRobotPageHelpers runs the robot page's pure helpers in Chromium,
// table by table: the LCS line diff, the validator path to line mapping,
// reading the validator's problems out of a refusal, and merging log pages
// by time.
func TestRobotPageHelpers(t *testing.T) {
	h, err := web.New(web.Config{App: web.AppFleet})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	tab := chromium.NewTab(t)
	tab.Navigate(srv.URL + "/")
	tab.WaitVisible("#signin")
	mod := func(name string) string {
		u, ok := h.AssetURL(name)
		if !ok {
			t.Fatalf("no asset %s", name)
		}
		return u
	}
	js := func(v any) string {
		b, _ := json.Marshal(v)
		return string(b)
	}

	t.Run("diffLines", func(t *testing.T) {
		for _, tc := range []struct {
			name, a, b string
			want       string // each line's op and text, joined by |
		}{
			{"equal", "a\nb\n", "a\nb\n", " a| b"},
			{"both empty", "", "", ""},
			{"from empty", "", "x\ny", "+x|+y"},
			{"to empty", "x\ny\n", "", "-x|-y"},
			{"one changed", "a\nb\nc", "a\nB\nc", " a|-b|+B| c"},
			{"inserted in the middle", "a\nc", "a\nb\nc", " a|+b| c"},
			{"moved line", "a\nb\nc", "b\nc\na", "-a| b| c|+a"},
			{"CRLF", "a\r\nb\r\n", "a\nb\n", " a| b"},
			{"repeated lines", "x\nx\ny", "x\ny\nx", " x|-x| y|+x"},
			{"markup stays text", "<b>", "<img src=x>", "-<b>|+<img src=x>"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var got []struct {
					Op, Text string
					A, B     int
				}
				tab.Eval(fmt.Sprintf(`import(%q).then(m => m.diffLines(%s, %s))`, mod("js/diff.js"), js(tc.a), js(tc.b)), &got)
				var ops []string
				na, nb := 0, 0
				for _, l := range got {
					ops = append(ops, l.Op+l.Text)
					if l.Op != "+" {
						na++
						if l.A != na {
							t.Errorf("line %q is line %d of a, want %d", l.Text, l.A, na)
						}
					}
					if l.Op != "-" {
						nb++
						if l.B != nb {
							t.Errorf("line %q is line %d of b, want %d", l.Text, l.B, nb)
						}
					}
				}
				if s := strings.Join(ops, "|"); s != tc.want {
					t.Errorf("diffLines = %q, want %q", s, tc.want)
				}
			})
		}
	})

	t.Run("the largest diff stays quick and minimal", func(t *testing.T) {
		var n struct{ Changed, Total int }
		tab.Eval(fmt.Sprintf(`import(%q).then(m => {
		  const a = Array.from({length: 1500}, (_, i) => 'line ' + i).join('\n');
		  const b = a.replace('line 700', 'line 700 changed').replace('line 20\n', '');
		  const d = m.diffLines(a, b);
		  return {changed: d.filter(l => l.op !== ' ').length, total: d.length};
		})`, mod("js/diff.js")), &n)
		if n.Changed != 3 {
			t.Errorf("a 1500-line config with one line changed and one removed diffs as %d changed lines, want 3", n.Changed)
		}
	})

	t.Run("jsonPathLine", func(t *testing.T) {
		doc := "{\n  \"components\": [\n    {\"name\": \"a\"},\n    {\n      \"name\": \"b\",\n      \"dependsOn\": [\"x\", \"y\"]\n    }\n  ],\n  \"logLevel\": \"loud\"\n}"
		for _, tc := range []struct {
			path string
			want int
		}{
			{"components[0].name", 3},
			{"components[1].name", 5},
			{"components[1].depends_on[1]", 6},
			{"log_level", 9},
			{"components[2].name", 0},
			{"store_budget.max_bytes", 0},
			{"", 0},
			{"components[99999999999]", 0},
		} {
			var got int
			tab.Eval(fmt.Sprintf(`import(%q).then(m => m.jsonPathLine(%s, %s))`, mod("js/diff.js"), js(doc), js(tc.path)), &got)
			if got != tc.want {
				t.Errorf("jsonPathLine(%q) = %d, want %d", tc.path, got, tc.want)
			}
		}
		// Hostile text: not JSON, unterminated, deeply nested.
		for _, bad := range []string{"{", "[[[[", `{"components": [`, "\"", strings.Repeat("[", 5000), "{\"a\" 1}"} {
			var got int
			tab.Eval(fmt.Sprintf(`import(%q).then(m => m.jsonPathLine(%s, 'components[0]'))`, mod("js/diff.js"), js(bad)), &got)
			if got != 0 {
				t.Errorf("jsonPathLine on %.20q = %d, want 0", bad, got)
			}
		}
	})

	t.Run("problemsOf", func(t *testing.T) {
		var got []struct{ Path, Message string }
		msg := `the merged config: invalid config: components[1].depends_on[0]: unknown component "x; y"; log_level: "loud": want one of debug, info, warn, error`
		tab.Eval(fmt.Sprintf(`import(%q).then(m => m.problemsOf(%s))`, mod("js/robot_config.js"), js(msg)), &got)
		if len(got) != 3 || got[0].Path != "components[1].depends_on[0]" || got[2].Path != "log_level" {
			t.Errorf("problemsOf = %+v", got)
		}
		tab.Eval(fmt.Sprintf(`import(%q).then(m => m.problemsOf('base revision 3 is not current'))`, mod("js/robot_config.js")), &got)
		if len(got) != 1 || got[0].Path != "" || got[0].Message != "base revision 3 is not current" {
			t.Errorf("problemsOf without a config's problems = %+v", got)
		}
	})

	t.Run("mergeByTime", func(t *testing.T) {
		var got []string
		tab.Eval(fmt.Sprintf(`import(%q).then(m => {
		  const e = (p, s, q, t) => ({partId: p, stream: s, seq: q, time: t});
		  const held = [e('p1', 'logs.info', '1', '2026-01-01T00:00:02Z'), e('p2', 'logs.warn', '7', '2026-01-01T00:00:01Z')];
		  const more = [e('p1', 'logs.info', '1', '2026-01-01T00:00:02Z'), e('p1', 'logs.info', '2', '2026-01-01T00:00:03Z'), e('p2', 'logs.info', '3', '2026-01-01T00:00:00Z')];
		  return m.mergeByTime(held, more, 3).map(m.keyOf);
		})`, mod("js/robot_logs.js")), &got)
		if strings.Join(got, ",") != "p2|logs.warn|7,p1|logs.info|1,p1|logs.info|2" {
			t.Errorf("mergeByTime = %q", got)
		}
	})
}
