// Package store is the fleet cloud's storage contract: the records the cloud
// keeps (organizations, locations, machines, parts, users, API keys, grants,
// invitations, audit events) and the transactional Store interface over them.
//
// Implementations: badgerstore (embedded, one process, a data folder) and
// pgstore (PostgreSQL, for many stateless replicas). Each must pass the
// conformance suite in storetest; nothing here names a storage engine.
//
// Every read and write happens inside View or Update, so an invariant
// checked in a transaction (a location is empty before it is deleted, an
// email is unique) holds when it commits. Update may run its function more
// than once when transactions conflict, so the function must not have
// effects outside the transaction.
package store

import (
	"context"
	"errors"
	"strings"
	"time"
)

// Errors every implementation returns, wrapped with what was being done.
var (
	// ErrNotFound says the record does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists says a unique value (an ID, a user's email) is already taken.
	ErrExists = errors.New("already exists")
	// ErrConflict says concurrent transactions kept conflicting; the caller may retry later.
	ErrConflict = errors.New("transaction conflict")
)

// Store holds the cloud's state.
type Store interface {
	// View runs fn in a read-only transaction.
	View(ctx context.Context, fn func(Tx) error) error
	// Update runs fn in a read-write transaction and commits it if fn
	// returns nil. It retries fn on conflicts with concurrent transactions.
	Update(ctx context.Context, fn func(Tx) error) error
	// Generation returns a number that changes whenever the hierarchy (orgs,
	// locations, shares, machines, parts) changes, so replicas can cache a
	// view of it and rebuild only when it moved.
	Generation(ctx context.Context) (uint64, error)
	// Close releases the store.
	Close() error
}

