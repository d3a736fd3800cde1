package packages

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/clock"
	"github.com/outpost-robotics/outpost/durable"
	"github.com/outpost-robotics/outpost/signed"
)

const (
	// DefaultDeadline is how long a new version has to come up after a
	// switch before the part switches back.
	DefaultDeadline = 60 * time.Second
	// checkEvery is how often the manager looks at the maintenance
	// window and at a version on probation.
	checkEvery = time.Second
	// retryAfter is how long a failed download waits before it is tried
	// again, unless the cloud issues another version first.
	retryAfter = time.Minute
	// busyRetryAfter is how long a download the cloud turned away as busy
	// (ResourceExhausted, after the client's own retries) waits. It is not
	// a failure: the chunks held are kept, the state stays downloading,
	// and every part of a large rollout gets its turn.
	busyRetryAfter = 15 * time.Second
	// maxRefused bounds the versions a package remembers having rolled
	// back from.
	maxRefused = 16
	stateFile  = "state.json"
	maxState   = 4 << 20
)

// Package states, as PartStatus reports them.
const (
	StateDownloading = "downloading"
	StateHeld        = "held"
	StateReady       = "ready"
	StateRunning     = "running"
	StateFailed      = "failed"
	StateRolledBack  = "rolled_back"
)

// Health is how the resources that use a package are doing.
type Health struct {
	// Failed is true once one of them failed (to start, its health check,
	// or a crash loop).
	Failed bool
	// Up is true when all of them run.
	Up bool
	// Err says what failed, or what is not up yet.
	Err string
}

// Options configure a Manager.
type Options struct {
	// Dir is the packages directory (DATA_DIR/packages).
	Dir string
	// Keys are the keys the part trusts for what the cloud signs: the
	// bootstrap file's.
	Keys signed.Keys
	// Platform is "GOOS/GOARCH"; empty means this binary's.
	Platform string
	// Fetcher downloads chunks; SetFetcher replaces it.
	Fetcher Fetcher
	// Budget bounds what packages take on disk.
	Budget Budget
	// Clock times probation and retries; nil means the machine's.
	Clock clock.Clock
	// Logger receives what happens to packages; nil means none.
	Logger *zap.Logger
	// Deadline is how long a new version has to come up; 0 means
	// DefaultDeadline.
	Deadline time.Duration
	// Allowed says whether the maintenance window allows a switch now,
	// and if not why; nil allows every switch.
	Allowed func(ctx context.Context, mw *configv1.MaintenanceWindow) (bool, string)
	// Health says how the resources that use the package named name are
	// doing; nil means they are always up.
	Health func(name string) Health
	// OnChange is called, from the goroutine that runs Step, after the
	// versions Dirs returns changed: a switch or a rollback. The daemon
	// applies its config again with the new directories.
	OnChange func(ctx context.Context)
}

// Manager keeps the packages a part was issued: it downloads, switches,
// watches and rolls back. Its methods are safe for concurrent use; Step
// (or Run, which calls it) does the work, one pass at a time.
type Manager struct {
	o     Options
	store *store
	clk   clock.Clock
	log   *zap.Logger
	kick  chan struct{}
	step  sync.Mutex // one Step at a time

	mu      sync.Mutex // guards the fields below
	fetcher Fetcher
	records map[string]*record // persisted, by local name
	issued  map[string]*issue  // what the last config document issued; nil before the first
	mw      *configv1.MaintenanceWindow
	reissue bool // Issue ran since the last collection
}

// record is one package's persisted state.
type record struct {
	Package        string   `json:"package"`
	Current        *version `json:"current,omitempty"`
	Previous       *version `json:"previous,omitempty"`
	Refused        []string `json:"refused,omitempty"` // streams rolled back from
	RolledBackFrom string   `json:"rolled_back_from,omitempty"`
	Error          string   `json:"error,omitempty"`
	// Probation is true from a switch until the version came up by the
	// deadline: a restart in between starts the deadline again.
	Probation bool `json:"probation,omitempty"`
}

