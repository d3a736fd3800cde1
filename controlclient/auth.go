package controlclient

import (
	"context"
	"errors"
	"fmt"

	"connectrpc.com/connect"

	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/control/v1/controlv1connect"
	"github.com/outpost-robotics/outpost/credential"
)

// HealthNonce returns a function that asks the part at base for a nonce
// for a client's next proof: its public Health call answers with one (in
// credential.NonceHeader). credential.NewPartProver uses it before a
// stream, which cannot be tried again after a refusal.
func HealthNonce(hc connect.HTTPClient, base string) func(ctx context.Context) (string, error) {
	c := controlv1connect.NewControlServiceClient(hc, base)
	return func(ctx context.Context) (string, error) {
		resp, err := c.Health(ctx, connect.NewRequest(&controlv1.HealthRequest{}))
		if err != nil {
			return "", fmt.Errorf("ask the part for a nonce: %w", err)
		}
		n := resp.Header().Get(credential.NonceHeader)
		if n == "" {
			return "", errors.New("ask the part for a nonce: it sent none (is it older than this client?)")
		}
		return n, nil
	}
}
