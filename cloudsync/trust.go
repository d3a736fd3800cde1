package cloudsync

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	configv1 "github.com/outpost-robotics/outpost/api/gen/outpost/config/v1"
	syncv1 "github.com/outpost-robotics/outpost/api/gen/outpost/sync/v1"
	"github.com/outpost-robotics/outpost/config"
	"github.com/outpost-robotics/outpost/signed"
)

// Reasons a document from the cloud is refused, beyond those of package
// signed (unknown key, bad signature, wrong type, malformed).
var (
	ErrRollback  = errors.New("older than the document held")
	ErrExpired   = errors.New("expired")
	ErrWrongPart = errors.New("issued for another part")
)

// Trust decides whether a signed document from the cloud may be stored and
// used: it must verify with a pinned cloud key, be for
// this part, be newer than what is held, and not be past its expiry by the
// offline clock. A refused document changes nothing: the one held stays.
type Trust struct {
	partID string
	keys   signed.Keys
	clock  *OfflineClock
}

// NewTrust trusts documents for partID signed by one of keys.
func NewTrust(partID string, keys signed.Keys, clk *OfflineClock) *Trust {
	return &Trust{partID: partID, keys: keys, clock: clk}
}

// Config verifies a signed config that would replace version held (0 for
// none; pass the held version itself when re-checking a stored document).
func (t *Trust) Config(doc *syncv1.SignedDocument, held uint64, reload bool) (*syncv1.ConfigDocument, error) {
	var c syncv1.ConfigDocument
	if err := t.check(doc, &c, c.GetPartId, c.GetVersion, func() time.Time { return c.GetExpiresAt().AsTime() }, held, reload); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	// The parts are what this part pins its peers by: a list it cannot
	// read right is refused whole.
	if err := config.ValidateParts(c.GetParts()); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if len(c.GetParts()) > 0 && !slices.ContainsFunc(c.GetParts(), func(p *configv1.MachinePart) bool { return p.GetId() == t.partID }) {
		return nil, fmt.Errorf("config: the machine's parts do not list this part %q: %w", t.partID, ErrWrongPart)
	}
	return &c, nil
}

// Grants verifies a signed grant bundle, as Config does.
func (t *Trust) Grants(doc *syncv1.SignedDocument, held uint64, reload bool) (*syncv1.GrantBundle, error) {
	var g syncv1.GrantBundle
	if err := t.check(doc, &g, g.GetPartId, g.GetVersion, func() time.Time { return g.GetExpiresAt().AsTime() }, held, reload); err != nil {
		return nil, fmt.Errorf("grant bundle: %w", err)
	}
	return &g, nil
}

// Restart verifies a signed restart order: it must verify with a pinned
// key and name this part. An order past its expiry by the offline clock is
// returned with an error wrapping ErrExpired, so the part can report it
// expired; any other refusal returns no order.
func (t *Trust) Restart(doc *syncv1.SignedDocument) (*syncv1.RestartOrder, error) {
	var o syncv1.RestartOrder
	if err := signed.Verify(t.keys, doc, &o); err != nil {
		return nil, fmt.Errorf("restart order: %w", err)
	}
	if p := o.GetPartId(); p != t.partID {
		return nil, fmt.Errorf("restart order: for part %q, this is %q: %w", p, t.partID, ErrWrongPart)
	}
	if len(o.GetId()) == 0 || len(o.GetId()) > 64 || o.GetRequestedAt().CheckValid() != nil || o.GetExpiresAt().CheckValid() != nil {
		return nil, errors.New("restart order: want an id of at most 64 bytes, and valid requested_at and expires_at")
	}
	if exp := o.GetExpiresAt().AsTime(); t.Expired(exp) {
		return &o, fmt.Errorf("restart order %s expired at %s (cloud time now about %s): %w", o.GetId(),
			exp.UTC().Format(time.RFC3339), t.clock.Now().UTC().Format(time.RFC3339), ErrExpired)
	}
	return &o, nil
}

// Expired reports whether a document expiring at exp is past it by the
// offline clock.
func (t *Trust) Expired(exp time.Time) bool {
	return !t.clock.Now().Before(exp)
}

func (t *Trust) check(doc *syncv1.SignedDocument, into proto.Message, part func() string, version func() uint64, expires func() time.Time, held uint64, reload bool) error {
	if err := signed.Verify(t.keys, doc, into); err != nil {
		return err
	}
	if p := part(); p != t.partID {
		return fmt.Errorf("for part %q, this is %q: %w", p, t.partID, ErrWrongPart)
	}
	v := version()
	switch {
	case reload && v != held:
		return fmt.Errorf("stored version %d does not match its record %d: %w", v, held, ErrRollback)
	case !reload && v <= held:
		return fmt.Errorf("version %d is not newer than the %d held: %w", v, held, ErrRollback)
	}
	if exp := expires(); t.Expired(exp) {
		return fmt.Errorf("version %d expired at %s (cloud time now about %s): %w", v, exp.UTC().Format(time.RFC3339), t.clock.Now().UTC().Format(time.RFC3339), ErrExpired)
	}
	return nil
}