// version is one unpacked version.
type version struct {
	Version string `json:"version"`
	Stream  string `json:"stream"` // hex SHA-256 of the content stream
	Dir     string `json:"dir"`    // relative to the packages directory
}

// issue is one package of the last config document, as the part is doing
// with it.
type issue struct {
	ref      *syncv1.ResolvedPackage
	m        *syncv1.PackageManifest // nil when the manifest was refused
	err      string
	state    string
	done     uint64
	retryAt  time.Duration // uptime before which a failed or turned-away download waits
	since    time.Duration // uptime of the switch, on probation
	watching bool
}

// New opens the packages directory, clearing downloads a restart cut
// short, and reads the persisted state: Dirs answers from it at once, so
// a part that starts offline runs the versions it ran.
func New(o Options) (*Manager, error) {
	if o.Dir == "" {
		return nil, errors.New("packages: no directory")
	}
	if o.Platform == "" {
		o.Platform = runtime.GOOS + "/" + runtime.GOARCH
	}
	if o.Clock == nil {
		o.Clock = clock.NewReal()
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Deadline <= 0 {
		o.Deadline = DefaultDeadline
	}
	st, err := newStore(o.Dir, o.Budget)
	if err != nil {
		return nil, err
	}
	m := &Manager{o: o, store: st, clk: o.Clock, log: o.Logger, kick: make(chan struct{}, 1), fetcher: o.Fetcher}
	if m.records, err = m.load(); err != nil {
		return nil, err
	}
	return m, nil
}

// Platform is the "GOOS/GOARCH" the part reports.
func (m *Manager) Platform() string { return m.o.Platform }

// SetFetcher replaces the chunk source: a reload builds a new sync client.
func (m *Manager) SetFetcher(f Fetcher) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fetcher = f
}

// Issue takes the packages of a config document and its maintenance
// window. It verifies each manifest now (one that fails is reported
// failed, and the running version stays) and leaves downloads and switches
// to Step.
func (m *Manager) Issue(pkgs []*syncv1.ResolvedPackage, mw *configv1.MaintenanceWindow) {
	m.mu.Lock()
	old := m.issued
	m.issued = map[string]*issue{}
	m.mw, m.reissue = mw, true
	for _, p := range pkgs {
		is := &issue{ref: p}
		man, err := verifyManifest(m.o.Keys, p.GetManifest(), m.o.Platform)
		switch {
		case p.GetName() == "" || m.issued[p.GetName()] != nil:
			is.state, is.err = StateFailed, fmt.Sprintf("package name %q is empty or issued twice", p.GetName())
		case err != nil:
			is.state, is.err = StateFailed, err.Error()
			m.log.Error("package refused; the running version stays", zap.String("package", p.GetName()), zap.Error(err))
		default:
			is.m = man
			// The same version issued again keeps its progress and retry time.
			if prev := old[p.GetName()]; prev != nil && prev.m != nil && streamID(prev.m) == streamID(man) {
				is.state, is.done, is.retryAt, is.err = prev.state, prev.done, prev.retryAt, prev.err
				is.since, is.watching = prev.since, prev.watching
			}
		}
		if m.issued[p.GetName()] == nil {
			m.issued[p.GetName()] = is
		}
	}
	m.mu.Unlock()
	m.Kick()
}

// Kick asks Run for a Step now.
func (m *Manager) Kick() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// Dirs returns, by local name, the directory of the version the part runs.
func (m *Manager) Dirs() map[string]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]string{}
	for name, r := range m.records {
		if r.Current != nil {
			out[name] = filepath.Join(m.o.Dir, r.Current.Dir)
		}
	}
	return out
}

