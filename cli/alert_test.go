package cli

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
)

var reHexSecret = regexp.MustCompile(`secret: [0-9a-f]{64}`)

// TestCLIAlertGolden: alert create, list, history, test (delivered and
// not) and delete against the real cloud and a webhook on loopback, and
// the refusals of bad input.
func TestCLIAlertGolden(t *testing.T) {
	url, adminToken := startCloud(t)
	var fail atomic.Bool
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fail.Load() || !strings.HasPrefix(r.Header.Get("Outpost-Signature"), "t=") {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(hook.Close)
	s := &session{t: t, configDir: t.TempDir(), vars: map[string]string{"OUTPOST_CLOUD": url, "OUTPOST_TOKEN": adminToken}}
	org := s.field(s.run("", "org", "create", "Acme Robotics", "--json"), "org", "id")
	plant := s.field(s.run("", "location", "create", "Plant", "--org", org, "--json"), "location", "id")

	s.out.Reset()
	created := s.run("", "alert", "create", "rover offline", "--location", plant, "--kind", "offline", "--window", "5m", "--webhook", hook.URL+"/hook", "--json")
	var res struct {
		Rule struct {
			ID string `json:"id"`
		} `json:"rule"`
		Secret string `json:"secret"`
	}
	if err := json.Unmarshal([]byte(created), &res); err != nil || len(res.Secret) != 64 {
		t.Fatalf("alert create --json: %v\n%s", err, created)
	}
	s.run("", "alert", "create", "backlog", "--org", org, "--kind", "capture_backlog", "--threshold", "500", "--webhook", hook.URL+"/hook")
	s.run("", "alert", "list", "--org", org)
	s.run("", "alert", "list", "--location", plant)
	s.run("", "alert", "test", res.Rule.ID)
	fail.Store(true)
	s.run("", "alert", "test", res.Rule.ID)
	s.run("", "alert", "history", res.Rule.ID)
	s.run("", "alert", "delete", res.Rule.ID)
	s.run("", "alert", "list", "--org", org)
	// Refusals.
	s.run("", "alert", "create", "x", "--org", org, "--kind", "meltdown", "--webhook", "https://hooks.example.com/")
	s.run("", "alert", "create", "x", "--org", org, "--kind", "offline", "--window", "1s", "--webhook", "https://hooks.example.com/")
	s.run("", "alert", "create", "x", "--org", org, "--kind", "offline", "--window", "1.5s", "--webhook", "https://hooks.example.com/")
	s.run("", "alert", "create", "x", "--org", org, "--kind", "failing", "--webhook", "http://hooks.example.com/")
	s.run("", "alert", "create", "x", "--org", org, "--kind", "failing", "--webhook", "https://169.254.169.254/")
	s.run("", "alert", "create", "x", "--kind", "failing", "--webhook", "https://hooks.example.com/")
	s.run("", "alert", "history", "not-an-id")
	s.run("", "alert", "test", res.Rule.ID)

	got := strings.ReplaceAll(s.out.String(), res.Secret, "<webhook secret>")
	got = reHexSecret.ReplaceAllString(got, "secret: <webhook secret>")
	got = strings.ReplaceAll(got, hook.URL, "http://HOOK")
	compareGolden(t, "alert.golden", normalize(got, url, s.configDir))
}
