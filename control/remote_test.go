package control

import (
	"context"
	"errors"
	"strings"
	"testing"

	"connectrpc.com/connect"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	"github.com/outpost-robotics/outpost/credential"
)

// remoteKeys hands out the keys of a remote's fixture by id.
type remoteKeys struct{ c *creds }

func (k remoteKeys) RemoteKey(_ context.Context, id string) (*credential.Key, error) {
	priv, ok := k.c.keys[id]
	if !ok {
		return nil, errors.New("no such key file")
	}
	return credential.APIKey(id, priv), nil
}

// TestRemote: the main part serves another robot's components under the
// remote's prefix, calling it with the key the config names over TLS
// pinned to the fingerprint the config names; a wrong pin, a missing key
// and a key the remote no longer holds each fail naming the field.
func TestRemote(t *testing.T) {
	remote := newEnv(t)
	main := newEnvWith(t, func(o *Options) { o.RemoteKeys = remoteKeys{remote.creds} })
	setRemote := func(fp, keyID string) {
		main.config.mu.Lock()
		main.config.state.Config = &configv1.RobotConfig{Remotes: []*configv1.Remote{{Name: "arm-bot", Address: remote.addr, Fingerprint: fp, ApiKeyId: keyID}}}
		main.config.mu.Unlock()
	}
	setRemote(remote.srv.Fingerprint(), opKey)
	c := main.grpc(main.creds.key(opKey)).comp
	ctx := context.Background()
	list := func() []*controlv1.ResourceStatus {
		t.Helper()
		res, err := c.ListResources(ctx, connect.NewRequest(&controlv1.ListResourcesRequest{}))
		if err != nil {
			t.Fatal(err)
		}
		return res.Msg.GetResources()
	}
	has := func(rs []*controlv1.ResourceStatus, name string, state controlv1.ResourceState) *controlv1.ResourceStatus {
		for _, r := range rs {
			if r.GetName() == name && r.GetState() == state {
				return r
			}
		}
		return nil
	}
	if rs := list(); has(rs, "arm-bot:arm", controlv1.ResourceState_RESOURCE_STATE_RUNNING) == nil || has(rs, "arm", controlv1.ResourceState_RESOURCE_STATE_RUNNING) == nil {
		t.Fatalf("the main part lists %v", rs)
	}
	drive := func() error {
		_, err := c.MotorSetPower(ctx, connect.NewRequest(&controlv1.MotorSetPowerRequest{Name: "arm-bot:arm", Power: 0.3}))
		return err
	}
	if err := drive(); err != nil {
		t.Fatalf("the remote's motor: %v", err)
	}
	if ev := remote.audit.all(); len(ev) == 0 || ev[len(ev)-1].GetSubject() != "apikey/"+opKey {
		t.Errorf("the remote audits %v, want the call by the main part's key", ev)
	}

	for _, tc := range []struct {
		name, fp, key string
		code          connect.Code
		want          string
	}{
		{"another certificate", main.srv.Fingerprint(), opKey, connect.CodeUnavailable, "remotes[0].fingerprint pins " + main.srv.Fingerprint()},
		{"no key kept", remote.srv.Fingerprint(), "a0000000000000000000000000000009", connect.CodeFailedPrecondition, "(remotes[0].api_key_id): no such key file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			setRemote(tc.fp, tc.key)
			if err := drive(); connect.CodeOf(err) != tc.code || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `remote "arm-bot"`) {
				t.Fatalf("got %v, want %v naming %q", err, tc.code, tc.want)
			}
			if r := has(list(), "arm-bot:", controlv1.ResourceState_RESOURCE_STATE_FAILED); r == nil || !strings.Contains(r.GetError(), tc.want) {
				t.Fatalf("the listing has no failed arm-bot: entry naming %q", tc.want)
			}
		})
	}

	// The key revoked at the cloud: the remote's next bundle leaves it out.
	setRemote(remote.srv.Fingerprint(), opKey)
	if err := drive(); err != nil {
		t.Fatal(err)
	}
	remote.grants.set(remote.creds.bundle(2, t0, opKey))
	if err := drive(); connect.CodeOf(err) != connect.CodeUnauthenticated || !strings.Contains(err.Error(), `remote "arm-bot" refused apikey/`+opKey+" (remotes[0].api_key_id)") {
		t.Fatalf("with the key revoked: %v", err)
	}
	rs := list()
	if has(rs, "arm-bot:arm", controlv1.ResourceState_RESOURCE_STATE_RUNNING) != nil || has(rs, "arm-bot:", controlv1.ResourceState_RESOURCE_STATE_FAILED) == nil {
		t.Fatalf("with the key revoked the main part lists %v", rs)
	}
	// A new key, put on disk under the same id once the old one was
	// refused, is read again without a restart.
	remote.creds.keys[opKey] = credential.NewPrivateKey()
	remote.grants.set(remote.creds.bundle(3, t0))
	if err := drive(); err != nil {
		t.Fatalf("with the key replaced: %v", err)
	}
	// The main part's own components are untouched.
	if _, err := c.MotorSetPower(ctx, connect.NewRequest(&controlv1.MotorSetPowerRequest{Name: "arm", Power: 0.3})); err != nil {
		t.Fatalf("the main part's own motor: %v", err)
	}
}