// Status reports every issued package, by local name.
func (m *Manager) Status() []*syncv1.PackageStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*syncv1.PackageStatus
	for _, name := range sortedNames(m.issued) {
		is := m.issued[name]
		st := &syncv1.PackageStatus{Name: name, State: is.state, Error: is.err, BytesDone: is.done}
		if is.m != nil {
			st.Package = is.m.GetOrgId() + "/" + is.m.GetName()
			st.IssuedVersion = is.m.GetVersion()
			st.BytesTotal = is.m.GetSize()
		}
		if r := m.records[name]; r != nil {
			if r.Current != nil {
				st.RunningVersion = r.Current.Version
			}
			if is.state == StateRolledBack {
				st.RolledBackFrom, st.Error = r.RolledBackFrom, r.Error
			}
		}
		out = append(out, st)
	}
	return out
}

// Run calls Step when kicked and every second until ctx ends.
func (m *Manager) Run(ctx context.Context) {
	t := m.clk.NewTicker(checkEvery)
	defer t.Stop()
	for {
		m.Step(ctx)
		select {
		case <-ctx.Done():
			return
		case <-m.kick:
		case <-t.C():
		}
	}
}

// Step does one pass over the issued packages: it downloads what is
// missing, switches what is ready and allowed, confirms or rolls back
// versions on probation, and collects what nothing needs any more. It
// calls OnChange when the running versions changed.
func (m *Manager) Step(ctx context.Context) {
	m.step.Lock()
	defer m.step.Unlock()
	m.mu.Lock()
	names := sortedNames(m.issued)
	fetcher, mw := m.fetcher, m.mw
	issued, reissue := m.issued, m.reissue
	m.reissue = false
	m.mu.Unlock()
	if issued == nil {
		return
	}
	changed := false
	for _, name := range names {
		if ctx.Err() != nil {
			return
		}
		if m.stepOne(ctx, name, issued[name], fetcher, mw) {
			changed = true
		}
	}
	if changed {
		if err := m.save(); err != nil {
			m.log.Error("could not save the package state", zap.Error(err))
		}
		if m.o.OnChange != nil {
			m.o.OnChange(ctx)
		}
	}
	if changed || reissue {
		// A package the cloud no longer issues goes too.
		m.gc()
	}
}

// stepOne moves one package along; it reports whether its running version
// changed.
func (m *Manager) stepOne(ctx context.Context, name string, is *issue, f Fetcher, mw *configv1.MaintenanceWindow) bool {
	if is.m == nil {
		return false
	}
	id := streamID(is.m)
	m.mu.Lock()
	r := m.records[name]
	if r == nil {
		r = &record{Package: is.m.GetOrgId() + "/" + is.m.GetName()}
		m.records[name] = r
	}
	running := r.Current != nil && r.Current.Stream == id
	refused := slices.Contains(r.Refused, id)
	probation := r.Probation
	m.mu.Unlock()

	switch {
	case running && probation:
		return m.watch(name, is, r)
	case running:
		m.set(is, StateRunning, "", is.m.GetSize())
		return false
	case refused:
		m.set(is, StateRolledBack, "", is.done)
		return false
	}
	now := m.clk.Uptime()
	if (is.state == StateFailed || is.state == StateDownloading) && now < is.retryAt {
		return false
	}
	if !m.store.have(is.m) {
		m.set(is, StateDownloading, "", is.done)
		err := m.store.ensure(ctx, f, is.m, func(done uint64) {
			m.mu.Lock()
			is.done = done
			m.mu.Unlock()
		})
		if err != nil {
			if ctx.Err() != nil {
				return false
			}
			if connect.CodeOf(err) == connect.CodeResourceExhausted {
				m.mu.Lock()
				is.retryAt = m.clk.Uptime() + busyRetryAfter
				m.mu.Unlock()
				m.set(is, StateDownloading, fmt.Sprintf("the cloud is busy serving packages; the download goes on in %v: %v", busyRetryAfter, err), is.done)
				m.log.Info("the cloud is busy; the package download goes on later", zap.String("package", name), zap.String("version", is.m.GetVersion()), zap.Duration("in", busyRetryAfter), zap.Error(err))
				return false
			}
			m.mu.Lock()
			is.retryAt = m.clk.Uptime() + retryAfter
			m.mu.Unlock()
			m.set(is, StateFailed, err.Error(), is.done)
			m.log.Error("package download failed; the running version stays", zap.String("package", name), zap.String("version", is.m.GetVersion()), zap.Error(err))
			return false
		}
		m.log.Info("package version downloaded", zap.String("package", name), zap.String("version", is.m.GetVersion()))
	}
	if m.o.Allowed != nil {
		if ok, why := m.o.Allowed(ctx, mw); !ok {
			m.set(is, StateHeld, why, is.m.GetSize())
			return false
		}
	}
	m.mu.Lock()
	if r.Current != nil {
		r.Previous = r.Current
	}
	r.Current = &version{Version: is.m.GetVersion(), Stream: id, Dir: m.relDir(is.m)}
	r.Probation, r.RolledBackFrom, r.Error = true, "", ""
	is.since, is.watching = m.clk.Uptime(), true
	is.state, is.err, is.done = StateRunning, "", is.m.GetSize()
	m.mu.Unlock()
	m.log.Info("package switched to a new version", zap.String("package", name), zap.String("version", is.m.GetVersion()))
	return true
}

