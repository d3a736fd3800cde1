package control

import (
	"context"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
)

// TestNewKeyRefusalSaysWhenItWorks: an API key the part's bundle does not
// hold yet (created at the cloud after the part last synced) is refused
// saying when the bundle was issued and when the part syncs next, over TLS
// and over gRPC alike, and nothing more of the bundle.
func TestNewKeyRefusalSaysWhenItWorks(t *testing.T) {
	e := newEnvWith(t, func(o *Options) { o.SyncInterval = func() time.Duration { return 15 * time.Second } })
	e.grants.set(e.creds.bundle(2, t0, opKey)) // opKey is not in it yet
	for name, c := range map[string]clients{"tls": e.authed(e.client, "https://"+e.addr, e.creds.key(opKey)), "grpc": e.grpc(e.creds.key(opKey))} {
		_, err := c.control.WhoAmI(context.Background(), connect.NewRequest(&controlv1.WhoAmIRequest{}))
		if connect.CodeOf(err) != connect.CodeUnauthenticated {
			t.Fatalf("%s: %v, want unauthenticated", name, err)
		}
		for _, want := range []string{"issued at " + t0.UTC().Format(time.RFC3339), "after its next sync with the cloud, within about 17s", "a revoked key never does"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: the refusal %q does not say %q", name, err, want)
			}
		}
	}
}
