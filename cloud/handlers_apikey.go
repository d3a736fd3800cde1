package cloud

import (
	"context"
	"crypto/ed25519"
	"slices"
	"strings"

	"connectrpc.com/connect"

	fleetv1 "github.com/outpost-robotics/outpost/api/gen/outpost/fleet/v1"
	"github.com/outpost-robotics/outpost/authz"
	"github.com/outpost-robotics/outpost/cloud/auth"
	"github.com/outpost-robotics/outpost/cloud/store"
	"github.com/outpost-robotics/outpost/credential"
	"github.com/outpost-robotics/outpost/rbac"
)

type apiKeyService struct{ s *Server }

func (ks apiKeyService) CreateAPIKey(ctx context.Context, req *connect.Request[fleetv1.CreateAPIKeyRequest]) (*connect.Response[fleetv1.CreateAPIKeyResponse], error) {
	s, m := ks.s, req.Msg
	if err := validName("name", m.GetName()); err != nil {
		return nil, err
	}
	c := callFrom(ctx)
	scope, _ := rbac.ParseResource(m.GetScope()) // the interceptor parsed it already
	now := s.clock.Now().UTC()
	// The client makes the key pair and sends the public key; a client
	// that cannot gets a pair made here, whose private key is returned
	// once and not kept.
	pub := m.GetPublicKey()
	var made *credential.Key
	id := auth.NewID()
	switch len(pub) {
	case 0:
		made = credential.APIKey(id, credential.NewPrivateKey())
		pub = made.PublicKey()
	case ed25519.PublicKeySize:
	default:
		return nil, invalid("public_key: %d bytes, want an Ed25519 public key (%d bytes) or none", len(pub), ed25519.PublicKeySize)
	}
	key := store.APIKey{ID: id, Name: m.GetName(), OrgID: c.snap.orgOf(scope), Scope: scope.String(),
		PublicKey: pub, CreatedBy: c.principal.ref(), CreatedAt: now, ViaOrg: c.viaShare(scope)}
	grant := store.Grant{Subject: authz.APIKey(key.ID).String(), Role: m.GetRole(), Scope: key.Scope, OrgID: key.OrgID, CreatedAt: now, ViaOrg: key.ViaOrg}
	res := &fleetv1.CreateAPIKeyResponse{Key: apiKeyPB(key, []store.Grant{grant})}
	if made != nil {
		res.Token = made.String()
	}
	return reply(res, s.update(ctx, func(tx store.Tx) error {
		if err := tx.PutAPIKey(ctx, key); err != nil {
			return err
		}
		return tx.PutGrant(ctx, grant)
	}))
}

func (ks apiKeyService) ListAPIKeys(ctx context.Context, req *connect.Request[fleetv1.ListAPIKeysRequest]) (*connect.Response[fleetv1.ListAPIKeysResponse], error) {
	if err := requireID("org_id", req.Msg.GetOrgId()); err != nil {
		return nil, err
	}
	c := callFrom(ctx)
	res := &fleetv1.ListAPIKeysResponse{}
	err := ks.s.view(ctx, func(tx store.Tx) error {
		keys, err := tx.ListAPIKeys(ctx, req.Msg.GetOrgId())
		if err != nil {
			return err
		}
		for _, k := range keys {
			scope, err := rbac.ParseResource(k.Scope)
			if err != nil || !c.visible(scope) {
				continue
			}
			gs, err := grantsOf(ctx, tx, authz.APIKey(k.ID))
			if err != nil {
				return err
			}
			res.Keys = append(res.Keys, apiKeyPB(k, gs))
		}
		return nil
	})
	slices.SortFunc(res.Keys, func(a, b *fleetv1.APIKey) int { return strings.Compare(a.GetName()+a.GetId(), b.GetName()+b.GetId()) })
	return reply(res, err)
}

func (ks apiKeyService) RevokeAPIKey(ctx context.Context, req *connect.Request[fleetv1.RevokeAPIKeyRequest]) (*connect.Response[fleetv1.RevokeAPIKeyResponse], error) {
	return reply(&fleetv1.RevokeAPIKeyResponse{}, ks.s.update(ctx, func(tx store.Tx) error { return deleteAPIKey(ctx, tx, req.Msg.GetKeyId()) }))
}