// watch judges a version on probation: a failure rolls it back at once; at
// the deadline it stays if it is up and is rolled back if not.
func (m *Manager) watch(name string, is *issue, r *record) bool {
	m.mu.Lock()
	if !is.watching {
		// On probation across a restart: the deadline starts again.
		is.since, is.watching = m.clk.Uptime(), true
	}
	since := is.since
	is.state, is.done = StateRunning, is.m.GetSize()
	m.mu.Unlock()
	h := Health{Up: true}
	if m.o.Health != nil {
		h = m.o.Health(name)
	}
	late := m.clk.Uptime()-since >= m.o.Deadline
	switch {
	case h.Failed:
		return m.rollback(name, is, r, h.Err)
	case late && !h.Up:
		return m.rollback(name, is, r, fmt.Sprintf("not up %v after the switch: %s", m.o.Deadline, h.Err))
	case late:
		m.mu.Lock()
		r.Probation = false
		m.mu.Unlock()
		if err := m.save(); err != nil {
			m.log.Error("could not save the package state", zap.Error(err))
		}
		m.log.Info("package version came up; it stays", zap.String("package", name), zap.String("version", is.m.GetVersion()))
	}
	return false
}

// rollback switches name back to its previous version and remembers the
// one it leaves, so it is not tried again until the cloud issues another.
func (m *Manager) rollback(name string, is *issue, r *record, why string) bool {
	m.mu.Lock()
	from := r.Current
	r.Refused = append(r.Refused, from.Stream)
	if len(r.Refused) > maxRefused {
		r.Refused = r.Refused[len(r.Refused)-maxRefused:]
	}
	r.Current, r.Previous = r.Previous, nil
	r.Probation, r.RolledBackFrom, r.Error = false, from.Version, why
	is.state, is.err, is.watching = StateRolledBack, why, false
	back := ""
	if r.Current != nil {
		back = r.Current.Version
	}
	m.mu.Unlock()
	m.log.Error("package version failed after the switch; rolled back", zap.String("package", name), zap.String("from", from.Version), zap.String("to", back), zap.String("why", why))
	return true
}

func (m *Manager) set(is *issue, state, err string, done uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	is.state, is.err, is.done = state, err, done
}

func (m *Manager) relDir(man *syncv1.PackageManifest) string {
	rel, _ := filepath.Rel(m.o.Dir, m.store.versionDir(man))
	return rel
}

