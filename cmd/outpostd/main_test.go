package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	malformed := write("malformed.json", `{"cloudUrl": "https://cloud.example.com", "partId": "part 1"}`, 0o600)
	notJSON := write("broken.json", `{"cloudUrl": `, 0o600)
	readable := write("readable.json", `{}`, 0o644)
	tests := []struct {
		name string
		args []string
		code int
		want string // in stderr (or stdout for --version)
	}{
		{"version", []string{"--version"}, 0, "outpostd "},
		{"unknown flag", []string{"--bogus"}, 2, "unknown flag: --bogus"},
		{"help", []string{"--help"}, 0, "--sync-interval duration"},
		{"short help", []string{"-h"}, 0, "Usage:"},
		{"short version", []string{"-v"}, 0, "outpostd "},
		{"unexpected argument", []string{"serve"}, 2, `unexpected argument "serve"`},
		{"hostile argument", []string{"\x00\x1b[2J"}, 2, `unexpected argument "\x00\x1b[2J"`},
		{"flag without its value", []string{"--config"}, 2, "flag needs an argument: --config"},
		{"bad log level", []string{"--log-level", "loud"}, 2, "--log-level"},
		{"sync interval too short", []string{"--sync-interval", "10ms"}, 2, "--sync-interval 10ms: want between 1s and 1h"},
		{"metrics on the network", []string{"--metrics", "0.0.0.0:9464"}, 2, "must be a loopback IP"},
		{"missing bootstrap", []string{"--config", filepath.Join(dir, "none.json")}, 2, "none.json: does not exist"},
		{"malformed field", []string{"--config", malformed}, 2, "malformed.json: field part_id: "},
		{"not json", []string{"--config", notJSON}, 2, "broken.json: not valid JSON"},
		{"world readable", []string{"--config", readable}, 2, "chmod 600"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := tc.args
			if tc.name != "flag without its value" {
				args = append(args, "--data-dir", filepath.Join(dir, "data"), "--runtime-dir", filepath.Join(dir, "run"))
			}
			code := run(args, &stdout, &stderr)
			if code != tc.code {
				t.Fatalf("exit code %d, want %d; stderr: %s", code, tc.code, stderr.String())
			}
			if !strings.Contains(stdout.String()+stderr.String(), tc.want) {
				t.Fatalf("output lacks %q:\n%s%s", tc.want, stdout.String(), stderr.String())
			}
			if tc.code == 2 && !strings.Contains(stderr.String(), "see 'outpostd --help'") && strings.Count(strings.TrimSpace(stderr.String()), "\n") != 0 {
				t.Errorf("a bootstrap error must be one line:\n%s", stderr.String())
			}
		})
	}
}
