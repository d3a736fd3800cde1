// Package partfile reads the files outpostd keeps outside its store: the
// bootstrap file written when the part was provisioned, the store budget
// the last config set, and the API keys a main part calls remotes with.
// Both the daemon and `outpost doctor` read them, and
// this package imports no store, so the CLI that runs on a technician's
// laptop links no Badger.
package partfile

// The packaged daemon's paths (the .deb's unit file passes them too).
const (
	// DefaultBootstrapPath is where the bootstrap file is installed.
	DefaultBootstrapPath = "/etc/outpost/outpostd.json"
	// DefaultDataDir holds the store and the budget file.
	DefaultDataDir = "/var/lib/outpost"
)