// gc removes the versions and chunks nothing needs: it keeps, for every
// issued package, the current version, the previous one (for a rollback)
// and the issued one, with their chunks (a next version downloads only
// what differs from them).
func (m *Manager) gc() {
	m.mu.Lock()
	keepDirs := map[string]bool{}
	var manifests []*syncv1.PackageManifest
	for name, r := range m.records {
		is := m.issued[name]
		if is == nil {
			delete(m.records, name)
			continue
		}
		for _, v := range []*version{r.Current, r.Previous} {
			if v != nil {
				keepDirs[v.Dir] = true
				if man, err := m.readManifest(v.Stream); err == nil {
					manifests = append(manifests, man)
				}
			}
		}
	}
	for _, is := range m.issued {
		if is.m != nil {
			keepDirs[m.relDir(is.m)] = true
			manifests = append(manifests, is.m)
		}
	}
	m.mu.Unlock()
	if err := m.save(); err != nil {
		m.log.Error("could not save the package state", zap.Error(err))
	}
	keepChunks, keepStreams := map[string]bool{}, map[string]bool{}
	for _, man := range manifests {
		keepStreams[streamID(man)] = true
		for _, c := range man.GetChunks() {
			keepChunks[filepath.Base(m.store.chunkPath(c.GetSha256()))] = true
		}
	}
	removed := 0
	// versions/<org>/<name>/<version-platform>
	dirs, _ := filepath.Glob(filepath.Join(m.o.Dir, "versions", "*", "*", "*"))
	for _, d := range dirs {
		rel, _ := filepath.Rel(m.o.Dir, d)
		if !keepDirs[rel] {
			if err := os.RemoveAll(d); err == nil {
				removed++
			}
		}
	}
	for sub, keep := range map[string]map[string]bool{"chunks": keepChunks, "manifests": keepStreams} {
		entries, _ := os.ReadDir(filepath.Join(m.o.Dir, sub))
		for _, e := range entries {
			if !keep[e.Name()] {
				_ = os.Remove(filepath.Join(m.o.Dir, sub, e.Name()))
			}
		}
	}
	if removed > 0 {
		m.log.Info("collected package versions nothing uses", zap.Int("versions", removed))
	}
}

// readManifest reads the manifest kept for an unpacked version; it was
// verified before it was kept.
func (m *Manager) readManifest(stream string) (*syncv1.PackageManifest, error) {
	raw, err := os.ReadFile(filepath.Join(m.o.Dir, "manifests", stream))
	if err != nil {
		return nil, err
	}
	var man syncv1.PackageManifest
	if err := proto.Unmarshal(raw, &man); err != nil {
		return nil, err
	}
	return &man, checkManifest(&man)
}

// load reads the persisted state; a missing file is an empty state.
func (m *Manager) load() (map[string]*record, error) {
	path := filepath.Join(m.o.Dir, stateFile)
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]*record{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the package state: %w", err)
	}
	recs, err := parseState(raw)
	if err != nil {
		// Refusing to start would stop the whole part for a file it can
		// rebuild: the next config document downloads what is missing.
		m.log.Error("ignoring an unreadable package state", zap.String("file", path), zap.Error(err))
		return map[string]*record{}, nil
	}
	return recs, nil
}

// parseState decodes and checks the state file.
func parseState(raw []byte) (map[string]*record, error) {
	if len(raw) > maxState {
		return nil, fmt.Errorf("larger than %d bytes", maxState)
	}
	var recs map[string]*record
	if err := json.Unmarshal(raw, &recs); err != nil {
		return nil, fmt.Errorf("not a package state: %w", err)
	}
	if recs == nil {
		recs = map[string]*record{}
	}
	for name, r := range recs {
		if r == nil {
			return nil, fmt.Errorf("package %q: no record", name)
		}
		for _, v := range []*version{r.Current, r.Previous} {
			if v == nil {
				continue
			}
			parts := strings.Split(filepath.ToSlash(v.Dir), "/")
			if len(parts) != 4 || parts[0] != "versions" || !filepath.IsLocal(v.Dir) {
				return nil, fmt.Errorf("package %q: directory %q is not a version directory", name, v.Dir)
			}
		}
	}
	return recs, nil
}

// save writes the persisted state atomically.
func (m *Manager) save() error {
	m.mu.Lock()
	raw, err := json.MarshalIndent(m.records, "", "  ")
	m.mu.Unlock()
	if err != nil {
		return fmt.Errorf("encode the package state: %w", err)
	}
	return durable.Replace(filepath.Join(m.o.Dir, "tmp"), filepath.Join(m.o.Dir, stateFile), raw, 0o600)
}

func sortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
