package cloud

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/cloud/store"
	"github.com/outpost-robotics/outpost/config"
)

// maxFragments bounds the fragments one machine config uses.
const maxFragments = 32

// mergeConfigs merges config pieces in the order given: each named entry
// (component by name, module by part and name, process by part and id,
// capture by component and method, sync folder by part and path, remote by
// name, package by part and name) replaces an earlier one of the same name in
// its place, new names are appended, and the store budget, log level and
// maintenance window of a later piece win when set. The result is new; the pieces are not changed.
//
// The cloud merges a machine's fragments in ID order and the machine's own
// config last, so the machine always wins and the result never depends on
// the order an author listed the fragments in.
func mergeConfigs(pieces ...*configv1.RobotConfig) *configv1.RobotConfig {
	out := &configv1.RobotConfig{}
	for _, p := range pieces {
		if p == nil {
			continue
		}
		p = proto.Clone(p).(*configv1.RobotConfig)
		out.Components = mergeNamed(out.Components, p.GetComponents(), (*configv1.Component).GetName)
		// Modules, processes and sync folders are named per part; components
		// are named across the machine, whose main part routes calls by name.
		out.Modules = mergeNamed(out.Modules, p.GetModules(), func(m *configv1.Module) string { return m.GetPart() + "\x00" + m.GetName() })
		out.Processes = mergeNamed(out.Processes, p.GetProcesses(), func(x *configv1.Process) string { return x.GetPart() + "\x00" + x.GetId() })
		out.Captures = mergeNamed(out.Captures, p.GetCaptures(), func(c *configv1.CaptureMethod) string {
			return c.GetComponent() + "\x00" + c.GetMethod()
		})
		out.SyncFolders = mergeNamed(out.SyncFolders, p.GetSyncFolders(), func(f *configv1.SyncFolder) string { return f.GetPart() + "\x00" + f.GetPath() })
		out.Remotes = mergeNamed(out.Remotes, p.GetRemotes(), (*configv1.Remote).GetName)
		out.Packages = mergeNamed(out.Packages, p.GetPackages(), func(r *configv1.PackageRef) string { return r.GetPart() + "\x00" + r.GetName() })
		if p.GetMaintenance() != nil {
			out.Maintenance = p.GetMaintenance()
		}
		if p.GetStoreBudget() != nil {
			out.StoreBudget = p.GetStoreBudget()
		}
		if p.GetLogLevel() != "" {
			out.LogLevel = p.GetLogLevel()
		}
	}
	return out
}

func mergeNamed[T any](into, from []T, name func(T) string) []T {
	for _, v := range from {
		if i := slices.IndexFunc(into, func(x T) bool { return name(x) == name(v) }); i >= 0 {
			into[i] = v
			continue
		}
		into = append(into, v)
	}
	return into
}

// decodeConfig reads a stored config; nil bytes are the empty config.
func decodeConfig(b []byte) (*configv1.RobotConfig, error) {
	c := &configv1.RobotConfig{}
	if err := proto.Unmarshal(b, c); err != nil {
		return nil, fmt.Errorf("decode stored config: %w", err)
	}
	return c, nil
}

// encodeConfig serializes a config for the store, deterministically.
func encodeConfig(c *configv1.RobotConfig) ([]byte, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	if len(b) > config.MaxConfigBytes {
		return nil, invalid("config: %d bytes, at most %d", len(b), config.MaxConfigBytes)
	}
	return b, nil
}

// merged is a machine config revision with its fragments merged in.
type merged struct {
	rev       store.ConfigRevision // zero before the first revision
	own       *configv1.RobotConfig
	config    *configv1.RobotConfig
	fragments []*syncv1.FragmentVersion
}

// mergeMachine builds the config a machine's parts receive from its current
// revision (or rev, when given) and the current revision of each fragment
// it uses; override replaces a fragment's config (for checking an edit
// before it is written). It does not validate.
func mergeMachine(ctx context.Context, tx store.Tx, machineID string, rev *store.ConfigRevision, override map[string]*configv1.RobotConfig) (merged, error) {
	var m merged
	if rev != nil {
		m.rev = *rev
	} else {
		revs, err := tx.ListConfigRevisions(ctx, machineID)
		if err != nil {
			return m, fmt.Errorf("read config of machine/%s: %w", machineID, err)
		}
		if len(revs) > 0 {
			m.rev = revs[len(revs)-1]
		}
	}
	var err error
	if m.own, err = decodeConfig(m.rev.Config); err != nil {
		return m, err
	}
	ids := slices.Clone(m.rev.Fragments)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	pieces := make([]*configv1.RobotConfig, 0, len(ids)+1)
	for _, id := range ids {
		f, err := tx.GetFragment(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			// Deleting a fragment in use is refused; a revision naming a
			// missing one can only be older than a race, so skip it.
			continue
		}
		if err != nil {
			return m, fmt.Errorf("read fragment/%s: %w", id, err)
		}
		c, ok := override[id]
		if !ok {
			fr, err := tx.GetFragmentRevision(ctx, id, f.Revision)
			if err != nil {
				return m, fmt.Errorf("read fragment/%s revision %d: %w", id, f.Revision, err)
			}
			if c, err = decodeConfig(fr.Config); err != nil {
				return m, err
			}
		}
		pieces = append(pieces, c)
		m.fragments = append(m.fragments, &syncv1.FragmentVersion{Id: id, Version: f.Revision})
	}
	m.config = mergeConfigs(append(pieces, m.own)...)
	return m, nil
}
