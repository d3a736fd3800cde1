package cloud

// What the package's external tests (package cloud_test) need of its
// insides: bounds they test at, the seams a test of a failing mail relay
// and of the relay's bookkeeping reach, and the partial-blob sweep.

import (
	"context"

	"github.com/outpost-robotics/outpost/cloud/relay"
)

// MaxDepth is how deep locations nest.
const MaxDepth = maxDepth

// InviteTTL is how long an invitation's code holds.
const InviteTTL = inviteTTL

// Mailer returns the mailer invitations go through.
func (s *Server) Mailer() Mailer { return s.mailer }

// SetMailer replaces the mailer, for a relay that fails or is missing.
func (s *Server) SetMailer(m Mailer) { s.mailer = m }

// RelayLen is how many offers and waiting parts the relay holds.
func (s *Server) RelayLen() (offers, parts int) { return s.relay.(*relay.Broker).Len() }

// SweepPartialBlobs is the sweep Run starts, every PartialBlobSweep.
var SweepPartialBlobs = sweepPartialBlobs

// PartialBlobSweep is how often the sweep runs.
const PartialBlobSweep = partialBlobSweep

// ApplyRetention applies the organizations' data retention once, as the
// sweep Run starts does every hour.
func (s *Server) ApplyRetention(ctx context.Context) { s.applyRetention(ctx) }
