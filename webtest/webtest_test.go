package webtest

import (
	"strings"
	"testing"
)

// TestMissingChromium: without Chromium, the harness says how to get it.
func TestMissingChromium(t *testing.T) {
	for _, tc := range []struct{ name, path, env string }{
		{"not on PATH", t.TempDir(), ""},
		{"env names nothing", t.TempDir(), "/nonexistent/chromium"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("PATH", tc.path)
			t.Setenv(ChromiumEnv, tc.env)
			if _, err := ChromiumPath(); err == nil || !strings.Contains(err.Error(), "run scripts/deps") {
				t.Fatalf("ChromiumPath = %v, want an error saying to run scripts/deps", err)
			}
			b := New()
			defer b.Close()
			if err := b.start(); err == nil || !strings.Contains(err.Error(), "scripts/deps") {
				t.Fatalf("start = %v", err)
			}
		})
	}
}