// Tx is one transaction. Lists return records sorted by ID unless said otherwise.
type Tx interface {
	GetOrg(ctx context.Context, id string) (Org, error)
	PutOrg(ctx context.Context, o Org) error
	DeleteOrg(ctx context.Context, id string) error
	ListOrgs(ctx context.Context) ([]Org, error)

	GetLocation(ctx context.Context, id string) (Location, error)
	PutLocation(ctx context.Context, l Location) error
	DeleteLocation(ctx context.Context, id string) error
	// ListLocations lists an organization's locations, or every location for "".
	ListLocations(ctx context.Context, orgID string) ([]Location, error)
	// ListChildLocations lists the locations whose parent is parentID.
	ListChildLocations(ctx context.Context, parentID string) ([]Location, error)

	GetMachine(ctx context.Context, id string) (Machine, error)
	PutMachine(ctx context.Context, m Machine) error
	DeleteMachine(ctx context.Context, id string) error
	// ListMachines lists a location's machines, or every machine for "".
	ListMachines(ctx context.Context, locationID string) ([]Machine, error)
	// PageMachines returns one page of the machines q selects, sorted by
	// name then ID (bytewise), and whether more follow. It reads an index
	// on (name, ID), so a page costs the machines it steps over, not the
	// whole fleet.
	PageMachines(ctx context.Context, q MachineQuery) (page []Machine, more bool, err error)

	GetPart(ctx context.Context, id string) (Part, error)
	PutPart(ctx context.Context, p Part) error
	DeletePart(ctx context.Context, id string) error
	// ListParts lists a machine's parts, or every part for "".
	ListParts(ctx context.Context, machineID string) ([]Part, error)

	GetUser(ctx context.Context, id string) (User, error)
	// GetUserByEmail finds a user by email (compared as stored: callers normalize).
	GetUserByEmail(ctx context.Context, email string) (User, error)
	// PutUser creates or replaces a user; another user's email is ErrExists.
	PutUser(ctx context.Context, u User) error
	// DeleteUser removes a user and frees its email; its grants are the caller's.
	DeleteUser(ctx context.Context, id string) error
	ListUsers(ctx context.Context) ([]User, error)

	GetAPIKey(ctx context.Context, id string) (APIKey, error)
	PutAPIKey(ctx context.Context, k APIKey) error
	DeleteAPIKey(ctx context.Context, id string) error
	// ListAPIKeys lists an organization's keys.
	ListAPIKeys(ctx context.Context, orgID string) ([]APIKey, error)

	// GetGrant returns the grant of subject on scope.
	GetGrant(ctx context.Context, subject, scope string) (Grant, error)
	// PutGrant creates or replaces the grant of g.Subject on g.Scope.
	PutGrant(ctx context.Context, g Grant) error
	DeleteGrant(ctx context.Context, subject, scope string) error
	// ListGrantsBySubject lists a subject's grants, sorted by scope.
	ListGrantsBySubject(ctx context.Context, subject string) ([]Grant, error)
	// ListGrantsByScope lists the grants held on exactly scope, sorted by subject.
	ListGrantsByScope(ctx context.Context, scope string) ([]Grant, error)
	// ListGrantsByOrg lists the grants on an organization or anything in it.
	ListGrantsByOrg(ctx context.Context, orgID string) ([]Grant, error)

	GetInvite(ctx context.Context, id string) (Invite, error)
	// GetInviteByCode finds an invitation by the SHA-256 of its code.
	GetInviteByCode(ctx context.Context, codeHash []byte) (Invite, error)
	PutInvite(ctx context.Context, inv Invite) error
	DeleteInvite(ctx context.Context, id string) error
	// ListInvites lists every pending invitation, sorted by id, for a copy
	// of the whole store.
	ListInvites(ctx context.Context) ([]Invite, error)

	// AppendAudit stores an event; its ID must be new.
	AppendAudit(ctx context.Context, e AuditEvent) error
	// ListAudit lists an organization's events ("" for events outside any
	// organization), newest first, with IDs below before ("" for the newest),
	// at most limit of them.
	ListAudit(ctx context.Context, orgID, before string, limit int) ([]AuditEvent, error)

	// GetConfigRevision returns revision rev of a machine config.
	GetConfigRevision(ctx context.Context, machineID string, rev uint64) (ConfigRevision, error)
	// PutConfigRevision stores a machine config revision; revisions are
	// never replaced, so an existing (machine, revision) is ErrExists.
	PutConfigRevision(ctx context.Context, r ConfigRevision) error
	// ListConfigRevisions lists a machine's config revisions, oldest first.
	ListConfigRevisions(ctx context.Context, machineID string) ([]ConfigRevision, error)

	GetFragment(ctx context.Context, id string) (Fragment, error)
	PutFragment(ctx context.Context, f Fragment) error
	DeleteFragment(ctx context.Context, id string) error
	// ListFragments lists an organization's fragments.
	ListFragments(ctx context.Context, orgID string) ([]Fragment, error)
	// GetFragmentRevision returns revision rev of a fragment.
	GetFragmentRevision(ctx context.Context, fragmentID string, rev uint64) (FragmentRevision, error)
	// PutFragmentRevision stores a fragment revision; an existing one is ErrExists.
	PutFragmentRevision(ctx context.Context, r FragmentRevision) error

	// GetPackage returns an organization's package by name.
	GetPackage(ctx context.Context, orgID, name string) (Package, error)
	// PutPackage creates or replaces a package.
	PutPackage(ctx context.Context, p Package) error
	// DeletePackage removes a package; its versions are the caller's.
	DeletePackage(ctx context.Context, orgID, name string) error
	// ListPackages lists an organization's packages, sorted by name.
	ListPackages(ctx context.Context, orgID string) ([]Package, error)
	// PutPackageVersion stores a version of a package for a platform;
	// versions are never replaced, so an existing one is ErrExists.
	PutPackageVersion(ctx context.Context, v PackageVersion) error
	// DeletePackageVersion removes one platform's version.
	DeletePackageVersion(ctx context.Context, orgID, name, version, platform string) error
	// ListPackageVersions lists a package's versions, oldest upload (Seq)
	// first.
	ListPackageVersions(ctx context.Context, orgID, name string) ([]PackageVersion, error)
	// PutPackageChunk stores a chunk's bytes under the organization and
	// their SHA-256, which the caller computed; storing a chunk the
	// organization holds is a no-op.
	PutPackageChunk(ctx context.Context, orgID string, sha256, data []byte) error
	// GetPackageChunk returns a chunk's bytes, or ErrNotFound.
	GetPackageChunk(ctx context.Context, orgID string, sha256 []byte) ([]byte, error)
	// HasPackageChunk reports whether the organization holds a chunk.
	HasPackageChunk(ctx context.Context, orgID string, sha256 []byte) (bool, error)
	// DeletePackageChunk removes a chunk; one not held is no error.
	DeletePackageChunk(ctx context.Context, orgID string, sha256 []byte) error
	// PutPendingChunk records a chunk the organization uploaded that no
	// version names yet, replacing any record of it.
	PutPendingChunk(ctx context.Context, c PendingChunk) error
	// DeletePendingChunk forgets a pending chunk (a version names it now,
	// or it was collected); one not recorded is no error.
	DeletePendingChunk(ctx context.Context, orgID string, sha256 []byte) error
	// PendingChunkUsage counts an organization's pending chunks and their
	// bytes.
	PendingChunkUsage(ctx context.Context, orgID string) (PendingUsage, error)
	// ListPendingChunks lists an organization's pending chunks uploaded
	// before a time, oldest first, at most limit of them.
	ListPendingChunks(ctx context.Context, orgID string, before time.Time, limit int) ([]PendingChunk, error)

	// GetPartDocuments returns what was last signed for a part.
	GetPartDocuments(ctx context.Context, partID string) (PartDocuments, error)
	PutPartDocuments(ctx context.Context, d PartDocuments) error

	// GetProposal returns a config proposal by its ID.
	GetProposal(ctx context.Context, id string) (Proposal, error)
	PutProposal(ctx context.Context, p Proposal) error
	// ListProposals lists a machine's proposals, sorted by ID.
	ListProposals(ctx context.Context, machineID string) ([]Proposal, error)

	// GetCaptureTags returns the tag edits of one capture, or ErrNotFound.
	GetCaptureTags(ctx context.Context, id string) (CaptureTags, error)
	PutCaptureTags(ctx context.Context, t CaptureTags) error

	GetAlertRule(ctx context.Context, id string) (AlertRule, error)
	// PutAlertRule creates or replaces a rule.
	PutAlertRule(ctx context.Context, r AlertRule) error
	// DeleteAlertRule removes a rule; its states and events are the caller's.
	DeleteAlertRule(ctx context.Context, id string) error
	// ListAlertRules lists an organization's rules, or every rule for "".
	ListAlertRules(ctx context.Context, orgID string) ([]AlertRule, error)
	// GetAlertState returns where a rule stands for a part, or ErrNotFound.
	GetAlertState(ctx context.Context, ruleID, partID string) (AlertState, error)
	PutAlertState(ctx context.Context, st AlertState) error
	DeleteAlertState(ctx context.Context, ruleID, partID string) error
	// ListAlertStates lists a rule's states, sorted by part ID, or every
	// state for "" (sorted by rule, then part).
	ListAlertStates(ctx context.Context, ruleID string) ([]AlertState, error)
	// GetAlertEvent returns one event of a rule's history.
	GetAlertEvent(ctx context.Context, id string) (AlertEvent, error)
	// PutAlertEvent creates or replaces an event (its delivery is written later).
	PutAlertEvent(ctx context.Context, e AlertEvent) error
	// DeleteAlertEvent removes an event.
	DeleteAlertEvent(ctx context.Context, id string) error
	// ListAlertEvents lists a rule's events, newest first, with IDs below
	// before ("" for the newest), at most limit of them.
	ListAlertEvents(ctx context.Context, ruleID, before string, limit int) ([]AlertEvent, error)

	// GetDataset returns a dataset by its ID.
	GetDataset(ctx context.Context, id string) (Dataset, error)
	PutDataset(ctx context.Context, d Dataset) error
	// DeleteDataset deletes a dataset and every capture it lists.
	DeleteDataset(ctx context.Context, id string) error
	// ListDatasets lists an organization's datasets, sorted by ID.
	ListDatasets(ctx context.Context, orgID string) ([]Dataset, error)
	// PutDatasetCapture adds a capture to a dataset, or replaces its entry.
	PutDatasetCapture(ctx context.Context, c DatasetCapture) error
	// DeleteDatasetCapture removes a capture from a dataset, or ErrNotFound.
	DeleteDatasetCapture(ctx context.Context, datasetID, captureID string) error
	// ListDatasetCaptures lists a dataset's captures, sorted by capture ID.
	ListDatasetCaptures(ctx context.Context, datasetID string) ([]DatasetCapture, error)

	// GetMeta and PutMeta keep small cloud-wide values, such as the signing key.
	GetMeta(ctx context.Context, key string) ([]byte, error)
	PutMeta(ctx context.Context, key string, value []byte) error
}

