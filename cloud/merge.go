package cloud

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"connectrpc.com/connect"
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
		out.Components = mergeNamed(out.Components, p.GetComponents(), componentKey)
		// Modules, processes and sync folders are named per part; components
		// are named across the machine, whose main part routes calls by name.
		out.Modules = mergeNamed(out.Modules, p.GetModules(), moduleKey)
		out.Processes = mergeNamed(out.Processes, p.GetProcesses(), processKey)
		out.Captures = mergeNamed(out.Captures, p.GetCaptures(), captureKey)
		out.SyncFolders = mergeNamed(out.SyncFolders, p.GetSyncFolders(), syncFolderKey)
		out.Remotes = mergeNamed(out.Remotes, p.GetRemotes(), remoteKey)
		out.Packages = mergeNamed(out.Packages, p.GetPackages(), packageKey)
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

// detachFragments is the machine's own config an edit made on a part
// becomes. The part edits the merged config it runs, so the entries it
// left as its fragments gave them are taken back out, and the machine
// keeps following its fragments; an entry it changed stays as the
// machine's own, which wins over the fragment's in mergeConfigs (a field
// edit becomes a machine-level override of that entry). from are the
// fragment versions the edited config was merged from, as the part sent
// them; cur is the machine's own config now, whose entries stay its own even
// when equal to a fragment's (an override the fragment may later change);
// only fragments the machine still uses (used) count, so a part
// cannot make the cloud read another organization's fragment. Without
// them the whole edit is the machine's own, as from older parts. An entry
// of a fragment that the edit removed cannot be removed from the machine's
// side: that is an error saying where to remove it.
func detachFragments(ctx context.Context, tx store.Tx, cur *configv1.RobotConfig, used []string, from []*syncv1.FragmentVersion, edited *configv1.RobotConfig) (*configv1.RobotConfig, error) {
	if len(from) == 0 || edited == nil {
		return edited, nil
	}
	if len(from) > maxFragments {
		return nil, invalid("the edit names %d fragments, at most %d", len(from), maxFragments)
	}
	from = slices.Clone(from)
	slices.SortFunc(from, func(a, b *syncv1.FragmentVersion) int { return cmp.Compare(a.GetId(), b.GetId()) })
	var pieces []*configv1.RobotConfig
	var names []string
	for i, fv := range from {
		if !slices.Contains(used, fv.GetId()) || i > 0 && from[i-1].GetId() == fv.GetId() {
			continue
		}
		fr, err := tx.GetFragmentRevision(ctx, fv.GetId(), fv.GetVersion())
		if errors.Is(err, store.ErrNotFound) {
			continue // a version the cloud never had: nothing of it to take out
		}
		if err != nil {
			return nil, fmt.Errorf("read fragment/%s revision %d: %w", fv.GetId(), fv.GetVersion(), err)
		}
		c, err := decodeConfig(fr.Config)
		if err != nil {
			return nil, err
		}
		pieces = append(pieces, c)
		names = append(names, "fragment/"+fv.GetId())
	}
	if len(pieces) == 0 {
		return edited, nil
	}
	base := mergeConfigs(pieces...)
	out := proto.Clone(edited).(*configv1.RobotConfig)
	var removed []string
	out.Components = detachNamed("component", out.Components, base.Components, cur.GetComponents(), componentKey, &removed)
	out.Modules = detachNamed("module", out.Modules, base.Modules, cur.GetModules(), moduleKey, &removed)
	out.Processes = detachNamed("process", out.Processes, base.Processes, cur.GetProcesses(), processKey, &removed)
	out.Captures = detachNamed("capture", out.Captures, base.Captures, cur.GetCaptures(), captureKey, &removed)
	out.SyncFolders = detachNamed("sync folder", out.SyncFolders, base.SyncFolders, cur.GetSyncFolders(), syncFolderKey, &removed)
	out.Remotes = detachNamed("remote", out.Remotes, base.Remotes, cur.GetRemotes(), remoteKey, &removed)
	out.Packages = detachNamed("package", out.Packages, base.Packages, cur.GetPackages(), packageKey, &removed)
	if cur.GetMaintenance() == nil && proto.Equal(out.GetMaintenance(), base.GetMaintenance()) {
		out.Maintenance = nil
	}
	if cur.GetStoreBudget() == nil && proto.Equal(out.GetStoreBudget(), base.GetStoreBudget()) {
		out.StoreBudget = nil
	}
	if cur.GetLogLevel() == "" && out.GetLogLevel() == base.GetLogLevel() {
		out.LogLevel = ""
	}
	if len(removed) > 0 {
		return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf(
			"the edit removes %s, which the machine gets from its fragments (%s): a machine's config cannot remove a fragment's entry; remove it from the fragment, or stop using the fragment (outpost config set --fragment)",
			strings.Join(removed, ", "), strings.Join(names, ", ")))
	}
	return out, nil
}

// detachNamed keeps the entries of edited that are not exactly the
// fragments' entry of the same name, or that the machine's own config
// (cur) holds already, and notes the fragments' entries edited no longer
// has.
func detachNamed[T proto.Message](kind string, edited, base, cur []T, key func(T) string, removed *[]string) []T {
	var out []T
	for _, e := range edited {
		i := slices.IndexFunc(base, func(b T) bool { return key(b) == key(e) })
		if i >= 0 && proto.Equal(base[i], e) && !slices.ContainsFunc(cur, func(c T) bool { return key(c) == key(e) }) {
			continue
		}
		out = append(out, e)
	}
	for _, b := range base {
		if !slices.ContainsFunc(edited, func(e T) bool { return key(e) == key(b) }) {
			*removed = append(*removed, fmt.Sprintf("%s %q", kind, strings.ReplaceAll(key(b), "\x00", "/")))
		}
	}
	return out
}

// The names merged entries replace each other by (see mergeConfigs).
func componentKey(c *configv1.Component) string { return c.GetName() }
func moduleKey(m *configv1.Module) string       { return m.GetPart() + "\x00" + m.GetName() }
func processKey(x *configv1.Process) string     { return x.GetPart() + "\x00" + x.GetId() }
func captureKey(c *configv1.CaptureMethod) string {
	return c.GetComponent() + "\x00" + c.GetMethod()
}
func syncFolderKey(f *configv1.SyncFolder) string { return f.GetPart() + "\x00" + f.GetPath() }
func remoteKey(r *configv1.Remote) string         { return r.GetName() }
func packageKey(r *configv1.PackageRef) string    { return r.GetPart() + "\x00" + r.GetName() }
