package control

import (
	"context"
	"errors"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	controlv1 "github.com/outpost-robotics/outpost/api/gen/outpost/control/v1"
	"github.com/outpost-robotics/outpost/api/gen/outpost/control/v1/controlv1connect"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
)

// The daemon wires these to the real cache, sync and robot packages; control
// defines them so it depends on nothing but contracts.

// Grants is the source of the grant bundle control authorizes against.
type Grants interface {
	// CurrentGrants returns the verified bundle the part holds, or nil when it
	// holds none yet. Control never verifies signatures: the sync package
	// does before storing, and the cache again on load. Control does check
	// expires_at against its clock on every call.
	CurrentGrants(ctx context.Context) (*syncv1.GrantBundle, error)
}

// Audit receives audit events; the cache queues them for the sync loop.
type Audit interface {
	// Append stores one event durably (audit events are never evicted).
	Append(ctx context.Context, ev *syncv1.AuditEvent) error
}

// ErrNoCert is what CertStore.LoadCert returns when no certificate was saved yet.
var ErrNoCert = errors.New("no control certificate stored")

// CertStore keeps the control plane's TLS key and certificate.
type CertStore interface {
	// LoadCert returns the PEM certificate and PKCS#8 PEM key, or ErrNoCert.
	LoadCert(ctx context.Context) (certPEM, keyPEM []byte, err error)
	// SaveCert stores them durably.
	SaveCert(ctx context.Context, certPEM, keyPEM []byte) error
}

// Robot is the running machine.
type Robot interface {
	// ComponentService is served to field techs behind the same authorization
	// as every other call (each of its methods needs machine.control).
	controlv1connect.ComponentServiceHandler
	// StopAll brings every component to a safe state; the map holds the
	// components that failed, with why.
	StopAll(ctx context.Context) (map[string]string, error)
	// Restart restarts components, modules and processes.
	Restart(ctx context.Context) error
}

// ConfigState is the config the part runs.
type ConfigState struct {
	// Config is the running config.
	Config *configv1.RobotConfig
	// Version is the signed config version it came from (0 for a local edit only).
	Version uint64
	// Parts are the machine's parts as the signed document lists them; the
	// main part forwards calls for another part's components, and the other
	// parts accept forwarded calls from it alone.
	Parts []*configv1.MachinePart
	// MachineRevision is the machine config revision it is based on.
	MachineRevision uint64
	// LocalEdits says it holds edits the cloud has not accepted yet.
	LocalEdits bool
	// Fragments are the fragment versions the signed document merged into
	// Config; an edit proposes them with itself, so the cloud keeps what
	// they gave out of the machine's own config.
	Fragments []*syncv1.FragmentVersion
}

// EditResult is what became of a local config edit.
type EditResult struct {
	// Applied says the edit runs on the part.
	Applied bool
	// ProposalSeq is the proposals-stream sequence it was queued under.
	ProposalSeq uint64
	// Conflict is non-empty when the proposal's base revision is not the
	// part's current one; the proposal is still queued and the cloud decides.
	Conflict string
}

// Config reads and edits the part's config.
type Config interface {
	// CurrentConfig returns the running config.
	CurrentConfig(ctx context.Context) (ConfigState, error)
	// ProposeEdit applies p.Config locally and queues p as a proposed
	// revision; it works offline.
	ProposeEdit(ctx context.Context, p *syncv1.ConfigProposal) (EditResult, error)
}

// Logs reads the part's log.
type Logs interface {
	// Tail returns up to limit recent entries at minLevel or above, oldest first.
	Tail(ctx context.Context, limit int, minLevel string) ([]*controlv1.LogEntry, error)
	// Follow delivers new entries at minLevel or above until ctx is done; the
	// channel is closed then.
	Follow(ctx context.Context, minLevel string) (<-chan *controlv1.LogEntry, error)
}

// Data reads and edits the part's captures.
type Data interface {
	// ListCaptures lists captures, newest first; component "" means all.
	ListCaptures(ctx context.Context, component string, limit int) ([]*controlv1.CaptureInfo, error)
	// ReadCapture returns one capture and its data.
	ReadCapture(ctx context.Context, id uint64) (*controlv1.CaptureInfo, []byte, error)
	// TagCaptures adds and removes tags (a tag in both is removed) on the
	// captures still on the part, returning how many changed. The ids (1 to
	// 1000, none 0) and tags were validated. The changed captures go to the
	// cloud with their new tags.
	TagCaptures(ctx context.Context, ids []uint64, add, remove []string) (int, error)
	// DeleteCaptures deletes captures still on the part, returning how many
	// were deleted; the ids were validated. The cloud is told they are gone
	// (a gap record naming who deleted them: CallerRef(ctx)), never the data.
	DeleteCaptures(ctx context.Context, ids []uint64) (int, error)
}

// Status reports where the part stands with the cloud.
type Status interface {
	// SyncStatus fills the sync fields of a status answer: part_id,
	// sync_state, time_left, offline_for, last_contact, config_version.
	// Control adds the version, machine, grants and certificate fields.
	SyncStatus(ctx context.Context) (*controlv1.StatusResponse, error)
}