// Org is an organization.
type Org struct {
	ID        string
	Name      string
	CreatedAt time.Time
	// BundleTTL is how long the signed documents of the organization's
	// parts stay valid offline; 0 means the cloud's default (60 days).
	BundleTTL time.Duration
	// Retention is how long the cloud keeps what the organization's parts
	// upload, from when it received it; 0 keeps it for ever.
	Retention time.Duration
}

// Location is a location; ParentID is "" at the top of its organization.
type Location struct {
	ID            string
	OrgID         string
	ParentID      string
	Name          string
	SupportAccess bool
	// SharedWith lists the organizations the location is shared with.
	SharedWith []string
	CreatedAt  time.Time
}

// Machine is a machine in a location. Its name may not hold NUL (both
// stores index it).
type Machine struct {
	ID                 string
	LocationID         string
	Name               string
	RestartRequestedAt time.Time
	CreatedAt          time.Time
}

// MachineQuery selects a page of machines for Tx.PageMachines. A machine is
// selected when it is in one of LocationIDs or is one of MachineIDs, and its
// name holds Search.
type MachineQuery struct {
	// LocationIDs and MachineIDs select the machines; both empty select none.
	LocationIDs []string
	MachineIDs  []string
	// Search keeps machines whose name, folded by FoldName, holds
	// FoldName(Search); "" keeps all.
	Search string
	// AfterName and AfterID are the last machine of the previous page: the
	// page starts after (AfterName, AfterID). Both "" start at the first.
	AfterName, AfterID string
	// Limit is the most machines in the page, from 1 to MaxMachinePage.
	Limit int
}

