package cloud

import (
	"context"
	"fmt"
	"slices"

	"connectrpc.com/connect"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	"github.com/outpost-robotics/outpost/cloud/store"
)

// nextRevision writes a machine config revision after validating the
// merged result; base must be the current revision.
func (s *Server) nextRevision(ctx context.Context, tx store.Tx, machineID string, base uint64, own *configv1.RobotConfig, fragments []string, author string) (store.ConfigRevision, error) {
	revs, err := tx.ListConfigRevisions(ctx, machineID)
	if err != nil {
		return store.ConfigRevision{}, err
	}
	var cur uint64
	if len(revs) > 0 {
		cur = revs[len(revs)-1].Revision
	}
	if base != cur {
		return store.ConfigRevision{}, connect.NewError(connect.CodeAborted,
			fmt.Errorf("base_revision %d is not current: machine/%s is at revision %d; start again from it", base, machineID, cur))
	}
	b, err := encodeConfig(own)
	if err != nil {
		return store.ConfigRevision{}, err
	}
	rev := store.ConfigRevision{MachineID: machineID, Revision: cur + 1, Config: b, Fragments: slices.Clone(fragments),
		Author: author, CreatedAt: s.clock.Now().UTC()}
	m, err := mergeMachine(ctx, tx, machineID, &rev, nil)
	if err != nil {
		return store.ConfigRevision{}, err
	}
	if err := validateMerged(ctx, tx, machineID, "the merged config", m); err != nil {
		return store.ConfigRevision{}, err
	}
	return rev, tx.PutConfigRevision(ctx, rev)
}