// MaxMachinePage bounds MachineQuery.Limit.
const MaxMachinePage = 1000

// FoldName is how PageMachines compares a search with names: ASCII letters
// in lower case, everything else as it is. ASCII only because that is what
// PostgreSQL's lower() does under the "C" collation, so every
// implementation folds alike.
func FoldName(s string) string {
	return strings.Map(func(r rune) rune {
		if 'A' <= r && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}, s)
}

// Part is a part of a machine.
type Part struct {
	ID        string
	MachineID string
	Name      string
	Main      bool
	// SecretHash is the SHA-256 of the part's secret.
	SecretHash      []byte
	SecretRotatedAt time.Time
	CreatedAt       time.Time
	// Restart is the part's restart asked from the cloud, and the last one
	// it reported handled.
	Restart PartRestart
}

// PartRestart is where a part stands with restarts asked from the cloud.
type PartRestart struct {
	// ID names the pending request (32 hex digits); "" when none is pending.
	ID          string
	RequestedAt time.Time
	// RequestedBy is "user/ID" or "apikey/ID".
	RequestedBy string
	// The last request the part reported handled: its ID, when, what it
	// did ("restarted", "expired" or "failed") and why it failed.
	HandledID string
	HandledAt time.Time
	Outcome   string
	Error     string
}

// User is a person who signs in.
type User struct {
	ID    string
	Email string
	// PasswordHash is the encoded argon2id hash of the password.
	PasswordHash string
	// Admin marks the cloud-wide admin.
	Admin     bool
	CreatedAt time.Time
	// TokensNotBefore revokes every access token of the user issued
	// before it (a password change); zero revokes none.
	TokensNotBefore time.Time
	// RevokedTokens are tokens of the user revoked one by one (sign-out),
	// each kept until it would have expired anyway.
	RevokedTokens []RevokedToken
}

// RevokedToken is one revoked access token: its ID (the JWT's jti) and
// when it expires, after which it need not be remembered.
type RevokedToken struct {
	ID        string
	ExpiresAt time.Time
}

// APIKey is a key; its grants are Grants with Subject "apikey/ID".
type APIKey struct {
	ID    string
	Name  string
	OrgID string
	// Scope is where it was created, "kind/ID".
	Scope string
	// PublicKey is the key's Ed25519 public key: its private key never
	// reaches the cloud.
	PublicKey []byte
	// SecretHash is the SHA-256 of the secret of a key from before key
	// pairs; such keys are refused, and kept only so they can be listed
	// and revoked.
	SecretHash []byte
	CreatedBy  string
	CreatedAt  time.Time
	// ViaOrg is the organization whose share of a location let the creator
	// make it: its owners' authority here came only through that share.
	// Ending the share ends what it made. "" when made with authority in
	// the scope's own organization.
	ViaOrg string
}

// Grant is a role held by a subject on a scope.
type Grant struct {
	// Subject is "user/ID" or "apikey/ID" (authz.Subject); grants written
	// before there was one spelling are keyed "user:ID" or "apikey:ID".
	Subject string
	// Role is "owner" or "operator".
	Role string
	// Scope is "org/ID", "location/ID" or "machine/ID".
	Scope string
	// OrgID is the organization the scope belongs to.
	OrgID     string
	CreatedAt time.Time
	// ViaOrg is the organization whose share of a location let the creator
	// make it: its owners' authority here came only through that share.
	// Ending the share ends what it made. "" when made with authority in
	// the scope's own organization.
	ViaOrg string
}

// Invite is an invitation to a role on a scope.
type Invite struct {
	ID    string
	Email string
	Role  string
	Scope string
	OrgID string
	// CodeHash is the SHA-256 of the invitation code.
	CodeHash  []byte
	InvitedBy string
	ExpiresAt time.Time
	CreatedAt time.Time
	// ViaOrg is the organization whose share of a location let the creator
	// make it: its owners' authority here came only through that share.
	// Ending the share ends what it made. "" when made with authority in
	// the scope's own organization.
	ViaOrg string
}

// AuditEvent records one decided change.
type AuditEvent struct {
	// ID orders events by time; see the cloud's audit writer.
	ID        string
	Time      time.Time
	Subject   string
	Procedure string
	Action    string
	Resource  string
	Allowed   bool
	Reason    string
	OrgID     string
	Outcome   string
}

// ConfigRevision is one revision of a machine's config. Revisions count from
// 1 per machine and are never changed once written.
type ConfigRevision struct {
	MachineID string
	Revision  uint64
	// Config is the serialized outpost.config.v1.RobotConfig (binary).
	Config []byte
	// Fragments are the IDs of the fragments the machine uses, in the
	// order the author gave.
	Fragments []string
	// Author is "user/ID", "apikey/ID", or "part:ID (AUTHOR)" for an
	// accepted offline edit; revisions written before there was one
	// subject spelling say "user:ID" or "apikey:ID".
	Author    string
	CreatedAt time.Time
}

// Fragment is an organization-level config piece; its content is the
// FragmentRevision named by Revision.
type Fragment struct {
	ID       string
	OrgID    string
	Name     string
	Revision uint64
	// UpdatedBy and UpdatedAt describe the latest revision.
	UpdatedBy string
	UpdatedAt time.Time
	CreatedAt time.Time
}

// FragmentRevision is one revision of a fragment, never changed once written.
type FragmentRevision struct {
	FragmentID string
	Revision   uint64
	// Config is the serialized outpost.config.v1.RobotConfig (binary).
	Config    []byte
	Author    string
	CreatedAt time.Time
}

// Package is one package of an organization's registry. Its content lives
// in its PackageVersions; chunks are held per organization, shared by every
// version that names them.
type Package struct {
	OrgID string
	Name  string
	// Type is "module", "ml_model", "process" or "file".
	Type string
	// Tags maps a tag to the version it points at.
	Tags map[string]string
	// NextSeq numbers the next version uploaded.
	NextSeq   uint64
	CreatedAt time.Time
	UpdatedAt time.Time
}

// PackageVersion is one version of a package for one platform, never
// changed once written.
type PackageVersion struct {
	OrgID    string
	Name     string
	Version  string
	Platform string
	// Seq orders a package's uploads; the highest is "latest".
	Seq uint64
	// Manifest is the serialized outpost.sync.v1.SignedDocument of its
	// PackageManifest.
	Manifest     []byte
	Size         uint64
	UnpackedSize uint64
	SHA256       []byte
	ChunkCount   int
	CreatedBy    string
	CreatedAt    time.Time
}

// PendingChunk is a chunk an organization uploaded that no version of its
// packages names yet: an upload under way, or one abandoned.
type PendingChunk struct {
	OrgID      string
	SHA256     []byte
	Size       int
	UploadedAt time.Time
}

// PendingUsage is what an organization's pending chunks take.
type PendingUsage struct {
	Chunks int
	Bytes  int64
}

// PartDocuments is what the cloud last signed for a part: each document's
// version, a digest of its content (everything but version and times) and
// the signed bytes. Versions only grow: a new version is issued when the
// digest changes or the document nears its expiry.
type PartDocuments struct {
	PartID         string
	ConfigVersion  uint64
	ConfigDigest   []byte
	ConfigIssuedAt time.Time
	// ConfigExpiresAt is when the signed config stops being honoured.
	ConfigExpiresAt time.Time
	// Config is the serialized outpost.sync.v1.SignedDocument.
	Config         []byte
	GrantsVersion  uint64
	GrantsDigest   []byte
	GrantsIssuedAt time.Time
	// GrantsExpiresAt is when the signed grant bundle stops being honoured.
	GrantsExpiresAt time.Time
	// Grants is the serialized outpost.sync.v1.SignedDocument.
	Grants []byte
	// PreviousConfig is the signed config Config replaced: a part may still
	// be fetching the packages it named.
	PreviousConfig []byte
}

// Proposal is a config revision a part proposed (an offline edit), and what
// became of it.
type Proposal struct {
	// ID is "PART|STORE_ID|SEQ": one proposal per record of the part's
	// proposals stream.
	ID           string
	PartID       string
	MachineID    string
	Seq          uint64
	BaseRevision uint64
	// Config is the serialized outpost.config.v1.RobotConfig (binary).
	Config []byte
	Author string
	// State is "accepted", "conflict" or "resolved".
	State string
	// Revision is the revision it became (accepted) or the current one it
	// conflicted with.
	Revision uint64
	// Message explains the outcome to people.
	Message string
	// Told says the part received the outcome in a pull.
	Told      bool
	CreatedAt time.Time
	// Fragments are the fragment versions merged into the config the
	// edit started from, as the part sent them (fragment ID to revision).
	Fragments map[string]uint64 `json:",omitempty"`
}

// CaptureTags are the tags people added to and removed from one capture
// after it arrived; the capture itself, as the part sent it, never changes.
type CaptureTags struct {
	// ID is "PART|STORE_ID|SEQ", the capture's key in the captures stream.
	ID      string
	Added   []string
	Removed []string
	// UpdatedBy and UpdatedAt describe the last edit.
	UpdatedBy string
	UpdatedAt time.Time
}

// AlertRule is a fleet alert rule: a condition evaluated by the cloud over
// the last status of every part in its scope, delivered to a webhook when
// it starts and stops holding for a part.
type AlertRule struct {
	ID string
	// OrgID is the organization the scope belongs to.
	OrgID string
	// Scope is "org/ID" or "location/ID": a location covers its subtree,
	// an organization its own locations and those shared with it.
	Scope string
	Name  string
	// Kind is the condition: "offline", "failing", "error_logs",
	// "capture_backlog", "store_bytes" or "rollout_failed".
	Kind string
	// Threshold is the count or byte limit of error_logs, capture_backlog
	// and store_bytes: the rule holds above it.
	Threshold uint64
	// Window is how long a part must be offline (offline), or the window
	// error logs are counted over (error_logs).
	Window time.Duration
	// WebhookURL is where transitions are posted.
	WebhookURL string
	// Secret is the key the webhook bodies are signed with (HMAC-SHA256);
	// shown once at creation, never listed.
	Secret    []byte
	CreatedBy string
	CreatedAt time.Time
}

// AlertState is where one rule stands for one part: whether it fires, and
// since when. The evaluator changes it with a conditional write in one
// transaction with the event it records, so of several replicas only one
// records (and delivers) a given transition.
type AlertState struct {
	RuleID string
	PartID string
	Firing bool
	// Since is when it last changed.
	Since time.Time
	// EventID is the event that recorded the last change.
	EventID string
}

// AlertEvent is one entry of a rule's history: a transition of one part
// ("firing", "resolved") or a test-fire ("test"), and how its delivery went.
type AlertEvent struct {
	// ID orders a rule's events by time (as audit event IDs do).
	ID        string
	RuleID    string
	OrgID     string
	PartID    string
	MachineID string
	// State is "firing", "resolved" or "test".
	State string
	Time  time.Time
	// Detail says why, for people ("silent for 5m0s", "process/abc failed").
	Detail string
	// Delivery is how the webhook answered; zero until delivered or given up.
	Delivery AlertDelivery
}

// AlertDelivery is the outcome of posting an event to its webhook.
type AlertDelivery struct {
	// Attempts counts the requests made.
	Attempts int
	// StatusCode is the last HTTP status received; 0 for none.
	StatusCode int
	// Delivered says a 2xx answer was received.
	Delivered bool
	// Error says why it was not, for people (never the secret).
	Error string
	At    time.Time
}

// Dataset is a named set of captures of one organization's machines, for
// training models.
type Dataset struct {
	ID    string
	OrgID string
	Name  string
	// CreatedBy is the subject that created it ("user/ID").
	CreatedBy string
	CreatedAt time.Time
}

// DatasetCapture is one capture listed in a dataset. The capture itself
// stays in the ingest store; the dataset names it.
type DatasetCapture struct {
	DatasetID string
	// CaptureID is "PART|STORE_ID|SEQ", as in CaptureTags.
	CaptureID string
	// MachineID is the machine of the capture's part, whose data rules
	// decide who may see it.
	MachineID string
	// AddedBy and AddedAt describe who added it and when.
	AddedBy string
	AddedAt time.Time
}
